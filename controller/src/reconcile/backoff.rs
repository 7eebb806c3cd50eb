//! Per-instance restart back-off (DESIGN.md, lesson 5): exponential, capped, reset by a
//! long enough healthy run or by a new template, and visible in status.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use concord_schemas::RestartBackoff;

/// Identifies one operator instance across task relaunches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceKey {
    pub topology: String,
    pub operator: String,
    pub instance: u32,
}

/// Restart history of one instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceHistory {
    /// Failures since the last reset.
    pub restarts: u32,
    /// Not relaunched before this time.
    pub until: Option<DateTime<Utc>>,
    pub last_exit_reason: Option<String>,
    /// When the current task of this instance became RUNNING.
    pub running_since: Option<DateTime<Utc>>,
    /// Template the history belongs to; a new template starts afresh.
    pub template_hash: String,
}

/// Restarts at or above this, while backing off, count as a crash loop.
pub const CRASH_LOOP_RESTARTS: u32 = 3;

impl InstanceHistory {
    /// Whether the instance is in a crash loop (shown as Degraded).
    pub fn crash_looping(&self, now: DateTime<Utc>) -> bool {
        self.restarts >= CRASH_LOOP_RESTARTS && self.until.is_some_and(|u| u > now)
    }
}

/// All instances' histories, by topology and operator, so one operator's entries are
/// reached (and dropped) without looking at any other's.
#[derive(Debug, Default)]
pub struct BackoffTable {
    entries: HashMap<String, HashMap<String, BTreeMap<u32, InstanceHistory>>>,
    /// Per topology, the instances with restarts to reset once their task has run long
    /// enough: the only entries a pass of another operator could change.
    restarted: HashMap<String, BTreeSet<(String, u32)>>,
}

impl BackoffTable {
    /// The history of an instance, if it has one.
    pub fn get(&self, key: &InstanceKey) -> Option<&InstanceHistory> {
        self.history(&key.topology, &key.operator, key.instance)
    }

    /// The history of `instance` of `operator` in `topology`, if it has one.
    pub fn history(
        &self,
        topology: &str,
        operator: &str,
        instance: u32,
    ) -> Option<&InstanceHistory> {
        self.entries.get(topology)?.get(operator)?.get(&instance)
    }

    /// The histories of one operator's instances.
    pub fn operator(
        &self,
        topology: &str,
        operator: &str,
    ) -> Option<&BTreeMap<u32, InstanceHistory>> {
        self.entries.get(topology)?.get(operator)
    }

    /// Whether `key` may not be relaunched at `now`.
    pub fn blocked(&self, key: &InstanceKey, now: DateTime<Utc>) -> bool {
        self.get(key).and_then(|h| h.until).is_some_and(|u| u > now)
    }

    fn entry(&mut self, key: InstanceKey) -> &mut InstanceHistory {
        self.entries
            .entry(key.topology)
            .or_default()
            .entry(key.operator)
            .or_default()
            .entry(key.instance)
            .or_default()
    }

    /// Keeps [`Self::restarted`] in step with one entry.
    fn track(&mut self, topology: &str, operator: &str, instance: u32) {
        let restarted = self
            .history(topology, operator, instance)
            .is_some_and(|h| h.restarts > 0 || h.until.is_some());
        if restarted {
            self.restarted
                .entry(topology.to_owned())
                .or_default()
                .insert((operator.to_owned(), instance));
        } else if let Some(set) = self.restarted.get_mut(topology) {
            set.remove(&(operator.to_owned(), instance));
            if set.is_empty() {
                self.restarted.remove(topology);
            }
        }
    }

