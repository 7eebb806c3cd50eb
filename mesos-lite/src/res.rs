//! Resource quantities for the allocator: a normalised list of resources (allocation
//! info stripped) with the `mesos-v1` resource arithmetic behind add, subtract and
//! contains.

use std::fmt;

use mesos_v1::resources as r;

use crate::wire::Resource;

/// A normalised resource list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bag(Vec<Resource>);

impl Bag {
    /// From wire resources (allocation info dropped, `role: "*"` treated as unreserved).
    pub fn from_resources(resources: &[Resource]) -> Bag {
        let cleaned: Vec<Resource> = r::strip_allocation_info(resources)
            .into_iter()
            .map(|mut x| {
                if x.role.as_deref() == Some("*") {
                    x.role = None;
                }
                x
            })
            .collect();
        Bag(r::normalize(&cleaned))
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Resource::is_empty)
    }

    /// A scalar quantity (0 if absent).
    pub fn scalar(&self, name: &str) -> f64 {
        r::scalar_total(&self.0, name)
    }

    /// `self + other`.
    pub fn plus(&self, other: &Bag) -> Bag {
        Bag(r::sum(&self.0, &other.0))
    }

    /// `self - other` (saturating).
    pub fn minus(&self, other: &Bag) -> Bag {
        Bag(r::subtract(&self.0, &other.0))
    }

    /// Whether `other ⊆ self`.
    pub fn contains(&self, other: &Bag) -> bool {
        r::contains(&self.0, &other.0)
    }

    /// Mesos only offers agents with at least 0.01 cpus or 32 MB of memory free.
    pub fn allocatable(&self) -> bool {
        self.scalar("cpus") >= 0.01 || self.scalar("mem") >= 32.0
    }

    /// Wire resources as offers show them: `role: "*"` on unreserved resources and
    /// `allocation_info` for MULTI_ROLE frameworks.
    pub fn to_resources(&self, allocation_role: Option<&str>) -> Vec<Resource> {
        let mut list = self.sorted();
        for x in &mut list {
            if x.role.is_none() {
                x.role = Some("*".to_string());
            }
        }
        match allocation_role {
            Some(role) => r::allocate_to(&list, role),
            None => list,
        }
    }

    fn sorted(&self) -> Vec<Resource> {
        let order = |n: &str| match n {
            "cpus" => 0,
            "gpus" => 1,
            "mem" => 2,
            "disk" => 3,
            "ports" => 4,
            _ => 5,
        };
        let mut list = self.0.clone();
        list.sort_by(|a, b| (order(&a.name), &a.name).cmp(&(order(&b.name), &b.name)));
        list
    }
}

impl fmt::Display for Bag {
    /// Mesos' text form, e.g. `cpus:0.5;mem:256;ports:[31000-31000]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("{}");
        }
        write!(f, "{}", r::Display(&self.sorted()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() -> anyhow::Result<()> {
        let total = Bag::from_resources(&r::parse("cpus:4;mem:1024;ports:[31000-31009]")?);
        let task = Bag::from_resources(&r::parse("cpus:0.5;mem:256;ports:[31003-31004]")?);
        assert!(total.contains(&task));
        let left = total.minus(&task);
        assert_eq!(left.scalar("cpus"), 3.5);
        assert!(!left.contains(&task));
        assert_eq!(left.plus(&task).scalar("mem"), 1024.0);
        assert!(left.plus(&task).contains(&total));
        let back = Bag::from_resources(&total.to_resources(Some("r")));
        assert!(back.contains(&total) && total.contains(&back));
        assert!(Bag::default().is_empty());
        Ok(())
    }
}
