//! Legacy read-only endpoints: `/state`, `/tasks`, `/frameworks`, `/slaves`, `/version`,
//! `/metrics/snapshot`, and an agent's `/slave(n)/state`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::response::Response;
use mesos_v1::legacy::*;

use super::{Params, json};
use crate::master::{Framework as LiteFramework, MESOS_VERSION, Master, Shared, Task as LiteTask};
use crate::res::Bag;
use crate::wire::*;

const BUILD_DATE: &str = "2020-11-24 00:00:00";
const BUILD_TIME: f64 = 1_606_176_000.0;
const BUILD_USER: &str = "mesos-lite";

fn legacy(bag: &Bag) -> LegacyResources {
    LegacyResources::from_resources(&bag.to_resources(None))
}

fn legacy_task(m: &Master, t: &LiteTask) -> LegacyTask {
    LegacyTask {
        id: t.info.task_id.value.clone(),
        name: t.info.name.clone(),
        framework_id: t.framework_id.clone(),
        executor_id: if t.command_executor {
            String::new()
        } else {
            t.executor_id.clone()
        },
        slave_id: m.agents[t.agent].id.clone(),
        state: t.state.as_str().to_string(),
        resources: legacy(&t.resources),
        role: Some(t.role.clone()),
        statuses: t
            .statuses
            .iter()
            .map(|s| LegacyTaskStatus {
                state: s.state.as_str().to_string(),
                timestamp: s.timestamp.unwrap_or(0.0),
                labels: s.labels.as_ref().map(legacy_labels).unwrap_or_default(),
                container_status: s
                    .container_status
                    .as_ref()
                    .and_then(|c| serde_json::to_value(c).ok()),
                healthy: s.healthy,
            })
            .collect(),
        user: None,
        labels: t
            .info
            .labels
            .as_ref()
            .map(legacy_labels)
            .unwrap_or_default(),
        discovery: t
            .info
            .discovery
            .as_ref()
            .and_then(|d| serde_json::to_value(d).ok()),
        container: t
            .info
            .container
            .as_ref()
            .and_then(|c| serde_json::to_value(c).ok()),
        health_check: t
            .info
            .health_check
            .as_ref()
            .and_then(|h| serde_json::to_value(h).ok()),
    }
}

