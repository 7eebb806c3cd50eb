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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{Partitioning, Placement, RestartBackoff, UpdateStrategy};

    type Edit = Box<dyn Fn(&mut OperatorSpec)>;

    fn op() -> OperatorSpec {
        serde_yaml_ng::from_str(
            "name: split
instances: 2
runtime: {process: {command: python3, args: [split.py], artifacts: [{uri: 'file:///x/split.py'}]}}
config: {rate: 1000, words: [a, b]}
env: {MODE: fast}
inputs: [{from: lines, partitioning: shuffle}]
resources: {cpus: 0.2, mem: 128, ports: [http]}
",
        )
        .expect("fixture")
    }

    #[test]
    fn hash_is_pinned() {
        // If this fails, the hash function or the serialised shape of a template field
        // changed: every running task in production would be replaced on upgrade. Make
        // new fields `skip_serializing_if` their default instead.
        assert_eq!(template_hash(&op()), "42dc4e91ab");
        assert_eq!(template_hash(&op()).len(), TEMPLATE_HASH_LEN);
    }

    #[test]
    fn canonical_template_is_pinned() {
        let template = Template {
            runtime: &op().runtime,
            config: &op().config,
            env: &op().env,
            resources: &op().resources,
            inputs: &op().inputs,
        };
        assert_eq!(
            canonical_json(&template),
            concat!(
                r#"{"config":{"rate":1000,"words":["a","b"]},"env":{"MODE":"fast"},"#,
                r#""inputs":[{"from":"lines","partitioning":"shuffle"}],"#,
                r#""resources":{"cpus":0.2,"disk":0.0,"mem":128.0,"ports":["http"]},"#,
                r#""runtime":{"process":{"args":["split.py"],"artifacts":[{"executable":false,"#,
                r#""extract":true,"uri":"file:///x/split.py"}],"command":"python3"}}}"#
            )
        );
    }

    #[test]
    fn template_fields_change_the_hash() {
        let base = template_hash(&op());
        let edits: Vec<(&str, Edit)> = vec![
            (
                "runtime",
                Box::new(|o| {
                    if let Runtime::Process(p) = &mut o.runtime {
                        p.args.push("-v".into());
                    }
                }),
            ),
            (
                "config",
                Box::new(|o| {
                    o.config.insert("rate".into(), serde_json::json!(2000));
                }),
            ),
            (
                "env",
                Box::new(|o| {
                    o.env.insert("MODE".into(), "slow".into());
                }),
            ),
            ("resources", Box::new(|o| o.resources.mem = 256.0)),
            (
                "resources",
                Box::new(|o| o.resources.ports.push("admin".into())),
            ),
            (
                "inputs",
                Box::new(|o| o.inputs[0].partitioning = Partitioning::Key),
            ),
            ("inputs", Box::new(|o| o.inputs[0].from = "other".into())),
        ];
        for (field, edit) in edits {
            let mut changed = op();
            edit(&mut changed);
            assert_ne!(template_hash(&changed), base, "{field}");
            assert_eq!(template_changes(&op(), &changed), vec![field.to_owned()]);
        }
    }

    #[test]
    fn non_template_fields_keep_the_hash() {
        let base = template_hash(&op());
        let mut changed = op();
        changed.name = "renamed".into();
        changed.instances = 7;
        changed.update_strategy = UpdateStrategy {
            max_surge: 3,
            max_unavailable: 2,
        };
        changed.placement = Placement {
            one_instance_per_host: true,
            require_attributes: [("rack".to_owned(), "r1".to_owned())].into(),
        };
        changed.restart_backoff = RestartBackoff {
            initial_seconds: 5.0,
            factor: 3.0,
            max_seconds: 50.0,
            reset_after_seconds: 10.0,
        };
        changed.progress_deadline_seconds = 60;
        assert_eq!(template_hash(&changed), base);
        assert!(template_changes(&op(), &changed).is_empty());
    }

    #[test]
    fn hash_is_independent_of_key_order_and_spelling() {
        let reordered: OperatorSpec = serde_yaml_ng::from_str(
            "resources: {ports: [http], mem: 128.0, cpus: 0.2, disk: 0}
inputs: [{from: lines}]
env: {MODE: fast}
config: {words: [a, b], rate: 1000}
runtime: {process: {artifacts: [{uri: 'file:///x/split.py', extract: true}], args: [split.py], command: python3}}
instances: 2
name: split
",
        )
        .expect("fixture");
        assert_eq!(template_hash(&reordered), template_hash(&op()));
    }

    #[test]
    fn canonical_json_sorts_nested_keys() {
        let value = serde_json::json!({"b": {"z": 1, "a": [{"y": 2, "x": 3}]}, "a": null});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":null,"b":{"a":[{"x":3,"y":2}],"z":1}}"#
        );
    }
}
