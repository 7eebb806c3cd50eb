//! The Kafka end-to-end stack shared by `kafka.rs` and `faults.rs`: a real broker
//! (Tansu), etcd, mesos-lite, the controller and executor tasks running
//! `kafka-source -> map -> kafka-sink`, with helpers that produce and read records by id.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use concord_e2e::kafka::Kafka;
use concord_e2e::{Controller, Etcd, MesosLite, concord, wait_for};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;

pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// One stack at a time: each runs a broker, etcd, mesos-lite, the controller and up to a
/// dozen executors, which is all two cores can take without timing out group joins.
pub static ONE_STACK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
pub const PARTITIONS: i32 = 4;

/// Fields drop in order: controller, mesos-lite (stops its tasks), etcd, broker.
pub struct Stack {
    pub controller: Controller,
    pub mesos: MesosLite,
    pub etcd: Etcd,
    pub kafka: Kafka,
    pub dir: tempfile::TempDir,
    /// Released last, after everything above has stopped.
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Stack {
    pub async fn start() -> Self {
        let serial = ONE_STACK.lock().await;
        let kafka = Kafka::start().await;
        let etcd = Etcd::start().await;
        let mesos = MesosLite::start(2, 4.0, 4096).await;
        let controller = Controller::start_scheduling(&etcd.url, &mesos.url).await;
        Self {
            controller,
            mesos,
            etcd,
            kafka,
            dir: tempfile::tempdir().expect("tmp"),
            _serial: serial,
        }
    }

    pub fn cli(&self, args: &[&str]) {
        let out = concord(&self.controller.url, args);
        assert!(
            out.status.success(),
            "concord {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn apply(&self, yaml: &str) {
        let path = self.dir.path().join("topology.yaml");
        std::fs::write(&path, yaml).expect("write");
        self.cli(&["apply", "-f", path.to_str().expect("utf-8")]);
    }

    /// PIDs of the running tasks of `op`, from Mesos.
    pub async fn pids(&self, op: &str) -> Vec<(String, u64)> {
        self.mesos
            .running_tasks()
            .await
            .into_iter()
            .filter(|(id, _)| id.split('.').nth(2) == Some(op))
            .filter_map(|(id, pid)| pid.map(|p| (id, p)))
            .collect()
    }

    /// SIGKILL to one task of `op`, behind Mesos' back.
    pub async fn kill_one(&self, op: &str) {
        let pids = self.pids(op).await;
        let (task, pid) = pids
            .first()
            .unwrap_or_else(|| panic!("no running task of {op}"));
        let st = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(st.success(), "kill -9 {pid} ({task})");
        eprintln!("killed {task} (pid {pid})");
    }

    /// Metrics text of every registered task of `op` in topology `name`, by task ID.
    pub async fn task_metrics(&self, name: &str, op: &str) -> BTreeMap<String, String> {
        let prefix = format!("/concord/endpoints/default/{name}/{op}/");
        let mut out = BTreeMap::new();
        for (key, value) in self.etcd.dump(&prefix).await {
            let Ok(ep) = serde_json::from_str::<serde_json::Value>(&value) else {
                continue;
            };
            let Some(addr) = ep["metricsAddr"].as_str() else {
                continue;
            };
            if let Ok(r) = reqwest::get(format!("http://{addr}/metrics")).await
                && let Ok(text) = r.text().await
            {
                out.insert(key.rsplit('/').next().unwrap_or_default().to_owned(), text);
            }
        }
        out
    }

    /// Partition -> tasks holding it, from the sources' `concord_kafka_partition_assigned`.
    pub async fn assignment(&self, name: &str) -> BTreeMap<i32, Vec<String>> {
        let mut owners: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for (task, text) in self.task_metrics(name, "source").await {
            for (labels, value) in samples(&text, "concord_kafka_partition_assigned") {
                if value == 1.0
                    && let Some(p) = labels.get("partition").and_then(|p| p.parse().ok())
                {
                    owners.entry(p).or_default().push(task.clone());
                }
            }
        }
        owners
    }

    /// Waits until every partition of the input is read by exactly one running source task.
    pub async fn wait_assigned_once(&self, name: &str, instances: usize) {
        wait_for(
            Duration::from_secs(120),
            "each partition read by one source instance",
            || async {
                let running: BTreeSet<String> = self
                    .pids("source")
                    .await
                    .into_iter()
                    .map(|(t, _)| t)
                    .collect();
                if running.len() != instances {
                    return None;
                }
                let owners = self.assignment(name).await;
                let all_once = (0..PARTITIONS).all(|p| {
                    owners
                        .get(&p)
                        .is_some_and(|o| o.len() == 1 && running.contains(&o[0]))
                });
                all_once.then_some(())
            },
        )
        .await;
    }

    pub async fn summed(&self, name: &str, op: &str, metric: &str) -> f64 {
        self.task_metrics(name, op)
            .await
            .values()
            .flat_map(|t| samples(t, metric))
            .map(|(_, v)| v)
            .sum()
    }
}

/// Samples of `metric` in Prometheus text: (labels, value).
pub fn samples(text: &str, metric: &str) -> Vec<(HashMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once("} ") {
                Some((l, v)) => (l, v),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(v) => ("", v),
                None => continue,
            },
        };
        let labels = labels
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
            .collect();
        if let Ok(v) = value.trim().parse() {
            out.push((labels, v));
        }
    }
    out
}

