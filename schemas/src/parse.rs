//! Parsing topology documents from YAML (files, `-`) and JSON (the HTTP API), with errors
//! that say where: `file:line:column`, the field path, and what was expected.
//!
//! # Decisions
//!
//! - **Unknown fields are rejected.** Every object of the schema is `deny_unknown_fields`,
//!   so a typo such as `instance: 3` fails with an error naming the field and listing the
//!   allowed ones (`unknown field `instance`, expected one of `name`, `instances`, ...`)
//!   instead of being silently dropped and leaving the operator at its default. The JSON
//!   Schema says the same with `additionalProperties: false`, so editors flag it too.
//! - **`status` is accepted and dropped**, so `concord get -o yaml | concord apply -f -`
//!   round-trips. Server-managed metadata (`uid`, `generation`, `resourceVersion`,
//!   `creationTimestamp`) is accepted as well; the server decides what to keep.
//! - **Empty documents are skipped** (e.g. a trailing `---`), like kubectl; an input with
//!   no document at all is an error.
//! - **Size limit**: inputs larger than [`MAX_DOCUMENT_BYTES`] are rejected before parsing;
//!   etcd refuses values larger than about 1.5 MiB.
//! - Every parsed topology is [`normalize`]d and [`validate`]d; all errors of all documents
//!   are returned together, each located as precisely as possible.

use crate::error::{SpecError, SpecErrors};
use crate::locate::{locate, locate_json};
use crate::normalize::normalize;
use crate::topology::{API_VERSION, KIND, RUNTIME_ONE_OF, Topology};
pub use crate::untyped::MAX_EXPANDED_BYTES;
use crate::untyped::{Budget, read_document};
use crate::validate::validate;

/// Largest accepted input, in bytes (1 MiB). etcd's default request limit is 1.5 MiB.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Semantic errors get a line and column looked up for at most this many errors per input
/// (each lookup re-reads the input up to the document).
const MAX_LOCATED_ERRORS: usize = 50;

/// The input format, for [`parse_any`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML, possibly several documents separated by `---`.
    Yaml,
    /// A single JSON object.
    Json,
}

impl Format {
    /// Picks the format from a `Content-Type` value or file name: JSON for
    /// `application/json` (and `+json` types) or a `.json` name, YAML otherwise (YAML is
    /// a superset of JSON, so YAML is the safe default).
    pub fn from_hint(hint: Option<&str>) -> Self {
        match hint {
            Some(h) => {
                let h = h.to_ascii_lowercase();
                let mime = h.split(';').next().unwrap_or("").trim();
                if mime == "application/json" || mime.ends_with("+json") || h.ends_with(".json") {
                    Format::Json
                } else {
                    Format::Yaml
                }
            }
            None => Format::Yaml,
        }
    }
}

