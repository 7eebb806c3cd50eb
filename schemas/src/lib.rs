//! Concord's Topology API: types, parsing with precise error locations, validation,
//! normalisation, template hashing, per-operator plans and the generated JSON Schema.

pub mod status;
pub mod topology;

pub use status::*;
pub use topology::*;
