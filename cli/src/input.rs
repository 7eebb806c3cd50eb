//! Reading topology documents from files, directories and stdin.

use std::io::Read;
use std::path::{Path, PathBuf};

use concord_schemas::{SpecError, Topology};

use crate::Failure;

/// Largest file read, so a mistaken `-f /dev/zero` or a 10 MB file fails fast and clearly.
const MAX_FILE_BYTES: u64 = concord_schemas::MAX_DOCUMENT_BYTES as u64;

/// Parses and validates every document of every source. All errors of all files are
/// reported together, and if there is any, nothing is returned, so nothing is applied.
pub fn load(sources: &[String]) -> Result<Vec<(String, Topology)>, Failure> {
    let mut files = Vec::new();
    for source in sources {
        if source == "-" {
            files.push(None);
            continue;
        }
        let path = Path::new(source);
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found).map_err(|e| Failure::invalid(format!("{source}: {e}")))?;
            if found.is_empty() {
                return Err(Failure::invalid(format!(
                    "{source}: no .yaml, .yml or .json files in this directory"
                )));
            }
            found.sort();
            files.extend(found.into_iter().map(Some));
        } else {
            files.push(Some(path.to_path_buf()));
        }
    }
    let mut docs = Vec::new();
    let mut errors: Vec<SpecError> = Vec::new();
    for file in files {
        let (label, bytes) = match read(file.as_deref()) {
            Ok(x) => x,
            Err(message) => {
                errors.push(SpecError {
                    file: None,
                    line: None,
                    column: None,
                    path: None,
                    message,
                });
                continue;
            }
        };
        let parsed = if label.ends_with(".json") {
            concord_schemas::parse_json(&bytes, &label).map(|t| vec![t])
        } else {
            concord_schemas::parse_yaml(&bytes, &label)
        };
        let base = file
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        match parsed {
            Ok(topologies) => {
                for (index, mut t) in topologies.into_iter().enumerate() {
                    match resolve_relative_artifacts(&mut t, &base) {
                        Ok(()) => docs.push((label.clone(), t)),
                        Err(e) => errors.extend(e.into_iter().map(|mut e| {
                            e.file = Some(label.clone());
                            if index > 0 {
                                e.message = format!("(document {}) {}", index + 1, e.message);
                            }
                            e
                        })),
                    }
                }
            }
            Err(e) => errors.extend(e.0),
        }
    }
    if !errors.is_empty() {
        let message = errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        return Err(Failure::invalid(message));
    }
    let mut seen = std::collections::HashMap::new();
    for (label, t) in &docs {
        if let Some(first) = seen.insert(t.key(), label.clone()) {
            return Err(Failure::invalid(format!(
                "{label}: topology {} is also defined in {first}; each topology may appear once",
                t.key()
            )));
        }
    }
    Ok(docs)
}

fn read(path: Option<&Path>) -> Result<(String, Vec<u8>), String> {
    let mut bytes = Vec::new();
    let label = match path {
        None => {
            std::io::stdin()
                .take(MAX_FILE_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("<stdin>: cannot read: {e}"))?;
            "<stdin>".to_owned()
        }
        Some(path) => {
            let label = path.display().to_string();
            if let Ok(meta) = std::fs::metadata(path)
                && meta.is_file()
                && meta.len() > MAX_FILE_BYTES
            {
                return Err(format!(
                    "{label}: file is {} bytes; a topology file may be at most {MAX_FILE_BYTES} bytes (1 MiB)",
                    meta.len()
                ));
            }
            let file =
                std::fs::File::open(path).map_err(|e| format!("{label}: cannot open: {e}"))?;
            file.take(MAX_FILE_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("{label}: cannot read: {e}"))?;
            label
        }
    };
    // Larger inputs are cut at the limit + 1 byte; the parser reports the limit.
    Ok((label, bytes))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Rewrites artifact paths relative to the manifest (`./x`, `../x`) into absolute
/// `file://` URIs, so the topology means the same wherever it is applied from.
fn resolve_relative_artifacts(t: &mut Topology, base: &Path) -> Result<(), Vec<SpecError>> {
    let mut errors = Vec::new();
    for (i, op) in t.spec.operators.iter_mut().enumerate() {
        let concord_schemas::Runtime::Process(process) = &mut op.runtime else {
            continue;
        };
        for (j, artifact) in process.artifacts.iter_mut().enumerate() {
            if !concord_schemas::is_relative_artifact(&artifact.uri) {
                continue;
            }
            let path = base.join(&artifact.uri);
            match std::fs::canonicalize(&path) {
                Ok(abs) => artifact.uri = format!("file://{}", abs.display()),
                Err(e) => errors.push(SpecError {
                    file: None,
                    line: None,
                    column: None,
                    path: Some(format!(
                        "spec.operators[{i}].runtime.process.artifacts[{j}].uri"
                    )),
                    message: format!("{} (relative to the manifest): {e}", path.display()),
                }),
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
