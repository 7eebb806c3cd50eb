//! Prometheus metrics of the controller, served at `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub code: u16,
}

/// Labels of an apply.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApplyLabels {
    pub outcome: String,
}

/// All controller metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub http_requests: Family<RequestLabels, Counter>,
    pub applies: Family<ApplyLabels, Counter>,
    pub watches_open: Gauge,
    /// Time to reconcile one topology key (compute + issuing calls, not waiting on them).
    pub reconcile_seconds: Histogram,
    /// Dirty topology keys waiting to be reconciled.
    pub queue_depth: Gauge,
    /// Tasks the reconciler tracks.
    pub tasks: Gauge,
    /// Topologies known to the reconciler.
    pub topologies: Gauge,
    /// 1 while this replica is the leader.
    pub leader: Gauge,
    /// Executor `/metrics` or `/traces` answers refused for exceeding the size cap.
    pub scrape_oversized: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("concord");
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP API requests by route and status",
            http_requests.clone(),
        );
        let applies = Family::<ApplyLabels, Counter>::default();
        registry.register("applies", "Topology applies by outcome", applies.clone());
        let watches_open = Gauge::default();
        registry.register("watches_open", "Open watch streams", watches_open.clone());
        // 10 µs .. ~5 s: reconciling one key should stay well under a millisecond.
        let reconcile_seconds = Histogram::new(exponential_buckets(1e-5, 2.5, 15));
        registry.register(
            "reconcile_duration_seconds",
            "Time to reconcile one topology",
            reconcile_seconds.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "reconcile_queue_depth",
            "Topologies waiting to be reconciled",
            queue_depth.clone(),
        );
        let tasks = Gauge::default();
        registry.register("tasks", "Tasks tracked by the reconciler", tasks.clone());
        let topologies = Gauge::default();
        registry.register(
            "topologies",
            "Topologies known to the reconciler",
            topologies.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica is the leader",
            leader.clone(),
        );
        let scrape_oversized = Counter::default();
        registry.register(
            "scrape_oversized_bodies",
            "Executor metrics or traces answers refused for exceeding the size cap",
            scrape_oversized.clone(),
        );
        Self {
            registry: Arc::new(registry),
            http_requests,
            applies,
            watches_open,
            reconcile_seconds,
            queue_depth,
            tasks,
            topologies,
            leader,
            scrape_oversized,
        }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
