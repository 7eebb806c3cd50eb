//! Kafka to Kafka benchmark: records/s and latency of `kafka-source -> map -> kafka-sink`
//! under `at-most-once` and `at-least-once`, side by side in one run.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! ./target/release/concord-kafka-bench [ROUNDS=3] [--records M=1000000] [--rate R=5000] [--seconds S=15] [--source-fetch-wait-ms N]
//! ```
//!
//! Starts Tansu (in-memory), etcd, mesos-lite (2 agents) and the controller on free
//! loopback ports, with the binaries next to this one (`target/release` when run from
//! there). Every round runs both guarantees, at-most-once first, so both see the same
//! machine; each run is a fresh topology on fresh topics:
//!
//! - **throughput**: M records (100-byte values, unique keys) are written to a
//!   4-partition input topic; the topology is applied with `source` at 0 instances, and
//!   once map and sink are Ready the source is scaled to 2. A consumer of the output topic
//!   counts distinct keys; records/s = (M − 1) / (time the M-th distinct key arrived −
//!   time the first output record arrived). Duplicates (output records − M) are reported.
//! - **latency**: with the whole topology Ready and every input partition assigned, a
//!   producer writes R records/s (batches every 10 ms) for S seconds, each record's Kafka
//!   timestamp its produce time and its value the produce time in µs; a consumer of the
//!   output topic records receive time − produce time of every record produced after a
//!   2 s warm-up. A run that is still missing records 30 s after producing ended reports
//!   them as lost.
//! - **reference** (once per round): the same paced producer and consumer on one topic,
//!   no topology: the broker and clients on their own.
//!
//! Prints a Markdown table (median (min–max) over rounds) and the at-least-once /
//! at-most-once ratios of the medians. Nothing is asserted: a run that does not finish in
//! time is an error.
//!
//! **Soak** (`--soak`, with `--seconds 600` for the 10-minute soak of `docs/benchmarks.md`):
//! only the latency run, once per guarantee, at R records/s for S seconds with no fault;
//! prints sent, lost (ids never seen in the output) and duplicated (ids seen more than
//! once) per guarantee, and exits 1 if any was lost or duplicated.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use concord_e2e::kafka::Kafka;
use concord_e2e::{Controller, Etcd, MesosLite};
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 4;
const VALUE_LEN: usize = 100;
const WARMUP: Duration = Duration::from_secs(2);
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest a throughput run may take from the scale of the source to M records out.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest the latency reader waits for the rest of the output once producing ended.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const GUARANTEES: [&str; 2] = ["at-most-once", "at-least-once"];

#[derive(Clone, Copy)]
struct Args {
    rounds: usize,
    records: u64,
    rate: u64,
    seconds: u64,
    /// `fetch.wait.max.ms` for the sources (librdkafka's default, 500, when unset).
    fetch_wait_ms: Option<u64>,
    /// Only the latency run per guarantee, accounted for lost and duplicated records.
    soak: bool,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        rounds: 3,
        records: 1_000_000,
        rate: 5_000,
        seconds: 15,
        fetch_wait_ms: None,
        soak: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| -> Result<u64> {
            let v = it.next().ok_or_else(|| anyhow!("{flag} needs a value"))?;
            v.parse()
                .with_context(|| format!("{flag} {v}: not a number"))
        };
        match arg.as_str() {
            "--soak" => a.soak = true,
            "--records" => a.records = value("--records")?,
            "--rate" => a.rate = value("--rate")?,
            "--seconds" => a.seconds = value("--seconds")?,
            "--source-fetch-wait-ms" => a.fetch_wait_ms = Some(value("--source-fetch-wait-ms")?),
            "-h" | "--help" => {
                println!(
                    "concord-kafka-bench [ROUNDS=3] [--records 1000000] [--rate 5000] [--seconds 15] [--source-fetch-wait-ms N] [--soak]"
                );
                std::process::exit(0);
            }
            n => {
                a.rounds = n
                    .parse()
                    .with_context(|| format!("ROUNDS {n}: not a number"))?
            }
        }
    }
    if a.rounds == 0 || a.records == 0 || a.rate == 0 || a.seconds <= WARMUP.as_secs() {
        bail!("ROUNDS, --records and --rate must be > 0 and --seconds > 2 (the warm-up)");
    }
    Ok(a)
}

