//! The HTTP API (DESIGN.md, "Interfaces users rely on").
//!
//! `/apis/concord.io/v1alpha1/namespaces/<ns>/topologies[/<name>]`: list (`GET`, a page
//! at a time: `?limit=N&continue=TOKEN`, see [`crate::paging`]), watch
//! (`GET ?watch=true[&resourceVersion=N]`, newline-delimited JSON), get, apply (`PUT` on
//! the name or `POST` on the collection; `?dryRun=true` validates and plans without
//! storing) and delete. Errors are Kubernetes-style `Status` objects. Bodies are JSON or
//! YAML and are validated with the same code as the CLI.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use concord_schemas::api::{ApiStatus, ApplyOutcome, ApplyResponse, TopologyList};
use concord_schemas::{SpecError, SpecErrors, Topology};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::metrics::{ApplyLabels, Metrics, RequestLabels};
use crate::store::{Store, StoreError};
use crate::watch::{WatchSpec, watch};

pub use concord_schemas::api::API_BASE;
/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub metrics: Metrics,
    /// Extra readiness checks (e.g. Mesos subscription), reported by `/readyz`.
    pub readiness: crate::readiness::Readiness,
    /// Channel to the reconciler; `None` when this controller does not schedule.
    pub commands: Option<tokio::sync::mpsc::Sender<crate::reconcile::Command>>,
    /// Live metrics and task logs (`crate::observe`).
    pub observe: crate::observe::Observer,
    /// Bearer tokens; `None` leaves the API open (`crate::auth`).
    pub tokens: Option<std::sync::Arc<crate::auth::Tokens>>,
    /// Cross-site and DNS-rebinding defences (`crate::request_guard`).
    pub guard: std::sync::Arc<crate::request_guard::GuardConfig>,
    /// Whether this replica leads (only the leader acts on Mesos).
    pub leadership: crate::leader::Leadership,
    /// Whether GitRepositories may name local repositories (`--allow-local-git`).
    pub allow_local_git: bool,
}

