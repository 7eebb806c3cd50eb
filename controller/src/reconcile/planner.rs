//! The per-operator diff: desired instances and template vs the tasks observed, to the
//! minimal set of launches and kills. Pure: no I/O, no clock; fully unit-tested.
//!
//! Rules (DESIGN.md, "Reconciliation model"):
//! * `instances` alone never replaces tasks: scaling adds missing indices or kills the
//!   highest ones.
//! * A template change replaces instances rolling: the new task for an index must be
//!   running and ready before the old one is killed, and at no time are there more than
//!   `instances + maxSurge` tasks or fewer than `instances - maxUnavailable` ready ones.
//! * An operator whose hash and count match gets no action at all.

use std::collections::BTreeMap;

/// Where an observed, non-terminal task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Launch sent, or STAGING / STARTING.
    Starting,
    /// TASK_RUNNING.
    Running,
    /// A kill was sent (or TASK_KILLING): going away, but still holding resources.
    Terminating,
}

/// One live task of the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTask {
    pub task_id: String,
    pub instance: u32,
    pub template_hash: String,
    pub phase: Phase,
    /// Running and reported ready by its executor.
    pub ready: bool,
}

/// What the spec wants for one operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub instances: u32,
    pub template_hash: String,
    pub max_surge: u32,
    pub max_unavailable: u32,
}

/// What to do for one operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorActions {
    /// Instance indices to launch with the desired template.
    pub launch: Vec<u32>,
    /// Task IDs to kill.
    pub kill: Vec<String>,
    /// Missing instances not launched because their back-off has not ended.
    pub backing_off: Vec<u32>,
}

impl OperatorActions {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.launch.is_empty() && self.kill.is_empty()
    }
}

