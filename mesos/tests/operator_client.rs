//! Operator client tests against an in-test HTTP server on 127.0.0.1:0.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes as AxBytes;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use mesos_v1::operator::{OperatorClient, OperatorError};
use mesos_v1::*;
use serde_json::json;

async fn api(headers: HeaderMap, body: AxBytes) -> impl IntoResponse {
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad content type".to_string(),
        );
    }
    let Ok(call) = serde_json::from_slice::<OperatorCall>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad body".to_string());
    };
    let v = match call.r#type {
        OperatorCallType::GetTasks => {
            json!({"type":"GET_TASKS","get_tasks":{"tasks":[{"name":"t","task_id":{"value":"t"},
            "framework_id":{"value":"F"},"agent_id":{"value":"S0"},"state":"TASK_RUNNING"}]}})
        }
        OperatorCallType::GetAgents => {
            json!({"type":"GET_AGENTS","get_agents":{"agents":[{"agent_info":{"hostname":"a","id":{"value":"S0"}},
            "active":true,"version":"1.11.0"}]}})
        }
        OperatorCallType::GetFrameworks => {
            json!({"type":"GET_FRAMEWORKS","get_frameworks":{"frameworks":[{"framework_info":{"user":"u","name":"n"},
            "active":true,"connected":true,"recovered":false}]}})
        }
        OperatorCallType::GetState => {
            json!({"type":"GET_STATE","get_state":{"get_tasks":{},"get_executors":{},"get_frameworks":{},"get_agents":{}}})
        }
        OperatorCallType::GetHealth => json!({"type":"GET_HEALTH","get_health":{"healthy":true}}),
        OperatorCallType::GetVersion => json!({"type":"GET_VERSION"}),
        _ => return (StatusCode::NOT_IMPLEMENTED, "unsupported".to_string()),
    };
    (StatusCode::OK, v.to_string())
}

async fn files_read(Query(q): Query<HashMap<String, String>>) -> impl IntoResponse {
    match q.get("path").map(String::as_str) {
        Some("/sandbox/stdout") => {
            let offset: i64 = q.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
            let data = "hello\nworld\n";
            if offset < 0 {
                return (
                    StatusCode::OK,
                    json!({"data":"","offset":data.len()}).to_string(),
                );
            }
            let start = usize::try_from(offset).unwrap_or(0).min(data.len());
            (
                StatusCode::OK,
                json!({"data":&data[start..],"offset":offset}).to_string(),
            )
        }
        // An agent answering far more than any read returns.
        Some("/sandbox/huge") => (
            StatusCode::OK,
            json!({"data": "x".repeat(mesos_v1::operator::MAX_FILE_READ_BYTES), "offset": 0})
                .to_string(),
        ),
        Some(_) => (StatusCode::NOT_FOUND, String::new()),
        None => (
            StatusCode::BAD_REQUEST,
            "Missing 'path' query parameter".to_string(),
        ),
    }
}

#[tokio::test]
async fn operator_calls_and_files() {
    let router = Router::new()
        .route("/api/v1", post(api))
        .route("/files/read", get(files_read))
        .route(
            "/state",
            get(|| async { json!({"version":"1.11.0","id":"M","frameworks":[]}).to_string() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let c =
        OperatorClient::new(&format!("http://{addr}/"), Duration::from_secs(5)).expect("client");

    let tasks = c.get_tasks().await.expect("tasks");
    assert_eq!(tasks.tasks[0].state, TaskState::Running);
    assert_eq!(
        c.get_agents().await.expect("agents").agents[0]
            .agent_info
            .hostname,
        "a"
    );
    assert!(c.get_frameworks().await.expect("frameworks").frameworks[0].connected);
    assert!(
        c.get_state()
            .await
            .expect("state")
            .get_tasks
            .tasks
            .is_empty()
    );
    assert!(c.get_health().await.expect("health").healthy);
    assert!(matches!(
        c.get_version().await,
        Err(OperatorError::MissingBody(_))
    ));
    assert_eq!(c.legacy_state().await.expect("legacy").id, "M");

    let r = c.read_file("/sandbox/stdout", 6, None).await.expect("read");
    assert_eq!(r.data, "world\n");
    assert_eq!(r.offset, 6);
    let size = c
        .read_file("/sandbox/stdout", -1, None)
        .await
        .expect("size");
    assert_eq!(size.offset, 12);
    let huge = c
        .read_file("/sandbox/huge", 0, Some(10))
        .await
        .expect_err("over the cap");
    assert!(
        matches!(huge, OperatorError::TooLarge { max, .. } if max == mesos_v1::operator::MAX_FILE_READ_BYTES),
        "{huge}"
    );
    let missing = c.read_file("/nope", 0, Some(10)).await.expect_err("404");
    assert!(
        matches!(missing, OperatorError::Status { status, .. } if status == StatusCode::NOT_FOUND)
    );
    server.abort();
}
