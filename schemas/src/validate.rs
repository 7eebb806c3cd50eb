//! Semantic validation beyond what the types and the JSON Schema can say.
//!
//! [`validate`] checks a parsed [`Topology`] and returns *all* problems at once, each
//! with the field path it is about (`spec.operators[2].inputs[0].from`). The controller's
//! HTTP API and the CLI call the same function, so both reject exactly the same specs.

use std::collections::HashMap;

use crate::error::{SpecError, SpecErrors};
use crate::names::{check_dns1123_label, check_env_name, check_label_value, check_qualified_key};
use crate::topology::{
    API_VERSION, KIND, MAX_INSTANCES, OperatorSpec, RestartBackoff, Runtime, Topology,
};

pub use crate::normalize::normalize;

/// Names of the operators compiled into `concord-executor`. `runtime.builtin.name` must be
/// one of these; the executor has a test that its registry agrees with this list.
pub const BUILTIN_OPERATORS: &[&str] = &[
    "generator",
    "map",
    "filter",
    "keyed-count",
    "windowed-count",
    "threshold",
    "sink",
    "tcp-source",
    "http-source",
    "file-source",
    "kafka-source",
    "kafka-sink",
];

/// Environment variable prefixes the executor and Mesos set; users may not set them.
pub const RESERVED_ENV_PREFIXES: &[&str] = &["CONCORD_", "MESOS_"];

/// Artifact URI schemes the fetcher supports (besides absolute paths).
pub const ARTIFACT_SCHEMES: &[&str] = &["http://", "https://", "file://"];

/// The JSON Schema `pattern` of an artifact `uri`: exactly what validation accepts (an
/// [`ARTIFACT_SCHEMES`] scheme, case-insensitive, followed by at least one character and
/// no whitespace; or an absolute path, `./x` or `../x` without NUL bytes). A test in
/// `tests/json_schema.rs` checks the two agree.
pub const ARTIFACT_URI_PATTERN: &str =
    r"^(([Hh][Tt][Tt][Pp][Ss]?|[Ff][Ii][Ll][Ee])://\S+|(/|\.\.?/)[^\x00]*)$";

/// Upper bound on the total size of `metadata.annotations` (keys plus values), as in
/// Kubernetes.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// Upper bound for the back-off and deadline durations, in seconds (one week).
pub const MAX_DURATION_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

/// Validates `t`, returning every problem found (in document order).
pub fn validate(t: &Topology) -> Result<(), SpecErrors> {
    let mut v = Validator::default();
    v.header(t);
    v.metadata(t);
    v.operators(t);
    SpecErrors(v.errors).into_result()
}

#[derive(Default)]
struct Validator {
    errors: Vec<SpecError>,
}