/// Computes the actions for one operator. `in_backoff(i)` says whether instance `i` may
/// not be relaunched yet.
pub fn plan_operator(
    desired: &Desired,
    tasks: &[LiveTask],
    in_backoff: impl Fn(u32) -> bool,
) -> OperatorActions {
    let n = desired.instances;
    let mut actions = OperatorActions::default();

    // Tasks already going away still count against the surge budget.
    let terminating_in_range = tasks
        .iter()
        .filter(|t| t.phase == Phase::Terminating && t.instance < n)
        .count() as u32;
    let mut by_instance: BTreeMap<u32, Vec<&LiveTask>> = BTreeMap::new();
    for task in tasks.iter().filter(|t| t.phase != Phase::Terminating) {
        by_instance.entry(task.instance).or_default().push(task);
    }

    // 1. Surplus instances, highest index first.
    for (_, group) in by_instance.range(n..).rev() {
        for task in group {
            actions.kill.push(task.task_id.clone());
        }
    }

    // 2. Within range: settle duplicates and finished replacements.
    let mut total = terminating_in_range;
    let mut available = 0u32;
    let mut missing = Vec::new();
    let mut outdated = Vec::new();
    for i in 0..n {
        let group = by_instance.get(&i).map(Vec::as_slice).unwrap_or_default();
        let (current, old): (Vec<&LiveTask>, Vec<&LiveTask>) = group
            .iter()
            .partition(|t| t.template_hash == desired.template_hash);
        // Keep the best current task; extra ones (e.g. a launch repeated across a
        // controller restart) are killed.
        let keep = current
            .iter()
            .copied()
            .max_by_key(|t| (t.ready, t.phase == Phase::Running, t.task_id.clone()));
        for extra in current
            .iter()
            .filter(|t| Some(t.task_id.as_str()) != keep.map(|k| k.task_id.as_str()))
        {
            actions.kill.push(extra.task_id.clone());
        }
        match keep {
            Some(new) if new.ready => {
                // Replacement for this index is up: retire every old task. They hold
                // their place until Mesos confirms they are gone.
                actions.kill.extend(old.iter().map(|t| t.task_id.clone()));
                total += 1 + old.len() as u32;
                available += 1;
            }
            Some(_) => {
                // New task still starting: the old ones keep serving meanwhile.
                total += 1 + old.len() as u32;
                available += u32::from(old.iter().any(|t| t.ready));
            }
            None if old.is_empty() => missing.push(i),
            None => {
                // Only old tasks; keep the best one, drop duplicates.
                let best = old
                    .iter()
                    .copied()
                    .max_by_key(|t| (t.ready, t.phase == Phase::Running, t.task_id.clone()));
                for extra in old
                    .iter()
                    .filter(|t| Some(t.task_id.as_str()) != best.map(|b| b.task_id.as_str()))
                {
                    actions.kill.push(extra.task_id.clone());
                }
                if let Some(best) = best {
                    total += 1;
                    available += u32::from(best.ready);
                    outdated.push(best);
                }
            }
        }
    }

    // 3. Missing indices (scale-up or failures) are always relaunched, back-off permitting.
    for i in missing {
        if in_backoff(i) {
            actions.backing_off.push(i);
        } else {
            actions.launch.push(i);
            total += 1;
        }
    }

    // 4. Rolling replacement of outdated indices, lowest first, within the bounds. An
    //    index whose replacement failed waits out its back-off like any relaunch (its
    //    old task keeps serving meanwhile), or a crashing template would be relaunched
    //    in a hot loop.
    let min_available = n.saturating_sub(desired.max_unavailable);
    for old in outdated {
        if in_backoff(old.instance) {
            actions.backing_off.push(old.instance);
            continue;
        }
        if total < n + desired.max_surge {
            actions.launch.push(old.instance);
            total += 1;
        } else if old.ready && available > min_available {
            actions.kill.push(old.task_id.clone());
            available -= 1;
        } else if !old.ready {
            // Not serving anyway: replacing it cannot reduce availability.
            actions.kill.push(old.task_id.clone());
        } else {
            break;
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(instances: u32, hash: &str, surge: u32, unavailable: u32) -> Desired {
        Desired {
            instances,
            template_hash: hash.into(),
            max_surge: surge,
            max_unavailable: unavailable,
        }
    }

    fn task(id: &str, instance: u32, hash: &str, phase: Phase) -> LiveTask {
        LiveTask {
            task_id: id.into(),
            instance,
            template_hash: hash.into(),
            phase,
            ready: phase == Phase::Running,
        }
    }

    fn running(n: u32, hash: &str) -> Vec<LiveTask> {
        (0..n)
            .map(|i| task(&format!("{hash}-{i}"), i, hash, Phase::Running))
            .collect()
    }

    #[test]
    fn matching_operator_gets_no_action() {
        let a = plan_operator(&desired(3, "h1", 1, 0), &running(3, "h1"), |_| false);
        assert!(a.is_empty(), "{a:?}");
    }

    #[test]
    fn scale_up_launches_missing_indices_and_touches_nothing_else() {
        let a = plan_operator(&desired(5, "h1", 1, 0), &running(2, "h1"), |_| false);
        assert_eq!(a.launch, vec![2, 3, 4]);
        assert!(a.kill.is_empty());
    }

    #[test]
    fn scale_down_kills_highest_indices_first() {
        let a = plan_operator(&desired(1, "h1", 1, 0), &running(4, "h1"), |_| false);
        assert_eq!(a.kill, vec!["h1-3", "h1-2", "h1-1"]);
        assert!(a.launch.is_empty());
    }

    #[test]
    fn template_change_surges_one_at_a_time_and_kills_old_only_when_new_is_ready() {
        let d = desired(3, "h2", 1, 0);
        let mut tasks = running(3, "h1");
        let a = plan_operator(&d, &tasks, |_| false);
        assert_eq!(a.launch, vec![0], "one surge launch");
        assert!(a.kill.is_empty(), "never below instances - maxUnavailable");

        tasks.push(task("h2-0", 0, "h2", Phase::Starting));
        let a = plan_operator(&d, &tasks, |_| false);
        assert!(a.is_empty(), "waits for the new task: {a:?}");

        if let Some(t) = tasks.last_mut() {
            t.phase = Phase::Running;
            t.ready = true;
        }
        let a = plan_operator(&d, &tasks, |_| false);
        assert_eq!(a.kill, vec!["h1-0"]);
        assert_eq!(
            a.launch,
            Vec::<u32>::new(),
            "surge budget still used by the old task until it is gone"
        );

        tasks.retain(|t| t.task_id != "h1-0");
        let a = plan_operator(&d, &tasks, |_| false);
        assert_eq!(a.launch, vec![1]);
    }

    #[test]
    fn max_unavailable_allows_killing_before_replacing() {
        let d = desired(4, "h2", 0, 2);
        let a = plan_operator(&d, &running(4, "h1"), |_| false);
        assert_eq!(a.kill, vec!["h1-0", "h1-1"]);
        assert!(a.launch.is_empty());
    }

    #[test]
    fn a_surge_of_two_replaces_two_at_once() {
        let a = plan_operator(&desired(4, "h2", 2, 0), &running(4, "h1"), |_| false);
        assert_eq!(a.launch, vec![0, 1]);
    }

    #[test]
    fn terminating_tasks_count_against_the_surge_budget() {
        let mut tasks = running(2, "h1");
        tasks.push(task("h2-0", 0, "h2", Phase::Running));
        tasks[0].phase = Phase::Terminating;
        let a = plan_operator(&desired(2, "h2", 1, 0), &tasks, |_| false);
        assert!(a.launch.is_empty(), "{a:?}");
    }

    #[test]
    fn failed_instance_waits_for_its_back_off() {
        let tasks = vec![task("h1-0", 0, "h1", Phase::Running)];
        let a = plan_operator(&desired(2, "h1", 1, 0), &tasks, |i| i == 1);
        assert!(a.launch.is_empty());
        assert_eq!(a.backing_off, vec![1]);
    }

    #[test]
    fn a_failed_replacement_waits_for_its_back_off_and_the_old_task_keeps_serving() {
        // The new template's task for index 0 failed: only the old ones are left.
        let tasks = running(2, "h1");
        for unavailable in [0, 1] {
            let a = plan_operator(&desired(2, "h2", 1, unavailable), &tasks, |i| i == 0);
            assert_eq!(a.backing_off, vec![0], "{a:?}");
            assert!(!a.launch.contains(&0), "no relaunch during back-off: {a:?}");
            assert!(
                !a.kill.contains(&"h1-0".to_owned()),
                "the old task of a backing-off index keeps serving: {a:?}"
            );
        }
        // Other indices go on with the rollout.
        let a = plan_operator(&desired(2, "h2", 1, 0), &tasks, |i| i == 0);
        assert_eq!(a.launch, vec![1], "{a:?}");
        // Once the back-off is over, index 0 is replaced again.
        let a = plan_operator(&desired(2, "h2", 1, 0), &tasks, |_| false);
        assert_eq!(a.launch, vec![0], "{a:?}");
        assert!(a.backing_off.is_empty());
    }

    #[test]
    fn duplicate_tasks_for_one_index_are_reduced_to_one() {
        let mut tasks = running(1, "h1");
        tasks.push(task("h1-0-dup", 0, "h1", Phase::Starting));
        let a = plan_operator(&desired(1, "h1", 1, 0), &tasks, |_| false);
        assert_eq!(a.kill, vec!["h1-0-dup"]);
    }

    #[test]
    fn scale_to_zero_kills_everything() {
        let a = plan_operator(&desired(0, "h1", 1, 0), &running(2, "h1"), |_| false);
        assert_eq!(a.kill.len(), 2);
    }
}
