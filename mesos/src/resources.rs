//! Resource arithmetic over lists of [`Resource`]s, with Mesos' semantics:
//! resources are merged only when everything but their quantity matches (name, type,
//! role, reservations, allocation info, disk, revocable/shared, provider); scalars
//! are fixed-point with three decimals; ranges and sets use set arithmetic.
//!
//! Both the controller (does this offer fit this task?) and mesos-lite (offered minus
//! used) need this, so it lives here.

use std::collections::BTreeSet;
use std::fmt;

use thiserror::Error;

use crate::types::{AllocationInfo, Range, Ranges, Resource, Scalar, Set, ValueType};

/// Rounds a scalar to Mesos' three-decimal fixed point.
pub fn round_scalar(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl Resource {
    /// An unreserved scalar resource, e.g. `Resource::scalar("cpus", 0.5)`.
    pub fn scalar(name: impl Into<String>, value: f64) -> Self {
        Resource {
            name: name.into(),
            r#type: ValueType::Scalar,
            scalar: Some(Scalar {
                value: round_scalar(value),
            }),
            ..Resource::default()
        }
    }

    /// An unreserved ranges resource, e.g. `Resource::ranges("ports", &[(31000, 31005)])`.
    pub fn ranges(name: impl Into<String>, ranges: &[(u64, u64)]) -> Self {
        Resource {
            name: name.into(),
            r#type: ValueType::Ranges,
            ranges: Some(Ranges {
                range: normalize_ranges(ranges.iter().map(|&(begin, end)| Range { begin, end })),
            }),
            ..Resource::default()
        }
    }

    /// An unreserved set resource.
    pub fn set(
        name: impl Into<String>,
        items: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let items: BTreeSet<String> = items.into_iter().map(Into::into).collect();
        Resource {
            name: name.into(),
            r#type: ValueType::Set,
            set: Some(Set {
                item: items.into_iter().collect(),
            }),
            ..Resource::default()
        }
    }

    /// Sets the (deprecated, pre-refinement) `role` field.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }

    /// Sets `allocation_info.role`.
    pub fn with_allocation_role(mut self, role: impl Into<String>) -> Self {
        self.allocation_info = Some(AllocationInfo {
            role: Some(role.into()),
        });
        self
    }

    /// The scalar value (0 if not a scalar).
    pub fn scalar_value(&self) -> f64 {
        self.scalar.map(|s| s.value).unwrap_or(0.0)
    }

    /// The ranges as `(begin, end)` pairs (empty if not ranges).
    pub fn range_pairs(&self) -> Vec<(u64, u64)> {
        self.ranges
            .as_ref()
            .map(|r| r.range.iter().map(|r| (r.begin, r.end)).collect())
            .unwrap_or_default()
    }

    /// Whether the resource is unreserved (no reservations, role absent or `"*"`).
    pub fn is_unreserved(&self) -> bool {
        self.reservations.is_empty()
            && self.reservation.is_none()
            && self.role.as_deref().unwrap_or("*") == "*"
    }

    /// The role the resource is reserved for, if any (refined stack top, else `role`).
    pub fn reserved_role(&self) -> Option<&str> {
        if let Some(r) = self.reservations.last() {
            return r.role.as_deref();
        }
        match self.role.as_deref() {
            Some("*") | None => None,
            Some(role) => Some(role),
        }
    }

    /// Whether the resource holds no quantity (zero scalar, no ranges, empty set).
    pub fn is_empty(&self) -> bool {
        match self.r#type {
            ValueType::Scalar => self.scalar_value().abs() < 0.0005,
            ValueType::Ranges => self.ranges.as_ref().is_none_or(|r| r.range.is_empty()),
            ValueType::Set => self.set.as_ref().is_none_or(|s| s.item.is_empty()),
            _ => true,
        }
    }

    /// Whether `self` and `other` differ only in quantity (so they can be added).
    pub fn same_kind(&self, other: &Resource) -> bool {
        self.name == other.name
            && self.r#type == other.r#type
            && self.role.as_deref().unwrap_or("*") == other.role.as_deref().unwrap_or("*")
            && self.allocation_info == other.allocation_info
            && self.reservation == other.reservation
            && self.reservations == other.reservations
            && self.disk == other.disk
            && self.revocable == other.revocable
            && self.shared == other.shared
            && self.provider_id == other.provider_id
    }

    /// Whether this resource has at least the quantity of `other` (same kind required).
    pub fn contains(&self, other: &Resource) -> bool {
        if !self.same_kind(other) {
            return false;
        }
        match self.r#type {
            ValueType::Scalar => to_fixed(self.scalar_value()) >= to_fixed(other.scalar_value()),
            ValueType::Ranges => ranges_contain(&self.range_list(), &other.range_list()),
            ValueType::Set => {
                let mine: BTreeSet<&String> = self.set_items().iter().collect();
                other.set_items().iter().all(|i| mine.contains(i))
            }
            _ => self == other,
        }
    }

    fn range_list(&self) -> Vec<Range> {
        self.ranges
            .as_ref()
            .map(|r| r.range.clone())
            .unwrap_or_default()
    }

    fn set_items(&self) -> &[String] {
        self.set.as_ref().map(|s| s.item.as_slice()).unwrap_or(&[])
    }

    /// Adds `other`'s quantity into `self` (caller checked [`same_kind`](Self::same_kind)).
    fn add_quantity(&mut self, other: &Resource) {
        match self.r#type {
            ValueType::Scalar => {
                // Saturating: an offer may say `"Infinity"` (see `scalar_total`).
                let v = from_fixed(
                    to_fixed(self.scalar_value()).saturating_add(to_fixed(other.scalar_value())),
                );
                self.scalar = Some(Scalar { value: v });
            }
            ValueType::Ranges => {
                let mut all = self.range_list();
                all.extend(other.range_list());
                self.ranges = Some(Ranges {
                    range: normalize_ranges(all),
                });
            }
            ValueType::Set => {
                let mut items: BTreeSet<String> = self.set_items().iter().cloned().collect();
                items.extend(other.set_items().iter().cloned());
                self.set = Some(Set {
                    item: items.into_iter().collect(),
                });
            }
            _ => {}
        }
    }

    /// Removes `other`'s quantity from `self`, saturating at empty.
    fn subtract_quantity(&mut self, other: &Resource) {
        match self.r#type {
            ValueType::Scalar => {
                let v = to_fixed(self.scalar_value())
                    .saturating_sub(to_fixed(other.scalar_value()))
                    .max(0);
                self.scalar = Some(Scalar {
                    value: from_fixed(v),
                });
            }
            ValueType::Ranges => {
                self.ranges = Some(Ranges {
                    range: subtract_ranges(&self.range_list(), &other.range_list()),
                });
            }
            ValueType::Set => {
                let remove: BTreeSet<&String> = other.set_items().iter().collect();
                let items = self
                    .set_items()
                    .iter()
                    .filter(|i| !remove.contains(i))
                    .cloned()
                    .collect();
                self.set = Some(Set { item: items });
            }
            _ => {}
        }
    }
}

