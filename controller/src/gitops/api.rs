//! HTTP endpoints of GitRepository objects.
//!
//! - `GET {API_BASE}/gitrepositories`: every GitRepository with its status, a page at a
//!   time (`?limit=N&continue=TOKEN`, see [`crate::paging`]);
//! - `GET|POST {API_BASE}/namespaces/{ns}/gitrepositories`: list, create or update;
//! - `GET|PUT|DELETE {API_BASE}/namespaces/{ns}/gitrepositories/{name}`;
//! - `POST {API_BASE}/namespaces/{ns}/gitrepositories/{name}/sync`: sync now. Point a Git
//!   host's push webhook here (with an admin token when the API requires one); the body
//!   is ignored. Answers 202 with `{"request": N}`; the sync that handled it shows
//!   `status.lastHandledRequest >= N`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use concord_schemas::api::{API_BASE, ApplyOutcome, ListMeta};
use concord_schemas::gitops::{GitRepository, GitRepositoryList, SyncRequested};
use concord_schemas::{SpecError, SpecErrors};
use serde::{Deserialize, Serialize};

use super::store::RepoStore;
use crate::api::{
    ApiError, ApiQuery, ApiResult, ApiState, body_bytes, body_mime, check_url_matches,
};
use crate::paging::PageQuery;

/// The routes, merged into the API router.
pub fn routes() -> Router<ApiState> {
    let collection = format!("{API_BASE}/namespaces/{{ns}}/gitrepositories");
    Router::new()
        .route(&format!("{API_BASE}/gitrepositories"), get(list_all))
        .route(&collection, get(list_ns).post(apply_collection))
        .route(
            &format!("{collection}/{{name}}"),
            get(get_one).put(apply_named).delete(delete_one),
        )
        .route(&format!("{collection}/{{name}}/sync"), post(request_sync))
}

/// The answer to an apply of a GitRepository.
#[derive(Debug, Serialize, Deserialize)]
pub struct RepoApplyResponse {
    pub outcome: ApplyOutcome,
    pub object: GitRepository,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WriteQuery {
    #[serde(default)]
    resource_version: Option<String>,
}

fn repos(state: &ApiState) -> RepoStore {
    RepoStore::new(state.store.clone())
}

/// One page of GitRepositories (`?limit=N&continue=TOKEN`, see [`crate::paging`]).
async fn list(state: &ApiState, ns: Option<&str>, query: &PageQuery) -> ApiResult<Response> {
    let page = query.page(ns)?;
    let found = repos(state)
        .list_page(ns, &page)
        .await
        .map_err(crate::paging::store_error)?;
    Ok(Json(GitRepositoryList {
        api_version: concord_schemas::API_VERSION.into(),
        kind: "GitRepositoryList".into(),
        metadata: ListMeta {
            resource_version: Some(found.revision.to_string()),
            continue_token: found
                .next
                .map(|last| crate::paging::encode_token(found.revision, &last)),
        },
        items: found.items,
    })
    .into_response())
}

async fn list_all(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Response> {
    list(&state, None, &query).await
}

async fn list_ns(
    State(state): State<ApiState>,
    Path(ns): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Response> {
    list(&state, Some(&ns), &query).await
}

fn not_found(ns: &str, name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("gitrepository {ns}/{name} not found"),
    )
}

async fn get_one(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let repo = repos(&state)
        .get_with_status(&ns, &name)
        .await?
        .ok_or_else(|| not_found(&ns, &name))?;
    Ok(Json(repo).into_response())
}

async fn apply_collection(
    State(state): State<ApiState>,
    Path(ns): Path<String>,
    ApiQuery(query): ApiQuery<WriteQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let repo = decode(&headers, body)?;
    apply(state, ns, None, query, repo).await
}

async fn apply_named(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<WriteQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let repo = decode(&headers, body)?;
    apply(state, ns, Some(name), query, repo).await
}

/// JSON or YAML, with the field path of any type error.
fn decode(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> ApiResult<GitRepository> {
    let body = body_bytes(body)?;
    let result = match body_mime(headers) {
        "application/json" | "" => {
            let mut de = serde_json::Deserializer::from_slice(&body);
            serde_path_to_error::deserialize::<_, GitRepository>(&mut de)
                .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))
        }
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            // serde_yaml_ng does not bound what aliases expand to ("billion laughs"):
            // read the body untyped within the budget first.
            concord_schemas::check_yaml(&body, "request body").map_err(ApiError::invalid)?;
            let de = serde_yaml_ng::Deserializer::from_slice(&body);
            serde_path_to_error::deserialize::<_, GitRepository>(de)
                .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))
        }
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!(
                    "unsupported Content-Type {other:?}; use application/json or application/yaml"
                ),
            ));
        }
    };
    result.map_err(|(path, message)| {
        // serde_yaml_ng already starts its messages with the path; say it once.
        let message = message
            .strip_prefix(&format!("{path}: "))
            .map(str::to_owned)
            .unwrap_or(message);
        let error = if path == "." {
            SpecError::new(message)
        } else {
            SpecError::at_path(path, message)
        };
        ApiError::invalid(SpecErrors(vec![error.with_file("request body")]))
    })
}

async fn apply(
    state: ApiState,
    ns: String,
    name: Option<String>,
    query: WriteQuery,
    mut repo: GitRepository,
) -> ApiResult<Response> {
    check_url_matches(&repo.metadata, &ns, name.as_deref())?;
    if let Some(rv) = query.resource_version {
        repo.metadata.resource_version = Some(rv);
    }
    repo.spec.url = repo.spec.url.trim().to_owned();
    let mut errors = repo.validate().err().map(|e| e.0).unwrap_or_default();
    if let Some(reason) = super::url_refusal(&repo.spec, state.allow_local_git) {
        errors.push(SpecError::at_path("spec.url", reason));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(SpecErrors(errors)));
    }
    let (outcome, object) = repos(&state).apply(repo).await?;
    tracing::info!(namespace = %ns, name = %object.metadata.name, %outcome, url = %object.spec.url, "applied gitrepository");
    let code = if outcome == ApplyOutcome::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(RepoApplyResponse { outcome, object })).into_response())
}

async fn delete_one(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let repo = repos(&state)
        .delete(&ns, &name)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound(_) => not_found(&ns, &name),
            e => e.into(),
        })?;
    tracing::info!(namespace = %ns, %name, "deleted gitrepository; its topologies stay");
    Ok(Json(repo).into_response())
}

async fn request_sync(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let request = repos(&state)
        .request_sync(&ns, &name)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound(_) => not_found(&ns, &name),
            e => e.into(),
        })?;
    tracing::info!(namespace = %ns, %name, request, "sync requested");
    Ok((StatusCode::ACCEPTED, Json(SyncRequested { request })).into_response())
}
