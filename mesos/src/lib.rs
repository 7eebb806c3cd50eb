//! Placeholder; see DESIGN.md.