fn to_fixed(v: f64) -> i64 {
    (v * 1000.0).round() as i64
}

fn from_fixed(v: i64) -> f64 {
    v as f64 / 1000.0
}

/// Sorts and merges overlapping or adjacent ranges; drops inverted ones.
pub fn normalize_ranges(ranges: impl IntoIterator<Item = Range>) -> Vec<Range> {
    let mut v: Vec<Range> = ranges.into_iter().filter(|r| r.begin <= r.end).collect();
    v.sort();
    let mut out: Vec<Range> = Vec::with_capacity(v.len());
    for r in v {
        match out.last_mut() {
            Some(last) if r.begin <= last.end.saturating_add(1) => {
                last.end = last.end.max(r.end);
            }
            _ => out.push(r),
        }
    }
    out
}

/// `a − b` as normalised ranges.
pub fn subtract_ranges(a: &[Range], b: &[Range]) -> Vec<Range> {
    let b = normalize_ranges(b.iter().copied());
    let mut out = Vec::new();
    for r in normalize_ranges(a.iter().copied()) {
        let mut pieces = vec![r];
        for cut in &b {
            let mut next = Vec::new();
            for p in pieces {
                if cut.end < p.begin || cut.begin > p.end {
                    next.push(p);
                    continue;
                }
                if cut.begin > p.begin {
                    next.push(Range {
                        begin: p.begin,
                        end: cut.begin - 1,
                    });
                }
                if cut.end < p.end {
                    next.push(Range {
                        begin: cut.end + 1,
                        end: p.end,
                    });
                }
            }
            pieces = next;
        }
        out.extend(pieces);
    }
    normalize_ranges(out)
}

/// Whether every value in `b` is in `a`.
pub fn ranges_contain(a: &[Range], b: &[Range]) -> bool {
    subtract_ranges(b, a).is_empty()
}