/// Builds the router.
pub fn router(state: ApiState) -> Router {
    let topologies = format!("{API_BASE}/namespaces/{{ns}}/topologies");
    Router::new()
        .route(&format!("{API_BASE}/topologies"), get(list_all))
        .route(&topologies, get(list_ns).post(apply_collection))
        .route(
            &format!("{topologies}/{{name}}"),
            get(get_one).put(apply_named).delete(delete_one),
        )
        .route(
            &format!("{topologies}/{{name}}/rollback"),
            axum::routing::post(rollback),
        )
        .route(&format!("{topologies}/{{name}}/history"), get(history))
        .route(
            &format!("{topologies}/{{name}}/tasks/{{task}}/kill"),
            axum::routing::post(kill_task),
        )
        .merge(crate::observe::routes())
        .merge(crate::ui::routes())
        .merge(crate::gitops::api::routes())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/schemas/topology.schema.json", get(schema))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.tokens.clone(),
            crate::auth::require_token,
        ))
        // Before the token check: a browser's cross-site request is refused whatever it holds.
        .layer(middleware::from_fn_with_state(
            state.guard.clone(),
            crate::request_guard::guard,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

async fn count_requests(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    state
        .metrics
        .http_requests
        .get_or_create(&RequestLabels {
            method,
            route,
            code: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
    errors: Vec<SpecError>,
}

impl ApiError {
    pub(crate) fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            errors: Vec::new(),
        }
    }

    pub(crate) fn invalid(errors: SpecErrors) -> Self {
        Self {
            code: StatusCode::UNPROCESSABLE_ENTITY,
            reason: "Invalid",
            message: errors.to_string(),
            errors: errors.0,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::Conflict { .. } => {
                Self::new(StatusCode::CONFLICT, "Conflict", e.to_string())
            }
            StoreError::Terminating(_) => {
                Self::new(StatusCode::CONFLICT, "Terminating", e.to_string())
            }
            StoreError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "NotFound", e.to_string()),
            StoreError::BadResourceVersion(_) => {
                Self::new(StatusCode::BAD_REQUEST, "BadRequest", e.to_string())
            }
            StoreError::Fenced { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                e.to_string(),
            ),
            StoreError::Etcd(_) => {
                tracing::warn!(error = %e, "etcd request failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    e.to_string(),
                )
            }
            StoreError::Corrupt { .. }
            | StoreError::Encode { .. }
            | StoreError::Credentials { .. } => {
                tracing::error!(error = %e, "store data error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    e.to_string(),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ApiStatus {
            kind: "Status".into(),
            status: "Failure".into(),
            message: self.message,
            reason: self.reason.into(),
            code: self.code.as_u16(),
            errors: self.errors,
        };
        (self.code, Json(body)).into_response()
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// [`Query`], but a query string that does not parse (`limit=abc`, a key given twice) is
/// refused with a 400 `Status` like every other refusal, not axum's plain text.
pub(crate) struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", e.body_text()))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    #[serde(default)]
    watch: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(flatten)]
    page: crate::paging::PageQuery,
}

impl ListQuery {
    fn is_watch(&self) -> bool {
        matches!(self.watch.as_deref(), Some("true" | "1" | ""))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WriteQuery {
    #[serde(default)]
    dry_run: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
}

impl WriteQuery {
    fn is_dry_run(&self) -> bool {
        matches!(self.dry_run.as_deref(), Some("true" | "1" | "All" | ""))
    }
}

async fn list_all(state: State<ApiState>, query: ApiQuery<ListQuery>) -> ApiResult<Response> {
    list(state, None, query.0).await
}

async fn list_ns(
    state: State<ApiState>,
    Path(ns): Path<String>,
    query: ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    list(state, Some(ns), query.0).await
}

async fn list(
    State(state): State<ApiState>,
    ns: Option<String>,
    query: ListQuery,
) -> ApiResult<Response> {
    if query.is_watch() {
        return start_watch(state, ns, None, query.resource_version.as_deref());
    }
    let page = query.page.page(ns.as_deref())?;
    let found = state
        .store
        .list_page(ns.as_deref(), &page)
        .await
        .map_err(crate::paging::store_error)?;
    Ok(Json(TopologyList {
        api_version: concord_schemas::API_VERSION.into(),
        kind: "TopologyList".into(),
        resource_version: found.revision.to_string(),
        metadata: concord_schemas::api::ListMeta {
            resource_version: Some(found.revision.to_string()),
            continue_token: found
                .next
                .map(|last| crate::paging::encode_token(found.revision, &last)),
        },
        items: found.items,
    })
    .into_response())
}

fn start_watch(
    state: ApiState,
    namespace: Option<String>,
    name: Option<String>,
    resource_version: Option<&str>,
) -> ApiResult<Response> {
    let after_revision = resource_version
        .filter(|rv| !rv.is_empty() && *rv != "0")
        .map(crate::store::parse_resource_version)
        .transpose()?;
    let gauge = state.metrics.watches_open.clone();
    gauge.inc();
    let guard = GaugeGuard(gauge);
    let events = watch(
        state.store.clone(),
        WatchSpec {
            namespace,
            name,
            after_revision,
        },
    );
    let body = events.map(move |event| {
        let _keep = &guard;
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(line))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                e.to_string(),
            )
        })
}

struct GaugeGuard(prometheus_client::metrics::gauge::Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn get_one(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    if query.is_watch() {
        return start_watch(
            state,
            Some(ns),
            Some(name),
            query.resource_version.as_deref(),
        );
    }
    let topology = state
        .store
        .get_with_status(&ns, &name)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("topology {ns}/{name} not found"),
            )
        })?;
    Ok(Json(topology).into_response())
}

async fn apply_collection(
    State(state): State<ApiState>,
    Path(ns): Path<String>,
    ApiQuery(query): ApiQuery<WriteQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let topology = decode_body(&headers, body)?;
    apply(state, ns, None, query, topology).await
}

async fn apply_named(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<WriteQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let topology = decode_body(&headers, body)?;
    apply(state, ns, Some(name), query, topology).await
}

/// 400 unless the object's namespace (and name, for a named URL) are the URL's.
pub(crate) fn check_url_matches(
    meta: &concord_schemas::ObjectMeta,
    ns: &str,
    name: Option<&str>,
) -> ApiResult<()> {
    if meta.namespace != ns {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "metadata.namespace {:?} does not match the namespace in the URL {ns:?}",
                meta.namespace
            ),
        ));
    }
    if let Some(name) = name
        && name != meta.name
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "metadata.name {:?} does not match the name in the URL {name:?}",
                meta.name
            ),
        ));
    }
    Ok(())
}

/// The request body, or 413 / 400 with a clear message.
pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!("request body exceeds the limit of {MAX_BODY_BYTES} bytes (1 MiB)"),
            )
        } else {
            ApiError::new(rejection.status(), "BadRequest", rejection.body_text())
        }
    })
}

/// The media type of the request body (`application/json` when absent).
pub(crate) fn body_mime(headers: &HeaderMap) -> &str {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    content_type.split(';').next().unwrap_or("").trim()
}

