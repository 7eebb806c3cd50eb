//! HTTP routing, libprocess style: the query string is ignored for routing, a first
//! segment that names no endpoint is delegated to the `master` process (so
//! `/master/state` ≡ `/state`), and trailing slashes do not matter. Agent endpoints
//! live under `/slave(<n>)/...` on the same port.

mod files;
mod operator;
mod required;
mod scheduler;
mod state;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::master::Shared;

/// The router: one fallback that dispatches on the normalised path.
pub fn router(shared: Arc<Shared>) -> Router {
    // Calls can be large (an ACCEPT launching many tasks); axum's 2 MB default is not Mesos'.
    Router::new()
        .fallback(dispatch)
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(shared)
}

type Params = std::collections::HashMap<String, String>;

async fn dispatch(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(params): Query<Params>,
    body: Bytes,
) -> Response {
    let path = normalise(uri.path());
    let (agent, path) = split_agent(&path);
    if let Some(agent) = agent {
        return match path.as_str() {
            "/state" | "/state.json" => state::agent_state(&shared, agent),
            "/files/read" | "/files/read.json" => files::read(&shared, &params),
            "/files/browse" | "/files/browse.json" => files::browse(&shared, &params),
            "/files/download" | "/files/download.json" => files::download(&shared, &params),
            "/health" => StatusCode::OK.into_response(),
            _ => not_found(),
        };
    }
    if let Some(rest) = path.strip_prefix("/lite/agents/") {
        return lite_agent(&shared, &method, rest);
    }
    match path.as_str() {
        "/api/v1/scheduler" => scheduler::handle(shared, method, headers, body).await,
        p if p == "/api/v1" || p.starts_with("/api/v1/") => {
            operator::handle(&shared, &method, &headers, &body)
        }
        "/state" | "/state.json" => state::master_state(&shared),
        "/tasks" | "/tasks.json" => state::tasks(&shared, &params),
        "/frameworks" | "/frameworks.json" => state::frameworks(&shared),
        "/slaves" | "/slaves.json" => state::slaves(&shared),
        "/health" => StatusCode::OK.into_response(),
        "/version" => state::version(),
        "/metrics/snapshot" => state::metrics(&shared),
        "/redirect" => {
            let location = format!("//{}:{}", shared.config.hostname, shared.config.port);
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, location)],
            )
                .into_response()
        }
        "/files/read" | "/files/read.json" => files::read(&shared, &params),
        "/files/browse" | "/files/browse.json" => files::browse(&shared, &params),
        "/files/download" | "/files/download.json" => files::download(&shared, &params),
        _ => not_found(),
    }
}

/// Drops trailing slashes and the `/master` prefix.
fn normalise(path: &str) -> String {
    let mut p = path.trim_end_matches('/').to_string();
    if p.is_empty() {
        p.push('/');
    }
    if p == "/master" {
        return "/".into();
    }
    if let Some(rest) = p.strip_prefix("/master/") {
        p = format!("/{rest}");
    }
    p
}

/// `/slave(3)/state` → (Some(2), "/state").
fn split_agent(path: &str) -> (Option<usize>, String) {
    if let Some(rest) = path.strip_prefix("/slave(")
        && let Some((n, tail)) = rest.split_once(')')
        && let Ok(n) = n.parse::<usize>()
        && n >= 1
    {
        let tail = if tail.is_empty() { "/" } else { tail };
        return (Some(n - 1), tail.to_string());
    }
    (None, path.to_string())
}

/// mesos-lite only, not a Mesos endpoint: `POST /lite/agents/<agent id>/lose` marks the
/// agent unreachable as if its health checks had timed out (its tasks are killed; it
/// never comes back). 200 when done, 404 for an unknown agent, 409 if already removed.
fn lite_agent(shared: &Arc<Shared>, method: &Method, rest: &str) -> Response {
    let Some(agent_id) = rest.strip_suffix("/lose").filter(|id| !id.contains('/')) else {
        return not_found();
    };
    if method != Method::POST {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Expecting one of {{ 'POST' }}, but received '{method}'"),
        );
        r.headers_mut()
            .insert(header::ALLOW, axum::http::HeaderValue::from_static("POST"));
        return r;
    }
    match shared.lock().lose_agent(agent_id) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e @ crate::master::AgentError::NotFound(_)) => {
            text(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e) => text(StatusCode::CONFLICT, e.to_string()),
    }
}

fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// A plain-text response, as Mesos' error bodies are.
pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// A JSON response with Mesos' content type.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("serialization failed: {e}"),
        ),
    }
}

/// Whether an `Accept` header allows JSON (absent counts as yes).
pub(crate) fn accepts_json(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    accept.split(',').any(|part| {
        let media = part
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let zero_q = part.split(';').skip(1).any(|p| {
            let p = p.trim();
            p.strip_prefix("q=").and_then(|q| q.parse::<f64>().ok()) == Some(0.0)
        });
        !zero_q
            && matches!(
                media.as_str(),
                "application/json" | "application/*" | "*/*" | ""
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_like_libprocess() {
        assert_eq!(normalise("/master/state/"), "/state");
        assert_eq!(normalise("/api/v1/scheduler"), "/api/v1/scheduler");
        assert_eq!(normalise("/"), "/");
        assert_eq!(split_agent("/slave(2)/state"), (Some(1), "/state".into()));
        assert_eq!(split_agent("/state"), (None, "/state".into()));
    }
}