struct Stack {
    controller: Controller,
    mesos: MesosLite,
    _etcd: Etcd,
    kafka: Kafka,
    etcd_url: String,
    http: reqwest::Client,
}

impl Stack {
    fn url(&self, name: &str) -> String {
        format!(
            "{}/apis/concord.io/v1alpha1/namespaces/default/topologies/{name}",
            self.controller.url
        )
    }

    async fn put(&self, body: &serde_json::Value) -> Result<()> {
        let name = body["metadata"]["name"].as_str().unwrap_or_default();
        let resp = self.http.put(self.url(name)).json(body).send().await?;
        if !resp.status().is_success() {
            bail!("apply {name}: {}", resp.text().await.unwrap_or_default());
        }
        Ok(())
    }

    async fn wait_ready(&self, name: &str) -> Result<()> {
        // The harness panics on timeout; keep it bounded here as well.
        tokio::time::timeout(
            READY_TIMEOUT + Duration::from_secs(5),
            self.controller.wait_ready(name, READY_TIMEOUT),
        )
        .await
        .map_err(|_| anyhow!("{name} not Ready in {READY_TIMEOUT:?}"))?;
        Ok(())
    }

    /// Deletes the topology and waits until it and its tasks are gone.
    async fn delete(&self, name: &str) -> Result<()> {
        self.http.delete(self.url(name)).send().await?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let gone = self.controller.topology(name).await.is_none();
            let tasks = self
                .mesos
                .running_tasks()
                .await
                .into_keys()
                .filter(|id| id.split('.').nth(1) == Some(name))
                .count();
            if gone && tasks == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{name}: deleted, but {tasks} tasks still run after 120 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Metrics text of every registered task of `op` in `name`.
    async fn metrics(&self, name: &str, op: &str) -> Vec<String> {
        let prefix = format!("/concord/endpoints/default/{name}/{op}/");
        let Ok(mut client) = etcd_client::Client::connect([self.etcd_url.as_str()], None).await
        else {
            return Vec::new();
        };
        let Ok(resp) = client
            .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
            .await
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for kv in resp.kvs() {
            let Ok(ep) = serde_json::from_slice::<serde_json::Value>(kv.value()) else {
                continue;
            };
            let Some(addr) = ep["metricsAddr"].as_str() else {
                continue;
            };
            if let Ok(r) = self.http.get(format!("http://{addr}/metrics")).send().await
                && let Ok(text) = r.text().await
            {
                out.push(text);
            }
        }
        out
    }

    /// Sum of `metric` (every label set) over the tasks of `ops`.
    async fn summed(&self, name: &str, ops: &[&str], metric: &str, label: &str) -> f64 {
        let mut sum = 0.0;
        for op in ops {
            for text in self.metrics(name, op).await {
                sum += samples(&text, metric)
                    .filter(|(l, _)| l.contains(label))
                    .map(|(_, v)| v)
                    .sum::<f64>();
            }
        }
        sum
    }

    /// Waits until every input partition is assigned to exactly one of 2 sources.
    async fn wait_assigned(&self, name: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let texts = self.metrics(name, "source").await;
            let mut owners: BTreeMap<String, u32> = BTreeMap::new();
            for text in &texts {
                for (labels, v) in samples(text, "concord_kafka_partition_assigned") {
                    if v == 1.0 {
                        *owners.entry(labels.to_owned()).or_default() += 1;
                    }
                }
            }
            if texts.len() == 2
                && owners.len() == PARTITIONS as usize
                && owners.values().all(|n| *n == 1)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{name}: input partitions not assigned once each within 60 s: {owners:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `(labels, value)` of the samples of `metric` in Prometheus text.
fn samples<'a>(text: &'a str, metric: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    text.lines().filter_map(move |line| {
        let rest = line.strip_prefix(metric)?;
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        Some((labels, value.trim().parse().ok()?))
    })
}

fn topology(
    a: &Args,
    name: &str,
    delivery: &str,
    bootstrap: &str,
    sources: u32,
    input: &str,
    output: &str,
) -> serde_json::Value {
    let res = serde_json::json!({"cpus": 0.1, "mem": 256});
    let mut t = serde_json::json!({
        "apiVersion": "concord.io/v1alpha1", "kind": "Topology",
        "metadata": {"name": name},
        "spec": {"delivery": delivery, "operators": [
            {"name": "source", "instances": sources,
             "runtime": {"builtin": {"name": "kafka-source"}},
             "config": {"bootstrapServers": bootstrap, "topic": input,
                        "startFrom": "earliest", "sessionTimeoutMs": 3000},
             "resources": res},
            {"name": "map", "instances": 2, "runtime": {"builtin": {"name": "map"}},
             "inputs": [{"from": "source", "partitioning": "shuffle"}], "resources": res},
            {"name": "sink", "instances": 2, "runtime": {"builtin": {"name": "kafka-sink"}},
             "config": {"bootstrapServers": bootstrap, "topic": output},
             "inputs": [{"from": "map", "partitioning": "key"}], "resources": res}
        ]}
    });
    if let Some(ms) = a.fetch_wait_ms {
        t["spec"]["operators"][0]["config"]["properties"] =
            serde_json::json!({"fetch.wait.max.ms": ms.to_string()});
    }
    t
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Counts the producer's deliveries and failures.
#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

fn producer(kafka: &Kafka, linger_ms: u32) -> Result<ThreadedProducer<Deliveries>> {
    Ok(kafka
        .config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", linger_ms.to_string())
        .set("message.timeout.ms", "60000")
        .create_with_context(Deliveries::default())?)
}

/// Sends one record, waiting while the producer's queue is full.
fn send(
    p: &ThreadedProducer<Deliveries>,
    topic: &str,
    key: &[u8],
    value: &[u8],
    ts_ms: Option<i64>,
) -> Result<()> {
    let mut rec = BaseRecord::to(topic).key(key).payload(value);
    if let Some(ts) = ts_ms {
        rec = rec.timestamp(ts);
    }
    loop {
        match p.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                rec = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => bail!("produce to {topic}: {e}"),
        }
    }
}

fn finish(p: &ThreadedProducer<Deliveries>, topic: &str, sent: u64) -> Result<()> {
    p.flush(Duration::from_secs(60))
        .with_context(|| format!("flush to {topic}"))?;
    let (ok, failed) = (
        p.context().ok.load(Ordering::Relaxed),
        p.context().failed.load(Ordering::Relaxed),
    );
    if ok != sent || failed > 0 {
        bail!("{topic}: {sent} sent, {ok} acknowledged, {failed} failed");
    }
    Ok(())
}

/// A consumer assigned to every partition of `topic` from the beginning (no group).
fn output_consumer(kafka: &Kafka, topic: &str) -> Result<BaseConsumer> {
    let consumer: BaseConsumer = kafka
        .config()
        .set("group.id", format!("bench-reader-{topic}"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .set("enable.partition.eof", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    Ok(consumer)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await?
}

struct Throughput {
    records_per_s: f64,
    /// Source scaled to 2 -> first output record.
    startup: Duration,
    duplicates: u64,
    preload_per_s: f64,
}

fn key(i: u64) -> Vec<u8> {
    format!("k{i:010}").into_bytes()
}

async fn throughput(s: &Stack, run: &str, delivery: &str, a: &Args) -> Result<Throughput> {
    let m = a.records;
    let (input, output) = (format!("in-{run}"), format!("out-{run}"));
    s.kafka.create_topic(&input, PARTITIONS).await;
    s.kafka.create_topic(&output, PARTITIONS).await;
    // Pre-load the input while nothing reads it.
    let p = producer(&s.kafka, 5)?;
    let topic = input.clone();
    let preload_per_s = blocking(move || {
        let t0 = Instant::now();
        let value = [b'v'; VALUE_LEN];
        for i in 0..m {
            send(&p, &topic, &key(i), &value, None)?;
        }
        finish(&p, &topic, m)?;
        Ok(m as f64 / t0.elapsed().as_secs_f64())
    })
    .await?;

    let bootstrap = s.kafka.bootstrap();
    let mut body = topology(a, run, delivery, &bootstrap, 0, &input, &output);
    s.put(&body).await?;
    s.wait_ready(run).await?;

    let consumer = output_consumer(&s.kafka, &output)?;
    body["spec"]["operators"][0]["instances"] = 2.into();
    let scaled = Instant::now();
    s.put(&body).await?;
    let (first, last, total) = blocking(move || {
        let mut seen: HashSet<Vec<u8>> = HashSet::with_capacity(m as usize);
        let mut total = 0u64;
        let mut first: Option<Instant> = None;
        let deadline = scaled + RUN_TIMEOUT;
        while (seen.len() as u64) < m {
            if Instant::now() > deadline {
                bail!(
                    "{} of {m} distinct records out in {RUN_TIMEOUT:?}",
                    seen.len()
                );
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(msg)) => {
                    total += 1;
                    seen.insert(msg.key().unwrap_or_default().to_vec());
                    first.get_or_insert_with(Instant::now);
                }
                Some(Err(e)) => eprintln!("output consumer: {e}"),
                None => {}
            }
        }
        let first = first.ok_or_else(|| anyhow!("no output"))?;
        Ok((first, Instant::now(), total))
    })
    .await?;
    let secs = last.duration_since(first).as_secs_f64();
    Ok(Throughput {
        // The first record starts the clock, so it is not counted.
        records_per_s: (m - 1) as f64 / secs,
        startup: first.duration_since(scaled),
        duplicates: total - m,
        preload_per_s,
    })
}

struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    measured: usize,
    lost: u64,
    /// Records sent once that arrived more than once.
    duplicated: u64,
    sent: u64,
}

/// `delivery` None: the reference, producer -> Tansu -> consumer of the input topic
/// itself, no topology.
async fn latency(s: &Stack, run: &str, delivery: Option<&str>, a: &Args) -> Result<Latency> {
    let input = format!("in-{run}");
    s.kafka.create_topic(&input, PARTITIONS).await;
    let output = match delivery {
        Some(delivery) => {
            let output = format!("out-{run}");
            s.kafka.create_topic(&output, PARTITIONS).await;
            s.put(&topology(
                a,
                run,
                delivery,
                &s.kafka.bootstrap(),
                2,
                &input,
                &output,
            ))
            .await?;
            s.wait_ready(run).await?;
            s.wait_assigned(run).await?;
            output
        }
        None => input.clone(),
    };

    let consumer = output_consumer(&s.kafka, &output)?;
    let stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(AtomicU64::new(u64::MAX));
    let start_us = now_us();
    let warm_us = start_us + WARMUP.as_micros() as u64;
    let reader = {
        let (stop, produced) = (stop.clone(), produced.clone());
        tokio::task::spawn_blocking(move || {
            let mut lat_us: Vec<u64> = Vec::new();
            let mut seen: HashSet<u64> = HashSet::new();
            let mut received = 0u64;
            let mut done_at: Option<Instant> = None;
            loop {
                let want = produced.load(Ordering::Relaxed);
                if seen.len() as u64 >= want || stop.load(Ordering::Relaxed) {
                    break;
                }
                if want != u64::MAX
                    && done_at.get_or_insert_with(Instant::now).elapsed() > DRAIN_TIMEOUT
                {
                    break;
                }
                match consumer.poll(Duration::from_millis(50)) {
                    Some(Ok(msg)) => {
                        let now = now_us();
                        let v = msg.payload().unwrap_or_default();
                        let (Some(sent), Some(seq)) = (
                            v.get(0..8)
                                .and_then(|b| b.try_into().ok())
                                .map(u64::from_be_bytes),
                            v.get(8..16)
                                .and_then(|b| b.try_into().ok())
                                .map(u64::from_be_bytes),
                        ) else {
                            continue;
                        };
                        received += 1;
                        if seen.insert(seq) && sent >= warm_us {
                            lat_us.push(now.saturating_sub(sent));
                        }
                    }
                    Some(Err(e)) => eprintln!("output consumer: {e}"),
                    None => {}
                }
            }
            (lat_us, seen.len() as u64, received)
        })
    };

    let p = producer(&s.kafka, 1)?;
    let (topic, rate, secs) = (input.clone(), a.rate, a.seconds);
    let sent = blocking(move || {
        let tick = Duration::from_millis(10);
        let t0 = Instant::now();
        let total = rate * secs;
        let mut sent = 0u64;
        let mut k = 0u32;
        while sent < total {
            k += 1;
            let target = (rate * u64::from(k) / 100).min(total);
            while sent < target {
                let us = now_us();
                let mut value = [b'p'; VALUE_LEN];
                value[0..8].copy_from_slice(&us.to_be_bytes());
                value[8..16].copy_from_slice(&sent.to_be_bytes());
                send(&p, &topic, &key(sent), &value, Some((us / 1000) as i64))?;
                sent += 1;
            }
            if let Some(wait) = (t0 + tick * k).checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        finish(&p, &topic, sent)?;
        Ok(sent)
    })
    .await;
    let sent = match sent {
        Ok(n) => n,
        Err(e) => {
            stop.store(true, Ordering::Relaxed);
            let _ = reader.await;
            return Err(e);
        }
    };
    produced.store(sent, Ordering::Relaxed);
    let (mut lat, distinct, received) = reader.await?;
    if lat.is_empty() {
        bail!("{run}: no record after the warm-up reached the output");
    }
    lat.sort_unstable();
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
    Ok(Latency {
        p50_ms: q(0.50),
        p99_ms: q(0.99),
        max_ms: q(1.0),
        measured: lat.len(),
        lost: sent.saturating_sub(distinct),
        duplicated: received.saturating_sub(distinct),
        sent,
    })
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn spread(v: &[f64], digits: usize) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.digits$} ({lo:.digits$}–{hi:.digits$})", median(v))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn date_utc() -> String {
    std::process::Command::new("date")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}

#[derive(Default)]
struct Results {
    tput: Vec<f64>,
    startup: Vec<f64>,
    dups: Vec<f64>,
    preload: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    max: Vec<f64>,
    lost: Vec<f64>,
    measured: Vec<f64>,
    dropped: Vec<f64>,
    failed_markers: Vec<f64>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = parse_args()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // On a signal the stack is dropped, which stops every process it started.
    tokio::select! {
        r = run(a) => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        _ = term.recv() => bail!("terminated"),
    }
}

async fn run(a: Args) -> Result<()> {
    let command: Vec<String> = std::env::args().collect();
    println!("command: {}", command.join(" "));
    println!("date -u: {}", date_utc());
    println!(
        "nproc: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("load average at start: {}", loadavg());
    println!(
        "rounds {}, throughput records {}, latency {} records/s for {} s ({} s warm-up), source fetch.wait.max.ms {}",
        a.rounds,
        a.records,
        a.rate,
        a.seconds,
        WARMUP.as_secs(),
        a.fetch_wait_ms
            .map_or("librdkafka default (500)".to_owned(), |ms| ms.to_string())
    );

    let kafka = Kafka::start().await;
    let etcd = Etcd::start().await;
    let mesos = MesosLite::start(2, 4.0, 8192).await;
    let controller = Controller::start_scheduling(&etcd.url, &mesos.url).await;
    let s = Stack {
        controller,
        mesos,
        etcd_url: etcd.url.clone(),
        _etcd: etcd,
        kafka,
        http: reqwest::Client::new(),
    };

    if a.soak {
        return soak(&s, &a).await;
    }
    let mut results: BTreeMap<&str, Results> = BTreeMap::new();
    let started = Instant::now();
    let mut direct: Vec<Latency> = Vec::new();
    for round in 0..a.rounds {
        let l = latency(&s, &format!("d{round}"), None, &a).await?;
        eprintln!(
            "[{:>4.0} s] round {round} reference producer -> Tansu -> consumer latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, load {}",
            started.elapsed().as_secs_f64(),
            l.p50_ms,
            l.p99_ms,
            l.max_ms,
            loadavg()
        );
        direct.push(l);
        for (g, delivery) in GUARANTEES.iter().enumerate() {
            let short = ["amo", "alo"][g];
            let run = format!("t{round}{short}");
            let t = throughput(&s, &run, delivery, &a).await?;
            let r = results.entry(delivery).or_default();
            r.dropped.push(
                s.summed(
                    &run,
                    &["source", "map", "sink"],
                    "concord_dropped_records_total",
                    "",
                )
                .await,
            );
            r.failed_markers.push(
                s.summed(
                    &run,
                    &["source", "map", "sink"],
                    "concord_markers_total",
                    "failed",
                )
                .await,
            );
            s.delete(&run).await?;
            eprintln!(
                "[{:>4.0} s] round {round} {delivery} throughput: {:.0} records/s, first output {:.2} s after scale, {} duplicates (pre-load {:.0}/s), load {}",
                started.elapsed().as_secs_f64(),
                t.records_per_s,
                t.startup.as_secs_f64(),
                t.duplicates,
                t.preload_per_s,
                loadavg()
            );
            r.tput.push(t.records_per_s);
            r.startup.push(t.startup.as_secs_f64());
            r.dups.push(t.duplicates as f64);
            r.preload.push(t.preload_per_s);

            let run = format!("l{round}{short}");
            let l = latency(&s, &run, Some(delivery), &a).await?;
            s.delete(&run).await?;
            eprintln!(
                "[{:>4.0} s] round {round} {delivery} latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} records, {} lost, load {}",
                started.elapsed().as_secs_f64(),
                l.p50_ms,
                l.p99_ms,
                l.max_ms,
                l.measured,
                l.lost,
                loadavg()
            );
            r.p50.push(l.p50_ms);
            r.p99.push(l.p99_ms);
            r.max.push(l.max_ms);
            r.lost.push(l.lost as f64);
            r.measured.push(l.measured as f64);
        }
    }

    println!("load average at end: {}", loadavg());
    println!(
        "total {:.0} s; date -u at end: {}",
        started.elapsed().as_secs_f64(),
        date_utc()
    );
    println!();
    println!(
        "| guarantee ({} rounds, median (min–max)) | records/s | first output after scale, s | duplicates | dropped | failed markers | p50 ms | p99 ms | max ms | latency records (lost) |",
        a.rounds
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for delivery in GUARANTEES {
        let Some(r) = results.get(delivery) else {
            continue;
        };
        println!(
            "| {delivery} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} ({:.0}) |",
            spread(&r.tput, 0),
            spread(&r.startup, 2),
            spread(&r.dups, 0),
            spread(&r.dropped, 0),
            spread(&r.failed_markers, 0),
            spread(&r.p50, 1),
            spread(&r.p99, 1),
            spread(&r.max, 1),
            median(&r.measured),
            r.lost.iter().sum::<f64>(),
        );
    }
    let col = |f: fn(&Latency) -> f64| spread(&direct.iter().map(f).collect::<Vec<_>>(), 1);
    println!(
        "| reference: producer -> Tansu -> consumer, no topology | | | | | | {} | {} | {} | {:.0} ({:.0}) |",
        col(|l| l.p50_ms),
        col(|l| l.p99_ms),
        col(|l| l.max_ms),
        median(&direct.iter().map(|l| l.measured as f64).collect::<Vec<_>>()),
        direct.iter().map(|l| l.lost as f64).sum::<f64>(),
    );
    if let (Some(amo), Some(alo)) = (results.get(GUARANTEES[0]), results.get(GUARANTEES[1])) {
        println!();
        println!(
            "ratio at-least-once / at-most-once (medians): throughput {:.2}, p50 {:.2}, p99 {:.2}",
            median(&alo.tput) / median(&amo.tput),
            median(&alo.p50) / median(&amo.p50),
            median(&alo.p99) / median(&amo.p99),
        );
        println!(
            "pre-load rate into the input (reference, producer -> Tansu): {} records/s",
            spread(
                &amo.preload
                    .iter()
                    .chain(&alo.preload)
                    .copied()
                    .collect::<Vec<_>>(),
                0
            )
        );
    }
    Ok(())
}

/// The failure-free soak: one latency run per guarantee, every record accounted for.
async fn soak(s: &Stack, a: &Args) -> Result<()> {
    let started = Instant::now();
    // The broker and clients alone, for the latency ratios (a minute is enough for them).
    let reference = latency(
        s,
        "soakref",
        None,
        &Args {
            seconds: a.seconds.min(60),
            ..*a
        },
    )
    .await?;
    let mut rows = Vec::new();
    for (g, delivery) in GUARANTEES.iter().enumerate() {
        let run = format!("soak{}", ["amo", "alo"][g]);
        let l = latency(s, &run, Some(delivery), a).await?;
        let failed_markers = s
            .summed(
                &run,
                &["source", "map", "sink"],
                "concord_markers_total",
                "failed",
            )
            .await;
        s.delete(&run).await?;
        eprintln!(
            "[{:>4.0} s] soak {delivery}: {} sent, {} lost, {} duplicated, p50 {:.1} ms, p99 {:.1} ms, load {}",
            started.elapsed().as_secs_f64(),
            l.sent,
            l.lost,
            l.duplicated,
            l.p50_ms,
            l.p99_ms,
            loadavg()
        );
        rows.push((*delivery, l, failed_markers));
    }
    println!("load average at end: {}", loadavg());
    println!("date -u at end: {}", date_utc());
    println!();
    println!(
        "| guarantee (soak, {} records/s for {} s, no fault) | sent | lost | duplicated | failed markers | p50 ms | p99 ms | max ms |",
        a.rate, a.seconds
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (delivery, l, failed) in &rows {
        println!(
            "| {delivery} | {} | {} | {} | {failed:.0} | {:.1} | {:.1} | {:.1} |",
            l.sent, l.lost, l.duplicated, l.p50_ms, l.p99_ms, l.max_ms
        );
    }
    println!(
        "| reference: producer -> Tansu -> consumer, {} s | {} | {} | {} | | {:.1} | {:.1} | {:.1} |",
        a.seconds.min(60),
        reference.sent,
        reference.lost,
        reference.duplicated,
        reference.p50_ms,
        reference.p99_ms,
        reference.max_ms
    );
    println!();
    for (delivery, l, _) in &rows {
        println!(
            "{delivery} / reference: p50 {:.2}x, p99 {:.2}x",
            l.p50_ms / reference.p50_ms,
            l.p99_ms / reference.p99_ms
        );
    }
    if rows.iter().any(|(_, l, _)| l.lost > 0 || l.duplicated > 0) {
        bail!("the soak lost or duplicated records (table above)");
    }
    Ok(())
}
