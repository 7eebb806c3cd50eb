//! Concord's Topology API: types, parsing with precise error locations, validation,
//! normalisation, template hashing, per-operator plans and the generated JSON Schema.
//!
//! The usual pipeline is [`parse_yaml`] (or [`parse_json`]), which already normalises and
//! validates; then [`template_hash`] per operator and [`plan`] against the stored spec.

pub mod api;
pub mod error;
pub mod hash;
mod locate;
pub mod names;
pub mod normalize;
pub mod parse;
pub mod plan;
pub mod schema;
pub mod status;
pub mod topology;
mod untyped;
pub mod validate;

pub use error::{SpecError, SpecErrors};
pub use hash::{TEMPLATE_FIELDS, TEMPLATE_HASH_LEN, template_changes, template_hash};
pub use normalize::normalize;
pub use parse::{Format, MAX_DOCUMENT_BYTES, parse_any, parse_json, parse_yaml};
pub use plan::{OperatorChange, OperatorPlan, Plan, plan};
pub use schema::{TOPOLOGY_SCHEMA_ID, topology_json_schema, topology_json_schema_text};
pub use status::*;
pub use topology::*;
pub use validate::{BUILTIN_OPERATORS, RESERVED_ENV_PREFIXES, validate};
