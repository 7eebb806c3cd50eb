//! The reconciler's decisions, driven through its I/O-free seam: spec entries, Mesos
//! events and call/write results go in; the Mesos calls and etcd writes it asks for
//! come out of channels. Time is a manual clock, advanced explicitly.

use mesos_v1::{Attribute, FrameworkId, OfferId, Resource};
use tokio::sync::mpsc::UnboundedReceiver;

use concord_schemas::TopologyStatus;

use super::*;
use crate::reconcile::informer::Entry;

const KEY: &str = "default/t";

thread_local! {
    /// The test's clock: real readings taken once, plus how far the test advanced it.
    static CLOCK: (DateTime<Utc>, Instant, std::cell::Cell<Duration>) =
        (Utc::now(), Instant::now(), std::cell::Cell::new(Duration::ZERO));
}

/// The reconciler's wall clock under test: moves only with [`Harness::advance`].
pub(super) fn utc_now() -> DateTime<Utc> {
    CLOCK.with(|(utc, _, offset)| {
        *utc + chrono::Duration::from_std(offset.get()).unwrap_or_default()
    })
}

/// The reconciler's monotonic clock under test.
pub(super) fn mono_now() -> Instant {
    CLOCK.with(|(_, at, offset)| *at + offset.get())
}

struct Harness {
    r: Reconciler,
    calls: UnboundedReceiver<MesosCall>,
    writes: UnboundedReceiver<StatusWrite>,
}

impl Harness {
    fn new(restored: Restored) -> Self {
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let (status_tx, writes) = mpsc::unbounded_channel();
        let r = Reconciler::new(
            super::super::detached_config(),
            Outputs {
                calls_tx,
                status_tx,
                metrics: crate::metrics::Metrics::new(),
            },
            Readiness::default(),
            restored,
        );
        Self { r, calls, writes }
    }

    /// Lists `specs` and subscribes, then lets the post-subscribe reconciliation end.
    fn start(specs: &[Topology]) -> Self {
        let mut h = Self::new(Restored::default());
        h.r.on_spec(InformerEvent::Reset(specs.iter().map(entry).collect()));
        h.subscribe();
        h
    }

    fn subscribe(&mut self) {
        self.r.on_mesos(SchedulerEvent::Subscribed {
            framework_id: FrameworkId::new("F-0000"),
            heartbeat_interval: Duration::from_secs(15),
        });
        self.r.process_dirty();
        assert!(
            !matches!(self.r.sync, Sync::Ready),
            "waits for reconciliation"
        );
        self.advance(IMPLICIT_GRACE + Duration::from_millis(1));
        assert!(matches!(self.r.sync, Sync::Ready));
    }

    /// Moves the clock on, fires what is due and reconciles, as the run loop does.
    fn advance(&mut self, by: Duration) {
        CLOCK.with(|(_, _, offset)| offset.set(offset.get() + by));
        self.r.fire_timers();
        self.r.process_dirty();
    }

    fn calls(&mut self) -> Vec<MesosCall> {
        std::iter::from_fn(|| self.calls.try_recv().ok()).collect()
    }

    /// Status puts since the last look (other writes dropped).
    fn statuses(&mut self) -> Vec<StatusDoc> {
        std::iter::from_fn(|| self.writes.try_recv().ok())
            .filter_map(|w| match w {
                StatusWrite::Put { status, .. } => Some(status),
                _ => None,
            })
            .collect()
    }

    fn offers(&mut self, offers: Vec<Offer>) {
        self.r
            .on_mesos(SchedulerEvent::Event(mesos_v1::Event::offers(offers)));
        self.r.process_dirty();
    }

    fn update(&mut self, task_id: &str, state: TaskState, agent: &str) {
        let status = TaskStatus {
            task_id: TaskId::new(task_id),
            state,
            agent_id: Some(AgentId::new(agent)),
            ..TaskStatus::default()
        };
        self.r
            .on_mesos(SchedulerEvent::Event(mesos_v1::Event::update(status)));
        self.r.process_dirty();
    }

    fn events(&self, reason: &str) -> Vec<String> {
        self.r
            .events
            .get(KEY)
            .into_iter()
            .flatten()
            .filter(|e| e.reason == reason)
            .map(|e| e.message.clone())
            .collect()
    }

    /// The tasks of launches asked for, by offer.
    fn launches(calls: &[MesosCall]) -> Vec<(String, Vec<String>)> {
        calls
            .iter()
            .filter_map(|c| match c {
                MesosCall::Launch {
                    offer_id, tasks, ..
                } => Some((
                    offer_id.as_str().to_owned(),
                    tasks
                        .iter()
                        .map(|t| t.task_id.as_str().to_owned())
                        .collect(),
                )),
                _ => None,
            })
            .collect()
    }

