//! The metrics port: `GET /metrics`, `/healthz`, `/readyz` and `/traces[?traceId=ID]`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;
use crate::runtime::RuntimeState;
use crate::trace::Tracer;

/// What the handlers read.
#[derive(Clone)]
pub struct HttpState {
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Recent spans.
    pub tracer: Arc<Tracer>,
    /// Lifecycle flags.
    pub state: Arc<RuntimeState>,
}

/// The HTTP routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/traces", get(traces))
        .with_state(state)
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn readyz(State(s): State<HttpState>) -> impl IntoResponse {
    if s.state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else if s.state.initialised.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "not connected downstream")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not initialised")
    }
}

/// `GET /traces[?traceId=ID]`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TraceQuery {
    trace_id: Option<String>,
}

async fn traces(State(s): State<HttpState>, Query(q): Query<TraceQuery>) -> impl IntoResponse {
    let mut spans = s.tracer.recent();
    if let Some(id) = q.trace_id.as_deref().map(str::to_ascii_lowercase) {
        spans.retain(|span| span.trace_id == id);
    }
    axum::Json(spans)
}