/// Parses, normalises and validates every topology document of a YAML stream.
///
/// `file` names the origin in error messages (a path, `<stdin>`, ...). On success the
/// topologies are returned in document order; on failure, every error of every document.
pub fn parse_yaml(source: &[u8], file: &str) -> Result<Vec<Topology>, SpecErrors> {
    let text = check_input(source, file)?;
    let mut topologies = Vec::new();
    let mut errors = SpecErrors::default();

    // Pass 1: syntax, empty documents, apiVersion/kind, as untyped values. A syntax error
    // ends the stream: positions after it are unreliable.
    let mut documents: Vec<(usize, bool)> = Vec::new(); // (index, has content)
    // One budget for the stream: pass 2 and error location re-read these documents, which
    // expand no further than pass 1 allowed.
    let budget = Budget::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        match read_document(document, &budget) {
            Ok(serde_yaml_ng::Value::Null) => documents.push((index, false)),
            Ok(value) => {
                let header = check_header(&value);
                let ok = header.is_empty();
                for (path, message) in header {
                    let mut e = SpecError::at_path(path, message).with_file(file);
                    if let Some((line, column)) = locate(text, index, &path_of(&e)) {
                        e = e.with_location(line, column);
                    }
                    errors.push(e);
                }
                documents.push((index, ok));
            }
            Err(err) => {
                errors.push(yaml_error(err, None, file));
                return Err(errors);
            }
        }
    }

    // Pass 2: typed, with field paths.
    let mut stream = serde_yaml_ng::Deserializer::from_str(text);
    let mut position = 0;
    let mut located = 0;
    for &(index, has_content) in &documents {
        let document = stream.by_ref().nth(index - position);
        position = index + 1;
        let (Some(document), true) = (document, has_content) else {
            continue;
        };
        match serde_path_to_error::deserialize::<_, Topology>(document) {
            Ok(mut topology) => {
                normalize(&mut topology);
                if let Err(e) = check_stored_size(&topology) {
                    errors.push(e.with_file(file));
                    continue;
                }
                match validate(&topology) {
                    Ok(()) => topologies.push(topology),
                    Err(found) => {
                        for mut e in found {
                            e.file = Some(file.to_owned());
                            located += 1;
                            if located <= MAX_LOCATED_ERRORS
                                && let Some((line, column)) = locate(text, index, &path_of(&e))
                            {
                                e = e.with_location(line, column);
                            }
                            errors.push(e);
                        }
                    }
                }
            }
            Err(err) => {
                let path = err.path().to_string();
                let mut e = yaml_error(err.into_inner(), Some(path), file);
                // Errors raised after a value was read (e.g. `runtime` with neither or
                // both keys) carry the parent's position; point at the value instead.
                if e.message.starts_with(RUNTIME_ONE_OF)
                    && let Some((line, column)) = locate(text, index, &path_of(&e))
                {
                    e = e.with_location(line, column);
                }
                errors.push(e);
            }
        }
    }

    if documents.iter().all(|&(_, has_content)| !has_content) && errors.is_empty() {
        errors.push(
            SpecError::new("no topology documents found (the input is empty or only comments)")
                .with_file(file),
        );
    }
    if errors.is_empty() {
        Ok(topologies)
    } else {
        Err(errors)
    }
}

/// Reads every document of a YAML input untyped, as [`parse_yaml`]'s first pass does:
/// the size limit, syntax, duplicate keys, custom tags and the alias expansion budget
/// ([`MAX_EXPANDED_BYTES`]). Call it before decoding untrusted YAML into a type with
/// serde_yaml_ng directly (e.g. a GitRepository body), which bounds none of these.
pub fn check_yaml(source: &[u8], file: &str) -> Result<(), SpecErrors> {
    let text = check_input(source, file)?;
    let budget = Budget::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        read_document(document, &budget).map_err(|err| yaml_error(err, None, file))?;
    }
    Ok(())
}

/// Parses, normalises and validates one topology from JSON (the HTTP API's body).
pub fn parse_json(source: &[u8], origin: &str) -> Result<Topology, SpecErrors> {
    let text = check_input(source, origin)?;
    if text.trim().is_empty() {
        return Err(
            SpecError::new("no topology document found (the input is empty)")
                .with_file(origin)
                .into(),
        );
    }
    // apiVersion/kind first: a wrong kind would otherwise show up as a confusing
    // unknown-field error.
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let yaml_value = serde_yaml_ng::to_value(&value).unwrap_or(serde_yaml_ng::Value::Null);
        let header = check_header(&yaml_value);
        if !header.is_empty() {
            return Err(SpecErrors(
                header
                    .into_iter()
                    .map(|(p, m)| {
                        let e = SpecError::at_path(p, m).with_file(origin);
                        match locate_json(text, p) {
                            Some((line, column)) => e.with_location(line, column),
                            None => e,
                        }
                    })
                    .collect(),
            ));
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let mut topology: Topology = match serde_path_to_error::deserialize(&mut de) {
        Ok(t) => t,
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let mut e = SpecError::new(clean_message(
                &inner.to_string(),
                inner.line(),
                inner.column(),
            ))
            .with_file(origin);
            if inner.line() > 0 {
                e = e.with_location(inner.line(), inner.column());
            }
            if path != "." && !inner.is_syntax() && !inner.is_eof() {
                e.path = Some(path);
            }
            return Err(e.into());
        }
    };
    if let Err(err) = de.end() {
        return Err(SpecError::new(format!(
            "unexpected content after the topology object: {}",
            clean_message(&err.to_string(), err.line(), err.column())
        ))
        .with_file(origin)
        .with_location(err.line(), err.column())
        .into());
    }
    normalize(&mut topology);
    validate(&topology).map_err(|errors| {
        SpecErrors(
            errors
                .into_iter()
                .enumerate()
                .map(|(n, mut e)| {
                    if n < MAX_LOCATED_ERRORS
                        && let Some((line, column)) = locate_json(text, &path_of(&e))
                    {
                        e = e.with_location(line, column);
                    }
                    e.with_file(origin)
                })
                .collect(),
        )
    })?;
    Ok(topology)
}

