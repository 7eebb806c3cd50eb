//! Conditions of a topology from its operators' state, and the status document the
//! reconciler assembles from its per-operator parts.

use std::borrow::Borrow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use concord_schemas::{
    Condition, ConditionStatus, Event, OperatorStatus, TopologyStatus, condition_type,
};

/// What the reconciler learned about one operator when it last planned it.
#[derive(Debug, Clone)]
pub struct OperatorView {
    /// Shared with the status documents assembled since, until the operator changes.
    pub status: Arc<OperatorStatus>,
    /// Exactly `instances` tasks, all of the current template, all ready.
    pub complete: bool,
    pub deadline_exceeded: bool,
    /// Instances in a crash loop.
    pub crash_looping: Vec<u32>,
    /// Tasks of an older template are still running.
    pub rolling: bool,
    pub backing_off: bool,
    /// Problems its tasks report (`operator[instance]: message`).
    pub problems: Vec<String>,
}

/// Ready / Progressing / Degraded, keeping `lastTransitionTime` while a condition's
/// status stays the same.
pub fn build_conditions<V: Borrow<OperatorView>>(
    views: &[V],
    unfit: Option<&str>,
    previous: &[Condition],
    now: DateTime<Utc>,
) -> Vec<Condition> {
    let views: Vec<&OperatorView> = views.iter().map(Borrow::borrow).collect();
    let not_ready: Vec<&OperatorView> = views.iter().copied().filter(|v| !v.complete).collect();
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
    } else if views.iter().any(|v| !v.problems.is_empty()) {
        let problems: Vec<&str> = views
            .iter()
            .flat_map(|v| v.problems.iter().map(String::as_str))
            .collect();
        cond(
            condition_type::DEGRADED,
            ConditionStatus::True,
            concord_schemas::condition_reason::OPERATOR_PROBLEM,
            problems.join("; "),
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
                .iter()
                .find(|p| p.type_ == c.type_)
                .filter(|p| p.status == c.status)
                .and_then(|p| p.last_transition_time)
                .unwrap_or(now),
        );
    }
    out
}

/// A topology's status as the reconciler keeps it. The operators' parts are shared with
/// the per-operator plans they came from, so assembling a document and comparing it
/// with the one etcd holds costs O(operators), not O(tasks); the writer turns it into a
/// [`TopologyStatus`] (same JSON) only when it is written.
#[derive(Debug, Clone, Default)]
pub struct StatusDoc {
    pub observed_generation: i64,
    pub conditions: Vec<Condition>,
    pub operators: Vec<Arc<OperatorStatus>>,
    pub last_stable_generation: Option<i64>,
    pub events: Vec<Event>,
}

impl StatusDoc {
    /// The document as stored and served.
    pub fn to_status(&self) -> TopologyStatus {
        TopologyStatus {
            observed_generation: self.observed_generation,
            conditions: self.conditions.clone(),
            operators: self.operators.iter().map(|o| (**o).clone()).collect(),
            last_stable_generation: self.last_stable_generation,
            events: self.events.clone(),
        }
    }

    /// The document as stored under the status key: each operator without its task
    /// list, which the writer stores in a key of its own.
    pub fn without_tasks(&self) -> TopologyStatus {
        TopologyStatus {
            observed_generation: self.observed_generation,
            conditions: self.conditions.clone(),
            operators: self
                .operators
                .iter()
                .map(|o| OperatorStatus {
                    name: o.name.clone(),
                    desired: o.desired,
                    running: o.running,
                    updated: o.updated,
                    ready: o.ready,
                    template_hash: o.template_hash.clone(),
                    tasks: Vec::new(),
                })
                .collect(),
            last_stable_generation: self.last_stable_generation,
            events: self.events.clone(),
        }
    }

    /// The condition of `type_`, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

impl PartialEq for StatusDoc {
    fn eq(&self, other: &Self) -> bool {
        // An operator part not planned again since is the same allocation; only parts
        // rebuilt since are compared field by field.
        self.observed_generation == other.observed_generation
            && self.last_stable_generation == other.last_stable_generation
            && self.conditions == other.conditions
            && self.events == other.events
            && self.operators.len() == other.operators.len()
            && self
                .operators
                .iter()
                .zip(&other.operators)
                .all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, complete: bool) -> OperatorView {
        OperatorView {
            status: Arc::new(OperatorStatus {
                name: name.into(),
                desired: 2,
                ready: u32::from(complete) * 2,
                ..Default::default()
            }),
            complete,
            deadline_exceeded: false,
            crash_looping: Vec::new(),
            rolling: false,
            backing_off: false,
            problems: Vec::new(),
        }
    }

