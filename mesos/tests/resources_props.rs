//! Property tests for resource arithmetic.

use mesos_v1::resources::{self, normalize_ranges, ranges_contain, ranges_len, subtract_ranges};
use mesos_v1::{Range, Resource};
use proptest::prelude::*;

fn ranges() -> impl Strategy<Value = Vec<(u64, u64)>> {
    proptest::collection::vec((0u64..200, 0u64..20).prop_map(|(b, w)| (b, b + w)), 0..6)
}

fn resource_list() -> impl Strategy<Value = Vec<Resource>> {
    (
        0u32..4000,
        0u32..100_000,
        ranges(),
        proptest::option::of("[a-c]{1,8}"),
    )
        .prop_map(|(c, m, p, role)| {
            let mut v = vec![
                Resource::scalar("cpus", f64::from(c) / 1000.0),
                Resource::scalar("mem", f64::from(m) / 10.0),
                Resource::ranges("ports", &p),
            ];
            if let Some(role) = role {
                v.push(Resource::scalar("cpus", 1.0).with_role(role));
            }
            v
        })
}

proptest! {
    #[test]
    fn sum_contains_parts_and_subtract_restores(a in resource_list(), b in resource_list()) {
        let s = resources::sum(&a, &b);
        prop_assert!(resources::contains(&s, &a));
        prop_assert!(resources::contains(&s, &b));
        let back = resources::checked_subtract(&s, &b).expect("contained");
        // Scalars are exact in fixed point; ranges may lose overlap with b, so
        // compare scalar totals and range containment.
        prop_assert_eq!(resources::scalar_total(&back, "cpus"), resources::scalar_total(&a, "cpus"));
        prop_assert_eq!(resources::scalar_total(&back, "mem"), resources::scalar_total(&a, "mem"));
        prop_assert!(resources::contains(&s, &back));
    }

    #[test]
    fn subtract_self_is_empty(a in resource_list()) {
        prop_assert!(resources::subtract(&a, &a).is_empty());
        prop_assert!(resources::contains(&a, &a));
    }

    #[test]
    fn range_set_algebra(a in ranges(), b in ranges()) {
        let to = |v: &[(u64, u64)]| v.iter().map(|&(begin, end)| Range { begin, end }).collect::<Vec<_>>();
        let (ra, rb) = (to(&a), to(&b));
        let diff = subtract_ranges(&ra, &rb);
        // a − b is inside a and disjoint from b.
        prop_assert!(ranges_contain(&ra, &diff));
        let mut both = diff.clone();
        both.extend(rb.iter().copied());
        prop_assert!(ranges_contain(&normalize_ranges(both), &ra));
        prop_assert_eq!(ranges_len(&subtract_ranges(&diff, &rb)), ranges_len(&diff));
        // Normalised ranges are sorted, non-overlapping and non-adjacent.
        let n = normalize_ranges(ra.iter().copied());
        for w in n.windows(2) {
            prop_assert!(w[0].end + 1 < w[1].begin);
        }
        // Cardinality: |a − b| + |a ∩ b| = |a|.
        let inter = subtract_ranges(&ra, &diff);
        prop_assert_eq!(ranges_len(&diff) + ranges_len(&inter), ranges_len(&ra));
    }
}
