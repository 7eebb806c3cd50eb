//! Hostile input never panics, and every rejection says where.

use concord_schemas::{parse_json, parse_yaml};
use proptest::prelude::*;

fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/examples")
        .join(name);
    std::fs::read_to_string(path).expect("read example")
}

/// Every prefix of an example (a file cut off anywhere) is either valid or rejected with
/// located errors, never a panic.
#[test]
fn every_truncation_of_an_example_is_handled() {
    let source = example("clickfraud.yaml");
    let mut cut = 0;
    for (i, _) in source.char_indices().step_by(7) {
        if let Err(errors) = parse_yaml(&source.as_bytes()[..i], "cut.yaml") {
            cut += 1;
            for e in &errors {
                assert_eq!(e.file.as_deref(), Some("cut.yaml"));
                assert!(
                    e.line.is_some() || e.path.is_some() || e.message.contains("no topology"),
                    "prefix of {i} bytes: unlocated error: {e}"
                );
            }
        }
    }
    assert!(cut > 100);
}

/// Every prefix of the JSON form likewise.
#[test]
fn every_truncation_of_json_is_handled() {
    let t = parse_yaml(example("wordcount.yaml").as_bytes(), "wc").expect("valid");
    let json = serde_json::to_string_pretty(&t[0]).expect("serialise");
    for (i, _) in json.char_indices().step_by(5) {
        if let Err(errors) = parse_json(&json.as_bytes()[..i], "body") {
            assert!(!errors.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_yaml(&bytes, "fuzz.yaml");
        let _ = parse_json(&bytes, "fuzz.json");
    }

    #[test]
    fn yaml_like_text_never_panics(text in "([a-zA-Z:\\-\\[\\]{},&*!|>'\"# \n\t.0-9]){0,200}") {
        if let Err(errors) = parse_yaml(text.as_bytes(), "fuzz.yaml") {
            prop_assert!(!errors.is_empty());
        }
    }

    #[test]
    fn mutated_examples_never_panic(
        position in 0usize..4000,
        insert in "[\\-:{}\\[\\],&*! \n\ta-z0-9]{0,4}",
        delete in 0usize..6,
    ) {
        let source = example("wordcount.yaml");
        let at = source
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| i >= position % source.len())
            .unwrap_or(0);
        let end = source[at..]
            .char_indices()
            .map(|(i, _)| at + i)
            .nth(delete)
            .unwrap_or(source.len());
        let mutated = format!("{}{}{}", &source[..at], insert, &source[end..]);
        if let Err(errors) = parse_yaml(mutated.as_bytes(), "m.yaml") {
            for e in &errors {
                prop_assert!(
                    e.line.is_some() || e.path.is_some() || e.message.contains("no topology"),
                    "unlocated error: {}", e
                );
            }
        }
    }
}