/// Parses YAML or JSON depending on `content_type_hint` (a `Content-Type` value or a file
/// name; see [`Format::from_hint`]). JSON input yields exactly one topology.
pub fn parse_any(
    source: &[u8],
    origin: &str,
    content_type_hint: Option<&str>,
) -> Result<Vec<Topology>, SpecErrors> {
    match Format::from_hint(content_type_hint) {
        Format::Json => parse_json(source, origin).map(|t| vec![t]),
        Format::Yaml => parse_yaml(source, origin),
    }
}

/// A topology is stored as JSON; YAML anchors and aliases can make that much larger than
/// the input, so the stored form is checked against the limit too.
fn check_stored_size(t: &Topology) -> Result<(), SpecError> {
    let size = serde_json::to_vec(t).map_or(usize::MAX, |v| v.len());
    if size > MAX_DOCUMENT_BYTES {
        Err(SpecError::new(format!(
            "topology {:?} is {size} bytes as stored JSON (after expanding YAML aliases), \
             larger than the limit of {MAX_DOCUMENT_BYTES} bytes (1 MiB)",
            t.metadata.name
        )))
    } else {
        Ok(())
    }
}

/// Size and encoding checks shared by both formats.
/// Deepest flow nesting accepted. serde_yaml_ng refuses more than 128 levels anyway, but
/// only after libyaml has scanned the whole input, which takes time quadratic in the
/// depth (250 KB of `{a: ` took 8 s), so deeper inputs are refused before parsing.
const MAX_FLOW_DEPTH: usize = 128;

/// Whether `[`/`{` nest deeper than `max` outside quotes and comments. A rough scan (it
/// counts brackets inside plain and block scalars too), so it can only over-count, by
/// brackets left open inside text, which real documents do not have 128 of.
fn flow_depth_exceeds(text: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();
    let mut prev = '\n';
    while let Some(c) = chars.next() {
        match c {
            '[' | '{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            '#' if prev.is_whitespace() => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' if !prev.is_alphanumeric() => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                }
            }
            _ => {}
        }
        prev = c;
    }
    false
}

fn check_input<'a>(source: &'a [u8], file: &str) -> Result<&'a str, SpecErrors> {
    if source.len() > MAX_DOCUMENT_BYTES {
        return Err(SpecError::new(format!(
            "input is {} bytes, larger than the limit of {MAX_DOCUMENT_BYTES} bytes (1 MiB); \
             etcd refuses values over about 1.5 MiB",
            source.len()
        ))
        .with_file(file)
        .into());
    }
    match std::str::from_utf8(source) {
        Ok(text) if flow_depth_exceeds(text, MAX_FLOW_DEPTH) => Err(SpecError::new(format!(
            "`[` and `{{` nested more than {MAX_FLOW_DEPTH} deep; nothing needs that, and \
             the YAML parser slows down quadratically with depth"
        ))
        .with_file(file)
        .into()),
        // A byte order mark (Windows editors) confuses the YAML parser; it means nothing.
        Ok(text) => Ok(text.strip_prefix('\u{feff}').unwrap_or(text)),
        Err(err) => {
            let offset = err.valid_up_to();
            let valid = &source[..offset];
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            let column = String::from_utf8_lossy(&valid[line_start..])
                .chars()
                .count()
                + 1;
            let byte = source.get(offset).copied().unwrap_or(0);
            Err(SpecError::new(format!(
                "input is not valid UTF-8: invalid byte 0x{byte:02x} at byte offset {offset}"
            ))
            .with_file(file)
            .with_location(line, column)
            .into())
        }
    }
}

