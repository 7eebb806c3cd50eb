//! Placeholder; the benchmark driver is added later.
fn main() {}