impl Validator {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(SpecError::at_path(path, message));
    }

    fn header(&mut self, t: &Topology) {
        if t.api_version != API_VERSION {
            self.err(
                "apiVersion",
                format!(
                    "unsupported apiVersion {:?}: expected {API_VERSION:?}",
                    t.api_version
                ),
            );
        }
        if t.kind != KIND {
            self.err(
                "kind",
                format!("unsupported kind {:?}: expected {KIND:?}", t.kind),
            );
        }
    }

    fn metadata(&mut self, t: &Topology) {
        let m = &t.metadata;
        if let Err(e) = check_dns1123_label(&m.name) {
            self.err("metadata.name", format!("invalid name: {e}"));
        }
        if let Err(e) = check_dns1123_label(&m.namespace) {
            self.err("metadata.namespace", format!("invalid namespace: {e}"));
        }
        for (key, value) in &m.labels {
            let path = format!("metadata.labels.{key}");
            if let Err(e) = check_qualified_key(key) {
                self.err(&path, format!("invalid label key: {e}"));
            }
            if let Err(e) = check_label_value(value) {
                self.err(&path, format!("invalid label value: {e}"));
            }
        }
        let mut annotations_size = 0;
        for (key, value) in &m.annotations {
            annotations_size += key.len() + value.len();
            if let Err(e) = check_qualified_key(key) {
                self.err(
                    format!("metadata.annotations.{key}"),
                    format!("invalid annotation key: {e}"),
                );
            }
        }
        if annotations_size > MAX_ANNOTATIONS_BYTES {
            self.err(
                "metadata.annotations",
                format!(
                    "annotations total {annotations_size} bytes, more than the limit of \
                     {MAX_ANNOTATIONS_BYTES} bytes"
                ),
            );
        }
        if let Some(generation) = m.generation
            && generation < 0
        {
            self.err(
                "metadata.generation",
                format!("must not be negative, got {generation}"),
            );
        }
    }

    fn operators(&mut self, t: &Topology) {
        let ops = &t.spec.operators;
        if ops.is_empty() {
            self.err("spec.operators", "a topology needs at least one operator");
            return;
        }
        // First occurrence of each name.
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            let path = format!("spec.operators[{i}]");
            if let Err(e) = check_dns1123_label(&op.name) {
                self.err(
                    format!("{path}.name"),
                    format!("invalid operator name: {e}"),
                );
            }
            if let Some(&first) = index.get(op.name.as_str()) {
                self.err(
                    format!("{path}.name"),
                    format!(
                        "duplicate operator name {:?}: already used by spec.operators[{first}]",
                        op.name
                    ),
                );
            } else {
                index.insert(&op.name, i);
            }
        }
        for (i, op) in ops.iter().enumerate() {
            self.operator(&format!("spec.operators[{i}]"), op, ops, &index);
        }
        if !ops.iter().any(|op| op.inputs.is_empty()) {
            self.err(
                "spec.operators",
                "no source operator: at least one operator must have no inputs",
            );
        }
        self.cycles(ops, &index);
    }

    fn operator(
        &mut self,
        path: &str,
        op: &OperatorSpec,
        ops: &[OperatorSpec],
        index: &HashMap<&str, usize>,
    ) {
        if op.instances > MAX_INSTANCES {
            self.err(
                format!("{path}.instances"),
                format!(
                    "{} instances is more than the maximum of {MAX_INSTANCES}",
                    op.instances
                ),
            );
        }
        self.runtime(path, &op.runtime);
        if let Runtime::Builtin(b) = &op.runtime {
            for (key, message) in crate::builtin_config::check(&b.name, &op.config) {
                self.err(format!("{path}.config.{key}"), message);
            }
            if b.name == "kafka-source" && !op.inputs.is_empty() {
                self.err(
                    format!("{path}.inputs"),
                    "kafka-source reads Kafka; it takes no inputs",
                );
            }
            if b.name == "kafka-sink" && op.inputs.is_empty() {
                self.err(
                    format!("{path}.inputs"),
                    "kafka-sink writes its inputs to Kafka; it needs at least one",
                );
            }
        }
        if let Some(dl) = &op.on_error.dead_letter {
            for (key, message) in
                crate::builtin_config::check_dead_letter(&dl.bootstrap_servers, &dl.topic)
            {
                self.err(format!("{path}.onError.deadLetter.{key}"), message);
            }
        }
        for (name, value) in &op.env {
            let env_path = format!("{path}.env.{name}");
            if let Err(e) = check_env_name(name) {
                self.err(&env_path, e);
            } else if let Some(prefix) = RESERVED_ENV_PREFIXES
                .iter()
                .find(|p| name.to_ascii_uppercase().starts_with(**p))
            {
                self.err(
                    &env_path,
                    format!(
                        "environment variable {name:?} uses the reserved prefix {prefix:?} \
                         (reserved: {})",
                        RESERVED_ENV_PREFIXES.join(", ")
                    ),
                );
            }
            if value.contains('\0') {
                self.err(
                    &env_path,
                    "environment variable values cannot contain NUL bytes",
                );
            }
        }
        self.resources(path, op);
        self.inputs(path, op, ops, index);
        let us = &op.update_strategy;
        if us.max_surge == 0 && us.max_unavailable == 0 {
            self.err(
                format!("{path}.updateStrategy"),
                "maxSurge and maxUnavailable cannot both be 0: a rolling replacement could \
                 never make progress",
            );
        }
        for (key, value) in &op.placement.require_attributes {
            if key.trim().is_empty() {
                self.err(
                    format!("{path}.placement.requireAttributes"),
                    "attribute names cannot be empty",
                );
            }
            if value.trim().is_empty() {
                self.err(
                    format!("{path}.placement.requireAttributes.{key}"),
                    "attribute values cannot be empty",
                );
            }
        }
        self.backoff(&format!("{path}.restartBackoff"), &op.restart_backoff);
        if op.progress_deadline_seconds == 0 {
            self.err(
                format!("{path}.progressDeadlineSeconds"),
                "must be at least 1",
            );
        } else if f64::from(op.progress_deadline_seconds) > MAX_DURATION_SECONDS {
            self.err(
                format!("{path}.progressDeadlineSeconds"),
                format!(
                    "{} is more than the maximum of {MAX_DURATION_SECONDS} seconds (one week)",
                    op.progress_deadline_seconds
                ),
            );
        }
    }

    fn runtime(&mut self, path: &str, runtime: &Runtime) {
        match runtime {
            Runtime::Builtin(b) => {
                if !BUILTIN_OPERATORS.contains(&b.name.as_str()) {
                    self.err(
                        format!("{path}.runtime.builtin.name"),
                        format!(
                            "unknown builtin operator {:?}; known: {}",
                            b.name,
                            BUILTIN_OPERATORS.join(", ")
                        ),
                    );
                }
            }
            Runtime::Process(p) => {
                let rpath = format!("{path}.runtime.process");
                if p.command.trim().is_empty() {
                    self.err(format!("{rpath}.command"), "command must not be empty");
                } else if p.command.contains('\0') {
                    self.err(
                        format!("{rpath}.command"),
                        "command cannot contain NUL bytes",
                    );
                }
                for (k, arg) in p.args.iter().enumerate() {
                    if arg.contains('\0') {
                        self.err(
                            format!("{rpath}.args[{k}]"),
                            "arguments cannot contain NUL bytes",
                        );
                    }
                }
                for (k, artifact) in p.artifacts.iter().enumerate() {
                    let apath = format!("{rpath}.artifacts[{k}]");
                    if let Err(e) = check_artifact_uri(&artifact.uri) {
                        self.err(format!("{apath}.uri"), e);
                    }
                    if let Some(out) = &artifact.output_file
                        && let Err(e) = check_output_file(out)
                    {
                        self.err(format!("{apath}.outputFile"), e);
                    }
                }
            }
        }
    }

    fn resources(&mut self, path: &str, op: &OperatorSpec) {
        let r = &op.resources;
        let rpath = format!("{path}.resources");
        for (field, value) in [("cpus", r.cpus), ("mem", r.mem)] {
            if !(value.is_finite() && value > 0.0) {
                self.err(
                    format!("{rpath}.{field}"),
                    format!("must be a positive number, got {value}"),
                );
            }
        }
        if !(r.disk.is_finite() && r.disk >= 0.0) {
            self.err(
                format!("{rpath}.disk"),
                format!("must be zero or a positive number, got {}", r.disk),
            );
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (k, port) in r.ports.iter().enumerate() {
            let ppath = format!("{rpath}.ports[{k}]");
            if let Err(e) = check_dns1123_label(port) {
                self.err(&ppath, format!("invalid port name: {e}"));
            }
            if let Some(first) = seen.insert(port, k) {
                self.err(
                    &ppath,
                    format!("duplicate port name {port:?}: already used by ports[{first}]"),
                );
            }
        }
    }

    fn inputs(
        &mut self,
        path: &str,
        op: &OperatorSpec,
        ops: &[OperatorSpec],
        index: &HashMap<&str, usize>,
    ) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (k, input) in op.inputs.iter().enumerate() {
            let ipath = format!("{path}.inputs[{k}].from");
            if input.from == op.name {
                self.err(
                    &ipath,
                    format!("operator {:?} cannot consume its own output", op.name),
                );
            } else if !index.contains_key(input.from.as_str()) {
                let names: Vec<&str> = ops.iter().map(|o| o.name.as_str()).collect();
                self.err(
                    &ipath,
                    format!(
                        "unknown operator {:?}; operators in this topology: {}",
                        input.from,
                        names.join(", ")
                    ),
                );
            }
            if let Some(first) = seen.insert(&input.from, k) {
                self.err(
                    &ipath,
                    format!(
                        "duplicate input from {:?}: already declared as inputs[{first}]",
                        input.from
                    ),
                );
            }
        }
    }

    fn backoff(&mut self, path: &str, b: &RestartBackoff) {
        let mut check = |field: &str, value: f64, ok: bool, rule: &str| {
            if !(value.is_finite() && ok && value <= MAX_DURATION_SECONDS) {
                let rule = if value.is_finite() && value > MAX_DURATION_SECONDS {
                    format!("at most {MAX_DURATION_SECONDS} (one week)")
                } else {
                    rule.to_owned()
                };
                self.errors.push(SpecError::at_path(
                    format!("{path}.{field}"),
                    format!("must be {rule}, got {value}"),
                ));
                false
            } else {
                true
            }
        };
        let initial_ok = check(
            "initialSeconds",
            b.initial_seconds,
            b.initial_seconds > 0.0,
            "greater than 0",
        );
        check("factor", b.factor, b.factor >= 1.0, "at least 1");
        let max_rule = format!("at least initialSeconds ({})", b.initial_seconds);
        check(
            "maxSeconds",
            b.max_seconds,
            !initial_ok || b.max_seconds >= b.initial_seconds,
            &max_rule,
        );
        check(
            "resetAfterSeconds",
            b.reset_after_seconds,
            b.reset_after_seconds > 0.0,
            "greater than 0",
        );
    }

    /// Reports every cycle once, at the input that closes it, named in data-flow order
    /// (`a -> b -> a`: `b` consumes `a`, `a` consumes `b`).
    fn cycles(&mut self, ops: &[OperatorSpec], index: &HashMap<&str, usize>) {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnStack,
            Done,
        }
        // Edges upstream -> downstream, derived from inputs; (downstream, input index).
        let mut downstream: Vec<Vec<(usize, usize)>> = vec![Vec::new(); ops.len()];
        for (d, op) in ops.iter().enumerate() {
            for (k, input) in op.inputs.iter().enumerate() {
                if let Some(&u) = index.get(input.from.as_str())
                    && u != d
                    && index.get(op.name.as_str()) == Some(&d)
                {
                    downstream[u].push((d, k));
                }
            }
        }
        let mut marks = vec![Mark::New; ops.len()];
        let mut found: Vec<(usize, usize, Vec<usize>)> = Vec::new();
        for start in 0..ops.len() {
            if marks[start] != Mark::New {
                continue;
            }
            // Iterative DFS: stack of (node, next edge position).
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            marks[start] = Mark::OnStack;
            while let Some(&mut (node, ref mut pos)) = stack.last_mut() {
                if let Some(&(next, k)) = downstream[node].get(*pos) {
                    *pos += 1;
                    match marks[next] {
                        Mark::New => {
                            marks[next] = Mark::OnStack;
                            stack.push((next, 0));
                        }
                        Mark::OnStack => {
                            let from = stack.iter().position(|&(n, _)| n == next).unwrap_or(0);
                            let mut cycle: Vec<usize> =
                                stack[from..].iter().map(|&(n, _)| n).collect();
                            cycle.push(next);
                            found.push((next, k, cycle));
                        }
                        Mark::Done => {}
                    }
                } else {
                    marks[node] = Mark::Done;
                    stack.pop();
                }
            }
        }
        for (closing_op, input, cycle) in found {
            let names: Vec<&str> = cycle.iter().map(|&n| ops[n].name.as_str()).collect();
            self.err(
                format!("spec.operators[{closing_op}].inputs[{input}].from"),
                format!("cycle: {}", names.join(" -> ")),
            );
        }
    }
}