    /// Records an unexpected end of the instance's task and schedules the next launch.
    pub fn record_failure(
        &mut self,
        key: InstanceKey,
        template_hash: &str,
        policy: &RestartBackoff,
        reason: String,
        now: DateTime<Utc>,
    ) -> &InstanceHistory {
        let (topology, operator, instance) =
            (key.topology.clone(), key.operator.clone(), key.instance);
        let entry = self.entry(key);
        if entry.template_hash != template_hash {
            *entry = InstanceHistory {
                template_hash: template_hash.to_owned(),
                ..Default::default()
            };
        }
        Self::maybe_reset(entry, policy, now);
        entry.restarts += 1;
        let exp = policy
            .factor
            .powi(entry.restarts.saturating_sub(1).min(64) as i32);
        let secs = (policy.initial_seconds * exp)
            .min(policy.max_seconds)
            .max(0.0);
        entry.until = Some(now + Duration::milliseconds((secs * 1000.0) as i64));
        entry.last_exit_reason = Some(reason);
        entry.running_since = None;
        self.track(&topology, &operator, instance);
        self.entry(InstanceKey {
            topology,
            operator,
            instance,
        })
    }

    /// Records that the instance's task is running.
    pub fn record_running(&mut self, key: InstanceKey, template_hash: &str, now: DateTime<Utc>) {
        let (topology, operator, instance) =
            (key.topology.clone(), key.operator.clone(), key.instance);
        let entry = self.entry(key);
        if entry.template_hash != template_hash {
            *entry = InstanceHistory {
                template_hash: template_hash.to_owned(),
                ..Default::default()
            };
        }
        entry.running_since.get_or_insert(now);
        self.track(&topology, &operator, instance);
    }

    /// For every instance of one operator: drops the histories of instances at or above
    /// `instances` (scaled down) and of templates no longer wanted (a new spec resets
    /// back-off), and resets those whose task has run long enough.
    pub fn maintain_operator(
        &mut self,
        topology: &str,
        operator: &str,
        instances: u32,
        desired_hash: &str,
        policy: &RestartBackoff,
        now: DateTime<Utc>,
    ) {
        let Some(entries) = self
            .entries
            .get_mut(topology)
            .and_then(|o| o.get_mut(operator))
        else {
            return;
        };
        let mut changed = Vec::new();
        entries.retain(|&i, entry| {
            let before = (entry.restarts, entry.until);
            let keep = i < instances && entry.template_hash == desired_hash;
            if keep {
                Self::maybe_reset(entry, policy, now);
            }
            if !keep || before != (entry.restarts, entry.until) {
                changed.push(i);
            }
            keep
        });
        if entries.is_empty()
            && let Some(ops) = self.entries.get_mut(topology)
        {
            ops.remove(operator);
            if ops.is_empty() {
                self.entries.remove(topology);
            }
        }
        for i in changed {
            self.track(topology, operator, i);
        }
    }

    /// Operators of `topology` with an instance whose restarts a pass would reset now
    /// (its task has run for `reset_after`); `policy` gives each operator's back-off.
    pub fn due_resets<'a>(
        &self,
        topology: &str,
        now: DateTime<Utc>,
        policy: impl Fn(&str) -> Option<&'a RestartBackoff>,
    ) -> BTreeSet<String> {
        let mut due = BTreeSet::new();
        for (operator, instance) in self.restarted.get(topology).into_iter().flatten() {
            let Some(h) = self.history(topology, operator, *instance) else {
                continue;
            };
            if let Some(policy) = policy(operator)
                && h.running_since.is_some_and(|since| {
                    (now - since).num_milliseconds() as f64 >= policy.reset_after_seconds * 1000.0
                })
            {
                due.insert(operator.clone());
            }
        }
        due
    }

    /// Forgets every instance of a topology (deleted) or operator.
    pub fn forget(&mut self, topology: &str, operator: Option<&str>) {
        match operator {
            None => {
                self.entries.remove(topology);
                self.restarted.remove(topology);
            }
            Some(op) => {
                if let Some(ops) = self.entries.get_mut(topology) {
                    ops.remove(op);
                    if ops.is_empty() {
                        self.entries.remove(topology);
                    }
                }
                if let Some(set) = self.restarted.get_mut(topology) {
                    set.retain(|(o, _)| o != op);
                    if set.is_empty() {
                        self.restarted.remove(topology);
                    }
                }
            }
        }
    }

    fn maybe_reset(entry: &mut InstanceHistory, policy: &RestartBackoff, now: DateTime<Utc>) {
        if let Some(since) = entry.running_since
            && (now - since).num_milliseconds() as f64 >= policy.reset_after_seconds * 1000.0
        {
            entry.restarts = 0;
            entry.until = None;
        }
    }
}