/// Number of values covered by the ranges (saturating: `0-18446744073709551615` covers
/// one more value than a `u64` counts).
pub fn ranges_len(ranges: &[Range]) -> u64 {
    normalize_ranges(ranges.iter().copied())
        .iter()
        .map(|r| (r.end - r.begin).saturating_add(1))
        .fold(0, u64::saturating_add)
}

/// Adds `r` into `list`, merging with an existing resource of the same kind.
pub fn add_one(list: &mut Vec<Resource>, r: &Resource) {
    if r.is_empty() {
        return;
    }
    if let Some(existing) = list.iter_mut().find(|e| e.same_kind(r)) {
        existing.add_quantity(r);
    } else {
        let mut r = r.clone();
        // Canonicalise the value so later comparisons are exact.
        r.add_quantity(&Resource {
            r#type: r.r#type.clone(),
            ..Resource::default()
        });
        list.push(r);
    }
}

/// `a + b`: the merged list (resources of the same kind are combined).
pub fn sum(a: &[Resource], b: &[Resource]) -> Vec<Resource> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    for r in a.iter().chain(b) {
        add_one(&mut out, r);
    }
    out
}

/// Merges a list with itself (combining duplicates, dropping empty entries).
pub fn normalize(a: &[Resource]) -> Vec<Resource> {
    sum(a, &[])
}

/// `a − b`, saturating: quantities of `b` not present in `a` are ignored and
/// emptied resources are dropped. Use [`checked_subtract`] to require containment.
pub fn subtract(a: &[Resource], b: &[Resource]) -> Vec<Resource> {
    let mut out = normalize(a);
    for r in b {
        if let Some(existing) = out.iter_mut().find(|e| e.same_kind(r)) {
            existing.subtract_quantity(r);
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

/// `a − b` if `a` contains `b`, else `None`.
pub fn checked_subtract(a: &[Resource], b: &[Resource]) -> Option<Vec<Resource>> {
    contains(a, b).then(|| subtract(a, b))
}

/// Whether `a` holds at least everything in `b` (kind by kind).
pub fn contains(a: &[Resource], b: &[Resource]) -> bool {
    let a = normalize(a);
    normalize(b)
        .iter()
        .all(|need| need.is_empty() || a.iter().any(|have| have.contains(need)))
}

/// Total scalar quantity named `name`, over every role and reservation.
pub fn scalar_total(resources: &[Resource], name: &str) -> f64 {
    // Saturating: scalars come from Mesos and may be huge (`1e300`, `"Infinity"`).
    let fixed: i64 = resources
        .iter()
        .filter(|r| r.name == name && r.r#type == ValueType::Scalar)
        .map(|r| to_fixed(r.scalar_value()))
        .fold(0, i64::saturating_add);
    from_fixed(fixed)
}

/// All ranges named `name`, merged, over every role and reservation.
pub fn ranges_total(resources: &[Resource], name: &str) -> Vec<Range> {
    normalize_ranges(
        resources
            .iter()
            .filter(|r| r.name == name && r.r#type == ValueType::Ranges)
            .flat_map(|r| r.range_list()),
    )
}

/// The resources with `allocation_info` removed (e.g. to compare with what a
/// non-MULTI_ROLE framework sees).
pub fn strip_allocation_info(resources: &[Resource]) -> Vec<Resource> {
    resources
        .iter()
        .cloned()
        .map(|mut r| {
            r.allocation_info = None;
            r
        })
        .collect()
}

/// The resources with `allocation_info.role` set to `role`.
pub fn allocate_to(resources: &[Resource], role: &str) -> Vec<Resource> {
    resources
        .iter()
        .cloned()
        .map(|r| r.with_allocation_role(role))
        .collect()
}

/// Error parsing a resource text such as `cpus:4;mem:8192;ports:[31000-32000]`.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid resource text {text:?}: {reason}")]
pub struct ParseResourcesError {
    /// The offending fragment.
    pub text: String,
    /// What is wrong.
    pub reason: String,
}

/// Parses Mesos' `--resources` text: `name(role):value;…` where value is a scalar
/// (`4`), ranges (`[31000-32000, 33000-33001]`) or a set (`{a,b}`). The role part
/// is optional (`"*"` = unreserved, otherwise a static reservation via `role`).
pub fn parse(text: &str) -> Result<Vec<Resource>, ParseResourcesError> {
    let mut out = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let err = |reason: &str| ParseResourcesError {
            text: part.to_string(),
            reason: reason.to_string(),
        };
        let (key, value) = part
            .split_once(':')
            .ok_or_else(|| err("expected name:value"))?;
        let (name, role) = match key.split_once('(') {
            Some((n, rest)) => {
                let role = rest
                    .strip_suffix(')')
                    .ok_or_else(|| err("unterminated role"))?;
                (n.trim(), Some(role.trim()))
            }
            None => (key.trim(), None),
        };
        if name.is_empty() {
            return Err(err("empty name"));
        }
        let value = value.trim();
        let mut r = if let Some(inner) = value.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| err("unterminated ranges"))?;
            let mut pairs = Vec::new();
            for piece in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (b, e) = piece
                    .split_once('-')
                    .ok_or_else(|| err("range must be begin-end"))?;
                let b: u64 = b
                    .trim()
                    .parse()
                    .map_err(|_| err("range bound is not a number"))?;
                let e: u64 = e
                    .trim()
                    .parse()
                    .map_err(|_| err("range bound is not a number"))?;
                if b > e {
                    return Err(err("range begin exceeds end"));
                }
                pairs.push((b, e));
            }
            Resource::ranges(name, &pairs)
        } else if let Some(inner) = value.strip_prefix('{') {
            let inner = inner
                .strip_suffix('}')
                .ok_or_else(|| err("unterminated set"))?;
            Resource::set(
                name,
                inner.split(',').map(str::trim).filter(|p| !p.is_empty()),
            )
        } else {
            let v: f64 = value.parse().map_err(|_| err("scalar is not a number"))?;
            if !v.is_finite() || v < 0.0 {
                return Err(err("scalar must be finite and non-negative"));
            }
            Resource::scalar(name, v)
        };
        if let Some(role) = role.filter(|r| *r != "*") {
            r.role = Some(role.to_string());
        }
        add_one(&mut out, &r);
    }
    Ok(out)
}

/// Formats ranges the way the legacy endpoints do: `[31000-32000, 33000-33001]`.
pub fn format_ranges(ranges: &[Range]) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|r| format!("{}-{}", r.begin, r.end))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Displays a resource list in Mesos' text form (`cpus:4;mem:1024;ports:[…]`).
pub struct Display<'a>(pub &'a [Resource]);