pub fn pipeline(name: &str, delivery: &str, bootstrap: &str, sources: u32, maps: u32) -> String {
    format!(
        r#"apiVersion: concord.io/v1alpha1
kind: Topology
metadata: {{name: {name}}}
spec:
  delivery: {delivery}
  operators:
    - name: source
      instances: {sources}
      runtime: {{builtin: {{name: kafka-source}}}}
      config:
        bootstrapServers: "{bootstrap}"
        topic: in-{name}
        startFrom: earliest
        sessionTimeoutMs: 3000
        checkpointIntervalMs: 100
        ackTimeoutMs: 10000
      resources: {{cpus: 0.1, mem: 64}}
      restartBackoff: {{initialSeconds: 1, factor: 2, maxSeconds: 4}}
    - name: map
      instances: {maps}
      runtime: {{builtin: {{name: map}}}}
      inputs: [{{from: source, partitioning: shuffle}}]
      resources: {{cpus: 0.1, mem: 32}}
      restartBackoff: {{initialSeconds: 1, factor: 2, maxSeconds: 4}}
    - name: sink
      instances: 2
      runtime: {{builtin: {{name: kafka-sink}}}}
      config:
        bootstrapServers: "{bootstrap}"
        topic: out-{name}
        lingerMs: 5
      inputs: [{{from: map, partitioning: key}}]
      resources: {{cpus: 0.1, mem: 64}}
      restartBackoff: {{initialSeconds: 1, factor: 2, maxSeconds: 4}}
"#
    )
}

/// Produces `count` records with ids `first..first+count` (key and value carry the id)
/// in `chunks` spread over `over`.
pub async fn produce_ids(
    kafka: &Kafka,
    topic: &str,
    first: u64,
    count: u64,
    chunks: u64,
    over: Duration,
) {
    let per = count / chunks;
    let pause = over / chunks as u32;
    for c in 0..chunks {
        let ids: Vec<String> = (first + c * per..first + (c + 1) * per)
            .map(|i| format!("id-{i:07}"))
            .collect();
        let values: Vec<String> = ids.iter().map(|id| format!(r#"{{"id":"{id}"}}"#)).collect();
        let records: Vec<(&[u8], &[u8])> = ids
            .iter()
            .zip(&values)
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        kafka.produce(topic, &records).await;
        tokio::time::sleep(pause).await;
    }
}

/// Reads the output topic from the start until every id in `want` has been seen or
/// `timeout` passes; returns how often each id was seen.
pub async fn read_ids(
    kafka: &Kafka,
    topic: &str,
    want: &BTreeSet<String>,
    timeout: Duration,
) -> HashMap<String, u32> {
    let consumer = kafka.consumer(&format!("check-{}", uuid_ish()), topic);
    let want = want.clone();
    tokio::task::spawn_blocking(move || {
        let mut seen: HashMap<String, u32> = HashMap::new();
        let deadline = Instant::now() + timeout;
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                    *seen.entry(key).or_default() += 1;
                    quiet_since = Instant::now();
                }
                Some(Err(e)) => eprintln!("consumer error: {e}"),
                None => {
                    // Everything arrived and nothing more for a while: duplicates counted.
                    if want.iter().all(|id| seen.contains_key(id))
                        && quiet_since.elapsed() > Duration::from_secs(3)
                    {
                        break;
                    }
                }
            }
        }
        consumer.unsubscribe();
        seen
    })
    .await
    .expect("reader")
}

pub fn uuid_ish() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

pub fn ids(first: u64, count: u64) -> BTreeSet<String> {
    (first..first + count)
        .map(|i| format!("id-{i:07}"))
        .collect()
}
