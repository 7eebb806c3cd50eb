//! The checked-in JSON Schema (what editors see through yaml-language-server) agrees
//! with the shipped manifests and with validation, checked by an independent JSON
//! Schema validator (the `jsonschema` crate) rather than by our own code.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// The checked-in schema file (`schema::tests` asserts it is current).
fn validator() -> jsonschema::Validator {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(concord_schemas::schema::TOPOLOGY_SCHEMA_FILE);
    let text = std::fs::read_to_string(&path).expect("read the checked-in schema");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .build(&schema)
        .expect("the schema compiles as draft-07")
}

/// Every `.yaml`/`.yml` file under `dir`, recursively, sorted.
fn manifests_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The YAML documents of a file as JSON values (what an editor validates).
fn documents(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).expect("read manifest");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            <Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()))
        })
        .collect()
}

#[test]
fn every_shipped_manifest_validates_against_the_json_schema() {
    let validator = validator();
    let mut files = manifests_under(&repo("manifests/examples"));
    files.extend(manifests_under(&repo("manifests/tour")));
    assert!(files.len() >= 3, "found only {files:?}");
    let mut failures = Vec::new();
    for file in &files {
        let docs = documents(file);
        assert!(!docs.is_empty(), "{} holds no document", file.display());
        for doc in docs {
            for error in validator.iter_errors(&doc) {
                failures.push(format!(
                    "{}: {}: {error}",
                    file.display(),
                    error.instance_path()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_json_schema_rejects_what_validation_rejects_in_the_corpus_for_artifacts() {
    // The invalid corpus's artifact case is invalid for the schema too.
    let file = repo("manifests/testdata/invalid/bad-artifact.yaml");
    let validator = validator();
    for doc in documents(&file) {
        assert!(
            !validator.is_valid(&doc),
            "{} passed the schema",
            file.display()
        );
    }
}

/// A minimal topology whose one process operator fetches `uri`.
fn with_artifact(uri: &str) -> Value {
    json!({
        "apiVersion": "concord.io/v1alpha1",
        "kind": "Topology",
        "metadata": {"name": "t"},
        "spec": {"operators": [{
            "name": "op",
            "runtime": {"process": {"command": "python3", "artifacts": [{"uri": uri}]}}
        }]}
    })
}

#[test]
fn artifact_uri_pattern_accepts_exactly_what_validation_accepts() {
    let validator = validator();
    let cases = [
        "http://h/x.tgz",
        "HTTPS://h/x.tgz",
        "https://h/x.tgz",
        "file:///opt/x.py",
        "File:///opt/x.py",
        "/opt/x.py",
        "/opt/with space.py",
        "./x.py",
        "../x.py",
        "../../sdk/python/concord_sdk.py",
        "./",
        // rejected
        "ftp://h/x",
        "s3://b/k",
        "x.py",
        "sdk/x.py",
        ".x.py",
        "...x.py",
        ".../x.py",
        "http://",
        "https:// h/x",
        "http://h/a b",
        "file:/x",
        "/opt/\0x",
        "./\0",
        "",
        " /opt/x.py",
    ];
    let mut accepted = 0;
    for uri in cases {
        let doc = with_artifact(uri);
        let by_schema = validator.is_valid(&doc);
        let body = serde_json::to_vec(&doc).expect("json");
        let by_validation = concord_schemas::parse_json(&body, "case")
            .map(|_| "accepted")
            .map_err(|e| e.to_string());
        assert_eq!(
            by_schema,
            by_validation.is_ok(),
            "{uri:?}: schema says {by_schema}, validation says {by_validation:?}"
        );
        accepted += usize::from(by_schema);
    }
    assert!(
        accepted >= 10 && accepted < cases.len(),
        "both kinds of case ran"
    );
}
