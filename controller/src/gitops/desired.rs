//! What a commit asks for: the topologies its files define, or why a file is rejected.
//!
//! Pure: bytes in, topologies and per-file errors out. Every topology gets the
//! annotations that tie it to its GitRepository, commit and file.

use std::collections::{BTreeMap, BTreeSet};

use concord_schemas::gitops::{MANAGED_BY_ANNOTATION, REVISION_ANNOTATION, SOURCE_PATH_ANNOTATION};
use concord_schemas::{SpecError, Topology};

/// One file of the commit: its path and its bytes, or why they could not be read.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: String,
    pub content: Result<Vec<u8>, String>,
}

/// The commit's topologies and the files that were rejected.
#[derive(Debug, Default)]
pub struct Desired {
    /// `(namespace, name) -> (file, topology with Git annotations)`.
    pub topologies: BTreeMap<(String, String), (String, Topology)>,
    /// Every problem, with its file (and line/column where known).
    pub errors: Vec<SpecError>,
    /// Files with at least one problem: nothing of theirs is applied or pruned.
    pub failed_files: BTreeSet<String>,
}

/// Parses every file; `managed_by` is the GitRepository's `<namespace>/<name>`.
pub fn from_files(files: &[SourceFile], managed_by: &str, revision: &str) -> Desired {
    let mut desired = Desired::default();
    for file in files {
        let parsed = match &file.content {
            Err(message) => Err(vec![SpecError::new(message.clone())]),
            Ok(bytes) => parse(&file.path, bytes),
        };
        let topologies = match parsed {
            Ok(t) => t,
            Err(errors) => {
                desired.failed_files.insert(file.path.clone());
                desired
                    .errors
                    .extend(errors.into_iter().map(|e| with_file(e, &file.path)));
                continue;
            }
        };
        let mut mine = Vec::new();
        let mut problems = Vec::new();
        for (index, mut t) in topologies.into_iter().enumerate() {
            let doc = |m: String| {
                if index > 0 {
                    format!("(document {}) {m}", index + 1)
                } else {
                    m
                }
            };
            let id = (t.metadata.namespace.clone(), t.metadata.name.clone());
            if let Some((other, _)) = desired.topologies.get(&id) {
                problems.push(SpecError::new(doc(format!(
                    "topology {}/{} is also defined in {other}; each topology may appear once",
                    id.0, id.1
                ))));
                continue;
            }
            if mine
                .iter()
                .any(|(i, _): &((String, String), Topology)| *i == id)
            {
                problems.push(SpecError::new(doc(format!(
                    "topology {}/{} appears twice in this file",
                    id.0, id.1
                ))));
                continue;
            }
            for e in crate::api::relative_artifact_errors(&t, RELATIVE_HINT) {
                problems.push(SpecError {
                    message: doc(e.message),
                    ..e
                });
            }
            let notes = &mut t.metadata.annotations;
            notes.insert(MANAGED_BY_ANNOTATION.to_owned(), managed_by.to_owned());
            notes.insert(REVISION_ANNOTATION.to_owned(), revision.to_owned());
            notes.insert(SOURCE_PATH_ANNOTATION.to_owned(), file.path.clone());
            mine.push((id, t));
        }
        if problems.is_empty() {
            for (id, t) in mine {
                desired.topologies.insert(id, (file.path.clone(), t));
            }
        } else {
            // A file is applied whole or not at all.
            desired.failed_files.insert(file.path.clone());
            desired
                .errors
                .extend(problems.into_iter().map(|e| with_file(e, &file.path)));
        }
    }
    desired
}

const RELATIVE_HINT: &str = "relative artifact paths cannot be resolved for a topology synced from Git; use an absolute URI (https://, file://)";

fn parse(path: &str, bytes: &[u8]) -> Result<Vec<Topology>, Vec<SpecError>> {
    if path.ends_with(".json") {
        concord_schemas::parse_json(bytes, path)
            .map(|t| vec![t])
            .map_err(|e| e.0)
    } else {
        concord_schemas::parse_yaml(bytes, path).map_err(|e| e.0)
    }
}

