//! `POST /api/v1/scheduler`: request validation in Mesos' order, SUBSCRIBE streams and
//! the dispatch of the other calls.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::{accepts_json, text};
use crate::master::{Shared, Stream, StreamMsg};
use crate::wire::*;

const STREAM_ID: &str = "Mesos-Stream-Id";

pub(super) async fn handle(
    shared: Arc<Shared>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Expecting one of {{ 'POST' }}, but received '{method}'"),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let call = match parse_call(&headers, &body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(message) = validate(&call) {
        return text(
            StatusCode::BAD_REQUEST,
            format!("Failed to validate scheduler::Call: {message}"),
        );
    }
    if call.r#type == CallType::Subscribe {
        if !accepts_json(&headers) {
            return text(
                StatusCode::NOT_ACCEPTABLE,
                "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'",
            );
        }
        if headers.contains_key(STREAM_ID) {
            return text(
                StatusCode::BAD_REQUEST,
                "Subscribe calls should not include the 'Mesos-Stream-Id' header",
            );
        }
        let Some(subscribe) = call.subscribe else {
            return text(
                StatusCode::BAD_REQUEST,
                "Failed to validate scheduler::Call: Expecting 'subscribe' to be present",
            );
        };
        return subscribe_stream(shared, subscribe);
    }

    let framework_id = call
        .framework_id
        .clone()
        .map(|f| f.value)
        .unwrap_or_default();
    let stream_id = headers.get(STREAM_ID).and_then(|v| v.to_str().ok());
    let mut m = shared.lock();
    if let Err(e) = m.check_caller(&framework_id, stream_id) {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        return text(status, e.message);
    }
    let fid = framework_id.as_str();
    tracing::debug!(
        framework_id = fid,
        call = call.r#type.as_str(),
        "scheduler call"
    );
    match call.r#type {
        CallType::Teardown => m.remove_framework(fid),
        CallType::Accept => {
            if let Some(a) = call.accept {
                m.accept(fid, a);
            }
        }
        CallType::Decline => {
            if let Some(d) = call.decline {
                m.decline(fid, d);
            }
        }
        CallType::Revive => m.revive(fid, call.revive.map(|r| r.roles).unwrap_or_default()),
        CallType::Suppress => m.suppress(fid, call.suppress.map(|r| r.roles).unwrap_or_default()),
        CallType::Kill => {
            if let Some(k) = call.kill {
                m.kill(fid, k);
            }
        }
        CallType::Shutdown => {
            if let Some(s) = call.shutdown {
                m.shutdown(fid, &s.executor_id.value);
            }
        }
        CallType::Acknowledge => {
            if let Some(a) = call.acknowledge {
                m.acknowledge(fid, &a.task_id.value, &a.uuid);
            }
        }
        CallType::Reconcile => {
            m.reconcile(fid, call.reconcile.map(|r| r.tasks).unwrap_or_default())
        }
        CallType::Message => {
            if let Some(msg) = call.message {
                m.message(fid, &msg);
            }
        }
        CallType::Request
        | CallType::AcceptInverseOffers
        | CallType::DeclineInverseOffers
        | CallType::AcknowledgeOperationStatus => {}
        CallType::ReconcileOperations => {
            drop(m);
            let body = serde_json::json!({
                "type": "RECONCILE_OPERATIONS",
                "reconcile_operations": {"operation_statuses": []}
            });
            return super::json(&body);
        }
        CallType::UpdateFramework => {
            let Some(update) = call.update_framework else {
                return text(
                    StatusCode::BAD_REQUEST,
                    "Failed to validate scheduler::Call: Expecting 'update_framework' to be present",
                );
            };
            return match m.update_framework(fid, update) {
                Ok(()) => StatusCode::OK.into_response(),
                Err(e) => text(
                    StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
                    e.message,
                ),
            };
        }
        _ => return StatusCode::NOT_IMPLEMENTED.into_response(),
    }
    StatusCode::ACCEPTED.into_response()
}