/// apiVersion and kind of an untyped document, checked before typed parsing.
fn check_header(value: &serde_yaml_ng::Value) -> Vec<(&'static str, String)> {
    let mut errors = Vec::new();
    let serde_yaml_ng::Value::Mapping(map) = value else {
        return errors;
    };
    match map.get("apiVersion") {
        None => errors.push((
            "apiVersion",
            format!("missing field `apiVersion`: expected {API_VERSION:?}"),
        )),
        Some(serde_yaml_ng::Value::String(v)) if v == API_VERSION => {}
        Some(other) => errors.push((
            "apiVersion",
            format!(
                "unsupported apiVersion {}: expected {API_VERSION:?}",
                describe(other)
            ),
        )),
    }
    match map.get("kind") {
        None => errors.push(("kind", format!("missing field `kind`: expected {KIND:?}"))),
        Some(serde_yaml_ng::Value::String(v)) if v == KIND => {}
        Some(other) => errors.push((
            "kind",
            format!("unsupported kind {}: expected {KIND:?}", describe(other)),
        )),
    }
    errors
}

fn describe(value: &serde_yaml_ng::Value) -> String {
    match value {
        serde_yaml_ng::Value::String(s) => format!("{s:?}"),
        other => serde_yaml_ng::to_string(other)
            .map(|s| s.trim_end().to_owned())
            .unwrap_or_else(|_| "(unprintable)".to_owned()),
    }
}

fn path_of(e: &SpecError) -> String {
    e.path.clone().unwrap_or_default()
}

/// Turns a serde_yaml_ng error into a [`SpecError`] with location, path and a message
/// without serde_yaml_ng's own path prefix and position suffix.
fn yaml_error(err: serde_yaml_ng::Error, path: Option<String>, file: &str) -> SpecError {
    let location = err.location();
    let mut message = err.to_string();
    let mut path = path.filter(|p| p != ".");
    // serde_yaml_ng prefixes its own view of the path ("spec.operators[0]: ..."); use it
    // when serde_path_to_error had none (first pass), drop it from the message otherwise.
    if location.is_some()
        && let Some((prefix, rest)) = message.split_once(": ")
        && !prefix.is_empty()
        && !prefix.contains(char::is_whitespace)
    {
        let (prefix, rest) = (prefix.to_owned(), rest.to_owned());
        if path.is_none() {
            path = Some(prefix);
        }
        message = rest;
    }
    let mut e = SpecError::new(match &location {
        Some(l) => clean_message(&message, l.line(), l.column()),
        None => clean_message(&message, 0, 0),
    })
    .with_file(file);
    if e.message == "EOF while parsing a value" {
        e.message = "unexpected end of input: the document is truncated or empty".to_owned();
    } else if e.message == "repetition limit exceeded" {
        e.message = "YAML aliases expand to too much data (repetition limit exceeded)".to_owned();
    } else if e.message == "recursion limit exceeded" {
        e.message = "the document is nested too deeply (recursion limit exceeded)".to_owned();
    }
    if let Some(l) = location {
        e = e.with_location(l.line(), l.column());
    }
    e.path = path;
    e
}