fn with_file(mut e: SpecError, file: &str) -> SpecError {
    if e.file.is_none() {
        e.file = Some(file.to_owned());
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            content: Ok(text.as_bytes().to_vec()),
        }
    }

    fn topology(name: &str) -> String {
        format!(
            "apiVersion: concord.io/v1alpha1\nkind: Topology\nmetadata: {{name: {name}}}\nspec:\n  operators:\n    - name: gen\n      runtime: {{builtin: {{name: generator}}}}\n"
        )
    }

    #[test]
    fn valid_files_yield_annotated_topologies() {
        let two = format!("{}---\n{}", topology("a"), topology("b"));
        let d = from_files(&[file("t/ab.yaml", &two)], "default/prod", "abc123");
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(d.topologies.len(), 2);
        let (path, a) = &d.topologies[&("default".to_owned(), "a".to_owned())];
        assert_eq!(path, "t/ab.yaml");
        assert_eq!(
            a.metadata.annotations[MANAGED_BY_ANNOTATION],
            "default/prod"
        );
        assert_eq!(a.metadata.annotations[REVISION_ANNOTATION], "abc123");
        assert_eq!(a.metadata.annotations[SOURCE_PATH_ANNOTATION], "t/ab.yaml");
    }

    #[test]
    fn a_bad_file_is_reported_with_its_location_and_the_others_proceed() {
        let bad = "apiVersion: concord.io/v1alpha1\nkind: Topology\nmetadata: {name: b}\nspec:\n  operators:\n    - name: gen\n      instances: many\n";
        let d = from_files(
            &[file("a.yaml", &topology("a")), file("b.yaml", bad)],
            "default/prod",
            "r",
        );
        assert_eq!(d.topologies.len(), 1);
        assert_eq!(d.failed_files, BTreeSet::from(["b.yaml".to_owned()]));
        let text = d.errors[0].to_string();
        assert!(text.starts_with("b.yaml:7:"), "{text}");
        assert!(text.contains("spec.operators[0].instances"), "{text}");
    }

    #[test]
    fn a_file_with_one_bad_document_is_rejected_whole() {
        let mixed = format!(
            "{}---\n{}",
            topology("a"),
            topology("a") // the same topology twice
        );
        let d = from_files(&[file("m.yaml", &mixed)], "default/prod", "r");
        assert!(d.topologies.is_empty());
        assert_eq!(d.errors.len(), 1);
        assert_eq!(
            d.errors[0].to_string(),
            "m.yaml: (document 2) topology default/a appears twice in this file"
        );
    }

    #[test]
    fn duplicates_across_files_keep_the_first() {
        let d = from_files(
            &[
                file("1.yaml", &topology("a")),
                file("2.yaml", &topology("a")),
            ],
            "default/prod",
            "r",
        );
        assert_eq!(d.topologies.len(), 1);
        assert_eq!(
            d.errors[0].to_string(),
            "2.yaml: topology default/a is also defined in 1.yaml; each topology may appear once"
        );
    }

    #[test]
    fn relative_artifacts_and_unreadable_files_are_errors() {
        let relative = "apiVersion: concord.io/v1alpha1\nkind: Topology\nmetadata: {name: p}\nspec:\n  operators:\n    - name: py\n      runtime:\n        process:\n          command: python3\n          args: [x.py]\n          artifacts: [{uri: ./x.py}]\n";
        let d = from_files(
            &[
                file("p.yaml", relative),
                SourceFile {
                    path: "huge.yaml".into(),
                    content: Err("file is 20000000 bytes; at most 1048576".into()),
                },
            ],
            "default/prod",
            "r",
        );
        assert!(d.topologies.is_empty());
        assert_eq!(d.failed_files.len(), 2);
        assert!(
            d.errors[0].to_string().starts_with(
                "p.yaml: spec.operators[0].runtime.process.artifacts[0].uri: relative artifact path"
            ),
            "{}",
            d.errors[0]
        );
        assert_eq!(
            d.errors[1].to_string(),
            "huge.yaml: file is 20000000 bytes; at most 1048576"
        );
    }
}