impl fmt::Display for Display<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for r in self.0 {
            if !first {
                f.write_str(";")?;
            }
            first = false;
            f.write_str(&r.name)?;
            if let Some(role) = r.reserved_role() {
                write!(f, "({role})")?;
            }
            f.write_str(":")?;
            match r.r#type {
                ValueType::Scalar => write!(f, "{}", r.scalar_value())?,
                ValueType::Ranges => f.write_str(&format_ranges(&r.range_list()))?,
                ValueType::Set => write!(f, "{{{}}}", r.set_items().join(","))?,
                _ => f.write_str("?")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> Vec<Resource> {
        vec![
            Resource::scalar("cpus", 4.0),
            Resource::scalar("mem", 1024.0),
            Resource::ranges("ports", &[(31000, 31010)]),
        ]
    }

    #[test]
    fn scalar_rounding_is_three_decimals() {
        let a = [Resource::scalar("cpus", 0.1)];
        let b = [Resource::scalar("cpus", 0.2)];
        let s = sum(&a, &b);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].scalar_value(), 0.3);
        assert_eq!(Resource::scalar("cpus", 0.12345).scalar_value(), 0.123);
        // 0.3 - 0.1 - 0.2 must be exactly empty, not 5.5e-17.
        let left = subtract(&subtract(&s, &a), &b);
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn sum_merges_same_kind_only() {
        let a = [Resource::scalar("cpus", 1.0)];
        let b = [Resource::scalar("cpus", 2.0).with_role("concord")];
        let s = sum(&a, &b);
        assert_eq!(s.len(), 2);
        assert_eq!(scalar_total(&s, "cpus"), 3.0);
        let c = [Resource::scalar("cpus", 1.5)];
        let s2 = sum(&s, &c);
        assert_eq!(s2.len(), 2);
        assert_eq!(s2[0].scalar_value(), 2.5);
        // Explicit "*" and absent role are the same kind.
        let d = [Resource::scalar("cpus", 1.0).with_role("*")];
        assert_eq!(sum(&a, &d).len(), 1);
    }

    #[test]
    fn contains_and_subtract() {
        let have = offer();
        let want = vec![
            Resource::scalar("cpus", 0.5),
            Resource::scalar("mem", 256.0),
            Resource::ranges("ports", &[(31005, 31005)]),
        ];
        assert!(contains(&have, &want));
        let left = checked_subtract(&have, &want).expect("fits");
        assert_eq!(scalar_total(&left, "cpus"), 3.5);
        assert_eq!(scalar_total(&left, "mem"), 768.0);
        assert_eq!(
            ranges_total(&left, "ports"),
            vec![
                Range {
                    begin: 31000,
                    end: 31004
                },
                Range {
                    begin: 31006,
                    end: 31010
                }
            ]
        );
        let too_much = vec![Resource::scalar("cpus", 4.001)];
        assert!(!contains(&have, &too_much));
        assert!(checked_subtract(&have, &too_much).is_none());
        let wrong_port = vec![Resource::ranges("ports", &[(30000, 30000)])];
        assert!(!contains(&have, &wrong_port));
        let reserved = vec![Resource::scalar("cpus", 1.0).with_role("r")];
        assert!(!contains(&have, &reserved));
        assert!(contains(&have, &[]));
        // Subtracting everything leaves nothing.
        assert!(subtract(&have, &have).is_empty());
        // Saturating subtract.
        assert!(
            subtract(
                &[Resource::scalar("mem", 1.0)],
                &[Resource::scalar("mem", 5.0)]
            )
            .is_empty()
        );
    }

    #[test]
    fn allocation_info_is_part_of_identity() {
        let offered = allocate_to(&offer(), "concord");
        let task = vec![Resource::scalar("cpus", 1.0)];
        assert!(!contains(&offered, &task));
        assert!(contains(&offered, &allocate_to(&task, "concord")));
        assert!(contains(&strip_allocation_info(&offered), &task));
    }

    #[test]
    fn range_arithmetic() {
        let r = |b, e| Range { begin: b, end: e };
        assert_eq!(
            normalize_ranges([r(5, 6), r(1, 2), r(3, 4), r(10, 12), r(11, 11)]),
            vec![r(1, 6), r(10, 12)]
        );
        assert_eq!(
            subtract_ranges(&[r(1, 10)], &[r(3, 4), r(10, 20)]),
            vec![r(1, 2), r(5, 9)]
        );
        assert_eq!(
            subtract_ranges(&[r(0, u64::MAX)], &[r(0, 0)]),
            vec![r(1, u64::MAX)]
        );
        assert!(ranges_contain(&[r(1, 10)], &[r(2, 3), r(9, 10)]));
        assert!(!ranges_contain(&[r(1, 10)], &[r(9, 11)]));
        assert_eq!(ranges_len(&[r(1, 10), r(5, 12)]), 12);
        let ports = sum(
            &[Resource::ranges("ports", &[(1, 2)])],
            &[Resource::ranges("ports", &[(3, 5)])],
        );
        assert_eq!(ports[0].range_pairs(), vec![(1, 5)]);
    }

    #[test]
    fn set_arithmetic() {
        let a = [Resource::set("disks", ["a", "b"])];
        let b = [Resource::set("disks", ["b", "c"])];
        let s = sum(&a, &b);
        assert_eq!(
            s[0].set.as_ref().map(|s| s.item.clone()),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert!(contains(&s, &a));
        assert!(!contains(&a, &b));
        let d = subtract(&s, &b);
        assert_eq!(d, vec![Resource::set("disks", ["a"])]);
    }

    #[test]
    fn parse_and_display() {
        let rs = parse("cpus:4;mem:8192;disk:10000;ports:[31000-32000]").expect("parse");
        assert_eq!(scalar_total(&rs, "cpus"), 4.0);
        assert_eq!(scalar_total(&rs, "mem"), 8192.0);
        assert_eq!(
            ranges_total(&rs, "ports"),
            vec![Range {
                begin: 31000,
                end: 32000
            }]
        );
        assert_eq!(
            Display(&rs).to_string(),
            "cpus:4;mem:8192;disk:10000;ports:[31000-32000]"
        );
        let rs = parse("cpus(concord):2; gpus:{a,b}; ports:[1-2, 4-5]").expect("parse");
        assert_eq!(rs[0].reserved_role(), Some("concord"));
        assert_eq!(
            format_ranges(
                &rs[2]
                    .ranges
                    .as_ref()
                    .map(|r| r.range.clone())
                    .unwrap_or_default()
            ),
            "[1-2, 4-5]"
        );
        assert!(parse("cpus").is_err());
        assert!(parse("cpus:x").is_err());
        assert!(parse("ports:[5-1]").is_err());
        assert!(parse("cpus:-1").is_err());
    }
}