/// Removes the position suffix serde adds and explains Rust type names.
fn clean_message(message: &str, line: usize, column: usize) -> String {
    let mut m = message.to_owned();
    for suffix in [
        format!(" at line {line} column {column}"),
        format!(" at position {line}"),
    ] {
        if let Some(stripped) = m.strip_suffix(&suffix) {
            m = stripped.to_owned();
        }
    }
    // "at line 3 column 5, while parsing a block mapping at line 1 column 1": keep the
    // context, drop the duplicate position.
    m = m.replace(&format!(" at line {line} column {column},"), ",");
    if m.starts_with("invalid type: integer `-")
        && (m.contains("expected u32") || m.contains("expected u64"))
    {
        m = m.replacen("invalid type", "out of range", 1);
    }
    for (rust, human) in [
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u64", "expected a whole number >= 0"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ] {
        m = m.replace(rust, human);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{DEFAULT_NAMESPACE, Partitioning, Runtime};

    const WORDCOUNT: &str = r#"# yaml-language-server: $schema=../../schemas/json/topology.schema.json
apiVersion: concord.io/v1alpha1
kind: Topology
metadata: {name: wordcount}
spec:
  operators:
    - name: lines
      instances: 1
      runtime: {builtin: {name: generator}}
      config: {rate: 1000}
    - name: split
      instances: 2
      runtime: {process: {command: python3, args: [split.py], artifacts: [{uri: "file:///x/split.py"}]}}
      inputs: [{from: lines, partitioning: shuffle}]
      resources: {cpus: 0.2, mem: 128, ports: [http]}
      updateStrategy: {maxSurge: 1, maxUnavailable: 0}
"#;

    fn one_error(source: &str) -> SpecError {
        let errors = parse_yaml(source.as_bytes(), "t.yaml").expect_err("should fail");
        assert_eq!(errors.len(), 1, "{errors}");
        errors.0.into_iter().next().expect("one error")
    }

    #[test]
    fn parses_the_documented_shape_with_defaults() {
        let t = parse_yaml(WORDCOUNT.as_bytes(), "wc.yaml").expect("valid");
        assert_eq!(t.len(), 1);
        let t = &t[0];
        assert_eq!(t.metadata.namespace, DEFAULT_NAMESPACE);
        assert_eq!(t.key(), "default/wordcount");
        let lines = t.operator("lines").expect("lines");
        assert_eq!(lines.resources.cpus, 0.1);
        assert_eq!(lines.resources.mem, 64.0);
        assert_eq!(lines.update_strategy.max_surge, 1);
        assert_eq!(lines.progress_deadline_seconds, 600);
        assert_eq!(lines.config["rate"], serde_json::json!(1000));
        let split = t.operator("split").expect("split");
        assert_eq!(split.inputs[0].partitioning, Partitioning::Shuffle);
        match &split.runtime {
            Runtime::Process(p) => {
                assert_eq!(p.command, "python3");
                assert!(p.artifacts[0].extract);
            }
            Runtime::Builtin(_) => panic!("split is a process operator"),
        }
    }

    #[test]
    fn multiple_documents_and_empty_ones() {
        let source = format!("---\n{WORDCOUNT}---\n# empty\n---\n{}\n---\n", {
            WORDCOUNT.replace("name: wordcount", "name: other")
        });
        let t = parse_yaml(source.as_bytes(), "multi.yaml").expect("valid");
        let names: Vec<&str> = t.iter().map(|t| t.metadata.name.as_str()).collect();
        assert_eq!(names, vec!["wordcount", "other"]);
    }

    #[test]
    fn empty_inputs_are_rejected() {
        for source in ["", "   \n", "# only a comment\n", "---\n", "---\n---\n"] {
            let e = one_error(source);
            assert_eq!(
                e.to_string(),
                "t.yaml: no topology documents found (the input is empty or only comments)",
                "{source:?}"
            );
        }
        let e = parse_json(b" \n", "body").expect_err("empty");
        assert_eq!(
            e.to_string(),
            "body: no topology document found (the input is empty)"
        );
    }

    #[test]
    fn status_and_server_metadata_are_accepted() {
        let source = WORDCOUNT.replace(
            "metadata: {name: wordcount}",
            "metadata:
  name: wordcount
  uid: 0b6a4c1e-1111-2222-3333-444455556666
  generation: 3
  resourceVersion: \"42\"
  creationTimestamp: 2026-01-02T03:04:05Z
status:
  observedGeneration: 3
  conditions: [{type: Ready, status: \"True\"}]",
        );
        let t = parse_yaml(source.as_bytes(), "t.yaml").expect("valid");
        assert_eq!(t[0].status, None, "status is dropped");
        assert_eq!(t[0].metadata.generation, Some(3));
        assert_eq!(t[0].metadata.resource_version.as_deref(), Some("42"));
        assert!(t[0].metadata.creation_timestamp.is_some());
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let e = one_error("apiVersion: concord.io/v1alpha1\nkind: [Topology\n");
        assert_eq!(e.file.as_deref(), Some("t.yaml"));
        assert_eq!((e.line, e.column), (Some(3), Some(1)), "{e}");
        assert!(
            e.message.contains("did not find expected ',' or ']'"),
            "{e}"
        );
        assert_eq!(e.path, None);

        let e = one_error("a: 'unterminated\n");
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.contains("unexpected end of stream"), "{e}");
    }

    #[test]
    fn a_syntax_error_in_a_later_document_is_located_there() {
        let source = format!("{WORDCOUNT}---\napiVersion: concord.io/v1alpha1\nkind: : x\n");
        let e = one_error(&source);
        assert_eq!(e.line, Some(19), "{e}");
    }

    #[test]
    fn type_errors_have_path_line_and_column() {
        let source = WORDCOUNT.replace("instances: 2", "instances: two");
        let e = one_error(&source);
        assert_eq!(
            e.to_string(),
            "t.yaml:12:18: spec.operators[1].instances: invalid type: string \"two\", expected a whole number from 0 to 4294967295"
        );
        let source = WORDCOUNT.replace("instances: 2", "instances: -1");
        let e = one_error(&source);
        assert_eq!(
            e.to_string(),
            "t.yaml:12:18: spec.operators[1].instances: out of range: integer `-1`, expected a whole number from 0 to 4294967295"
        );
        let source = WORDCOUNT.replace("instances: 2", "instances: 99999999999");
        let e = one_error(&source);
        assert!(e.message.contains("expected a whole number"), "{e}");
        let source = WORDCOUNT.replace("cpus: 0.2", "cpus: lots");
        let e = one_error(&source);
        assert_eq!(
            e.path.as_deref(),
            Some("spec.operators[1].resources.cpus"),
            "{e}"
        );
        assert!(e.message.contains("expected a number"), "{e}");
    }

    #[test]
    fn unknown_fields_name_the_field_and_the_allowed_ones() {
        let source = WORDCOUNT.replace("maxSurge: 1", "maxSurge: 1, maxSurges: 2");
        let e = one_error(&source);
        assert_eq!(
            e.to_string(),
            "t.yaml:16:37: spec.operators[1].updateStrategy.maxSurges: unknown field `maxSurges`, expected `maxSurge` or `maxUnavailable`"
        );
    }

    #[test]
    fn missing_fields() {
        let source = WORDCOUNT.replace("      runtime: {builtin: {name: generator}}\n", "");
        let e = one_error(&source);
        assert_eq!(e.path.as_deref(), Some("spec.operators[0]"));
        assert_eq!(e.message, "missing field `runtime`");
        assert_eq!(e.line, Some(7), "{e}");
    }

    #[test]
    fn runtime_needs_exactly_one_kind() {
        let source = WORDCOUNT.replace(
            "runtime: {builtin: {name: generator}}",
            "runtime: {builtin: {name: generator}, process: {command: x}}",
        );
        let e = one_error(&source);
        assert_eq!(
            e.to_string(),
            "t.yaml:9:16: spec.operators[0].runtime: runtime must set exactly one of `builtin` or `process`, found both"
        );
        let source = WORDCOUNT.replace("runtime: {builtin: {name: generator}}", "runtime: {}");
        let e = one_error(&source);
        assert!(e.message.ends_with("found neither"), "{e}");
        assert_eq!(e.line, Some(9));
        let source = WORDCOUNT.replace(
            "runtime: {builtin: {name: generator}}",
            "runtime: !builtin {name: generator}",
        );
        let e = one_error(&source);
        assert!(e.message.contains("custom YAML tags"), "{e}");
        assert_eq!(e.line, Some(9));
    }

    #[test]
    fn wrong_api_version_and_kind_are_reported_first() {
        let source = WORDCOUNT
            .replace("apiVersion: concord.io/v1alpha1", "apiVersion: apps/v1")
            .replace("kind: Topology", "kind: Deployment");
        let errors = parse_yaml(source.as_bytes(), "t.yaml").expect_err("invalid");
        assert_eq!(
            errors.to_string(),
            "t.yaml:2:13: apiVersion: unsupported apiVersion \"apps/v1\": expected \"concord.io/v1alpha1\"\n\
             t.yaml:3:7: kind: unsupported kind \"Deployment\": expected \"Topology\""
        );
        let e = one_error("kind: Topology\nmetadata: {name: x}\n");
        assert_eq!(
            e.to_string(),
            "t.yaml:1:1: apiVersion: missing field `apiVersion`: expected \"concord.io/v1alpha1\""
        );
    }

    #[test]
    fn semantic_errors_are_located_and_all_reported() {
        let source = WORDCOUNT
            .replace("inputs: [{from: lines", "inputs: [{from: lnes")
            .replace("name: wordcount", "name: WordCount");
        let errors = parse_yaml(source.as_bytes(), "t.yaml").expect_err("invalid");
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 2, "{errors}");
        assert!(
            lines[0].starts_with("t.yaml:4:18: metadata.name: invalid name: \"WordCount\""),
            "{}",
            lines[0]
        );
        assert_eq!(
            lines[1],
            "t.yaml:14:23: spec.operators[1].inputs[0].from: unknown operator \"lnes\"; operators in this topology: lines, split"
        );
    }

    #[test]
    fn errors_of_every_document_are_collected() {
        let bad1 = WORDCOUNT.replace("cpus: 0.2", "cpus: -1");
        let bad2 = WORDCOUNT.replace("name: split", "name: Split");
        let source = format!("{bad1}---\n{bad2}");
        let errors = parse_yaml(source.as_bytes(), "t.yaml").expect_err("invalid");
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 2, "{errors}");
        assert!(
            lines[0].starts_with("t.yaml:15:25: spec.operators[1].resources.cpus"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("t.yaml:28:13: spec.operators[1].name"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn duplicate_keys_point_at_the_duplicate() {
        let source = WORDCOUNT.replace(
            "      instances: 1\n",
            "      instances: 1\n      instances: 2\n",
        );
        let e = one_error(&source);
        assert_eq!(
            e.to_string(),
            "t.yaml:9:18: spec.operators[0].instances: duplicate key `instances`: it already appears earlier in this mapping"
        );
    }

    #[test]
    fn non_utf8_names_the_byte_offset() {
        let mut source = b"apiVersion: concord.io/v1alpha1\nkind: Topo".to_vec();
        source.push(0xff);
        let e = parse_yaml(&source, "t.yaml").expect_err("invalid");
        assert_eq!(
            e.to_string(),
            "t.yaml:2:11: input is not valid UTF-8: invalid byte 0xff at byte offset 42"
        );
        let e = parse_json(&source, "body").expect_err("invalid");
        assert!(e.to_string().contains("byte offset 42"));
    }

    #[test]
    fn byte_order_mark_and_crlf_are_accepted() {
        let source = format!("\u{feff}{}", WORDCOUNT.replace('\n', "\r\n"));
        let t = parse_yaml(source.as_bytes(), "t.yaml").expect("valid");
        assert_eq!(
            t,
            parse_yaml(WORDCOUNT.as_bytes(), "t.yaml").expect("valid")
        );
        let json = serde_json::to_string(&t[0]).expect("serialise");
        let with_bom = format!("\u{feff}{json}");
        assert_eq!(
            parse_json(with_bom.as_bytes(), "body").expect("valid"),
            t[0]
        );
    }

    #[test]
    fn malformed_status_is_ignored() {
        let source = WORDCOUNT.replace(
            "metadata: {name: wordcount}",
            "metadata: {name: wordcount}\nstatus: {observedGeneration: lots, bogus: [1]}",
        );
        let t = parse_yaml(source.as_bytes(), "t.yaml").expect("valid");
        assert_eq!(t[0].status, None);
    }

    #[test]
    fn alias_expansion_is_bounded() {
        let mut bomb = String::from("a0: &a0 [\"xxxxxxxxxxxxxxxxxxxxxxxx\"]\n");
        for i in 1..12 {
            let refs = vec![format!("*a{}", i - 1); 8].join(",");
            bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let source = WORDCOUNT.replace(
            "config: {rate: 1000}",
            &format!(
                "config:\n{}",
                bomb.lines()
                    .map(|l| format!("        {l}\n"))
                    .collect::<String>()
            ),
        );
        let e = parse_yaml(source.as_bytes(), "t.yaml").expect_err("bomb");
        assert!(
            e.to_string()
                .contains("YAML aliases expand to too much data"),
            "{e}"
        );

        // Expansion that stays under the parser's limit is caught by the stored size.
        let source = WORDCOUNT.replace(
            "config: {rate: 1000}",
            &format!(
                "config:\n        base: &b \"{}\"\n        list: [{}]",
                "x".repeat(60_000),
                vec!["*b"; 30].join(",")
            ),
        );
        let e = parse_yaml(source.as_bytes(), "t.yaml").expect_err("too big");
        assert!(
            e.to_string()
                .starts_with("t.yaml: topology \"wordcount\" is 1861128 bytes as stored JSON"),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("larger than the limit of 1048576 bytes"),
            "{e}"
        );
    }

    #[test]
    fn oversized_input_names_size_and_limit() {
        let source = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        let e = parse_yaml(&source, "t.yaml").expect_err("too big");
        assert_eq!(
            e.to_string(),
            "t.yaml: input is 1048577 bytes, larger than the limit of 1048576 bytes (1 MiB); etcd refuses values over about 1.5 MiB"
        );
        assert!(parse_json(&source, "body").is_err());
    }

    #[test]
    fn json_round_trip_and_errors() {
        let t = parse_yaml(WORDCOUNT.as_bytes(), "wc.yaml").expect("valid");
        let json = serde_json::to_vec_pretty(&t[0]).expect("serialise");
        assert_eq!(parse_json(&json, "body").expect("valid"), t[0]);

        let e = parse_json(
            br#"{"apiVersion": "concord.io/v1alpha1", "kind": "Topology","#,
            "body",
        )
        .expect_err("truncated");
        assert_eq!(e.0[0].line, Some(1));
        assert!(e.0[0].message.contains("EOF"), "{e}");

        let text =
            String::from_utf8_lossy(&json).replace("\"instances\": 2", "\"instances\": \"2\"");
        let e = parse_json(text.as_bytes(), "body").expect_err("wrong type");
        let e = &e.0[0];
        assert_eq!(e.path.as_deref(), Some("spec.operators[1].instances"));
        assert!(e.line.is_some() && e.column.is_some());
        assert!(e.message.starts_with("invalid type: string \"2\""), "{e}");

        let text = String::from_utf8_lossy(&json).replace("\"instances\": 2", "\"instancez\": 2");
        let e = parse_json(text.as_bytes(), "body").expect_err("unknown field");
        assert_eq!(e.0[0].path.as_deref(), Some("spec.operators[1].instancez"));
        assert!(
            e.0[0]
                .message
                .starts_with("unknown field `instancez`, expected one of")
        );

        let e = parse_json(br#"{"apiVersion": "v1", "kind": "Pod"}"#, "body").expect_err("kind");
        assert_eq!(
            e.to_string(),
            "body:1:19: apiVersion: unsupported apiVersion \"v1\": expected \"concord.io/v1alpha1\"\nbody:1:34: kind: unsupported kind \"Pod\": expected \"Topology\""
        );

        let mut two = json.clone();
        two.extend_from_slice(b" {}");
        let e = parse_json(&two, "body").expect_err("trailing");
        assert!(
            e.0[0]
                .message
                .starts_with("unexpected content after the topology object"),
            "{e}"
        );

        let text =
            String::from_utf8_lossy(&json).replace("\"name\": \"split\"", "\"name\": \"x_y\"");
        let e = parse_json(text.as_bytes(), "body").expect_err("semantic");
        assert_eq!(e.0[0].path.as_deref(), Some("spec.operators[1].name"));
        assert!(e.0[0].line.is_some(), "{e}");
    }

    #[test]
    fn parse_any_picks_the_format() {
        assert_eq!(
            Format::from_hint(Some("application/json; charset=utf-8")),
            Format::Json
        );
        assert_eq!(
            Format::from_hint(Some("application/merge-patch+json")),
            Format::Json
        );
        assert_eq!(Format::from_hint(Some("topo.JSON")), Format::Json);
        assert_eq!(Format::from_hint(Some("application/yaml")), Format::Yaml);
        assert_eq!(Format::from_hint(None), Format::Yaml);
        let t = parse_yaml(WORDCOUNT.as_bytes(), "wc.yaml").expect("valid");
        let json = serde_json::to_vec(&t[0]).expect("serialise");
        assert_eq!(
            parse_any(&json, "b", Some("application/json")).expect("json"),
            t
        );
        assert_eq!(parse_any(&json, "b", None).expect("json is yaml"), t);
    }
}
