//! Observability through the API: live per-operator metrics aggregated from the
//! executors, and task logs read through the Mesos files API.
//!
//! Endpoints (stable; the CLI's `concord graph` / `concord logs` and the dashboard use them):
//! - `GET {API_BASE}/namespaces/{ns}/topologies/{name}/metrics`: see [`metrics_api`];
//! - `GET {API_BASE}/namespaces/{ns}/topologies/{name}/tasks/{task}/logs
//!   ?stream=stdout|stderr&offset=N&length=M`: see [`logs`];
//! - `GET {API_BASE}/namespaces/{ns}/topologies/{name}/traces[?traceId=ID&limit=N]`:
//!   sampled records' paths with per-hop latency, see [`traces_api`].
//!
//! All do their work only when asked: no background scraping or polling.

pub mod logs;
pub mod metrics_api;
pub mod scrape;
pub mod traces_api;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use concord_schemas::api::{API_BASE, ApiStatus};
use thiserror::Error;

use crate::api::{ApiQuery, ApiState};
use crate::reconcile::identity::TaskName;
pub use logs::{LogChunk, LogQuery, MesosAccess};
pub use metrics_api::TopologyMetrics;
pub use traces_api::{TopologyTraces, TraceQuery};

/// Errors of the observability endpoints, each with its HTTP status.
#[derive(Debug, Error)]
pub enum ObserveError {
    /// The topology, task or file does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// Bad query parameters (400).
    #[error("{0}")]
    BadRequest(String),
    /// A dependency (etcd, Mesos) did not answer, or is not configured (503).
    #[error("{0}")]
    Unavailable(String),
    /// Mesos answered something unexpected (502).
    #[error("{0}")]
    BadGateway(String),
}

impl IntoResponse for ObserveError {
    fn into_response(self) -> Response {
        let (code, reason) = match &self {
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            Self::BadGateway(_) => (StatusCode::BAD_GATEWAY, "BadGateway"),
        };
        let body = ApiStatus {
            kind: "Status".into(),
            status: "Failure".into(),
            message: self.to_string(),
            reason: reason.into(),
            code: code.as_u16(),
            errors: Vec::new(),
        };
        (code, Json(body)).into_response()
    }
}

/// A transport error with its causes, on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// Largest answer read from an executor's `/metrics` or `/traces` (its own exposition is
/// a few kilobytes per operator). A longer one is an error for that executor, counted in
/// `concord_scrape_oversized_bodies_total`, and is never buffered past the cap.
pub const MAX_SCRAPE_BYTES: usize = 4 * 1024 * 1024;

/// Why a capped body could not be read.
#[derive(Debug, Error)]
pub(crate) enum BodyError {
    /// The answer is longer than the cap.
    #[error("the answer exceeds the limit of {max} bytes")]
    TooLarge { max: usize },
    /// The transfer failed (or timed out).
    #[error("{}", error_chain(.0))]
    Read(reqwest::Error),
}

/// Reads `resp`'s body, at most `max` bytes: a declared or actual longer body is an error
/// as soon as that is known, without reading the rest.
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
    {
        return Err(BodyError::TooLarge { max });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge { max });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What the observability endpoints share: an HTTP client, the scrape cache and the
/// sandbox locator. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Observer {
    http: reqwest::Client,
    cache: metrics_api::ScrapeCache,
    logs: logs::LogReader,
    /// Counts executor answers refused for their size.
    oversized: prometheus_client::metrics::counter::Counter,
}

impl Observer {
    /// An observer; `mesos` is `None` when the controller does not use Mesos (the logs
    /// endpoint then answers 503).
    pub fn new(mesos: Option<MesosAccess>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(2))
            .build()
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot build the HTTP client; using defaults");
                reqwest::Client::new()
            });
        Self {
            logs: logs::LogReader::new(mesos, http.clone()),
            http,
            cache: metrics_api::ScrapeCache::default(),
            oversized: Default::default(),
        }
    }

    /// Counts oversized executor answers in `counter` (a metric of the controller).
    pub fn counting_oversized(
        mut self,
        counter: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        self.oversized = counter;
        self
    }
}

/// The observability routes, merged into the API router.
pub fn routes() -> Router<ApiState> {
    let topology = format!("{API_BASE}/namespaces/{{ns}}/topologies/{{name}}");
    Router::new()
        .route(&format!("{topology}/metrics"), get(topology_metrics))
        .route(&format!("{topology}/tasks/{{task}}/logs"), get(task_logs))
        .route(&format!("{topology}/traces"), get(topology_traces))
}

async fn topology_metrics(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<TopologyMetrics>, ObserveError> {
    let topology = state
        .store
        .get_with_status(&ns, &name)
        .await
        .map_err(|e| ObserveError::Unavailable(e.to_string()))?
        .ok_or_else(|| ObserveError::NotFound(format!("topology {ns}/{name} not found")))?;
    let obs = &state.observe;
    metrics_api::topology_metrics(
        &state.store,
        &obs.http,
        &obs.cache,
        &obs.oversized,
        &topology,
    )
    .await
    .map(Json)
}

async fn topology_traces(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<TraceQuery>,
) -> Result<Json<TopologyTraces>, ObserveError> {
    let topology = state
        .store
        .get_with_status(&ns, &name)
        .await
        .map_err(|e| ObserveError::Unavailable(e.to_string()))?
        .ok_or_else(|| ObserveError::NotFound(format!("topology {ns}/{name} not found")))?;
    let obs = &state.observe;
    traces_api::topology_traces(&state.store, &obs.http, &obs.oversized, &topology, &query)
        .await
        .map(Json)
}

async fn task_logs(
    State(state): State<ApiState>,
    Path((ns, name, task)): Path<(String, String, String)>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> Result<Json<LogChunk>, ObserveError> {
    let belongs = TaskName::parse(&task).is_some_and(|t| t.namespace == ns && t.topology == name);
    if !belongs {
        return Err(ObserveError::NotFound(format!(
            "{task} is not a task of topology {ns}/{name}"
        )));
    }
    state.observe.logs.read(&task, &query).await.map(Json)
}
