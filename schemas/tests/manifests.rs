//! The example manifests parse and validate; every file of the invalid corpus is rejected
//! with the message its `# expect:` line (or `.expect` sidecar) names.

use std::path::{Path, PathBuf};

use concord_schemas::{MAX_DOCUMENT_BYTES, SpecErrors, parse_yaml};

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn examples_parse_and_validate() {
    let files = yaml_files(&manifests().join("examples"));
    assert!(files.len() >= 2, "expected at least two examples");
    for file in files {
        let source = std::fs::read(&file).expect("read example");
        let text = String::from_utf8_lossy(&source);
        assert!(
            text.starts_with(
                "# yaml-language-server: $schema=../../schemas/json/topology.schema.json"
            ),
            "{} lacks the yaml-language-server schema comment",
            file.display()
        );
        let topologies = parse_yaml(&source, &file.display().to_string())
            .unwrap_or_else(|e| panic!("{} is invalid:\n{e}", file.display()));
        assert!(!topologies.is_empty());
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        assert_eq!(
            topologies[0].metadata.name, stem,
            "file name = topology name"
        );
    }
}

/// The expected substring: the first line's `# expect: ...`, or a sidecar `<name>.expect`.
fn expectation(file: &Path, source: &[u8]) -> String {
    let sidecar = file.with_file_name(format!(
        "{}.expect",
        file.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    ));
    if let Ok(text) = std::fs::read_to_string(&sidecar) {
        return text.trim().to_owned();
    }
    let first = String::from_utf8_lossy(source)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    first
        .strip_prefix("# expect:")
        .unwrap_or_else(|| panic!("{} has no `# expect:` first line", file.display()))
        .trim()
        .to_owned()
}

/// Syntax errors must carry line and column; semantic ones a field path.
fn assert_located(file: &Path, errors: &SpecErrors) {
    for e in errors {
        assert!(
            e.file.is_some(),
            "{}: error without file: {e}",
            file.display()
        );
        let whole_input = e.message.contains("no topology documents")
            || e.message.contains("larger than the limit")
            || e.message.contains("YAML aliases expand");
        assert!(
            whole_input || e.path.is_some() || e.line.is_some(),
            "{}: error with neither path nor line: {e}",
            file.display()
        );
    }
}

#[test]
fn invalid_corpus_is_rejected_with_the_expected_message() {
    let dir = manifests().join("testdata/invalid");
    let files = yaml_files(&dir);
    assert!(files.len() >= 15, "corpus too small: {}", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let source = std::fs::read(file).expect("read corpus file");
        let expect = expectation(file, &source);
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        match parse_yaml(&source, name) {
            Ok(_) => failures.push(format!(
                "{name}: accepted, expected error containing {expect:?}"
            )),
            Err(errors) => {
                let text = errors.to_string();
                if !text.contains(&expect) {
                    failures.push(format!("{name}: expected {expect:?} in:\n{text}"));
                }
                assert_located(file, &errors);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn ten_megabyte_document_is_rejected_before_parsing() {
    let mut source = b"# padding\n".repeat(1024 * 1024);
    source.extend_from_slice(b"apiVersion: concord.io/v1alpha1\n");
    let errors = parse_yaml(&source, "big.yaml").expect_err("too large");
    let text = errors.to_string();
    assert!(
        text.starts_with("big.yaml: input is 10485792 bytes"),
        "{text}"
    );
    assert!(
        text.contains(&format!("limit of {MAX_DOCUMENT_BYTES} bytes")),
        "{text}"
    );
}

/// The README tour's broken change (`manifests/tour/clickfraud-typo.yaml`) is the
/// click-fraud example with one typo in one operator's config: applying it replaces
/// that operator only, so the tour's `rollout undo` story stays true as the example
/// evolves.
#[test]
fn the_tour_typo_variant_differs_from_the_example_in_one_operator_config() {
    let load = |rel: &str| {
        let file = manifests().join(rel);
        let source = std::fs::read(&file).expect("read manifest");
        let mut docs = parse_yaml(&source, rel).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(docs.len(), 1, "{rel}");
        docs.remove(0)
    };
    let example = load("examples/clickfraud.yaml");
    let typo = load("tour/clickfraud-typo.yaml");
    assert_eq!(typo.metadata.name, example.metadata.name);
    let plan = concord_schemas::plan(Some(&example.spec), &typo.spec);
    assert!(plan.topology_fields.is_empty(), "{plan:?}");
    let changed: Vec<_> = plan
        .operators
        .iter()
        .filter(|o| o.change != concord_schemas::OperatorChange::Unchanged)
        .collect();
    assert_eq!(
        changed,
        vec![&concord_schemas::OperatorPlan {
            name: "publisher-alerts".into(),
            change: concord_schemas::OperatorChange::Replaced {
                fields: vec!["config".into()],
                from: 1,
                to: 1,
            },
        }],
        "{plan:?}"
    );
    let config = |t: &concord_schemas::Topology| {
        t.spec
            .operators
            .iter()
            .find(|o| o.name == "publisher-alerts")
            .map(|o| serde_json::to_value(&o.config).expect("config as JSON"))
            .expect("publisher-alerts")
    };
    assert_eq!(config(&example)["min"], 10000);
    assert_eq!(config(&typo)["min"], "10k", "the typo is not a number");
}
