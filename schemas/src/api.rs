//! Wire types of the HTTP API shared by the controller and its clients (CLI, dashboard).

use serde::{Deserialize, Serialize};

use crate::{Plan, SpecError, Topology};

/// Path of the API group.
pub const API_BASE: &str = "/apis/concord.io/v1alpha1";

/// `GET .../topologies`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopologyList {
    pub api_version: String,
    pub kind: String,
    /// etcd revision the list is consistent at; watch from here to miss nothing.
    pub resource_version: String,
    /// Paging: `continue` when more objects follow.
    #[serde(default)]
    pub metadata: ListMeta,
    pub items: Vec<Topology>,
}

/// Metadata of a list answer (Kubernetes' `ListMeta`): one request answers at most one
/// page (`?limit=N`, capped by the server); the rest follows with `?continue=TOKEN`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMeta {
    /// The etcd revision every page of this list is read at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Pass it as `?continue=` to get the next page; absent on the last page.
    #[serde(default, rename = "continue", skip_serializing_if = "Option::is_none")]
    pub continue_token: Option<String>,
}

/// What an apply did (or, with `dryRun`, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyOutcome {
    Created,
    Configured,
    Unchanged,
}

impl std::fmt::Display for ApplyOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Configured => "configured",
            Self::Unchanged => "unchanged",
        })
    }
}

/// The answer to `PUT`/`POST` of a topology.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResponse {
    pub outcome: ApplyOutcome,
    pub dry_run: bool,
    /// Per-operator changes against what was stored.
    pub plan: Plan,
    pub object: Topology,
}

/// Kind of a watch event, as in Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum WatchEventType {
    Added,
    Modified,
    Deleted,
    Error,
}

/// One line of a `?watch=true` response (newline-delimited JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatchEvent {
    #[serde(rename = "type")]
    pub kind: WatchEventType,
    /// The topology with its status; absent on `ERROR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Topology>,
    /// etcd revision of this event; pass it back as `resourceVersion` to resume.
    pub revision: String,
    /// On `ERROR`: 410 when the revision is too old (list again), 503 when etcd was lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl WatchEvent {
    /// An event carrying an object.
    pub fn object(kind: WatchEventType, object: Topology, revision: i64) -> Self {
        Self {
            kind,
            object: Some(object),
            revision: revision.to_string(),
            code: None,
            message: None,
        }
    }

    /// A terminal error event.
    pub fn error(code: u16, message: String, revision: i64) -> Self {
        Self {
            kind: WatchEventType::Error,
            object: None,
            revision: revision.to_string(),
            code: Some(code),
            message: Some(message),
        }
    }
}

/// Kubernetes-style error body of every non-2xx answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiStatus {
    pub kind: String,
    pub status: String,
    pub message: String,
    /// `Invalid`, `Conflict`, `NotFound`, `RequestEntityTooLarge`, ...
    pub reason: String,
    pub code: u16,
    /// Validation errors with field paths, on 422.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<SpecError>,
}

/// One Kafka partition a `kafka-source` task holds, from its executor's gauges
/// (`concord_kafka_committed_offset`, `concord_kafka_end_offset`,
/// `concord_kafka_lag_records`, for the partitions whose
/// `concord_kafka_partition_assigned` is 1). Part of `GET .../topologies/NAME/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaPartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The next offset the group will read (the committed position); `null` before the
    /// first commit.
    #[serde(default)]
    pub committed_offset: Option<i64>,
    /// The high watermark from the latest fetch response.
    #[serde(default)]
    pub end_offset: Option<i64>,
    /// `end - committed`: records not yet committed.
    #[serde(default)]
    pub lag_records: Option<i64>,
}

/// The Kafka numbers of one task, or summed over an operator's tasks (then without
/// `partitions`). Absent from the metrics answer for tasks that export no Kafka metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaMetrics {
    /// Partitions held (assigned) now.
    #[serde(default)]
    pub partitions_assigned: u32,
    /// Per task: the partitions held, sorted by topic and partition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<KafkaPartitionLag>,
    /// Summed lag of the partitions held; `null` when none reports one.
    #[serde(default)]
    pub lag_records: Option<i64>,
    /// `concord_replayed_records_total`: records delivered again after a restart or a
    /// partition move (at-least-once).
    #[serde(default)]
    pub replayed_records_total: Option<u64>,
    /// `concord_kafka_produced_total` (kafka-sink).
    #[serde(default)]
    pub produced_total: Option<u64>,
    /// `concord_kafka_produce_errors_total` (kafka-sink).
    #[serde(default)]
    pub produce_errors_total: Option<u64>,
}

impl KafkaMetrics {
    /// Adds another task's numbers into an operator's sum (partitions are counted, not
    /// listed).
    pub fn add(&mut self, other: &KafkaMetrics) {
        fn add<T: std::ops::Add<Output = T> + Copy + Default>(a: &mut Option<T>, b: Option<T>) {
            if let Some(b) = b {
                *a = Some(a.unwrap_or_default() + b);
            }
        }
        self.partitions_assigned += other.partitions_assigned;
        add(&mut self.lag_records, other.lag_records);
        add(
            &mut self.replayed_records_total,
            other.replayed_records_total,
        );
        add(&mut self.produced_total, other.produced_total);
        add(&mut self.produce_errors_total, other.produce_errors_total);
    }
}
