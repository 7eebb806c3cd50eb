//! Conditions of a topology from its operators' state.

use chrono::{DateTime, Utc};
use concord_schemas::{Condition, ConditionStatus, OperatorStatus, TopologyStatus, condition_type};

/// What the reconciler learned about one operator in this pass.
#[derive(Debug, Clone)]
pub struct OperatorView {
    pub status: OperatorStatus,
    /// Exactly `instances` tasks, all of the current template, all ready.
    pub complete: bool,
    pub deadline_exceeded: bool,
    /// Instances in a crash loop.
    pub crash_looping: Vec<u32>,
    /// Tasks of an older template are still running.
    pub rolling: bool,
    pub backing_off: bool,
}

/// Ready / Progressing / Degraded, keeping `lastTransitionTime` while a condition's
/// status stays the same.
pub fn build_conditions(
    views: &[OperatorView],
    unfit: Option<&str>,
    previous: &TopologyStatus,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    let not_ready: Vec<&OperatorView> = views.iter().filter(|v| !v.complete).collect();
    let ready = if not_ready.is_empty() {
        cond(
            condition_type::READY,
            ConditionStatus::True,
            "AllInstancesReady",
            "every operator has its desired instances ready".into(),
        )
    } else {
        let detail = not_ready
            .iter()
            .map(|v| format!("{} {}/{}", v.status.name, v.status.ready, v.status.desired))
            .collect::<Vec<_>>()
            .join(", ");
        cond(
            condition_type::READY,
            ConditionStatus::False,
            "InstancesNotReady",
            format!("ready/desired: {detail}"),
        )
    };

    let exceeded: Vec<&str> = views
        .iter()
        .filter(|v| v.deadline_exceeded)
        .map(|v| v.status.name.as_str())
        .collect();
    let progressing = if not_ready.is_empty() {
        cond(
            condition_type::PROGRESSING,
            ConditionStatus::False,
            "Complete",
            "rollout complete".into(),
        )
    } else if !exceeded.is_empty() {
        cond(
            condition_type::PROGRESSING,
            ConditionStatus::False,
            "ProgressDeadlineExceeded",
            format!("no progress within the deadline: {}", exceeded.join(", ")),
        )
    } else if let Some(msg) = unfit {
        cond(
            condition_type::PROGRESSING,
            ConditionStatus::True,
            "InsufficientResources",
            msg.to_owned(),
        )
    } else if not_ready.iter().any(|v| v.rolling) {
        let names: Vec<&str> = not_ready
            .iter()
            .filter(|v| v.rolling)
            .map(|v| v.status.name.as_str())
            .collect();
        cond(
            condition_type::PROGRESSING,
            ConditionStatus::True,
            "RollingUpdate",
            format!("replacing tasks of {}", names.join(", ")),
        )
    } else if not_ready.iter().any(|v| v.backing_off) {
        cond(
            condition_type::PROGRESSING,
            ConditionStatus::True,
            "BackOff",
            "waiting to relaunch failed instances".into(),
        )
    } else {
        cond(
            condition_type::PROGRESSING,
            ConditionStatus::True,
            "Scaling",
            "launching or stopping instances".into(),
        )
    };

    let crash: Vec<String> = views
        .iter()
        .filter(|v| !v.crash_looping.is_empty())
        .map(|v| format!("{} instances {:?}", v.status.name, v.crash_looping))
        .collect();
    let degraded = if !crash.is_empty() {
        cond(
            condition_type::DEGRADED,
            ConditionStatus::True,
            "CrashLoopBackOff",
            format!("restarting repeatedly: {}", crash.join("; ")),
        )
    } else if !exceeded.is_empty() {
        cond(
            condition_type::DEGRADED,
            ConditionStatus::True,
            "ProgressDeadlineExceeded",
            format!("stuck: {}", exceeded.join(", ")),
        )
    } else if let Some(msg) = unfit {
        cond(
            condition_type::DEGRADED,
            ConditionStatus::True,
            "InsufficientResources",
            msg.to_owned(),
        )
    } else {
        cond(
            condition_type::DEGRADED,
            ConditionStatus::False,
            "AsExpected",
            String::new(),
        )
    };

    let mut out = vec![ready, progressing, degraded];
    for c in &mut out {
        c.last_transition_time = Some(
            previous
                .condition(&c.type_)
                .filter(|p| p.status == c.status)
                .and_then(|p| p.last_transition_time)
                .unwrap_or(now),
        );
    }
    out
}

fn cond(type_: &str, status: ConditionStatus, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message,
        last_transition_time: None,
    }
}
