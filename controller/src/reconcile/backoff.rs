//! Per-instance restart back-off (DESIGN.md, lesson 5): exponential, capped, reset by a
//! long enough healthy run or by a new template, and visible in status.

use std::collections::HashMap;

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

/// All instances' histories.
#[derive(Debug, Default)]
pub struct BackoffTable {
    entries: HashMap<InstanceKey, InstanceHistory>,
}

impl BackoffTable {
    /// The history of an instance, if it has one.
    pub fn get(&self, key: &InstanceKey) -> Option<&InstanceHistory> {
        self.entries.get(key)
    }

    /// Whether `key` may not be relaunched at `now`.
    pub fn blocked(&self, key: &InstanceKey, now: DateTime<Utc>) -> bool {
        self.entries
            .get(key)
            .and_then(|h| h.until)
            .is_some_and(|u| u > now)
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
        let entry = self.entries.entry(key).or_default();
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
        entry
    }

    /// Records that the instance's task is running.
    pub fn record_running(&mut self, key: InstanceKey, template_hash: &str, now: DateTime<Utc>) {
        let entry = self.entries.entry(key).or_default();
        if entry.template_hash != template_hash {
            *entry = InstanceHistory {
                template_hash: template_hash.to_owned(),
                ..Default::default()
            };
        }
        entry.running_since.get_or_insert(now);
    }

    /// Resets histories whose task has run long enough, and drops those of templates no
    /// longer wanted (a new spec resets back-off).
    pub fn maintain(
        &mut self,
        key: &InstanceKey,
        desired_hash: &str,
        policy: &RestartBackoff,
        now: DateTime<Utc>,
    ) {
        if let Some(entry) = self.entries.get_mut(key) {
            if entry.template_hash != desired_hash {
                self.entries.remove(key);
                return;
            }
            Self::maybe_reset(entry, policy, now);
        }
    }

    /// Forgets every instance of a topology (deleted) or operator.
    pub fn forget(&mut self, topology: &str, operator: Option<&str>) {
        self.entries
            .retain(|k, _| !(k.topology == topology && operator.is_none_or(|o| o == k.operator)));
    }

    /// Forgets instances at or above `instances` (scaled down).
    pub fn forget_above(&mut self, topology: &str, operator: &str, instances: u32) {
        self.entries.retain(|k, _| {
            !(k.topology == topology && k.operator == operator && k.instance >= instances)
        });
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
        table.maintain(&key(), "h1", &policy, t0 + Duration::seconds(20));
        assert_eq!(table.get(&key()).expect("entry").restarts, 0);

        table.record_failure(key(), "h1", &policy, "x".into(), t0);
        table.maintain(&key(), "h2", &policy, t0);
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