fn decode_body(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> ApiResult<Topology> {
    let body = body_bytes(body)?;
    match body_mime(headers) {
        "application/json" | "" => {
            concord_schemas::parse_json(&body, "request body").map_err(ApiError::invalid)
        }
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let mut docs =
                concord_schemas::parse_yaml(&body, "request body").map_err(ApiError::invalid)?;
            if docs.len() != 1 {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!(
                        "request body holds {} YAML documents; send exactly one",
                        docs.len()
                    ),
                ));
            }
            Ok(docs.remove(0))
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("unsupported Content-Type {other:?}; use application/json or application/yaml"),
        )),
    }
}

async fn apply(
    state: ApiState,
    ns: String,
    name: Option<String>,
    query: WriteQuery,
    mut topology: Topology,
) -> ApiResult<Response> {
    check_url_matches(&topology.metadata, &ns, name.as_deref())?;
    if let Some(rv) = query.resource_version.clone() {
        topology.metadata.resource_version = Some(rv);
    }
    concord_schemas::normalize(&mut topology);
    concord_schemas::validate(&topology).map_err(ApiError::invalid)?;
    reject_relative_artifacts(&topology)?;

    let current = state.store.get(&ns, &topology.metadata.name).await?;
    let plan = concord_schemas::plan(current.as_ref().map(|s| &s.topology.spec), &topology.spec);
    if query.is_dry_run() {
        let outcome = crate::store::apply_outcome(current.as_ref().map(|s| &s.topology), &topology);
        return Ok(Json(ApplyResponse {
            outcome,
            dry_run: true,
            plan,
            object: topology,
        })
        .into_response());
    }
    let (outcome, object) = state.store.apply(topology).await?;
    state
        .metrics
        .applies
        .get_or_create(&ApplyLabels {
            outcome: outcome.to_string(),
        })
        .inc();
    tracing::info!(namespace = %ns, name = %object.metadata.name, %outcome, generation = ?object.metadata.generation, "applied topology");
    let code = if outcome == ApplyOutcome::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        code,
        Json(ApplyResponse {
            outcome,
            dry_run: false,
            plan,
            object,
        }),
    )
        .into_response())
}

async fn delete_one(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<WriteQuery>,
) -> ApiResult<Response> {
    let topology = state
        .store
        .mark_deleted(&ns, &name, query.resource_version.as_deref())
        .await?;
    tracing::info!(namespace = %ns, %name, "topology marked for deletion");
    Ok((StatusCode::ACCEPTED, Json(topology)).into_response())
}

async fn readyz(State(state): State<ApiState>) -> Response {
    let etcd = tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await;
    let mut lines = Vec::new();
    let mut ok = true;
    match etcd {
        Ok(Ok(_)) => lines.push("[+] etcd ok".to_owned()),
        Ok(Err(e)) => {
            ok = false;
            lines.push(format!("[-] etcd: {e}"));
        }
        Err(_) => {
            ok = false;
            lines.push("[-] etcd: no answer within 2s".to_owned());
        }
    }
    for (name, check) in state.readiness.snapshot() {
        match check {
            Ok(()) => lines.push(format!("[+] {name} ok")),
            Err(reason) => lines.push(format!("[-] {name}: {reason} (not required for the API)")),
        }
    }
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, lines.join("\n") + "\n").into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

async fn schema() -> Response {
    Json(concord_schemas::topology_json_schema()).into_response()
}

/// `POST .../topologies/<name>/rollback`: re-applies the spec of the last generation that
/// became Ready, through the normal apply path (a new generation).
async fn rollback(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let stable = state.store.get_stable(&ns, &name).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("topology {ns}/{name} has no stable generation yet (it never became Ready)"),
        )
    })?;
    let current = state.store.get(&ns, &name).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("topology {ns}/{name} not found"),
        )
    })?;
    let mut next = current.topology.clone();
    next.spec = stable.spec;
    next.metadata.resource_version = Some(current.mod_revision.to_string());
    let plan = concord_schemas::plan(Some(&current.topology.spec), &next.spec);
    let (outcome, object) = state.store.apply(next).await?;
    tracing::info!(namespace = %ns, %name, %outcome, "rolled back to the last stable spec");
    Ok(Json(ApplyResponse {
        outcome,
        dry_run: false,
        plan,
        object,
    })
    .into_response())
}