fn legacy_framework(m: &Master, fw: &LiteFramework, active: bool) -> LegacyFramework {
    let info = &fw.info;
    let multi = info.has_capability(&FrameworkCapabilityType::MultiRole);
    let used = if active {
        m.used_by(&fw.id)
    } else {
        Bag::default()
    };
    let offered = if active {
        m.offered_to(&fw.id)
    } else {
        Bag::default()
    };
    let offers = m
        .offers
        .iter()
        .filter(|(_, o)| o.framework_id == fw.id)
        .map(|(id, o)| LegacyOffer {
            id: id.clone(),
            framework_id: fw.id.clone(),
            slave_id: m.agents[o.agent].id.clone(),
            resources: legacy(&o.bag),
            ..LegacyOffer::default()
        })
        .collect();
    LegacyFramework {
        id: fw.id.clone(),
        name: info.name.clone(),
        pid: None,
        used_resources: legacy(&used),
        offered_resources: legacy(&offered),
        capabilities: info
            .capabilities
            .iter()
            .map(|c| c.r#type.as_str().to_string())
            .collect(),
        hostname: info.hostname.clone().unwrap_or_default(),
        webui_url: info.webui_url.clone().unwrap_or_default(),
        active: active && fw.connected(),
        connected: active && fw.connected(),
        recovered: false,
        user: info.user.clone(),
        failover_timeout: info.failover_timeout,
        checkpoint: info.checkpoint,
        registered_time: fw.registered_time,
        unregistered_time: fw.unregistered_time.unwrap_or(0.0),
        principal: info.principal.clone(),
        resources: legacy(&used),
        reregistered_time: fw.reregistered_time,
        role: if multi {
            None
        } else {
            Some(info.role.clone().unwrap_or_else(|| "*".into()))
        },
        roles: if multi {
            Some(info.roles.clone())
        } else {
            None
        },
        tasks: fw.tasks.values().map(|t| legacy_task(m, t)).collect(),
        unreachable_tasks: fw
            .unreachable_tasks
            .iter()
            .map(|t| legacy_task(m, t))
            .collect(),
        completed_tasks: fw
            .completed_tasks
            .iter()
            .map(|t| legacy_task(m, t))
            .collect(),
        offers,
        executors: Vec::new(),
        labels: info.labels.as_ref().map(legacy_labels).unwrap_or_default(),
        offer_constraints: None,
    }
}

fn legacy_slaves(m: &Master) -> Vec<LegacySlave> {
    m.agents
        .iter()
        .enumerate()
        .filter(|(_, a)| a.removed.is_none())
        .map(|(i, a)| LegacySlave {
            id: a.id.clone(),
            hostname: a.hostname.clone(),
            port: u32::from(m.config.port),
            attributes: legacy_attributes(&a.attributes),
            pid: format!("{}@{}", a.process, m.config.endpoint()),
            registered_time: a.registered_time,
            reregistered_time: None,
            resources: legacy(&a.total),
            used_resources: legacy(&m.used_on(i)),
            offered_resources: legacy(&m.offered_on(i)),
            reserved_resources: BTreeMap::new(),
            unreserved_resources: legacy(&a.total),
            active: true,
            deactivated: false,
            version: MESOS_VERSION.to_string(),
            capabilities: crate::master::agent_capabilities()
                .iter()
                .map(|c| c.r#type.as_str().to_string())
                .collect(),
        })
        .collect()
}

/// Agents neither unreachable nor gone.
fn registered(m: &Master) -> usize {
    m.agents.iter().filter(|a| a.removed.is_none()).count()
}

fn flags_map(m: &Master) -> BTreeMap<String, String> {
    m.config
        .flags_json
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), String::from),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn master_state(shared: &Arc<Shared>) -> Response {
    let m = shared.lock();
    let state = MasterState {
        version: MESOS_VERSION.into(),
        build_date: BUILD_DATE.into(),
        build_time: BUILD_TIME,
        build_user: BUILD_USER.into(),
        git_sha: None,
        start_time: m.config.start_time,
        elected_time: Some(m.config.start_time),
        id: m.config.master_id.clone(),
        pid: m.config.master_pid(),
        hostname: m.config.hostname.clone(),
        capabilities: vec!["AGENT_UPDATE".into()],
        activated_slaves: registered(&m) as f64,
        deactivated_slaves: 0.0,
        unreachable_slaves: m
            .agents
            .iter()
            .filter(|a| matches!(a.removed, Some(crate::master::Removal::Unreachable(_))))
            .count() as f64,
        leader: Some(m.config.master_pid()),
        leader_info: serde_json::to_value(m.config.master_info()).ok(),
        flags: flags_map(&m),
        slaves: legacy_slaves(&m),
        recovered_slaves: Vec::new(),
        frameworks: m
            .frameworks
            .values()
            .map(|f| legacy_framework(&m, f, true))
            .collect(),
        completed_frameworks: m
            .completed_frameworks
            .iter()
            .map(|c| legacy_framework(&m, &c.framework, false))
            .collect(),
        orphan_tasks: Vec::new(),
        unregistered_frameworks: Vec::new(),
    };
    json(&state)
}

pub(super) fn tasks(shared: &Arc<Shared>, params: &Params) -> Response {
    let m = shared.lock();
    let fw_filter = params.get("framework_id").filter(|s| !s.is_empty());
    let task_filter = params.get("task_id").filter(|s| !s.is_empty());
    let mut list: Vec<LegacyTask> = Vec::new();
    for fw in m.frameworks.values() {
        if fw_filter.is_some_and(|f| *f != fw.id) {
            continue;
        }
        for t in fw.tasks.values().chain(fw.completed_tasks.iter()) {
            if task_filter.is_some_and(|id| *id != t.info.task_id.value) {
                continue;
            }
            list.push(legacy_task(&m, t));
        }
    }
    if params.get("order").map(String::as_str) != Some("asc") {
        list.reverse();
    }
    let offset: usize = params
        .get("offset")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let limit: i64 = params
        .get("limit")
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let list: Vec<LegacyTask> = list
        .into_iter()
        .skip(offset)
        .take(if limit < 0 {
            usize::MAX
        } else {
            limit as usize
        })
        .collect();
    json(&TasksResponse { tasks: list })
}

pub(super) fn frameworks(shared: &Arc<Shared>) -> Response {
    let m = shared.lock();
    json(&FrameworksResponse {
        frameworks: m
            .frameworks
            .values()
            .map(|f| legacy_framework(&m, f, true))
            .collect(),
        completed_frameworks: m
            .completed_frameworks
            .iter()
            .map(|c| legacy_framework(&m, &c.framework, false))
            .collect(),
        unregistered_frameworks: Vec::new(),
    })
}

pub(super) fn slaves(shared: &Arc<Shared>) -> Response {
    let m = shared.lock();
    json(&SlavesResponse {
        slaves: legacy_slaves(&m),
        recovered_slaves: Vec::new(),
    })
}

pub(super) fn version() -> Response {
    json(&VersionResponse {
        version: MESOS_VERSION.into(),
        build_date: BUILD_DATE.into(),
        build_time: BUILD_TIME,
        build_user: BUILD_USER.into(),
        git_sha: None,
        git_branch: None,
        git_tag: None,
    })
}

pub(super) fn metrics(shared: &Arc<Shared>) -> Response {
    let m = shared.lock();
    let mut counts: BTreeMap<&str, f64> = BTreeMap::new();
    for fw in m.frameworks.values() {
        for t in fw.tasks.values().chain(fw.completed_tasks.iter()) {
            let key = match t.state {
                TaskState::Staging => "master/tasks_staging",
                TaskState::Starting => "master/tasks_starting",
                TaskState::Running => "master/tasks_running",
                TaskState::Killing => "master/tasks_killing",
                TaskState::Finished => "master/tasks_finished",
                TaskState::Failed => "master/tasks_failed",
                TaskState::Killed => "master/tasks_killed",
                TaskState::Error => "master/tasks_error",
                TaskState::Lost => "master/tasks_lost",
                _ => continue,
            };
            *counts.entry(key).or_default() += 1.0;
        }
    }
    let total = m
        .agents
        .iter()
        .filter(|a| a.removed.is_none())
        .fold(Bag::default(), |acc, a| acc.plus(&a.total));
    let used = (0..m.agents.len()).fold(Bag::default(), |acc, i| acc.plus(&m.used_on(i)));
    let connected = m.frameworks.values().filter(|f| f.connected()).count() as f64;
    let mut out = serde_json::Map::new();
    let mut put = |k: &str, v: f64| {
        out.insert(k.to_string(), serde_json::json!(v));
    };
    put("master/elected", 1.0);
    put(
        "master/uptime_secs",
        crate::wire::now_secs() - m.config.start_time,
    );
    put("master/frameworks_active", connected);
    put("master/frameworks_connected", connected);
    put(
        "master/frameworks_disconnected",
        m.frameworks.len() as f64 - connected,
    );
    put(
        "master/frameworks_inactive",
        m.frameworks.len() as f64 - connected,
    );
    put("master/slaves_active", registered(&m) as f64);
    put("master/slaves_connected", registered(&m) as f64);
    put(
        "master/slaves_unreachable",
        m.agents
            .iter()
            .filter(|a| matches!(a.removed, Some(crate::master::Removal::Unreachable(_))))
            .count() as f64,
    );
    put("master/slaves_disconnected", 0.0);
    put("master/outstanding_offers", m.offers.len() as f64);
    for name in ["cpus", "mem", "disk", "gpus"] {
        put(&format!("master/{name}_total"), total.scalar(name));
        put(&format!("master/{name}_used"), used.scalar(name));
        let pct = if total.scalar(name) > 0.0 {
            used.scalar(name) / total.scalar(name)
        } else {
            0.0
        };
        put(&format!("master/{name}_percent"), pct);
    }
    for key in [
        "master/tasks_staging",
        "master/tasks_starting",
        "master/tasks_running",
        "master/tasks_killing",
        "master/tasks_finished",
        "master/tasks_failed",
        "master/tasks_killed",
        "master/tasks_error",
        "master/tasks_lost",
    ] {
        put(key, counts.get(key).copied().unwrap_or(0.0));
    }
    json(&serde_json::Value::Object(out))
}

pub(super) fn agent_state(shared: &Arc<Shared>, agent: usize) -> Response {
    let m = shared.lock();
    // A removed agent is not there to answer.
    let Some(a) = m.agents.get(agent).filter(|a| a.removed.is_none()) else {
        return super::not_found();
    };
    let executor = |t: &LiteTask| AgentExecutor {
        id: t.executor_id.clone(),
        name: format!(
            "Command Executor (Task: {}) (Command: sh -c '...')",
            t.info.task_id.value
        ),
        source: t.executor_id.clone(),
        container: t.container_id.clone(),
        directory: t.sandbox.display().to_string(),
        resources: legacy(&t.resources),
        tasks: if t.state.is_terminal() {
            Vec::new()
        } else {
            vec![legacy_task(&m, t)]
        },
        queued_tasks: Vec::new(),
        completed_tasks: if t.state.is_terminal() {
            vec![legacy_task(&m, t)]
        } else {
            Vec::new()
        },
    };
    let framework = |fw: &LiteFramework| AgentFramework {
        id: fw.id.clone(),
        name: fw.info.name.clone(),
        user: fw.info.user.clone(),
        failover_timeout: fw.info.failover_timeout,
        checkpoint: fw.info.checkpoint,
        hostname: fw.info.hostname.clone().unwrap_or_default(),
        executors: fw
            .tasks
            .values()
            .filter(|t| t.agent == agent && !t.state.is_terminal())
            .map(executor)
            .collect(),
        completed_executors: fw
            .tasks
            .values()
            .chain(fw.completed_tasks.iter())
            .filter(|t| t.agent == agent && t.state.is_terminal())
            .map(executor)
            .collect(),
    };
    let state = AgentState {
        version: MESOS_VERSION.into(),
        id: a.id.clone(),
        pid: format!("{}@{}", a.process, m.config.endpoint()),
        hostname: a.hostname.clone(),
        resources: legacy(&a.total),
        attributes: legacy_attributes(&a.attributes),
        master_hostname: Some(m.config.hostname.clone()),
        flags: flags_map(&m),
        frameworks: m
            .frameworks
            .values()
            .filter(|f| f.tasks.values().any(|t| t.agent == agent))
            .map(framework)
            .collect(),
        completed_frameworks: m
            .completed_frameworks
            .iter()
            .map(|c| framework(&c.framework))
            .filter(|f| !f.executors.is_empty() || !f.completed_executors.is_empty())
            .collect(),
    };
    json(&state)
}