/// Content-Type checks and JSON → Call, with Mesos' status codes and texts.
#[allow(clippy::result_large_err)]
fn parse_call(headers: &HeaderMap, body: &[u8]) -> Result<Call, Response> {
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return Err(text(
            StatusCode::BAD_REQUEST,
            "Expecting 'Content-Type' to be present",
        ));
    };
    let content_type = content_type.to_str().unwrap_or("");
    if content_type == "application/x-protobuf" {
        return Err(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "mesos-lite speaks JSON only: expecting 'Content-Type' of application/json",
        ));
    }
    if content_type != "application/json" {
        return Err(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expecting 'Content-Type' of application/json or application/x-protobuf",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        text(
            StatusCode::BAD_REQUEST,
            format!("Failed to parse body into JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(text(
            StatusCode::BAD_REQUEST,
            "Failed to convert JSON into Call protobuf: Expecting a JSON object",
        ));
    }
    let missing = super::required::missing(&value);
    if !missing.is_empty() {
        return Err(text(
            StatusCode::BAD_REQUEST,
            format!(
                "Failed to convert JSON into Call protobuf: Missing required fields: {}",
                missing.join(", ")
            ),
        ));
    }
    let missing_type = value.get("type").is_none_or(|t| t.is_null());
    let call: Call = serde_json::from_value(value).map_err(|e| {
        text(
            StatusCode::BAD_REQUEST,
            format!("Failed to convert JSON into Call protobuf: {e}"),
        )
    })?;
    if missing_type || call.r#type.is_other() {
        return Err(text(
            StatusCode::BAD_REQUEST,
            "Failed to validate scheduler::Call: Expecting 'type' to be present",
        ));
    }
    Ok(call)
}

/// `validation::scheduler::call::validate`.
fn validate(call: &Call) -> Result<(), String> {
    if call.r#type == CallType::Subscribe {
        let Some(sub) = &call.subscribe else {
            return Err("Expecting 'subscribe' to be present".into());
        };
        let info_id = sub
            .framework_info
            .id
            .as_ref()
            .map(|i| i.value.as_str())
            .unwrap_or("");
        let call_id = call
            .framework_id
            .as_ref()
            .map(|i| i.value.as_str())
            .unwrap_or("");
        if info_id != call_id {
            return Err("'framework_id' differs from 'subscribe.framework_info.id'".into());
        }
        if sub.framework_info.name.is_empty() && sub.framework_info.user.is_empty() {
            return Err(
                "Not initialized: subscribe.framework_info.user, subscribe.framework_info.name"
                    .into(),
            );
        }
        return Ok(());
    }
    if call.framework_id.is_none() {
        return Err("Expecting 'framework_id' to be present".into());
    }
    let missing = |name: &str| Err(format!("Expecting '{name}' to be present"));
    match call.r#type {
        CallType::Accept if call.accept.is_none() => missing("accept"),
        CallType::Decline if call.decline.is_none() => missing("decline"),
        CallType::AcceptInverseOffers if call.accept_inverse_offers.is_none() => {
            missing("accept_inverse_offers")
        }
        CallType::DeclineInverseOffers if call.decline_inverse_offers.is_none() => {
            missing("decline_inverse_offers")
        }
        CallType::Kill if call.kill.is_none() => missing("kill"),
        CallType::Shutdown if call.shutdown.is_none() => missing("shutdown"),
        CallType::Acknowledge => match &call.acknowledge {
            None => missing("acknowledge"),
            Some(a) if a.uuid.len() != 16 => Err(format!(
                "Invalid UUID size: {} bytes (expected 16)",
                a.uuid.len()
            )),
            Some(_) => Ok(()),
        },
        CallType::Reconcile if call.reconcile.is_none() => missing("reconcile"),
        CallType::Message if call.message.is_none() => missing("message"),
        CallType::Request if call.request.is_none() => missing("request"),
        _ => Ok(()),
    }
}

/// Removes the framework's stream when the HTTP body is dropped (client gone or closed).
struct StreamGuard {
    shared: Arc<Shared>,
    stream_id: String,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.shared.lock().stream_closed(&self.stream_id);
    }
}

struct BodyState {
    rx: mpsc::UnboundedReceiver<StreamMsg>,
    heartbeat: tokio::time::Interval,
    _guard: StreamGuard,
}

fn subscribe_stream(shared: Arc<Shared>, subscribe: Subscribe) -> Response {
    let (stream, rx) = Stream::new();
    let stream_id = stream.id.clone();
    let interval = shared
        .config
        .heartbeat_interval
        .max(Duration::from_millis(10));
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let guard = StreamGuard {
        shared: shared.clone(),
        stream_id: stream_id.clone(),
    };
    shared.lock().subscribe(stream, subscribe);
    let state = BodyState {
        rx,
        heartbeat,
        _guard: guard,
    };
    let body = futures::stream::unfold(state, |mut st| async move {
        let event = tokio::select! {
            msg = st.rx.recv() => match msg {
                Some(StreamMsg::Event(e)) => *e,
                Some(StreamMsg::Close) | None => return None,
            },
            _ = st.heartbeat.tick() => Event::heartbeat(),
        };
        let record = match serde_json::to_vec(&event) {
            Ok(json) => mesos_v1::recordio::encode(&json),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise event");
                return None;
            }
        };
        Some((Ok::<_, std::io::Error>(record), st))
    })
    .boxed();
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&stream_id) {
        h.insert(STREAM_ID, v);
    }
    response
}
