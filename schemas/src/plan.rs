//! Per-operator plans: what applying a new spec would do to each operator, as shown by
//! `concord diff` and `concord apply --dry-run` (DESIGN.md, lesson 7).
//!
//! Both specs should be parsed (defaults applied) and normalised, so that spelling
//! differences never show up as changes. Operators are matched by name; their order in
//! the list does not matter.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hash::template_changes;
use crate::topology::{OperatorSpec, TopologySpec};

/// What applying a spec changes, operator by operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Operators of the new spec in their order, then removed operators in their old order.
    pub operators: Vec<OperatorPlan>,
    /// Topology-wide spec fields that changed (e.g. `delivery`). These affect every
    /// operator but are not part of any operator's template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_fields: Vec<String>,
}

/// The change to one operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorPlan {
    /// Operator name.
    pub name: String,
    /// What happens to it.
    pub change: OperatorChange,
}

/// What happens to one operator. When several things change, the most disruptive wins:
/// `Replaced` (template changed, possibly also scaled) over `Scaled` over
/// `SettingsChanged`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum OperatorChange {
    /// New operator: `instances` tasks are launched.
    Added {
        /// Instances to launch.
        instances: u32,
    },
    /// Operator gone from the spec: its tasks are killed.
    Removed {
        /// Instances that will be killed.
        instances: u32,
    },
    /// Only `instances` changed: tasks are added or the highest-numbered ones are killed;
    /// no running task is replaced.
    Scaled {
        /// Old instance count.
        from: u32,
        /// New instance count.
        to: u32,
    },
    /// A template field changed: every task is replaced, rolling.
    Replaced {
        /// Template fields that changed: `runtime`, `config`, `env`, `resources`, `inputs`.
        fields: Vec<String>,
        /// Old instance count.
        from: u32,
        /// New instance count.
        to: u32,
    },
    /// Nothing changed.
    Unchanged,
    /// Only fields that do not touch running tasks changed (`updateStrategy`, `placement`,
    /// `restartBackoff`, `progressDeadlineSeconds`).
    SettingsChanged {
        /// The changed fields, by their YAML names.
        fields: Vec<String>,
    },
}

/// Compares `old` (the stored spec, `None` when the topology does not exist yet) with
/// `new`.
pub fn plan(old: Option<&TopologySpec>, new: &TopologySpec) -> Plan {
    let old_ops: &[OperatorSpec] = old.map_or(&[], |s| s.operators.as_slice());
    let find_old = |name: &str| old_ops.iter().find(|op| op.name == name);
    let mut operators = Vec::with_capacity(new.operators.len());
    for op in &new.operators {
        let change = match find_old(&op.name) {
            None => OperatorChange::Added {
                instances: op.instances,
            },
            Some(before) => operator_change(before, op),
        };
        operators.push(OperatorPlan {
            name: op.name.clone(),
            change,
        });
    }
    for op in old_ops {
        if !new.operators.iter().any(|n| n.name == op.name) {
            operators.push(OperatorPlan {
                name: op.name.clone(),
                change: OperatorChange::Removed {
                    instances: op.instances,
                },
            });
        }
    }
    let mut topology_fields = Vec::new();
    if let Some(old) = old
        && old.delivery != new.delivery
    {
        topology_fields.push("delivery".to_owned());
    }
    Plan {
        operators,
        topology_fields,
    }
}

fn operator_change(old: &OperatorSpec, new: &OperatorSpec) -> OperatorChange {
    let template = template_changes(old, new);
    if !template.is_empty() {
        return OperatorChange::Replaced {
            fields: template,
            from: old.instances,
            to: new.instances,
        };
    }
    if old.instances != new.instances {
        return OperatorChange::Scaled {
            from: old.instances,
            to: new.instances,
        };
    }
    let mut fields = Vec::new();
    if old.update_strategy != new.update_strategy {
        fields.push("updateStrategy".to_owned());
    }
    if old.placement != new.placement {
        fields.push("placement".to_owned());
    }
    if old.restart_backoff != new.restart_backoff {
        fields.push("restartBackoff".to_owned());
    }
    if old.progress_deadline_seconds != new.progress_deadline_seconds {
        fields.push("progressDeadlineSeconds".to_owned());
    }
    if fields.is_empty() {
        OperatorChange::Unchanged
    } else {
        OperatorChange::SettingsChanged { fields }
    }
}

impl OperatorChange {
    /// True for [`OperatorChange::Unchanged`].
    pub fn is_unchanged(&self) -> bool {
        matches!(self, OperatorChange::Unchanged)
    }
}

