//! The master operator API, `POST /api/v1`: GET_HEALTH, GET_VERSION, GET_STATE,
//! GET_AGENTS, GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS, MARK_AGENT_GONE.

use std::sync::Arc;

use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{accepts_json, json, text};
use crate::master::{Framework as LiteFramework, MESOS_VERSION, Master, Shared, Task as LiteTask};
use crate::wire::*;

fn time(secs: f64) -> TimeInfo {
    TimeInfo {
        nanoseconds: (secs * 1e9) as i64,
    }
}

pub(super) fn handle(
    shared: &Arc<Shared>,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if method != Method::POST {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Expecting one of {{ 'POST' }}, but received '{method}'"),
        );
        r.headers_mut()
            .insert(header::ALLOW, axum::http::HeaderValue::from_static("POST"));
        return r;
    }
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return text(
            StatusCode::BAD_REQUEST,
            "Expecting 'Content-Type' to be present",
        );
    };
    if ct != "application/json" {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expecting 'Content-Type' of application/json or application/x-protobuf",
        );
    }
    if !accepts_json(headers) {
        return text(
            StatusCode::NOT_ACCEPTABLE,
            "Expecting 'Accept' to allow application/json or application/x-protobuf",
        );
    }
    let call: OperatorCall = match serde_json::from_slice(body) {
        Ok(c) => c,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse body into JSON: {e}"),
            );
        }
    };
    let mut m = shared.lock();
    if call.r#type == OperatorCallType::MarkAgentGone {
        let Some(body) = &call.mark_agent_gone else {
            return text(
                StatusCode::BAD_REQUEST,
                "Expecting 'mark_agent_gone' to be present",
            );
        };
        return match m.mark_agent_gone(&body.agent_id.value) {
            Ok(()) => StatusCode::OK.into_response(),
            Err(e) => text(StatusCode::NOT_FOUND, e.to_string()),
        };
    }
    let mut resp = OperatorResponse {
        r#type: call.r#type.clone(),
        ..OperatorResponse::default()
    };
    match call.r#type {
        OperatorCallType::GetHealth => resp.get_health = Some(GetHealth { healthy: true }),
        OperatorCallType::GetVersion => {
            resp.get_version = Some(GetVersion {
                version_info: version_info(),
            })
        }
        OperatorCallType::GetTasks => resp.get_tasks = Some(get_tasks(&m)),
        OperatorCallType::GetAgents => resp.get_agents = Some(get_agents(&m)),
        OperatorCallType::GetFrameworks => resp.get_frameworks = Some(get_frameworks(&m)),
        OperatorCallType::GetExecutors => resp.get_executors = Some(get_executors(&m)),
        OperatorCallType::GetState => {
            resp.get_state = Some(GetState {
                get_tasks: get_tasks(&m),
                get_executors: get_executors(&m),
                get_frameworks: get_frameworks(&m),
                get_agents: get_agents(&m),
            })
        }
        OperatorCallType::Unknown => return StatusCode::NOT_IMPLEMENTED.into_response(),
        other => {
            return text(
                StatusCode::NOT_IMPLEMENTED,
                format!(
                    "mesos-lite does not implement operator call {}",
                    other.as_str()
                ),
            );
        }
    }
    json(&resp)
}

fn version_info() -> VersionInfo {
    VersionInfo {
        version: MESOS_VERSION.into(),
        build_date: Some("2020-11-24 00:00:00".into()),
        build_time: Some(1_606_176_000.0),
        build_user: Some("mesos-lite".into()),
        ..VersionInfo::default()
    }
}

