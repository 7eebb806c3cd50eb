//! The contract between the controller and the executors for authenticating data-plane
//! connections (docs/delivery.md, "Authentication"): where a task finds its topology's
//! secret. Defined once here because both sides depend on this crate.

/// Environment variable naming the file that holds the topology's data-plane secret
/// (the file's path, never the secret itself). A relative path is relative to the task's
/// working directory, which is its sandbox.
pub const DATAPLANE_SECRET_FILE_ENV: &str = "CONCORD_DATAPLANE_SECRET_FILE";

/// Where the controller asks Mesos to materialise the secret: a `SECRET` volume at this
/// path relative to the task's sandbox.
pub const DATAPLANE_SECRET_PATH: &str = ".concord/dataplane-secret";

/// Length in bytes of the secrets the controller generates (one per topology).
pub const DATAPLANE_SECRET_LEN: usize = 32;

/// Shortest secret an executor accepts from a file (a hand-made one for a test or a
/// benchmark may be text, but not a trivially guessable one).
pub const DATAPLANE_SECRET_MIN_LEN: usize = 16;

/// Longest secret file an executor reads.
pub const DATAPLANE_SECRET_MAX_LEN: usize = 4096;

/// The etcd key of a topology's spec, `<prefix>/topologies/<ns>/<name>`: the controller
/// stores the `Topology` JSON there; executors watch it to learn which operators consume
/// theirs (an edge exists because a spec declares it, not because an instance runs).
pub fn topology_spec_key(prefix: &str, namespace: &str, name: &str) -> String {
    format!(
        "{}/topologies/{namespace}/{name}",
        prefix.trim_end_matches('/')
    )
}
