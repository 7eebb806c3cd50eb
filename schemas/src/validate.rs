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
        None => uri.starts_with('/') && !uri.contains('\0'),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "unsupported artifact URI {uri:?}: use http://, https://, file:// or an absolute path"
        ))
    }
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