impl Plan {
    /// True when applying the new spec would change nothing.
    pub fn is_empty(&self) -> bool {
        self.topology_fields.is_empty() && self.operators.iter().all(|o| o.change.is_unchanged())
    }

    /// One-line summary, e.g. `1 to add, 1 to replace, 1 to scale, 0 to remove`.
    pub fn summary(&self) -> String {
        let count =
            |f: fn(&OperatorChange) -> bool| self.operators.iter().filter(|o| f(&o.change)).count();
        format!(
            "{} to add, {} to replace, {} to scale, {} to update, {} to remove, {} unchanged",
            count(|c| matches!(c, OperatorChange::Added { .. })),
            count(|c| matches!(c, OperatorChange::Replaced { .. })),
            count(|c| matches!(c, OperatorChange::Scaled { .. })),
            count(|c| matches!(c, OperatorChange::SettingsChanged { .. })),
            count(|c| matches!(c, OperatorChange::Removed { .. })),
            count(|c| matches!(c, OperatorChange::Unchanged)),
        )
    }
}

fn instances(n: u32) -> String {
    if n == 1 {
        "1 instance".to_owned()
    } else {
        format!("{n} instances")
    }
}

impl fmt::Display for OperatorPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.name;
        match &self.change {
            OperatorChange::Added { instances: n } => {
                write!(f, "+ {name}: add, {}", instances(*n))
            }
            OperatorChange::Removed { instances: n } => {
                write!(f, "- {name}: remove, {}", instances(*n))
            }
            OperatorChange::Scaled { from, to } => write!(f, "~ {name}: scale {from} -> {to}"),
            OperatorChange::Replaced { fields, from, to } => {
                write!(f, "~ {name}: replace ({} changed), ", fields.join(", "))?;
                if from == to {
                    f.write_str(&instances(*to))
                } else {
                    write!(f, "scale {from} -> {to}")
                }
            }
            OperatorChange::Unchanged => write!(f, "  {name}: unchanged"),
            OperatorChange::SettingsChanged { fields } => write!(
                f,
                "~ {name}: update ({} changed), no task restarted",
                fields.join(", ")
            ),
        }
    }
}

