//! Concord's Topology API: types, parsing with precise error locations, validation,
//! normalisation, template hashing, per-operator plans and the generated JSON Schema.
//!
//! The usual pipeline is [`parse_yaml`] (or [`parse_json`]), which already normalises and
//! validates; then [`template_hash`] per operator and [`plan()`] against the stored spec.
//!
//! ```
//! let yaml = br#"
//! apiVersion: concord.io/v1alpha1
//! kind: Topology
//! metadata: {name: demo}
//! spec:
//!   operators:
//!     - name: lines
//!       runtime: {builtin: {name: generator}}
//!     - name: out
//!       runtime: {builtin: {name: sink}}
//!       inputs: [{from: lines}]
//! "#;
//! let old = concord_schemas::parse_yaml(yaml, "demo.yaml")?.remove(0);
//! let mut new = old.clone();
//! new.spec.operators[1].instances = 3;
//! let plan = concord_schemas::plan(Some(&old.spec), &new.spec);
//! assert_eq!(plan.to_string(), "  lines: unchanged\n~ out: scale 1 -> 3");
//! // Scaling does not change the template, so no task is replaced.
//! assert_eq!(
//!     concord_schemas::template_hash(&old.spec.operators[1]),
//!     concord_schemas::template_hash(&new.spec.operators[1]),
//! );
//!
//! let errors = concord_schemas::parse_yaml(b"kind: Topology\n", "bad.yaml").unwrap_err();
//! assert_eq!(
//!     errors.to_string(),
//!     "bad.yaml:1:1: apiVersion: missing field `apiVersion`: expected \"concord.io/v1alpha1\""
//! );
//! # Ok::<(), concord_schemas::SpecErrors>(())
//! ```

pub mod api;
mod builtin_config;
pub mod dataplane;
pub mod duration;
pub mod error;
pub mod gitops;
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

pub use duration::parse_duration;
pub use error::{SpecError, SpecErrors};
pub use hash::{TEMPLATE_FIELDS, TEMPLATE_HASH_LEN, template_changes, template_hash};
pub use normalize::normalize;
pub use parse::{
    Format, MAX_DOCUMENT_BYTES, MAX_EXPANDED_BYTES, check_yaml, parse_any, parse_json, parse_yaml,
};
pub use plan::{OperatorChange, OperatorPlan, Plan, plan};
pub use schema::{TOPOLOGY_SCHEMA_ID, topology_json_schema, topology_json_schema_text};
pub use status::*;
pub use topology::*;
pub use validate::{BUILTIN_OPERATORS, RESERVED_ENV_PREFIXES, is_relative_artifact, validate};