    fn declines(calls: &[MesosCall]) -> Vec<(String, f64)> {
        calls
            .iter()
            .filter_map(|c| match c {
                MesosCall::Decline {
                    offer_id,
                    refuse_seconds,
                } => Some((offer_id.as_str().to_owned(), *refuse_seconds)),
                _ => None,
            })
            .collect()
    }

    fn kills(calls: &[MesosCall]) -> Vec<String> {
        calls
            .iter()
            .filter_map(|c| match c {
                MesosCall::Kill { task_id, .. } => Some(task_id.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every tracked task id (sorted).
    fn task_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.r.tasks.keys().cloned().collect();
        ids.sort();
        ids
    }
}

fn topology(operator_yaml: &str, generation: i64) -> Topology {
    let yaml = format!(
        "apiVersion: concord.io/v1alpha1\nkind: Topology\nmetadata: {{name: t}}\nspec:\n  operators:\n{operator_yaml}"
    );
    let mut t = concord_schemas::parse_yaml(yaml.as_bytes(), "test.yaml")
        .expect("valid topology")
        .remove(0);
    t.metadata.generation = Some(generation);
    t
}

/// One generator operator `gen` with `instances` and extra YAML lines.
fn gen_op(instances: u32, extra: &str) -> String {
    format!(
        "    - name: gen\n      instances: {instances}\n      runtime: {{builtin: {{name: generator}}}}\n      config: {{mode: random, rate: 10}}\n      resources: {{cpus: 0.5, mem: 64}}\n{extra}"
    )
}

fn entry(t: &Topology) -> Entry {
    Entry {
        key: format!("/concord/topologies/{KEY}"),
        value: serde_json::to_vec(t).expect("encode"),
        mod_revision: 10 + t.metadata.generation.unwrap_or(0),
    }
}

fn offer(id: &str, agent: &str, host: &str, cpus: f64, attributes: Vec<Attribute>) -> Offer {
    Offer {
        id: OfferId::new(id),
        framework_id: FrameworkId::new("F-0000"),
        agent_id: AgentId::new(agent),
        hostname: host.into(),
        resources: vec![
            Resource::scalar("cpus", cpus),
            Resource::scalar("mem", 4096.0),
            Resource::scalar("disk", 1000.0),
            Resource::ranges("ports", &[(31000, 31099)]),
        ],
        attributes,
        ..Offer::default()
    }
}

// ----- events -----

#[test]
fn running_and_scaled_up_are_reported_once_per_transition() {
    let mut h = Harness::start(&[topology(&gen_op(1, ""), 1)]);
    h.offers(vec![offer("O1", "S0", "h1", 4.0, vec![])]);
    let launched = Harness::launches(&h.calls());
    assert_eq!(launched.len(), 1, "{launched:?}");
    let task = launched[0].1[0].clone();

    h.update(&task, TaskState::Starting, "S0");
    assert!(h.events("Running").is_empty(), "STARTING is not running");
    h.update(&task, TaskState::Running, "S0");
    // Mesos resends updates until acknowledged, and health changes repeat the state.
    h.update(&task, TaskState::Running, "S0");
    h.update(&task, TaskState::Running, "S0");
    assert_eq!(
        h.events("Running"),
        vec![format!("task {task} is running on h1")]
    );

    // Scale 1 -> 3: one ScaledUp, however often the key is reconciled afterwards.
    h.r.on_spec(InformerEvent::Put(entry(&topology(&gen_op(3, ""), 2))));
    h.r.process_dirty();
    h.r.resync();
    h.r.process_dirty();
    assert_eq!(
        h.events("ScaledUp"),
        vec!["scaling from 1 to 3 instances".to_owned()]
    );
    // Scaling down is not a scale-up; a later scale-up is a new transition.
    h.r.on_spec(InformerEvent::Put(entry(&topology(&gen_op(2, ""), 3))));
    h.r.process_dirty();
    h.r.on_spec(InformerEvent::Put(entry(&topology(&gen_op(4, ""), 4))));
    h.r.process_dirty();
    assert_eq!(
        h.events("ScaledUp"),
        vec![
            "scaling from 1 to 3 instances".to_owned(),
            "scaling from 2 to 4 instances".to_owned()
        ]
    );
    // The events reach the stored status, and the log stays bounded.
    let last = h.statuses().pop().expect("a status was written");
    assert!(last.events.iter().any(|e| e.reason == "ScaledUp"));
    for i in 0..(MAX_EVENTS as u32 + 5) {
        h.r.on_spec(InformerEvent::Put(entry(&topology(
            &gen_op(5 + i, ""),
            5 + i64::from(i),
        ))));
        h.r.process_dirty();
    }
    assert_eq!(h.r.events.get(KEY).map(VecDeque::len), Some(MAX_EVENTS));
}

#[test]
fn a_task_adopted_after_a_restart_is_not_reported_as_started() {
    let t = topology(&gen_op(1, ""), 1);
    let id = TaskName::new(
        "default",
        "t",
        "gen",
        0,
        &template_hash(&t.spec.operators[0]),
    )
    .to_string();
    let mut restored = Restored::default();
    restored.tasks.push((id.clone(), Some("S0".into())));
    restored
        .instances
        .insert(KEY.into(), BTreeMap::from([("gen".to_owned(), 1)]));
    let mut h = Harness::new(restored);
    h.r.on_spec(InformerEvent::Reset(vec![entry(&t)]));
    h.r.on_mesos(SchedulerEvent::Subscribed {
        framework_id: FrameworkId::new("F-0000"),
        heartbeat_interval: Duration::from_secs(15),
    });
    // The explicit reconciliation answers: the task runs.
    let calls = h.calls();
    assert!(
        calls.iter().any(|c| matches!(c, MesosCall::Reconcile { explicit, implicit: true } if explicit.len() == 1)),
        "{calls:?}"
    );
    h.update(&id, TaskState::Running, "S0");
    h.advance(IMPLICIT_GRACE + Duration::from_millis(1));
    assert!(matches!(h.r.sync, Sync::Ready));
    assert!(h.events("Running").is_empty(), "adopted, not started");
    assert!(Harness::launches(&h.calls()).is_empty());

    // A scale-up recorded before the restart is compared with the stored count.
    h.r.on_spec(InformerEvent::Put(entry(&topology(&gen_op(2, ""), 2))));
    h.r.process_dirty();
    assert_eq!(
        h.events("ScaledUp"),
        vec!["scaling from 1 to 2 instances".to_owned()]
    );
}

#[test]
fn an_unreachable_task_is_replaced_on_another_host() {
    let mut h = Harness::start(&[topology(&gen_op(1, ""), 1)]);
    h.offers(vec![offer("O1", "S0", "h1", 4.0, vec![])]);
    let task = Harness::launches(&h.calls())[0].1[0].clone();
    h.update(&task, TaskState::Running, "S0");
    // The agent is lost: Mesos says TASK_UNREACHABLE (then FAILURE for the agent).
    h.update(&task, TaskState::Unreachable, "S0");
    h.r.on_mesos(SchedulerEvent::Event(mesos_v1::Event::failure(
        Some(AgentId::new("S0")),
        None,
        None,
    )));
    assert!(h.task_ids().is_empty(), "counted as gone");
    assert_eq!(h.events("Failed").len(), 1);
    h.advance(Duration::from_secs(2)); // the restart back-off
    h.calls();
    h.offers(vec![offer("O2", "S1", "h2", 4.0, vec![])]);
    let launched = Harness::launches(&h.calls());
    assert_eq!(launched.len(), 1, "replaced");
    assert_eq!(launched[0].0, "O2");
}

// ----- placement -----

#[test]
fn one_instance_per_host_counts_hosts_not_agents() {
    let op = gen_op(2, "      placement: {oneInstancePerHost: true}\n");
    let mut h = Harness::start(&[topology(&op, 1)]);
    // Two agents on host h1 and one on h2, all big enough for both instances.
    h.offers(vec![
        offer("O1", "S0", "h1", 4.0, vec![]),
        offer("O2", "S1", "h1", 4.0, vec![]),
        offer("O3", "S2", "h2", 4.0, vec![]),
    ]);
    let calls = h.calls();
    let launched = Harness::launches(&calls);
    assert_eq!(
        launched,
        vec![
            ("O1".to_owned(), vec![h.task_ids()[0].clone()]),
            ("O3".to_owned(), vec![h.task_ids()[1].clone()]),
        ],
        "one instance on h1 (S0), one on h2 (S2): {calls:?}"
    );
    assert_eq!(
        Harness::declines(&calls),
        vec![("O2".to_owned(), REFUSE_BRIEFLY)],
        "the second agent of h1 gets nothing (instance 1 still waited then)"
    );

    // Instance 0 dies on h1; h1's other agent may take its replacement: the host is free.
    let on_s0 = h.task_ids()[0].clone();
    h.update(&on_s0, TaskState::Failed, "S0");
    h.advance(Duration::from_secs(2)); // past the first restart back-off
    h.calls();
    h.offers(vec![offer("O4", "S1", "h1", 4.0, vec![])]);
    assert_eq!(Harness::launches(&h.calls()).len(), 1);
}

#[test]
fn one_instance_per_host_holds_across_offer_rounds() {
    let op = gen_op(2, "      placement: {oneInstancePerHost: true}\n");
    let mut h = Harness::start(&[topology(&op, 1)]);
    h.offers(vec![offer("O1", "S0", "h1", 4.0, vec![])]);
    assert_eq!(Harness::launches(&h.calls()).len(), 1, "one per host");
    // A later offer of another agent on the same host (hostnames compare like DNS names).
    h.offers(vec![offer("O2", "S1", "H1", 4.0, vec![])]);
    let calls = h.calls();
    assert!(Harness::launches(&calls).is_empty(), "{calls:?}");
    assert_eq!(
        Harness::declines(&calls),
        vec![("O2".to_owned(), REFUSE_BRIEFLY)]
    );
    h.offers(vec![offer("O3", "S2", "h2", 4.0, vec![])]);
    assert_eq!(Harness::launches(&h.calls()).len(), 1);
    assert_eq!(h.task_ids().len(), 2);
}

#[test]
fn required_attributes_select_the_agents() {
    let op = gen_op(
        2,
        "      placement: {requireAttributes: {rack: r1, zone: \"2\"}}\n",
    );
    let mut h = Harness::start(&[topology(&op, 1)]);
    let rack = |r: &str| vec![Attribute::text("rack", r), Attribute::scalar("zone", 2.0)];
    h.offers(vec![
        offer("O1", "S0", "h1", 4.0, rack("r2")),
        offer("O2", "S1", "h2", 4.0, vec![Attribute::text("rack", "r1")]),
        offer("O3", "S2", "h3", 4.0, rack("r1")),
    ]);
    let calls = h.calls();
    let launched = Harness::launches(&calls);
    assert_eq!(launched.len(), 1, "{calls:?}");
    assert_eq!(
        launched[0].0, "O3",
        "the only agent with rack r1 and zone 2"
    );
    assert_eq!(launched[0].1.len(), 2, "both instances fit on it");
    let declined: Vec<String> = Harness::declines(&calls).into_iter().map(|d| d.0).collect();
    assert_eq!(declined, vec!["O1".to_owned(), "O2".to_owned()]);
}

#[test]
fn an_offer_too_small_is_declined_briefly_and_reported() {
    let mut h = Harness::start(&[topology(&gen_op(1, ""), 1)]);
    h.offers(vec![offer("O1", "S0", "h1", 0.25, vec![])]);
    let calls = h.calls();
    assert_eq!(
        Harness::declines(&calls),
        vec![("O1".to_owned(), REFUSE_BRIEFLY)]
    );
    h.advance(UNFIT_AFTER);
    let status = h.statuses().pop().expect("status");
    let progressing = status
        .condition(concord_schemas::condition_type::PROGRESSING)
        .expect("Progressing");
    assert_eq!(progressing.reason, "InsufficientResources");
    assert_eq!(h.events("InsufficientResources").len(), 1);
}

// ----- offers: DECLINE, SUPPRESS, REVIVE -----

#[test]
fn offers_are_suppressed_when_nothing_is_pending_and_revived_when_something_is() {
    let mut h = Harness::start(&[]);
    assert_eq!(
        h.calls().last(),
        Some(&MesosCall::Suppress),
        "nothing to run"
    );
    h.r.process_dirty();
    assert!(h.calls().is_empty(), "SUPPRESS is sent once");

    // An offer that was on its way anyway is declined for long.
    h.offers(vec![offer("O1", "S0", "h1", 4.0, vec![])]);
    assert_eq!(
        Harness::declines(&h.calls()),
        vec![("O1".to_owned(), REFUSE_UNWANTED)]
    );

    // A topology appears: REVIVE (once), then its launch.
    h.r.on_spec(InformerEvent::Put(entry(&topology(&gen_op(1, ""), 1))));
    h.r.process_dirty();
    assert_eq!(h.calls(), vec![MesosCall::Revive]);
    h.r.process_dirty();
    assert!(h.calls().is_empty(), "REVIVE is sent once");
    h.offers(vec![offer("O2", "S0", "h1", 4.0, vec![])]);
    let calls = h.calls();
    assert!(
        matches!(&calls[..], [MesosCall::Launch { offer_id, refuse_seconds, .. }, MesosCall::Suppress]
            if offer_id.as_str() == "O2" && *refuse_seconds == REFUSE_BRIEFLY),
        "launch, then nothing pending: SUPPRESS again: {calls:?}"
    );

    // A failed task waits in back-off, then wants an offer again.
    let task = h.task_ids()[0].clone();
    h.update(&task, TaskState::Failed, "S0");
    h.calls();
    h.advance(Duration::from_secs(2));
    assert_eq!(h.calls(), vec![MesosCall::Revive]);
}

#[test]
fn a_resubscription_asks_for_offers_again() {
    let mut h = Harness::start(&[]);
    assert_eq!(h.calls().last(), Some(&MesosCall::Suppress));
    // The client re-subscribes with the suppressed roles; the reconciler no longer
    // knows what the master holds and says again what it wants.
    h.r.on_mesos(SchedulerEvent::Disconnected {
        reason: "stream closed".into(),
    });
    h.r.on_spec(InformerEvent::Put(entry(&topology(&gen_op(1, ""), 1))));
    h.subscribe();
    assert_eq!(h.calls().last(), Some(&MesosCall::Revive));
}

#[test]
fn a_failed_revive_is_retried_with_back_off() {
    let mut h = Harness::start(&[topology(&gen_op(1, ""), 1)]);
    assert_eq!(h.calls().last(), Some(&MesosCall::Revive));
    h.r.on_feedback(Feedback::OfferMode {
        revive: true,
        error: Some("503".into()),
    });
    h.r.process_dirty();
    assert!(h.calls().is_empty(), "not before the back-off");
    h.advance(RETRY_INITIAL);
    assert_eq!(h.calls(), vec![MesosCall::Revive]);
    h.r.on_feedback(Feedback::OfferMode {
        revive: true,
        error: Some("503".into()),
    });
    h.advance(RETRY_INITIAL);
    assert!(h.calls().is_empty(), "the back-off doubled");
    h.advance(RETRY_INITIAL);
    assert_eq!(h.calls(), vec![MesosCall::Revive]);
    h.r.on_feedback(Feedback::OfferMode {
        revive: true,
        error: None,
    });
    h.advance(RETRY_MAX);
    assert!(h.calls().is_empty(), "done once it worked");
}

// ----- retries of failed kills and status writes -----

/// A topology with one running task on S0; returns its id.
fn one_running(h: &mut Harness) -> String {
    h.offers(vec![offer("O1", "S0", "h1", 4.0, vec![])]);
    let task = Harness::launches(&h.calls())[0].1[0].clone();
    h.update(&task, TaskState::Running, "S0");
    h.calls();
    task
}

#[test]
fn a_failed_kill_is_sent_again_with_back_off_until_mesos_answers() {
    let mut h = Harness::start(&[topology(&gen_op(1, ""), 1)]);
    let task = one_running(&mut h);
    // Scale to 0: the task is killed.
    h.r.on_spec(InformerEvent::Put(entry(&topology(&gen_op(0, ""), 2))));
    h.r.process_dirty();
    assert_eq!(Harness::kills(&h.calls()), vec![task.clone()]);
    assert_eq!(h.events("ScaledDown").len(), 1);

    h.r.on_feedback(Feedback::KillFailed {
        task_id: task.clone(),
        reason: "connection refused".into(),
    });
    h.r.resync();
    h.r.process_dirty();
    assert!(
        Harness::kills(&h.calls()).is_empty(),
        "not before the back-off"
    );
    h.advance(RETRY_INITIAL);
    assert_eq!(Harness::kills(&h.calls()), vec![task.clone()], "requeued");
    assert_eq!(h.events("ScaledDown").len(), 1, "a retry is no new event");

    h.r.on_feedback(Feedback::KillFailed {
        task_id: task.clone(),
        reason: "connection refused".into(),
    });
    h.advance(RETRY_INITIAL);
    assert!(
        Harness::kills(&h.calls()).is_empty(),
        "the back-off doubled"
    );
    h.advance(RETRY_INITIAL);
    assert_eq!(Harness::kills(&h.calls()), vec![task.clone()]);

    // Accepted, but no terminal update within KILL_RESEND: sent again.
    h.advance(KILL_RESEND);
    assert_eq!(Harness::kills(&h.calls()), vec![task.clone()]);
    h.update(&task, TaskState::Killed, "S0");
    assert!(h.task_ids().is_empty());
    h.advance(KILL_RESEND);
    assert!(Harness::kills(&h.calls()).is_empty(), "gone: nothing more");
}

#[test]
fn a_status_is_written_again_until_etcd_took_it() {
    let mut h = Harness::start(&[topology(&gen_op(1, ""), 1)]);
    let first = h.statuses();
    assert_eq!(first.len(), 1, "{first:?}");
    let status = first[0].clone();
    h.r.resync();
    h.r.process_dirty();
    assert!(h.statuses().is_empty(), "in flight: not sent twice");

    // etcd is down: the write fails, and the same status is sent again after a back-off.
    h.r.on_feedback(Feedback::StatusWriteFailed {
        key: KEY.into(),
        status: status.clone(),
        reason: "etcd unavailable".into(),
    });
    h.r.process_dirty();
    assert!(h.statuses().is_empty(), "not before the back-off");
    h.advance(RETRY_INITIAL);
    assert_eq!(h.statuses(), vec![status.clone()]);
    h.r.on_feedback(Feedback::StatusWriteFailed {
        key: KEY.into(),
        status: status.clone(),
        reason: "etcd unavailable".into(),
    });
    h.advance(RETRY_INITIAL);
    assert!(h.statuses().is_empty(), "the back-off doubled");
    h.advance(RETRY_INITIAL);
    assert_eq!(h.statuses(), vec![status.clone()]);

    // Written: remembered, and not written again while nothing changes.
    h.r.on_feedback(Feedback::StatusWritten {
        key: KEY.into(),
        status: status.clone(),
    });
    h.r.resync();
    h.r.process_dirty();
    h.advance(Duration::from_secs(2));
    assert!(h.statuses().is_empty());

    // A change is written; a failure of an older write does not make it stale.
    one_running(&mut h);
    let newer = h.statuses();
    assert!(!newer.is_empty());
    assert_ne!(newer.last(), Some(&status));
}

#[test]
fn a_failed_finalize_is_retried() {
    let mut t = topology(&gen_op(1, ""), 1);
    t.metadata.deletion_timestamp = Some(utc_now());
    let mut h = Harness::start(&[t]);
    let finalizes = |h: &mut Harness| {
        std::iter::from_fn(|| h.writes.try_recv().ok())
            .filter(|w| matches!(w, StatusWrite::Finalize { .. }))
            .count()
    };
    assert_eq!(finalizes(&mut h), 1, "no tasks: remove it");
    h.r.on_feedback(Feedback::FinalizeFailed {
        key: KEY.into(),
        reason: "etcd unavailable".into(),
    });
    h.r.process_dirty();
    assert_eq!(finalizes(&mut h), 0);
    h.advance(RETRY_INITIAL);
    assert_eq!(finalizes(&mut h), 1);
}

// ----- incremental passes -----

/// Operators `a` (generator, `a` instances), `b` (2 instances, config `label`) and `c`
/// (`c` instances; restarts reset after 5 s of running).
fn three_ops(a: u32, label: &str, c: u32) -> String {
    format!(
        "    - name: a\n      instances: {a}\n      runtime: {{builtin: {{name: generator}}}}\n      config: {{mode: random, rate: 10}}\n      resources: {{cpus: 0.1, mem: 16}}\n\
         \x20   - name: b\n      instances: 2\n      runtime: {{builtin: {{name: map}}}}\n      config: {{label: {label}}}\n      resources: {{cpus: 0.1, mem: 16}}\n      inputs: [{{from: a}}]\n\
         \x20   - name: c\n      instances: {c}\n      runtime: {{builtin: {{name: map}}}}\n      config: {{label: fixed}}\n      resources: {{cpus: 0.1, mem: 16}}\n      inputs: [{{from: b}}]\n      restartBackoff: {{resetAfterSeconds: 5}}\n"
    )
}

/// A started harness whose three operators (2 + 2 + 2 tasks) all run.
fn three_running() -> Harness {
    let mut h = Harness::start(&[topology(&three_ops(2, "v1", 2), 1)]);
    h.offers(vec![offer("O1", "S0", "h1", 4.0, vec![])]);
    assert_eq!(h.task_ids().len(), 6, "{:?}", h.calls());
    for id in h.task_ids() {
        h.update(&id, TaskState::Running, "S0");
    }
    h.calls();
    h.statuses();
    h
}

impl Harness {
    fn status(&self) -> &StatusDoc {
        self.r.last_status.get(KEY).expect("a status")
    }

    /// The status part of operator `name`.
    fn part(&self, name: &str) -> Arc<OperatorStatus> {
        self.status()
            .operators
            .iter()
            .find(|o| o.name == name)
            .cloned()
            .expect("operator in status")
    }

    /// Work of the passes run by `f`: (operators planned, task summaries built).
    fn work(&mut self, f: impl FnOnce(&mut Self)) -> (u64, u64) {
        let before = self.r.stats;
        f(self);
        (
            self.r.stats.operators_planned - before.operators_planned,
            self.r.stats.tasks_summarised - before.tasks_summarised,
        )
    }

    /// Forgets every operator's plan and plans the topology afresh; returns the status
    /// that full pass assembles and how many status writes it asked for.
    fn full_pass(&mut self) -> (TopologyStatus, usize) {
        self.statuses();
        self.r.plans.clear();
        let (planned, _) = self.work(|h| {
            h.r.resync();
            h.r.process_dirty();
        });
        assert_eq!(planned, 3, "a full pass plans every operator");
        (self.status().to_status(), self.statuses().len())
    }

    fn ids_of(&self, op: &str) -> Vec<String> {
        self.task_ids()
            .into_iter()
            .filter(|id| TaskName::parse(id).is_some_and(|n| n.operator == op))
            .collect()
    }
}

#[test]
fn a_change_of_one_operator_plans_and_summarises_only_that_operator() {
    let mut h = three_running();
    let ready = h.status().condition(concord_schemas::condition_type::READY);
    assert_eq!(
        ready.map(|c| c.status),
        Some(concord_schemas::ConditionStatus::True)
    );
    let (a, c) = (h.part("a"), h.part("c"));

    // A new config of b: only b is planned; a's and c's parts are not even rebuilt.
    let work = h.work(|h| {
        h.r.on_spec(InformerEvent::Put(entry(&topology(
            &three_ops(2, "v2", 2),
            2,
        ))));
        h.r.process_dirty();
    });
    assert_eq!(work, (1, 2), "one operator, its two tasks");
    assert!(Arc::ptr_eq(&a, &h.part("a")) && Arc::ptr_eq(&c, &h.part("c")));
    assert_eq!(h.status().observed_generation, 2);
    let progressing = h
        .status()
        .condition(concord_schemas::condition_type::PROGRESSING);
    assert_eq!(
        progressing.map(|c| c.reason.as_str()),
        Some("RollingUpdate")
    );
    assert_eq!(h.statuses().len(), 1, "the change is written once");

    // Scaling a by one: only a.
    let work = h.work(|h| {
        h.r.on_spec(InformerEvent::Put(entry(&topology(
            &three_ops(3, "v2", 2),
            3,
        ))));
        h.r.process_dirty();
    });
    assert_eq!(work.0, 1);
    assert_eq!(
        h.events("ScaledUp"),
        vec!["scaling from 2 to 3 instances".to_owned()]
    );

    // A task update, and a readiness change of an endpoint: only the task's operator.
    let c0 = h.ids_of("c")[0].clone();
    let work = h.work(|h| h.update(&c0, TaskState::Failed, "S0"));
    assert_eq!(
        work,
        (1, 2),
        "c: one task left and one instance in back-off"
    );
    let a0 = h.ids_of("a")[0].clone();
    let work = h.work(|h| {
        h.r.on_endpoint(InformerEvent::Put(Entry {
            key: format!("/concord/endpoints/{KEY}/a/0/{a0}"),
            value: serde_json::to_vec(&serde_json::json!({"taskId": a0, "ready": true}))
                .expect("encode"),
            mod_revision: 100,
        }));
        h.r.process_dirty();
    });
    assert_eq!(work.0, 1);

    // A generation that changes no operator (reordered) plans none, yet is observed.
    let reordered = {
        let mut t = topology(&three_ops(3, "v2", 2), 4);
        t.spec.operators.reverse();
        t
    };
    let work = h.work(|h| {
        h.r.on_spec(InformerEvent::Put(entry(&reordered)));
        h.r.process_dirty();
    });
    assert_eq!(work, (0, 0));
    assert_eq!(h.status().observed_generation, 4);
    let order: Vec<&str> = h
        .status()
        .operators
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(order, ["c", "b", "a"], "status follows the spec's order");

    // A topology-wide change plans everything.
    let mut wide = reordered.clone();
    wide.spec.delivery = concord_schemas::Delivery::AtLeastOnce;
    wide.metadata.generation = Some(5);
    let work = h.work(|h| {
        h.r.on_spec(InformerEvent::Put(entry(&wide)));
        h.r.process_dirty();
    });
    assert_eq!(work.0, 3);
}

#[test]
fn status_after_partial_passes_equals_a_full_pass() {
    let mut h = three_running();
    // A rolling replace of b, a scale-up of a, a crash of c, an operator added and
    // one removed, offers landing for some of the launches, time passing.
    h.r.on_spec(InformerEvent::Put(entry(&topology(
        &three_ops(3, "v2", 2),
        2,
    ))));
    h.r.process_dirty();
    let c0 = h.ids_of("c")[0].clone();
    h.update(&c0, TaskState::Failed, "S0");
    h.offers(vec![offer("O2", "S1", "h2", 0.25, vec![])]);
    let partial = h.status().to_status();
    assert_eq!(
        (partial, 0),
        h.full_pass(),
        "after a rolling start, a scale-up and a crash (and nothing new to write)"
    );

    // A task reported on an agent that has not offered yet, then that agent's first
    // offer: its host name shows from the topology's next pass on, as with a full pass.
    let a1 = h.ids_of("a")[1].clone();
    h.update(&a1, TaskState::Running, "S9");
    h.offers(vec![offer("O9", "S9", "h9", 0.01, vec![])]);
    let c1 = h.ids_of("c")[0].clone();
    h.update(&c1, TaskState::Running, "S0");
    assert!(
        h.part("a")
            .tasks
            .iter()
            .any(|t| t.host.as_deref() == Some("h9"))
    );
    let partial = h.status().to_status();
    assert_eq!((partial, 0), h.full_pass(), "after an agent's first offer");

    h.advance(Duration::from_secs(2)); // c's back-off ends
    h.offers(vec![offer("O3", "S1", "h2", 4.0, vec![])]);
    for id in h.task_ids() {
        h.update(&id, TaskState::Running, "S0");
    }
    let partial = h.status().to_status();
    assert_eq!((partial, 0), h.full_pass(), "after relaunches");

    // c's relaunched task has run past resetAfterSeconds: a pass for another
    // operator resets c's restarts too, as a full pass would.
    assert!(h.part("c").tasks.iter().any(|t| t.restarts == 1));
    h.advance(Duration::from_secs(6));
    let a0 = h.ids_of("a")[0].clone();
    h.update(&a0, TaskState::Running, "S0");
    assert!(h.part("c").tasks.iter().all(|t| t.restarts == 0));
    let partial = h.status().to_status();
    assert_eq!((partial, 0), h.full_pass(), "after a back-off reset");

    // An operator removed and one added, in one generation.
    let yaml = three_ops(3, "v2", 2).replace("name: c", "name: d");
    h.r.on_spec(InformerEvent::Put(entry(&topology(&yaml, 3))));
    h.r.process_dirty();
    assert!(h.status().operators.iter().all(|o| o.name != "c"));
    assert!(!h.events("Killed").is_empty(), "c's tasks are killed");
    let partial = h.status().to_status();
    assert_eq!(
        (partial, 0),
        h.full_pass(),
        "after an operator was replaced"
    );
}

#[test]
fn only_operators_whose_spec_differs_are_changed() {
    let t = topology(&three_ops(2, "v1", 2), 1);
    let ops = |f: &dyn Fn(&mut Vec<OperatorSpec>)| {
        let mut new = t.spec.operators.clone();
        f(&mut new);
        changed_operators(&t.spec.operators, &new)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert!(ops(&|_| {}).is_empty());
    assert!(ops(&|o| o.reverse()).is_empty(), "order is not a change");
    assert_eq!(ops(&|o| o[1].instances = 5), ["b"]);
    assert_eq!(ops(&|o| o[2].update_strategy.max_surge = 3), ["c"]);
    assert_eq!(ops(&|o| o[0].progress_deadline_seconds = 7), ["a"]);
    assert_eq!(
        ops(&|o| {
            o.remove(1);
        }),
        ["b"]
    );
    assert_eq!(
        ops(&|o| {
            o[0].name = "z".into();
        }),
        ["a", "z"]
    );
}

#[test]
fn a_problem_published_with_an_endpoint_degrades_the_topology_until_cleared() {
    let mut h = three_running();
    let a0 = h.ids_of("a")[0].clone();
    let publish = |h: &mut Harness, problem: Option<&str>| {
        let mut ep = serde_json::json!({"taskId": a0, "ready": true});
        if let Some(p) = problem {
            ep["problem"] = serde_json::json!(p);
        }
        h.r.on_endpoint(InformerEvent::Put(Entry {
            key: format!("/concord/endpoints/{KEY}/a/0/{a0}"),
            value: serde_json::to_vec(&ep).expect("encode"),
            mod_revision: 100,
        }));
        h.r.process_dirty();
    };
    publish(&mut h, Some("kafka: 1/1 brokers are down"));
    let status = h.status().to_status();
    let degraded = status
        .conditions
        .iter()
        .find(|c| c.type_ == concord_schemas::condition_type::DEGRADED)
        .expect("degraded");
    assert_eq!(degraded.status, concord_schemas::ConditionStatus::True);
    assert_eq!(degraded.reason, "OperatorProblem");
    assert_eq!(degraded.message, "a[0]: kafka: 1/1 brokers are down");
    let task = status
        .operators
        .iter()
        .find(|o| o.name == "a")
        .expect("a")
        .tasks[0]
        .clone();
    assert_eq!(task.problem.as_deref(), Some("kafka: 1/1 brokers are down"));

    publish(&mut h, None);
    let status = h.status().to_status();
    let degraded = status
        .conditions
        .iter()
        .find(|c| c.type_ == concord_schemas::condition_type::DEGRADED)
        .expect("degraded");
    assert_eq!(degraded.status, concord_schemas::ConditionStatus::False);
    assert!(
        status
            .operators
            .iter()
            .all(|o| o.tasks.iter().all(|t| t.problem.is_none()))
    );
}
