//! Task identity: every task ID encodes where the task belongs in the spec, so an
//! observed task maps back to its topology, operator, instance and template without
//! any side table (and a restarted controller can adopt it).
//!
//! Format: `<namespace>.<topology>.<operator>.<instance>.<template-hash>.<suffix>`.
//! Names are DNS-1123 labels (no dots), the hash is hex, the suffix makes each launch
//! unique. Labels repeat the same facts for people and tools reading Mesos state.

use std::fmt;

use rand::Rng;

/// The parts of a Concord task ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskName {
    pub namespace: String,
    pub topology: String,
    pub operator: String,
    pub instance: u32,
    pub template_hash: String,
    pub suffix: String,
}

impl TaskName {
    /// A fresh task ID for an instance, with a random suffix.
    pub fn new(
        namespace: &str,
        topology: &str,
        operator: &str,
        instance: u32,
        template_hash: &str,
    ) -> Self {
        let suffix: u32 = rand::rng().random();
        Self {
            namespace: namespace.to_owned(),
            topology: topology.to_owned(),
            operator: operator.to_owned(),
            instance,
            template_hash: template_hash.to_owned(),
            suffix: format!("{suffix:08x}"),
        }
    }

    /// Parses a task ID; `None` for IDs Concord did not make.
    pub fn parse(id: &str) -> Option<Self> {
        let parts: Vec<&str> = id.split('.').collect();
        let [ns, topo, op, instance, hash, suffix] = parts.as_slice() else {
            return None;
        };
        if [ns, topo, op, hash, suffix].iter().any(|p| p.is_empty()) {
            return None;
        }
        Some(Self {
            namespace: (*ns).to_owned(),
            topology: (*topo).to_owned(),
            operator: (*op).to_owned(),
            instance: instance.parse().ok()?,
            template_hash: (*hash).to_owned(),
            suffix: (*suffix).to_owned(),
        })
    }

    /// `<namespace>/<topology>`, the work-queue key.
    pub fn topology_key(&self) -> String {
        format!("{}/{}", self.namespace, self.topology)
    }

    /// Mesos labels carrying the same facts.
    pub fn labels(&self) -> Vec<(&'static str, String)> {
        vec![
            ("concord.io/namespace", self.namespace.clone()),
            ("concord.io/topology", self.topology.clone()),
            ("concord.io/operator", self.operator.clone()),
            ("concord.io/instance", self.instance.to_string()),
            ("concord.io/template-hash", self.template_hash.clone()),
        ]
    }
}

impl fmt::Display for TaskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}.{}.{}",
            self.namespace,
            self.topology,
            self.operator,
            self.instance,
            self.template_hash,
            self.suffix
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_foreign_ids() {
        let name = TaskName::new("default", "wordcount", "split", 3, "0a1b2c3d4e");
        let id = name.to_string();
        assert_eq!(TaskName::parse(&id), Some(name.clone()));
        assert_eq!(name.topology_key(), "default/wordcount");
        assert_ne!(
            TaskName::new("default", "wordcount", "split", 3, "0a1b2c3d4e").suffix,
            "",
            "suffix set"
        );
        for foreign in [
            "sleep-1",
            "a.b.c.d.e",
            "a.b.c.x.e.f",
            "a..c.1.e.f",
            "a.b.c.1.e.f.g",
        ] {
            assert_eq!(TaskName::parse(foreign), None, "{foreign}");
        }
    }
}