/// Back-off for retrying a failed Mesos call or etcd write (a kill, a status write):
/// exponential from `initial` up to `max`, per thing retried, forgotten on success.
#[derive(Debug)]
pub struct Retries {
    initial: std::time::Duration,
    max: std::time::Duration,
    failures: HashMap<String, u32>,
}

impl Retries {
    /// Delays start at `initial` and double up to `max`.
    pub fn new(initial: std::time::Duration, max: std::time::Duration) -> Self {
        Self {
            initial,
            max,
            failures: HashMap::new(),
        }
    }

    /// Records a failure of `what`; returns how long to wait before trying again.
    pub fn failed(&mut self, what: &str) -> std::time::Duration {
        let n = self.failures.entry(what.to_owned()).or_default();
        let delay = self
            .initial
            .saturating_mul(1u32 << (*n).min(20))
            .min(self.max);
        *n = n.saturating_add(1);
        delay
    }

    /// `what` succeeded (or no longer matters): the next failure starts afresh.
    pub fn succeeded(&mut self, what: &str) {
        self.failures.remove(what);
    }

    /// Failures of `what` since its last success.
    pub fn failures(&self, what: &str) -> u32 {
        self.failures.get(what).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> InstanceKey {
        InstanceKey {
            topology: "default/wc".into(),
            operator: "split".into(),
            instance: 0,
        }
    }

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let policy = RestartBackoff {
            initial_seconds: 1.0,
            factor: 2.0,
            max_seconds: 5.0,
            reset_after_seconds: 600.0,
        };
        let mut table = BackoffTable::default();
        let now = Utc::now();
        let mut delays = Vec::new();
        for _ in 0..5 {
            let h = table.record_failure(key(), "h1", &policy, "exited 1".into(), now);
            delays.push((h.until.expect("until") - now).num_milliseconds());
        }
        assert_eq!(delays, vec![1000, 2000, 4000, 5000, 5000]);
        assert!(table.blocked(&key(), now));
        assert!(!table.blocked(&key(), now + Duration::seconds(6)));
        assert!(table.get(&key()).expect("entry").crash_looping(now));
    }

    #[test]
    fn a_long_healthy_run_or_a_new_template_resets() {
        let policy = RestartBackoff {
            initial_seconds: 1.0,
            factor: 2.0,
            max_seconds: 300.0,
            reset_after_seconds: 10.0,
        };
        let mut table = BackoffTable::default();
        let t0 = Utc::now();
        table.record_failure(key(), "h1", &policy, "x".into(), t0);
        table.record_failure(key(), "h1", &policy, "x".into(), t0);
        table.record_running(key(), "h1", t0 + Duration::seconds(5));
        table.maintain_operator(
            "default/wc",
            "split",
            1,
            "h1",
            &policy,
            t0 + Duration::seconds(20),
        );
        assert_eq!(table.get(&key()).expect("entry").restarts, 0);

        table.record_failure(key(), "h1", &policy, "x".into(), t0);
        table.maintain_operator("default/wc", "split", 1, "h2", &policy, t0);
        assert!(table.get(&key()).is_none(), "new template resets back-off");
    }

    #[test]
    fn retries_double_up_to_the_cap_and_reset_on_success() {
        use std::time::Duration as Std;
        let mut r = Retries::new(Std::from_millis(100), Std::from_millis(500));
        let delays: Vec<Std> = (0..5).map(|_| r.failed("kill:t1")).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 500, 500].map(Std::from_millis).to_vec()
        );
        assert_eq!(r.failures("kill:t1"), 5);
        assert_eq!(
            r.failed("kill:t2"),
            Std::from_millis(100),
            "per thing retried"
        );
        r.succeeded("kill:t1");
        assert_eq!(r.failures("kill:t1"), 0);
        assert_eq!(r.failed("kill:t1"), Std::from_millis(100));
    }
}
