//! Normalisation: equal meaning ⇒ equal value (DESIGN.md, lesson 6).
//!
//! Defaults are already applied by serde while parsing; [`normalize`] handles what serde
//! cannot: values that are spelled differently but mean the same thing.

use crate::topology::{DEFAULT_NAMESPACE, Runtime, Topology};

/// Brings `t` into its canonical form, in place. Idempotent.
///
/// - an empty `metadata.namespace` becomes `default`;
/// - `status` is dropped (it is never part of what a user declares);
/// - an empty `artifacts[].outputFile` becomes absent;
/// - `-0.0` resource and back-off values become `0.0` (they compare equal but would
///   serialise, and therefore hash, differently).
pub fn normalize(t: &mut Topology) {
    if t.metadata.namespace.is_empty() {
        t.metadata.namespace = DEFAULT_NAMESPACE.to_owned();
    }
    t.status = None;
    for op in &mut t.spec.operators {
        if let Runtime::Process(p) = &mut op.runtime {
            for artifact in &mut p.artifacts {
                if artifact.output_file.as_deref() == Some("") {
                    artifact.output_file = None;
                }
            }
        }
        let r = &mut op.resources;
        for v in [&mut r.cpus, &mut r.mem, &mut r.disk] {
            positive_zero(v);
        }
        let b = &mut op.restart_backoff;
        for v in [
            &mut b.initial_seconds,
            &mut b.factor,
            &mut b.max_seconds,
            &mut b.reset_after_seconds,
        ] {
            positive_zero(v);
        }
    }
}

fn positive_zero(v: &mut f64) {
    if *v == 0.0 {
        *v = 0.0;
    }
}
