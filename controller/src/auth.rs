//! Bearer-token authentication for the HTTP API, with read-only and admin roles.
//!
//! Tokens come from a file (`--token-file`), one per line: `<token> <role> [name]`, where
//! role is `readonly` or `admin`; `#` starts a comment. Without a token file the API is
//! open (it listens on loopback by default). With one: `/healthz` and `/readyz` stay
//! open for probes, the dashboard's static files (`/ui/…`) are served without a token
//! (the page asks for one and sends it with its API calls), every other request needs a valid token, and anything but
//! GET/HEAD needs an admin token. Tokens are kept only as SHA-256 digests and never
//! logged; logs name the token's `name`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads and watches.
    ReadOnly,
    /// Everything.
    Admin,
}

/// Why a token file was refused.
#[derive(Debug, Error)]
pub enum TokenFileError {
    #[error("cannot read the token file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}: no tokens in the file")]
    Empty { path: String },
}

/// Shortest accepted token: guessable tokens are refused at start-up.
pub const MIN_TOKEN_LEN: usize = 16;

/// The known tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_digest: HashMap<[u8; 32], (Role, String)>,
}

impl Tokens {
    /// Loads and checks a token file.
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses the file's text; `path` is for messages.
    pub fn parse(text: &str, path: &str) -> Result<Self, TokenFileError> {
        let mut tokens = Self::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let invalid = |message: String| TokenFileError::Invalid {
                path: path.to_owned(),
                line: i + 1,
                message,
            };
            let mut parts = line.split_whitespace();
            let (Some(token), Some(role)) = (parts.next(), parts.next()) else {
                return Err(invalid("expected `<token> <role> [name]`".into()));
            };
            if token.len() < MIN_TOKEN_LEN {
                return Err(invalid(format!(
                    "token is shorter than {MIN_TOKEN_LEN} characters"
                )));
            }
            let role = match role {
                "admin" => Role::Admin,
                "readonly" | "read-only" => Role::ReadOnly,
                other => {
                    return Err(invalid(format!(
                        "unknown role {other:?}: expected admin or readonly"
                    )));
                }
            };
            let name = parts
                .next()
                .map_or_else(|| format!("token-line-{}", i + 1), str::to_owned);
            if tokens
                .by_digest
                .insert(digest(token), (role, name))
                .is_some()
            {
                return Err(invalid("the same token appears twice".into()));
            }
        }
        if tokens.by_digest.is_empty() {
            return Err(TokenFileError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(tokens)
    }

    /// The role and name of a presented token.
    pub fn check(&self, token: &str) -> Option<&(Role, String)> {
        self.by_digest.get(&digest(token))
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Axum middleware enforcing the rules in the module docs.
pub async fn require_token(
    State(tokens): State<Option<Arc<Tokens>>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(tokens) = tokens else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    // The dashboard's files hold no data; the page itself asks for a token to read the API.
    if path == "/healthz" || path == "/readyz" || crate::ui::is_asset_path(path) {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some((role, name)) = presented.and_then(|t| tokens.check(t)) else {
        tracing::warn!(path = %path, method = %req.method(), "request without a valid token refused");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "a valid bearer token is required (CLI: set CONCORD_TOKEN)",
        );
    };
    let write = !matches!(*req.method(), Method::GET | Method::HEAD);
    if write && *role != Role::Admin {
        tracing::warn!(token = %name, path = %path, method = %req.method(), "write with a read-only token refused");
        return refuse(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!("token {name:?} is read-only; this request needs an admin token"),
        );
    }
    next.run(req).await
}

fn refuse(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = concord_schemas::api::ApiStatus {
        kind: "Status".into(),
        status: "Failure".into(),
        message: message.into(),
        reason: reason.into(),
        code: code.as_u16(),
        errors: Vec::new(),
    };
    let mut resp = (code, axum::Json(body)).into_response();
    if code == StatusCode::UNAUTHORIZED
        && let Ok(v) = "Bearer realm=\"concord\"".parse()
    {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_roles_names_and_comments() {
        let t = Tokens::parse(
            "# ops\nadmin-token-0123456789 admin alice\nread-token-0123456789 readonly\n",
            "t",
        )
        .expect("valid");
        assert_eq!(
            t.check("admin-token-0123456789"),
            Some(&(Role::Admin, "alice".into()))
        );
        assert_eq!(
            t.check("read-token-0123456789").map(|r| r.0),
            Some(Role::ReadOnly)
        );
        assert!(t.check("nope").is_none());
    }

    #[test]
    fn refuses_bad_files_with_line_numbers() {
        for (text, needle) in [
            ("short admin\n", "t:1: token is shorter"),
            ("\nabcdefghijklmnopq root\n", "t:2: unknown role \"root\""),
            ("abcdefghijklmnopq\n", "expected `<token> <role> [name]`"),
            (
                "abcdefghijklmnopq admin\nabcdefghijklmnopq readonly\n",
                "appears twice",
            ),
            ("# nothing\n", "no tokens"),
        ] {
            let err = Tokens::parse(text, "t").expect_err(text).to_string();
            assert!(err.contains(needle), "{err:?} lacks {needle:?}");
        }
    }
}
