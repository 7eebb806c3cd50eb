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
        match parsed {
            Ok(topologies) => docs.extend(topologies.into_iter().map(|t| (label.clone(), t))),
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
