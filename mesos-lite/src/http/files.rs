//! The files API over agent sandboxes: `/files/read`, `/files/browse`, `/files/download`.
//! Paths are real sandbox paths under `<work_dir>/slaves/`, or the virtual
//! `/frameworks/<fw>/executors/<ex>/runs/<run|latest>[/...]`.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Params, json, text};
use crate::master::Shared;
use crate::wire::FileRead;

/// Mesos reads at most 16 pages per request: a larger (or absent) `length` is lowered to
/// it, so one request never reads or buffers more.
const MAX_READ: u64 = 16 * 4096;

/// Maps a files-API path to a real path inside `<work_dir>/slaves`, or None.
fn resolve(shared: &Shared, path: &str) -> Option<PathBuf> {
    let slaves = shared.config.work_dir.join("slaves");
    let rel = Path::new(path);
    if rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return None;
    }
    if let Ok(inside) = rel.strip_prefix(&slaves) {
        return Some(slaves.join(inside));
    }
    let rest = path.trim_start_matches('/');
    if rest.starts_with("frameworks/") {
        let agents = std::fs::read_dir(&slaves).ok()?;
        for agent in agents.flatten() {
            let candidate = agent.path().join(rest);
            if candidate.exists() {
                return Some(candidate);
            }
        }
    }
    None
}

#[allow(clippy::result_large_err)]
fn required_path(params: &Params) -> Result<&str, Response> {
    params
        .get("path")
        .map(String::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            text(
                StatusCode::BAD_REQUEST,
                "Expecting 'path=value' in query.\n",
            )
        })
}

pub(super) fn read(shared: &Arc<Shared>, params: &Params) -> Response {
    let path = match required_path(params) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let offset: i64 = match params.get("offset") {
        None => -1,
        Some(s) => match s.parse() {
            Ok(v) => v,
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("Failed to parse offset: {e}.\n"),
                );
            }
        },
    };
    let length: Option<i64> = match params.get("length") {
        None => None,
        Some(s) => match s.parse::<i64>() {
            Ok(v) if v < 0 => None,
            Ok(v) => Some(v),
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("Failed to parse length: {e}.\n"),
                );
            }
        },
    };
    let Some(real) = resolve(shared, path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if real.is_dir() {
        return text(StatusCode::BAD_REQUEST, "Cannot read a directory.\n");
    }
    let Ok(mut file) = std::fs::File::open(&real) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if offset < 0 {
        return json(&FileRead {
            data: String::new(),
            offset: size,
        });
    }
    let offset = offset as u64;
    if offset >= size {
        // As Mesos: an offset at or past the end answers no data at the file's size, so a
        // reader whose file was truncated learns where it ends now.
        return json(&FileRead {
            data: String::new(),
            offset: size,
        });
    }
    let want = length
        .map_or(MAX_READ, |l| (l as u64).min(MAX_READ))
        .min(size - offset);
    let mut buf = vec![0u8; want as usize];
    let result = file
        .seek(SeekFrom::Start(offset))
        .and_then(|_| file.read(&mut buf));
    match result {
        Ok(n) => {
            buf.truncate(n);
            json(&FileRead {
                data: String::from_utf8_lossy(&buf).into_owned(),
                offset,
            })
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Failed to read file: {e}\n"),
        ),
    }
}

pub(super) fn browse(shared: &Arc<Shared>, params: &Params) -> Response {
    let path = match required_path(params) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(real) = resolve(shared, path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(meta) = std::fs::metadata(&real) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let users = id_names("/etc/passwd");
    let groups = id_names("/etc/group");
    let entry = |virt: String, md: &std::fs::Metadata| {
        serde_json::json!({
            "path": virt,
            "nlink": md.nlink(),
            "size": md.len(),
            "mtime": md.mtime(),
            "mode": mode_string(md),
            "uid": users.get(&md.uid()).cloned().unwrap_or_else(|| md.uid().to_string()),
            "gid": groups.get(&md.gid()).cloned().unwrap_or_else(|| md.gid().to_string()),
        })
    };
    let base = path.trim_end_matches('/');
    let mut out = Vec::new();
    if meta.is_dir() {
        let Ok(entries) = std::fs::read_dir(&real) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if let Ok(md) = std::fs::symlink_metadata(e.path()) {
                let name = e.file_name().to_string_lossy().into_owned();
                out.push(entry(format!("{base}/{name}"), &md));
            }
        }
    } else {
        out.push(entry(base.to_string(), &meta));
    }
    json(&out)
}

pub(super) fn download(shared: &Arc<Shared>, params: &Params) -> Response {
    let path = match required_path(params) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(real) = resolve(shared, path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if real.is_dir() {
        return text(StatusCode::BAD_REQUEST, "Cannot download a directory.\n");
    }
    match std::fs::File::open(&real) {
        Ok(file) => {
            let name = real
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename={name}"),
                    ),
                ],
                // Streamed in chunks: a large sandbox file is never held in memory whole.
                axum::body::Body::from_stream(chunks(tokio::fs::File::from_std(file))),
            )
                .into_response()
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A file's bytes, [`MAX_READ`] at a time, ending at the first error.
fn chunks(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = std::io::Result<axum::body::Bytes>> {
    futures::stream::unfold(Some(file), |file| async move {
        use tokio::io::AsyncReadExt;
        let mut file = file?;
        let mut buf = vec![0u8; MAX_READ as usize];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(axum::body::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

fn id_names(file: &str) -> std::collections::HashMap<u32, String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let _ = f.next();
            let id = f.next()?.parse().ok()?;
            Some((id, name.to_string()))
        })
        .collect()
}

fn mode_string(md: &std::fs::Metadata) -> String {
    use std::os::unix::fs::PermissionsExt;
    let mode = md.permissions().mode();
    let kind = if md.is_dir() {
        'd'
    } else if md.file_type().is_symlink() {
        'l'
    } else {
        '-'
    };
    let mut s = String::with_capacity(10);
    s.push(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}
