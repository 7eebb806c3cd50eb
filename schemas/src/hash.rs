//! The template hash: a fingerprint of everything that shapes a running operator instance.
//!
//! Two tasks of an operator with equal template hashes run the same thing; a task whose
//! hash differs from its operator's current one must be replaced (rolling, bounded by
//! `updateStrategy`). Fields that only say *how many* or *how to roll out* are excluded, so
//! changing them never restarts a task.
//!
//! **Stability matters:** tasks carry the hash in their IDs/labels, so changing what goes
//! into it (or how) restarts every task in production. A test pins the value for a fixed
//! spec.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::topology::{Input, OperatorSpec, Resources, Runtime};

/// Number of hex characters of the SHA-256 digest kept.
pub const TEMPLATE_HASH_LEN: usize = 10;

/// The fields that go into the template hash, in the order they are serialised.
pub const TEMPLATE_FIELDS: &[&str] = &["runtime", "config", "env", "resources", "inputs"];

/// The part of an operator that shapes a running instance.
#[derive(Serialize)]
struct Template<'a> {
    runtime: &'a Runtime,
    config: &'a std::collections::BTreeMap<String, serde_json::Value>,
    env: &'a std::collections::BTreeMap<String, String>,
    resources: &'a Resources,
    inputs: &'a [Input],
}

/// Short hex SHA-256 (first [`TEMPLATE_HASH_LEN`] characters) over the canonical JSON of
/// `runtime`, `config`, `env`, `resources` and `inputs`. Not included: `name`,
/// `instances`, `updateStrategy`, `placement`, `restartBackoff`,
/// `progressDeadlineSeconds`.
pub fn template_hash(op: &OperatorSpec) -> String {
    let template = Template {
        runtime: &op.runtime,
        config: &op.config,
        env: &op.env,
        resources: &op.resources,
        inputs: &op.inputs,
    };
    let canonical = canonical_json(&template);
    let digest = Sha256::digest(canonical.as_bytes());
    let mut hex = hex::encode(digest);
    hex.truncate(TEMPLATE_HASH_LEN);
    hex
}

/// The names of the template fields that differ between `a` and `b`, in
/// [`TEMPLATE_FIELDS`] order. Empty exactly when the template hashes are equal (barring
/// hash collisions).
pub fn template_changes(a: &OperatorSpec, b: &OperatorSpec) -> Vec<String> {
    let checks = [
        ("runtime", same(&a.runtime, &b.runtime)),
        ("config", same(&a.config, &b.config)),
        ("env", same(&a.env, &b.env)),
        ("resources", same(&a.resources, &b.resources)),
        ("inputs", same(&a.inputs, &b.inputs)),
    ];
    checks
        .into_iter()
        .filter(|(_, same)| !same)
        .map(|(field, _)| field.to_owned())
        .collect()
}

fn same<T: Serialize>(a: &T, b: &T) -> bool {
    canonical_json(a) == canonical_json(b)
}

/// JSON with object keys sorted at every level and no insignificant whitespace,
/// independent of serde_json's `preserve_order` feature.
fn canonical_json<T: Serialize>(value: &T) -> String {
    let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    canonical(value).to_string()
}

fn canonical(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(canonical).collect())
        }
        other => other,
    }
}