fn check_artifact_uri(uri: &str) -> Result<(), String> {
    let lower = uri.to_ascii_lowercase();
    let scheme = ARTIFACT_SCHEMES.iter().find(|s| lower.starts_with(**s));
    let ok = match scheme {
        Some(s) => uri.len() > s.len() && !uri.chars().any(char::is_whitespace),
        None => (uri.starts_with('/') || is_relative_artifact(uri)) && !uri.contains('\0'),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "unsupported artifact URI {uri:?}: use http://, https://, file://, an absolute path, or a path relative to the manifest starting with ./ or ../"
        ))
    }
}

/// A path relative to the manifest (`./x`, `../x`). `concord apply` resolves these to
/// `file://` URIs against the manifest's directory before sending; the API refuses any
/// that reach it unresolved.
pub fn is_relative_artifact(uri: &str) -> bool {
    uri.starts_with("./") || uri.starts_with("../")
}

fn check_output_file(out: &str) -> Result<(), String> {
    let bad = out.is_empty()
        || out.starts_with('/')
        || out.contains('\0')
        || out.split('/').any(|c| c == "..");
    if bad {
        Err(format!(
            "outputFile {out:?} must be a relative path inside the sandbox (no '..')"
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{Artifact, BuiltinRuntime, Input, Partitioning, ProcessRuntime};

    fn valid() -> Topology {
        serde_yaml_ng::from_str(
            "apiVersion: concord.io/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  operators:
    - name: src
      runtime: {builtin: {name: generator}}
    - name: work
      instances: 2
      runtime: {process: {command: python3, args: [w.py]}}
      inputs: [{from: src}]
    - name: out
      runtime: {builtin: {name: sink}}
      inputs: [{from: work, partitioning: key}]
",
        )
        .expect("valid fixture")
    }

    /// The `(path, message)` pairs `validate` reports after `edit`.
    fn errors(edit: impl FnOnce(&mut Topology)) -> Vec<(String, String)> {
        let mut t = valid();
        edit(&mut t);
        match validate(&t) {
            Ok(()) => Vec::new(),
            Err(e) => e
                .into_iter()
                .map(|e| (e.path.unwrap_or_default(), e.message))
                .collect(),
        }
    }

    /// Asserts exactly one error, at `path`, whose message contains `message`.
    fn assert_error(edit: impl FnOnce(&mut Topology), path: &str, message: &str) {
        let found = errors(edit);
        assert_eq!(found.len(), 1, "expected one error, got {found:#?}");
        assert_eq!(found[0].0, path, "{found:#?}");
        assert!(
            found[0].1.contains(message),
            "message {:?} should contain {message:?}",
            found[0].1
        );
    }

    fn process(t: &mut Topology) -> &mut ProcessRuntime {
        match &mut t.spec.operators[1].runtime {
            Runtime::Process(p) => p,
            Runtime::Builtin(_) => unreachable!("fixture operator 1 is a process"),
        }
    }

    #[test]
    fn the_fixture_is_valid() {
        assert_eq!(validate(&valid()), Ok(()));
    }

    #[test]
    fn api_version_and_kind() {
        assert_error(
            |t| t.api_version = "v1".into(),
            "apiVersion",
            r#"unsupported apiVersion "v1": expected "concord.io/v1alpha1""#,
        );
        assert_error(
            |t| t.kind = "Deployment".into(),
            "kind",
            r#"unsupported kind "Deployment": expected "Topology""#,
        );
    }

    #[test]
    fn metadata_names() {
        assert_error(
            |t| t.metadata.name = "Bad_Name".into(),
            "metadata.name",
            r#"invalid name: "Bad_Name" is not valid; must be a DNS-1123 label: 1 to 63 characters, lower-case letters a-z, digits 0-9 and '-'"#,
        );
        assert_error(
            |t| t.metadata.name = "a".repeat(64),
            "metadata.name",
            "is 64 characters long",
        );
        assert_error(
            |t| t.metadata.name = String::new(),
            "metadata.name",
            "must be a DNS-1123 label",
        );
        assert_error(
            |t| t.metadata.namespace = "team.a".into(),
            "metadata.namespace",
            r#"invalid namespace: "team.a" is not valid"#,
        );
    }

    #[test]
    fn labels_and_annotations() {
        assert_error(
            |t| {
                t.metadata.labels.insert("bad key".into(), "v".into());
            },
            "metadata.labels.bad key",
            r#"invalid label key: "bad key" is not a valid key"#,
        );
        assert_error(
            |t| {
                t.metadata.labels.insert("app".into(), "not ok!".into());
            },
            "metadata.labels.app",
            r#"invalid label value: "not ok!" is not a valid label value"#,
        );
        assert_error(
            |t| {
                t.metadata
                    .annotations
                    .insert("-x".into(), "anything goes".into());
            },
            "metadata.annotations.-x",
            r#"invalid annotation key: "-x""#,
        );
        assert_error(
            |t| {
                t.metadata
                    .annotations
                    .insert("big".into(), "x".repeat(MAX_ANNOTATIONS_BYTES));
            },
            "metadata.annotations",
            "more than the limit of 262144 bytes",
        );
        assert!(
            errors(|t| {
                t.metadata
                    .labels
                    .insert("app.kubernetes.io/name".into(), "wc".into());
                t.metadata
                    .annotations
                    .insert("note".into(), "free text: ok!".into());
            })
            .is_empty()
        );
    }

    #[test]
    fn negative_generation() {
        assert_error(
            |t| t.metadata.generation = Some(-1),
            "metadata.generation",
            "must not be negative, got -1",
        );
    }

    #[test]
    fn at_least_one_operator() {
        assert_error(
            |t| t.spec.operators.clear(),
            "spec.operators",
            "a topology needs at least one operator",
        );
    }

    #[test]
    fn operator_names_are_labels_and_unique() {
        assert_error(
            |t| t.spec.operators[2].name = "Out".into(),
            "spec.operators[2].name",
            r#"invalid operator name: "Out" is not valid; must be a DNS-1123 label"#,
        );
        let found = errors(|t| t.spec.operators[2].name = "src".into());
        assert_eq!(
            found,
            vec![(
                "spec.operators[2].name".to_owned(),
                r#"duplicate operator name "src": already used by spec.operators[0]"#.to_owned()
            )]
        );
    }

    #[test]
    fn inputs_must_name_existing_operators() {
        assert_error(
            |t| t.spec.operators[2].inputs[0].from = "wrok".into(),
            "spec.operators[2].inputs[0].from",
            r#"unknown operator "wrok"; operators in this topology: src, work, out"#,
        );
    }

    #[test]
    fn no_self_loops() {
        assert_error(
            |t| {
                t.spec.operators[1].inputs.push(Input {
                    from: "work".into(),
                    partitioning: Partitioning::Shuffle,
                });
            },
            "spec.operators[1].inputs[1].from",
            r#"operator "work" cannot consume its own output"#,
        );
    }

    #[test]
    fn no_duplicate_inputs() {
        assert_error(
            |t| {
                t.spec.operators[2].inputs.push(Input {
                    from: "work".into(),
                    partitioning: Partitioning::Broadcast,
                });
            },
            "spec.operators[2].inputs[1].from",
            r#"duplicate input from "work": already declared as inputs[0]"#,
        );
    }

    #[test]
    fn cycles_are_named() {
        // src -> work -> out -> work
        assert_error(
            |t| {
                t.spec.operators[1].inputs.push(Input {
                    from: "out".into(),
                    partitioning: Partitioning::Shuffle,
                });
            },
            "spec.operators[1].inputs[1].from",
            "cycle: work -> out -> work",
        );
        // Two disjoint cycles are both reported.
        let found = errors(|t| {
            for (name, from) in [("a", "b"), ("b", "a"), ("c", "d"), ("d", "c")] {
                let mut op = t.spec.operators[2].clone();
                op.name = name.into();
                op.inputs[0].from = from.into();
                t.spec.operators.push(op);
            }
        });
        let messages: Vec<&str> = found.iter().map(|(_, m)| m.as_str()).collect();
        assert_eq!(messages, vec!["cycle: a -> b -> a", "cycle: c -> d -> c"]);
    }

    #[test]
    fn at_least_one_source() {
        let found = errors(|t| {
            t.spec.operators.truncate(2);
            t.spec.operators[0].inputs.push(Input {
                from: "work".into(),
                partitioning: Partitioning::Shuffle,
            });
        });
        assert_eq!(
            found[0],
            (
                "spec.operators".to_owned(),
                "no source operator: at least one operator must have no inputs".to_owned()
            )
        );
        assert_eq!(found[1].1, "cycle: src -> work -> src");
    }

    #[test]
    fn resources_are_positive_and_finite() {
        assert_error(
            |t| t.spec.operators[0].resources.cpus = 0.0,
            "spec.operators[0].resources.cpus",
            "must be a positive number, got 0",
        );
        assert_error(
            |t| t.spec.operators[0].resources.cpus = f64::NAN,
            "spec.operators[0].resources.cpus",
            "must be a positive number, got NaN",
        );
        assert_error(
            |t| t.spec.operators[0].resources.mem = -1.0,
            "spec.operators[0].resources.mem",
            "must be a positive number, got -1",
        );
        assert_error(
            |t| t.spec.operators[0].resources.disk = -5.0,
            "spec.operators[0].resources.disk",
            "must be zero or a positive number, got -5",
        );
        assert_error(
            |t| t.spec.operators[0].resources.disk = f64::INFINITY,
            "spec.operators[0].resources.disk",
            "must be zero or a positive number, got inf",
        );
    }

    #[test]
    fn instances_are_bounded() {
        assert_error(
            |t| t.spec.operators[1].instances = MAX_INSTANCES + 1,
            "spec.operators[1].instances",
            "1001 instances is more than the maximum of 1000",
        );
        assert!(errors(|t| t.spec.operators[1].instances = MAX_INSTANCES).is_empty());
        assert!(errors(|t| t.spec.operators[1].instances = 0).is_empty());
    }

    #[test]
    fn port_names() {
        assert_error(
            |t| t.spec.operators[1].resources.ports = vec!["HTTP".into()],
            "spec.operators[1].resources.ports[0]",
            r#"invalid port name: "HTTP" is not valid; must be a DNS-1123 label"#,
        );
        assert_error(
            |t| t.spec.operators[1].resources.ports = vec!["http".into(), "http".into()],
            "spec.operators[1].resources.ports[1]",
            r#"duplicate port name "http": already used by ports[0]"#,
        );
    }

    #[test]
    fn update_strategy_must_make_progress() {
        assert_error(
            |t| t.spec.operators[1].update_strategy.max_surge = 0,
            "spec.operators[1].updateStrategy",
            "maxSurge and maxUnavailable cannot both be 0",
        );
        assert!(
            errors(|t| {
                t.spec.operators[1].update_strategy.max_surge = 0;
                t.spec.operators[1].update_strategy.max_unavailable = 1;
            })
            .is_empty()
        );
    }

    #[test]
    fn restart_backoff_is_sane() {
        let path = "spec.operators[0].restartBackoff";
        assert_error(
            |t| t.spec.operators[0].restart_backoff.initial_seconds = 0.0,
            &format!("{path}.initialSeconds"),
            "must be greater than 0, got 0",
        );
        assert_error(
            |t| t.spec.operators[0].restart_backoff.factor = 0.5,
            &format!("{path}.factor"),
            "must be at least 1, got 0.5",
        );
        assert_error(
            |t| t.spec.operators[0].restart_backoff.max_seconds = 0.5,
            &format!("{path}.maxSeconds"),
            "must be at least initialSeconds (1), got 0.5",
        );
        assert_error(
            |t| t.spec.operators[0].restart_backoff.reset_after_seconds = -1.0,
            &format!("{path}.resetAfterSeconds"),
            "must be greater than 0, got -1",
        );
        assert_error(
            |t| t.spec.operators[0].restart_backoff.max_seconds = 1e9,
            &format!("{path}.maxSeconds"),
            "must be at most 604800 (one week), got 1000000000",
        );
        assert_error(
            |t| t.spec.operators[0].restart_backoff.factor = f64::INFINITY,
            &format!("{path}.factor"),
            "must be at least 1, got inf",
        );
    }

    #[test]
    fn progress_deadline_is_bounded() {
        assert_error(
            |t| t.spec.operators[0].progress_deadline_seconds = 0,
            "spec.operators[0].progressDeadlineSeconds",
            "must be at least 1",
        );
        assert_error(
            |t| t.spec.operators[0].progress_deadline_seconds = 700_000,
            "spec.operators[0].progressDeadlineSeconds",
            "700000 is more than the maximum of 604800 seconds",
        );
    }

    #[test]
    fn kafka_operators_config_is_checked_at_apply() {
        let kafka = |t: &mut Topology| {
            t.spec.operators[0].runtime = Runtime::Builtin(BuiltinRuntime {
                name: "kafka-source".into(),
            });
        };
        let found = errors(kafka);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, "spec.operators[0].config.bootstrapServers");
        assert!(
            found[0]
                .1
                .starts_with("required: the brokers to connect to")
        );
        assert_eq!(found[1].0, "spec.operators[0].config.topic");
        assert!(
            errors(|t| {
                kafka(t);
                t.spec.operators[0].config = serde_json::from_value(serde_json::json!({
                    "bootstrapServers": "127.0.0.1:9092", "topic": "in"
                }))
                .expect("config");
            })
            .is_empty()
        );
        assert_error(
            |t| {
                t.spec.operators[1].runtime = Runtime::Builtin(BuiltinRuntime {
                    name: "kafka-sink".into(),
                });
                t.spec.operators[1].config = serde_json::from_value(serde_json::json!({
                    "bootstrapServers": "127.0.0.1:9092", "topic": "out", "acks": "some"
                }))
                .expect("config");
            },
            "spec.operators[1].config.acks",
            "expected one of all, -1, 1, 0",
        );
    }

    #[test]
    fn builtin_names_come_from_the_known_list() {
        assert_error(
            |t| {
                t.spec.operators[0].runtime = Runtime::Builtin(BuiltinRuntime {
                    name: "generater".into(),
                })
            },
            "spec.operators[0].runtime.builtin.name",
            r#"unknown builtin operator "generater"; known: generator, map, filter, keyed-count, windowed-count, threshold, sink, tcp-source, http-source, file-source, kafka-source, kafka-sink"#,
        );
        // The Kafka operators need configuration (tested below).
        for name in BUILTIN_OPERATORS
            .iter()
            .filter(|n| !n.starts_with("kafka-"))
        {
            assert!(
                errors(|t| {
                    t.spec.operators[0].runtime = Runtime::Builtin(BuiltinRuntime {
                        name: (*name).to_owned(),
                    })
                })
                .is_empty()
            );
        }
    }

    #[test]
    fn process_command_is_required() {
        assert_error(
            |t| process(t).command = "  ".into(),
            "spec.operators[1].runtime.process.command",
            "command must not be empty",
        );
        assert_error(
            |t| process(t).args.push("a\0b".into()),
            "spec.operators[1].runtime.process.args[1]",
            "arguments cannot contain NUL bytes",
        );
    }

    #[test]
    fn artifact_uris_and_output_files() {
        let artifact = |uri: &str| Artifact {
            uri: uri.into(),
            extract: true,
            executable: false,
            output_file: None,
        };
        for ok in [
            "http://h/x.tgz",
            "https://h/x.tgz",
            "file:///opt/x.py",
            "/opt/x.py",
            "./x.py",
            "../../sdk/python/concord_sdk.py",
        ] {
            assert!(
                errors(|t| process(t).artifacts.push(artifact(ok))).is_empty(),
                "{ok}"
            );
        }
        for bad in ["ftp://h/x", "x.py", "s3://b/k", "http://", ""] {
            assert_error(
                |t| process(t).artifacts.push(artifact(bad)),
                "spec.operators[1].runtime.process.artifacts[0].uri",
                &format!(
                    "unsupported artifact URI {bad:?}: use http://, https://, file://, an absolute path, or a path relative to the manifest starting with ./ or ../"
                ),
            );
        }
        assert_error(
            |t| {
                let mut a = artifact("/opt/x");
                a.output_file = Some("../escape".into());
                process(t).artifacts.push(a);
            },
            "spec.operators[1].runtime.process.artifacts[0].outputFile",
            "must be a relative path inside the sandbox",
        );
    }

    #[test]
    fn env_names_are_valid_and_not_reserved() {
        assert_error(
            |t| {
                t.spec.operators[1].env.insert("1BAD".into(), "x".into());
            },
            "spec.operators[1].env.1BAD",
            r#""1BAD" is not a valid environment variable name: must match [A-Za-z_][A-Za-z0-9_]*"#,
        );
        for reserved in ["CONCORD_X", "MESOS_SANDBOX", "concord_lower"] {
            assert_error(
                |t| {
                    t.spec.operators[1].env.insert(reserved.into(), "x".into());
                },
                &format!("spec.operators[1].env.{reserved}"),
                "uses the reserved prefix",
            );
        }
        assert!(
            errors(|t| {
                t.spec.operators[1]
                    .env
                    .insert("PYTHONPATH".into(), "/x".into());
            })
            .is_empty()
        );
    }

    #[test]
    fn placement_attributes_are_not_empty() {
        assert_error(
            |t| {
                t.spec.operators[0]
                    .placement
                    .require_attributes
                    .insert("rack".into(), String::new());
            },
            "spec.operators[0].placement.requireAttributes.rack",
            "attribute values cannot be empty",
        );
    }

    #[test]
    fn placement_attribute_names_are_not_empty() {
        assert_error(
            |t| {
                t.spec.operators[0]
                    .placement
                    .require_attributes
                    .insert(" ".into(), "r1".into());
            },
            "spec.operators[0].placement.requireAttributes",
            "attribute names cannot be empty",
        );
    }

    #[test]
    fn nul_bytes_are_rejected() {
        assert_error(
            |t| process(t).command = "py\0thon".into(),
            "spec.operators[1].runtime.process.command",
            "command cannot contain NUL bytes",
        );
        assert_error(
            |t| {
                t.spec.operators[1].env.insert("A".into(), "x\0y".into());
            },
            "spec.operators[1].env.A",
            "environment variable values cannot contain NUL bytes",
        );
    }

    #[test]
    fn all_errors_are_returned_together() {
        let found = errors(|t| {
            t.metadata.name = "X".into();
            t.spec.operators[0].resources.cpus = -1.0;
            t.spec.operators[2].inputs[0].from = "nope".into();
        });
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "metadata.name",
                "spec.operators[0].resources.cpus",
                "spec.operators[2].inputs[0].from"
            ]
        );
    }
}
