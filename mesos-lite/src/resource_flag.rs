//! Parsing of the `--resources` flag (`name(role):value;...`) and the machine defaults.

use std::path::Path;

use anyhow::{Context, Result};

use crate::wire::{Range, Resource, ValueType};

/// Parses Mesos' text resource format, `cpus:4;mem:8192;ports(*):[31000-32000]`
/// (with the `mesos-v1` parser).
pub fn parse(text: &str) -> Result<Vec<Resource>> {
    Ok(mesos_v1::resources::parse(text)?)
}

/// Fills in `cpus`, `mem`, `disk` and `ports` the way the Mesos agent does when they
/// are not given: all cpus, memory less 1 GB (half below 2 GB), disk less 5 GB (half
/// below 10 GB) of the work_dir's file system, ports [31000-32000].
pub fn with_defaults(mut specs: Vec<Resource>, work_dir: &Path) -> Vec<Resource> {
    let has = |specs: &[Resource], n: &str| specs.iter().any(|s| s.name == n);
    if !has(&specs, "cpus") {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        specs.push(Resource::scalar("cpus", cpus as f64));
    }
    if !has(&specs, "mem") {
        let total_mb = machine_memory_mb().unwrap_or(2048.0);
        let mem = if total_mb >= 2048.0 {
            total_mb - 1024.0
        } else {
            total_mb / 2.0
        };
        specs.push(Resource::scalar("mem", mem.floor()));
    }
    if !has(&specs, "disk") {
        let total_mb = disk_mb(work_dir).unwrap_or(10240.0);
        let disk = if total_mb >= 10240.0 {
            total_mb - 5120.0
        } else {
            total_mb / 2.0
        };
        specs.push(Resource::scalar("disk", disk.floor()));
    }
    if !has(&specs, "ports") {
        specs.push(Resource::ranges("ports", &[(31000, 32000)]));
    }
    specs
}

fn machine_memory_mb() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn disk_mb(path: &Path) -> Option<f64> {
    let mut probe = path.to_path_buf();
    while !probe.exists() {
        probe = probe.parent()?.to_path_buf();
    }
    let st = nix::sys::statvfs::statvfs(&probe).ok()?;
    Some(st.blocks() as f64 * st.fragment_size() as f64 / (1024.0 * 1024.0))
}

/// The resources of agent `index` of `count`: scalars and sets copied, every RANGES
/// resource split into `count` disjoint contiguous shares (the last takes the rest).
pub fn agent_share(specs: &[Resource], index: usize, count: usize) -> Result<Vec<Resource>> {
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let mut r = spec.clone();
        if r.r#type == ValueType::Ranges && count > 1 {
            let pairs = spec.range_pairs();
            let share = split_ranges(&pairs, index, count)
                .with_context(|| format!("cannot split '{}' among {count} agents", spec.name))?;
            if let Some(ranges) = r.ranges.as_mut() {
                ranges.range = share
                    .into_iter()
                    .map(|(begin, end)| Range { begin, end })
                    .collect();
            }
        }
        out.push(r);
    }
    Ok(out)
}

fn split_ranges(ranges: &[(u64, u64)], index: usize, count: usize) -> Option<Vec<(u64, u64)>> {
    let total: u64 = ranges.iter().map(|(a, b)| b - a + 1).sum();
    let per = total / count as u64;
    if per == 0 {
        return None;
    }
    let start = per * index as u64;
    let end = if index + 1 == count {
        total
    } else {
        start + per
    }; // exclusive
    // Walk the ranges, picking the [start, end) slice of their concatenation.
    let mut out = Vec::new();
    let mut offset = 0u64;
    for &(a, b) in ranges {
        let len = b - a + 1;
        let lo = start.max(offset);
        let hi = end.min(offset + len);
        if lo < hi {
            out.push((a + (lo - offset), a + (hi - offset) - 1));
        }
        offset += len;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_ports_disjointly() -> Result<()> {
        let specs = parse("cpus:1;ports:[31000-31009,32000-32009]")?;
        let shares: Vec<_> = (0..3)
            .map(|i| agent_share(&specs, i, 3))
            .collect::<Result<_>>()?;
        let ports = |v: &Vec<Resource>| {
            v.iter()
                .find(|r| r.name == "ports")
                .map(Resource::range_pairs)
        };
        assert_eq!(ports(&shares[0]), Some(vec![(31000, 31005)]));
        assert_eq!(
            ports(&shares[1]),
            Some(vec![(31006, 31009), (32000, 32001)])
        );
        assert_eq!(ports(&shares[2]), Some(vec![(32002, 32009)]));
        assert!(parse("cpus").is_err());
        Ok(())
    }

    #[test]
    fn defaults_fill_missing() -> Result<()> {
        let specs = with_defaults(parse("cpus:2")?, Path::new("/tmp"));
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["cpus", "mem", "disk", "ports"]);
        Ok(())
    }
}