    fn get<'a>(c: &'a [Condition], t: &str) -> &'a Condition {
        c.iter().find(|c| c.type_ == t).expect("condition present")
    }

    #[test]
    fn a_task_problem_degrades_the_topology_and_names_it() {
        let mut source = view("clicks", true);
        source.problems = vec!["clicks[1]: kafka: 1/1 brokers are down".into()];
        let c = build_conditions(&[source, view("b", true)], None, &[], Utc::now());
        let d = get(&c, condition_type::DEGRADED);
        assert_eq!(d.status, ConditionStatus::True);
        assert_eq!(d.reason, "OperatorProblem");
        assert_eq!(d.message, "clicks[1]: kafka: 1/1 brokers are down");
        // Still running and ready: the problem does not stop the rollout.
        assert_eq!(get(&c, condition_type::READY).status, ConditionStatus::True);
        let cleared = build_conditions(&[view("clicks", true)], None, &c, Utc::now());
        assert_eq!(
            get(&cleared, condition_type::DEGRADED).status,
            ConditionStatus::False
        );
    }

    #[test]
    fn ready_when_every_operator_is_complete() {
        let c = build_conditions(&[view("a", true), view("b", true)], None, &[], Utc::now());
        assert_eq!(get(&c, condition_type::READY).status, ConditionStatus::True);
        assert_eq!(get(&c, condition_type::PROGRESSING).reason, "Complete");
        assert_eq!(
            get(&c, condition_type::DEGRADED).status,
            ConditionStatus::False
        );
    }

    #[test]
    fn deadline_exceeded_stops_progressing_and_degrades() {
        let mut stuck = view("b", false);
        stuck.deadline_exceeded = true;
        let c = build_conditions(
            &[view("a", true), stuck],
            Some("no offer fits"),
            &[],
            Utc::now(),
        );
        let p = get(&c, condition_type::PROGRESSING);
        assert_eq!(
            (p.status, p.reason.as_str()),
            (ConditionStatus::False, "ProgressDeadlineExceeded")
        );
        assert!(p.message.contains('b'));
        assert_eq!(
            get(&c, condition_type::DEGRADED).reason,
            "ProgressDeadlineExceeded"
        );
        assert_eq!(
            get(&c, condition_type::READY).status,
            ConditionStatus::False
        );
    }

    #[test]
    fn crash_loops_and_missing_resources_are_degraded_with_their_reason() {
        let mut crashing = view("a", false);
        crashing.crash_looping = vec![0];
        let c = build_conditions(&[crashing], None, &[], Utc::now());
        assert_eq!(get(&c, condition_type::DEGRADED).reason, "CrashLoopBackOff");
        let c = build_conditions(&[view("a", false)], Some("needs cpus=64"), &[], Utc::now());
        assert_eq!(
            get(&c, condition_type::PROGRESSING).reason,
            "InsufficientResources"
        );
        assert_eq!(
            get(&c, condition_type::DEGRADED).reason,
            "InsufficientResources"
        );
    }

    #[test]
    fn transition_time_is_kept_while_a_condition_holds() {
        let t0 = Utc::now() - chrono::Duration::seconds(60);
        let first = build_conditions(&[view("a", true)], None, &[], t0);
        let previous = first;
        let again = build_conditions(&[view("a", true)], None, &previous, Utc::now());
        assert_eq!(
            get(&again, condition_type::READY).last_transition_time,
            Some(t0)
        );
        let flipped = build_conditions(&[view("a", false)], None, &previous, Utc::now());
        assert_ne!(
            get(&flipped, condition_type::READY).last_transition_time,
            Some(t0)
        );
    }

    #[test]
    fn a_status_document_compares_by_parts_and_is_stored_as_a_topology_status() {
        let part = Arc::new(OperatorStatus {
            name: "a".into(),
            desired: 1,
            tasks: vec![concord_schemas::TaskSummary {
                task_id: "default.t.a.0.h.x".into(),
                state: "TASK_RUNNING".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        let doc = StatusDoc {
            observed_generation: 3,
            operators: vec![part.clone()],
            ..Default::default()
        };
        let mut rebuilt = doc.clone();
        rebuilt.operators = vec![Arc::new((*part).clone())];
        assert_eq!(doc, rebuilt, "an equal part rebuilt is still equal");
        let mut changed = doc.clone();
        Arc::make_mut(&mut changed.operators[0]).ready = 1;
        assert_ne!(doc, changed);
        let served = doc.to_status();
        assert_eq!(served.operators[0], *part);
        assert_eq!(served.observed_generation, 3);
        let stored = doc.without_tasks();
        assert!(stored.operators[0].tasks.is_empty());
        assert_eq!(stored.operators[0].desired, 1);
    }
}