/// One line per operator, like `kubectl diff` / `terraform plan`:
///
/// ```text
/// ~ topology: delivery changed
///   lines: unchanged
/// ~ split: replace (config changed), 2 instances
/// ~ count: scale 2 -> 5
/// + sink: add, 1 instance
/// - old: remove, 3 instances
/// ```
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut line = |f: &mut fmt::Formatter<'_>, text: &dyn fmt::Display| {
            if !std::mem::take(&mut first) {
                f.write_str("\n")?;
            }
            write!(f, "{text}")
        };
        if !self.topology_fields.is_empty() {
            line(
                f,
                &format_args!("~ topology: {} changed", self.topology_fields.join(", ")),
            )?;
        }
        for op in &self.operators {
            line(f, op)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{Delivery, Runtime};

    fn spec() -> TopologySpec {
        serde_yaml_ng::from_str(
            "operators:
  - name: lines
    runtime: {builtin: {name: generator}}
    config: {rate: 1000}
  - name: split
    instances: 2
    runtime: {process: {command: python3, args: [split.py]}}
    inputs: [{from: lines}]
  - name: count
    instances: 2
    runtime: {builtin: {name: keyed-count}}
    inputs: [{from: split, partitioning: key}]
",
        )
        .expect("fixture")
    }

    fn change_of<'a>(plan: &'a Plan, name: &str) -> &'a OperatorChange {
        &plan
            .operators
            .iter()
            .find(|o| o.name == name)
            .unwrap_or_else(|| panic!("{name} not in plan"))
            .change
    }

    #[test]
    fn a_spec_against_itself_is_empty() {
        let p = plan(Some(&spec()), &spec());
        assert!(p.is_empty());
        assert!(
            p.operators
                .iter()
                .all(|o| o.change == OperatorChange::Unchanged)
        );
        assert_eq!(
            p.to_string(),
            "  lines: unchanged\n  split: unchanged\n  count: unchanged"
        );
    }

    #[test]
    fn operator_order_does_not_matter() {
        let mut reordered = spec();
        reordered.operators.reverse();
        assert!(plan(Some(&spec()), &reordered).is_empty());
    }

    #[test]
    fn creation_adds_everything() {
        let p = plan(None, &spec());
        assert!(!p.is_empty());
        assert_eq!(
            change_of(&p, "split"),
            &OperatorChange::Added { instances: 2 }
        );
        assert_eq!(
            p.to_string(),
            "+ lines: add, 1 instance\n+ split: add, 2 instances\n+ count: add, 2 instances"
        );
    }

    #[test]
    fn added_and_removed() {
        let mut new = spec();
        let mut old_op = new.operators.remove(2);
        old_op.instances = 3;
        let mut old = spec();
        old.operators[2] = old_op;
        let mut sink = new.operators[0].clone();
        sink.name = "sink".into();
        sink.inputs = vec![crate::topology::Input {
            from: "split".into(),
            partitioning: Default::default(),
        }];
        new.operators.push(sink);
        let p = plan(Some(&old), &new);
        assert_eq!(
            change_of(&p, "sink"),
            &OperatorChange::Added { instances: 1 }
        );
        assert_eq!(
            change_of(&p, "count"),
            &OperatorChange::Removed { instances: 3 }
        );
        let text = p.to_string();
        assert!(text.contains("+ sink: add, 1 instance"), "{text}");
        assert!(text.ends_with("- count: remove, 3 instances"), "{text}");
    }

    #[test]
    fn scaling_is_not_a_replacement() {
        let mut new = spec();
        new.operators[2].instances = 5;
        let p = plan(Some(&spec()), &new);
        assert_eq!(
            change_of(&p, "count"),
            &OperatorChange::Scaled { from: 2, to: 5 }
        );
        assert_eq!(change_of(&p, "split"), &OperatorChange::Unchanged);
        assert!(p.to_string().contains("~ count: scale 2 -> 5"));
    }

    #[test]
    fn template_changes_replace() {
        let mut new = spec();
        new.operators[1]
            .config
            .insert("lower".into(), serde_json::json!(true));
        let p = plan(Some(&spec()), &new);
        assert_eq!(
            change_of(&p, "split"),
            &OperatorChange::Replaced {
                fields: vec!["config".into()],
                from: 2,
                to: 2
            }
        );
        assert!(
            p.to_string()
                .contains("~ split: replace (config changed), 2 instances"),
            "{p}"
        );

        // Template change plus scale: still a replacement, showing both.
        new.operators[1].instances = 4;
        new.operators[1].runtime =
            Runtime::Builtin(crate::topology::BuiltinRuntime { name: "map".into() });
        let p = plan(Some(&spec()), &new);
        assert_eq!(
            change_of(&p, "split"),
            &OperatorChange::Replaced {
                fields: vec!["runtime".into(), "config".into()],
                from: 2,
                to: 4
            }
        );
        assert!(
            p.to_string()
                .contains("~ split: replace (runtime, config changed), scale 2 -> 4"),
            "{p}"
        );
    }

    #[test]
    fn settings_changes_restart_nothing() {
        let mut new = spec();
        new.operators[0].update_strategy.max_surge = 2;
        new.operators[0].restart_backoff.max_seconds = 30.0;
        let p = plan(Some(&spec()), &new);
        assert_eq!(
            change_of(&p, "lines"),
            &OperatorChange::SettingsChanged {
                fields: vec!["updateStrategy".into(), "restartBackoff".into()]
            }
        );
        assert!(!p.is_empty());
        assert!(
            p.to_string()
                .contains("~ lines: update (updateStrategy, restartBackoff changed)"),
            "{p}"
        );
    }

    #[test]
    fn delivery_is_a_topology_change() {
        let mut new = spec();
        new.delivery = Delivery::AtLeastOnce;
        let p = plan(Some(&spec()), &new);
        assert!(!p.is_empty());
        assert_eq!(p.topology_fields, vec!["delivery".to_owned()]);
        assert!(p.to_string().starts_with("~ topology: delivery changed\n"));
    }

    #[test]
    fn plan_serialises_for_json_output() {
        let mut new = spec();
        new.operators[2].instances = 3;
        let p = plan(Some(&spec()), &new);
        let json = serde_json::to_value(&p).expect("serialise");
        assert_eq!(
            json["operators"][2],
            serde_json::json!({"name": "count", "change": {"type": "scaled", "from": 2, "to": 3}})
        );
        assert_eq!(
            json["operators"][0],
            serde_json::json!({"name": "lines", "change": {"type": "unchanged"}})
        );
        assert!(json.get("topologyFields").is_none());
        let back: Plan = serde_json::from_value(json).expect("deserialise");
        assert_eq!(back, p);
        assert_eq!(
            p.summary(),
            "0 to add, 0 to replace, 1 to scale, 0 to update, 0 to remove, 2 unchanged"
        );
    }
}