/// `POST .../topologies/<name>/tasks/<task>/kill`: kills one task; the reconciler
/// replaces it like any other lost instance.
async fn kill_task(
    State(state): State<ApiState>,
    Path((ns, name, task)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let belongs = crate::reconcile::identity::TaskName::parse(&task)
        .is_some_and(|t| t.namespace == ns && t.topology == name);
    if !belongs {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{task} is not a task of topology {ns}/{name}"),
        ));
    }
    let Some(commands) = &state.commands else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "this controller does not schedule tasks (started with --no-scheduler)",
        ));
    };
    if let Err(standby) = state.leadership.describe() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "NotLeader",
            format!("this replica cannot kill tasks: {standby}; send the request there"),
        ));
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    let unavailable = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the reconciler is not running",
        )
    };
    commands
        .send(crate::reconcile::Command::Kill {
            task_id: task.clone(),
            reply,
        })
        .await
        .map_err(|_| unavailable())?;
    match answer.await.map_err(|_| unavailable())? {
        Ok(()) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"killed": task})),
        )
            .into_response()),
        Err(message) => Err(ApiError::new(StatusCode::NOT_FOUND, "NotFound", message)),
    }
}

/// Relative artifact paths only mean something next to the manifest; clients resolve
/// them (as `concord apply` does) before sending.
fn reject_relative_artifacts(t: &Topology) -> ApiResult<()> {
    let errors = relative_artifact_errors(
        t,
        "cannot be resolved by the server; use an absolute URI (concord apply resolves paths relative to the manifest)",
    );
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(SpecErrors(errors)))
    }
}

/// One error per relative artifact path of `t`, each ending in `hint`.
pub fn relative_artifact_errors(t: &Topology, hint: &str) -> Vec<SpecError> {
    let mut errors = Vec::new();
    for (i, op) in t.spec.operators.iter().enumerate() {
        if let concord_schemas::Runtime::Process(p) = &op.runtime {
            for (j, a) in p.artifacts.iter().enumerate() {
                if concord_schemas::is_relative_artifact(&a.uri) {
                    errors.push(SpecError::at_path(
                        format!("spec.operators[{i}].runtime.process.artifacts[{j}].uri"),
                        format!("relative artifact path {:?} {hint}", a.uri),
                    ));
                }
            }
        }
    }
    errors
}

/// Most generations `…/history` answers.
pub const MAX_HISTORY: usize = 20;
/// Most etcd reads one `…/history` request makes (metadata-only writes cost a read each).
const MAX_HISTORY_READS: usize = 100;

#[derive(Debug, Default, Deserialize)]
struct HistoryQuery {
    #[serde(default)]
    limit: Option<String>,
}

/// Answer of `GET …/topologies/<name>/history` (docs/dashboard.md).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopologyHistory {
    pub api_version: String,
    pub kind: String,
    pub metadata: HistoryMeta,
    /// Newest first; the first is the current generation.
    pub items: Vec<HistoryItem>,
    /// `created` (nothing older exists), `limit` (older ones exist) or `compacted` (etcd
    /// discarded the older revisions).
    pub end: &'static str,
}

/// Which topology a [`TopologyHistory`] is about.
#[derive(Debug, Serialize)]
pub struct HistoryMeta {
    pub namespace: String,
    pub name: String,
}

/// One generation of a topology's spec.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryItem {
    pub generation: Option<i64>,
    /// The etcd revision this value was written at.
    pub resource_version: String,
    pub spec: concord_schemas::TopologySpec,
    /// Per operator, what changed from the item after this one (the previous
    /// generation); `null` for the oldest item.
    pub changes: Option<concord_schemas::Plan>,
}

/// `GET …/topologies/<name>/history[?limit=N]`: the last `N` (default 5, at most 20)
/// generations of the spec, from earlier etcd revisions of its key.
async fn history(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> ApiResult<Response> {
    let limit = match query.limit.as_deref() {
        None | Some("") => 5,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_HISTORY).contains(&n) => n,
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("limit {text:?} must be a number from 1 to {MAX_HISTORY}"),
                ));
            }
        },
    };
    let history = state
        .store
        .history(&ns, &name, limit, MAX_HISTORY_READS)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("topology {ns}/{name} not found"),
            )
        })?;
    let specs: Vec<&concord_schemas::TopologySpec> =
        history.items.iter().map(|s| &s.topology.spec).collect();
    let items = history
        .items
        .iter()
        .enumerate()
        .map(|(i, stored)| HistoryItem {
            generation: stored.topology.metadata.generation,
            resource_version: stored.mod_revision.to_string(),
            spec: stored.topology.spec.clone(),
            changes: specs
                .get(i + 1)
                .map(|older| concord_schemas::plan(Some(older), &stored.topology.spec)),
        })
        .collect();
    let end = match history.end {
        crate::store::HistoryEnd::Created => "created",
        crate::store::HistoryEnd::Limit => "limit",
        crate::store::HistoryEnd::Compacted => "compacted",
    };
    Ok(Json(TopologyHistory {
        api_version: concord_schemas::API_VERSION.into(),
        kind: "TopologyHistory".into(),
        metadata: HistoryMeta {
            namespace: ns,
            name,
        },
        items,
        end,
    })
    .into_response())
}