fn v1_task(m: &Master, t: &LiteTask) -> mesos_v1::Task {
    let latest = t.pending.front();
    mesos_v1::Task {
        name: t.info.name.clone(),
        task_id: t.info.task_id.clone(),
        framework_id: FrameworkId::new(t.framework_id.clone()),
        executor_id: (!t.command_executor).then(|| ExecutorId::new(t.executor_id.clone())),
        agent_id: AgentId::new(m.agents[t.agent].id.clone()),
        state: t.state.clone(),
        resources: t.info.resources.clone(),
        statuses: t.statuses.clone(),
        status_update_state: latest.map(|s| s.state.clone()),
        status_update_uuid: latest.and_then(|s| s.uuid.clone()),
        labels: t.info.labels.clone(),
        discovery: t.info.discovery.clone(),
        container: t.info.container.clone(),
        health_check: t.info.health_check.clone(),
        kill_policy: t.info.kill_policy.clone(),
        user: None,
    }
}

fn get_tasks(m: &Master) -> GetTasks {
    let mut out = GetTasks::default();
    for fw in m.frameworks.values() {
        out.tasks.extend(fw.tasks.values().map(|t| v1_task(m, t)));
        out.completed_tasks
            .extend(fw.completed_tasks.iter().map(|t| v1_task(m, t)));
        out.unreachable_tasks
            .extend(fw.unreachable_tasks.iter().map(|t| v1_task(m, t)));
    }
    for c in &m.completed_frameworks {
        out.completed_tasks
            .extend(c.framework.completed_tasks.iter().map(|t| v1_task(m, t)));
    }
    out
}

fn get_agents(m: &Master) -> GetAgents {
    GetAgents {
        agents: (0..m.agents.len())
            .filter(|&i| m.agent_registered(i))
            .map(|i| {
                let a = &m.agents[i];
                mesos_v1::Agent {
                    agent_info: m.agent_info(i),
                    active: true,
                    deactivated: Some(false),
                    version: MESOS_VERSION.into(),
                    pid: Some(format!("{}@{}", a.process, m.config.endpoint())),
                    registered_time: Some(time(a.registered_time)),
                    reregistered_time: None,
                    total_resources: a.total.to_resources(None),
                    allocated_resources: m.used_on(i).to_resources(None),
                    offered_resources: m.offered_on(i).to_resources(None),
                    capabilities: crate::master::agent_capabilities(),
                }
            })
            .collect(),
        recovered_agents: Vec::new(),
    }
}

fn v1_framework(m: &Master, fw: &LiteFramework, active: bool) -> mesos_v1::Framework {
    mesos_v1::Framework {
        framework_info: fw.info.clone(),
        active: active && fw.connected(),
        connected: active && fw.connected(),
        recovered: false,
        registered_time: Some(time(fw.registered_time)),
        reregistered_time: fw.reregistered_time.map(time),
        unregistered_time: fw.unregistered_time.map(time),
        offers: if active {
            m.offers
                .values()
                .filter(|o| o.framework_id == fw.id)
                .map(|o| o.offer.clone())
                .collect()
        } else {
            Vec::new()
        },
        inverse_offers: Vec::new(),
        allocated_resources: if active {
            m.used_by(&fw.id).to_resources(None)
        } else {
            Vec::new()
        },
        offered_resources: if active {
            m.offered_to(&fw.id).to_resources(None)
        } else {
            Vec::new()
        },
    }
}

fn get_frameworks(m: &Master) -> GetFrameworks {
    GetFrameworks {
        frameworks: m
            .frameworks
            .values()
            .map(|f| v1_framework(m, f, true))
            .collect(),
        completed_frameworks: m
            .completed_frameworks
            .iter()
            .map(|c| v1_framework(m, &c.framework, false))
            .collect(),
    }
}

fn get_executors(m: &Master) -> GetExecutors {
    let mut out = GetExecutors::default();
    for fw in m.frameworks.values() {
        for t in fw
            .tasks
            .values()
            .filter(|t| !t.state.is_terminal() && !t.command_executor)
        {
            if let Some(e) = &t.info.executor
                && !out
                    .executors
                    .iter()
                    .any(|x| x.executor_info.executor_id == e.executor_id)
            {
                out.executors.push(mesos_v1::Executor {
                    executor_info: e.clone(),
                    agent_id: AgentId::new(m.agents[t.agent].id.clone()),
                });
            }
        }
    }
    out
}
