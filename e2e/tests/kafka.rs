//! Kafka in and out, end to end: a real broker (Tansu), etcd, mesos-lite, the controller
//! and real executor tasks. `kafka-source -> map -> kafka-sink` runs while one task of
//! each operator is killed with SIGKILL and the middle operator is scaled up and down:
//! under at-least-once every input id reaches the output topic (duplicates are counted
//! and reported); under at-most-once the losses are counted and reported. Partition
//! assignment is checked after every scale of the source: each partition read by
//! exactly one instance.

mod kafka_stack;

use std::time::Duration;

use concord_e2e::wait_for;
use kafka_stack::*;

/// Kills one task of each operator and scales `map` 2 -> 3 -> 1 while `produce` runs.
async fn faults_while(s: &Stack, name: &str, produce: impl std::future::Future<Output = ()>) {
    let faults = async {
        let step = Duration::from_millis(1500);
        tokio::time::sleep(step).await;
        s.kill_one("source").await;
        tokio::time::sleep(step).await;
        s.kill_one("map").await;
        tokio::time::sleep(step).await;
        s.kill_one("sink").await;
        tokio::time::sleep(step).await;
        s.cli(&[
            "scale",
            "topology",
            name,
            "--operator",
            "map",
            "--instances",
            "3",
        ]);
        tokio::time::sleep(step * 2).await;
        s.cli(&[
            "scale",
            "topology",
            name,
            "--operator",
            "map",
            "--instances",
            "1",
        ]);
    };
    tokio::join!(produce, faults);
}

/// Runs `source (2) -> map (2) -> sink (2)` named `name` under `delivery` and, while
/// 8000 ids are produced over 12 s, kills one task of each operator and scales `map`.
/// Returns the stack and the number of ids produced.
async fn run_under_faults(name: &str, delivery: &str) -> (Stack, u64) {
    let s = Stack::start().await;
    s.kafka
        .create_topic(&format!("in-{name}"), PARTITIONS)
        .await;
    s.kafka
        .create_topic(&format!("out-{name}"), PARTITIONS)
        .await;
    s.apply(&pipeline(name, delivery, &s.kafka.bootstrap(), 2, 2));
    s.controller.wait_ready(name, READY_TIMEOUT).await;
    s.wait_assigned_once(name, 2).await;
    let total = 8000;
    let input = format!("in-{name}");
    faults_while(
        &s,
        name,
        produce_ids(&s.kafka, &input, 0, total, 80, Duration::from_secs(12)),
    )
    .await;
    (s, total)
}

#[tokio::test]
async fn at_least_once_loses_nothing_when_tasks_die_and_operators_scale() {
    let name = "alo";
    let (s, total) = run_under_faults(name, "at-least-once").await;
    let want = ids(0, total);
    let seen = read_ids(
        &s.kafka,
        &format!("out-{name}"),
        &want,
        Duration::from_secs(120),
    )
    .await;
    let lost: Vec<&String> = want.iter().filter(|id| !seen.contains_key(*id)).collect();
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    let replayed = s
        .summed(name, "source", "concord_replayed_records_total")
        .await;
    eprintln!(
        "at-least-once: {total} in, {} distinct out, lost {}, duplicates {duplicates}, replayed (live tasks) {replayed}",
        seen.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "lost {} ids, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(
        seen.keys().all(|k| want.contains(k)),
        "output holds ids never produced"
    );

    // Every input record acknowledged: the group's committed offsets reach the end.
    let group = format!("concord.default.{name}.source");
    let input = format!("in-{name}");
    wait_for(
        Duration::from_secs(30),
        "committed offsets at the end of the input",
        || async {
            let committed = s.kafka.committed_offsets(&group, &input).await;
            let ends = s.kafka.high_watermarks(&input).await;
            (ends.iter().all(|(p, end)| committed.get(p) == Some(end))).then_some(())
        },
    )
    .await;

    // Scaling the source moves partitions: never one left unread, never one read twice.
    s.cli(&[
        "scale",
        "topology",
        name,
        "--operator",
        "source",
        "--instances",
        "3",
    ]);
    s.controller.wait_ready(name, READY_TIMEOUT).await;
    s.wait_assigned_once(name, 3).await;
    s.cli(&[
        "scale",
        "topology",
        name,
        "--operator",
        "source",
        "--instances",
        "1",
    ]);
    s.controller.wait_ready(name, READY_TIMEOUT).await;
    s.wait_assigned_once(name, 1).await;
    // And what is produced now still arrives.
    produce_ids(&s.kafka, &input, total, 400, 4, Duration::from_millis(400)).await;
    let want = ids(total, 400);
    let seen = read_ids(
        &s.kafka,
        &format!("out-{name}"),
        &want,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        want.iter().all(|id| seen.contains_key(id)),
        "records after the scale arrive"
    );
}

#[tokio::test]
async fn at_most_once_counts_what_it_loses_and_keeps_going() {
    let name = "amo";
    let (s, total) = run_under_faults(name, "at-most-once").await;
    s.controller.wait_ready(name, READY_TIMEOUT).await;
    // Records produced once everything is running again all arrive.
    produce_ids(
        &s.kafka,
        &format!("in-{name}"),
        total,
        400,
        4,
        Duration::from_millis(400),
    )
    .await;
    let after = ids(total, 400);
    let seen = read_ids(
        &s.kafka,
        &format!("out-{name}"),
        &after,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        after.iter().all(|id| seen.contains_key(id)),
        "records after recovery arrive"
    );
    let want = ids(0, total);
    let lost = want.iter().filter(|id| !seen.contains_key(*id)).count();
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    eprintln!("at-most-once: {total} in during faults, lost {lost}, duplicates {duplicates}");
    assert!(seen.keys().all(|k| want.contains(k) || after.contains(k)));
}

/// The click-fraud example from Kafka to Kafka (`manifests/examples/clickfraud-kafka.yaml`,
/// fed by `clicks-feed.yaml`), with shorter windows and lower thresholds so alerts come
/// within seconds.
fn clickfraud_manifests(bootstrap: &str) -> (String, String) {
    let read = |f: &str| {
        std::fs::read_to_string(concord_e2e::repo_path(&format!("manifests/examples/{f}")))
            .expect("example")
    };
    let fraud = concord_e2e::relocatable(&read("clickfraud-kafka.yaml"))
        .replace("127.0.0.1:19092", bootstrap)
        .replace(
            "sizeMs: 60000, slideMs: 10000",
            "sizeMs: 4000, slideMs: 1000",
        )
        .replace("{field: count, min: 100}", "{field: count, min: 5}")
        .replace("{field: count, min: 10000}", "{field: count, min: 200}");
    assert!(
        fraud.contains("sizeMs: 4000") && fraud.contains("min: 200}"),
        "example edited"
    );
    let feed = read("clicks-feed.yaml")
        .replace("127.0.0.1:19092", bootstrap)
        .replace("rate: 2000", "rate: 500");
    (feed, fraud)
}

#[tokio::test]
async fn clickfraud_from_kafka_to_kafka_acknowledges_every_click_through_failures() {
    let s = Stack::start().await;
    s.kafka.create_topic("clicks", PARTITIONS).await;
    s.kafka.create_topic("alerts", 2).await;
    let (feed, fraud) = clickfraud_manifests(&s.kafka.bootstrap());
    s.apply(&fraud);
    s.controller
        .wait_ready("clickfraud-kafka", READY_TIMEOUT)
        .await;
    s.apply(&feed);
    s.controller.wait_ready("clicks-feed", READY_TIMEOUT).await;

    // While clicks flow: kill -9 one task of each kind of operator, scale enrich.
    for op in ["clicks", "enrich", "per-ip-counts", "alerts"] {
        tokio::time::sleep(Duration::from_secs(2)).await;
        s.kill_one(op).await;
    }
    let name = "clickfraud-kafka";
    s.cli(&[
        "scale",
        "topology",
        name,
        "--operator",
        "enrich",
        "--instances",
        "3",
    ]);
    s.controller.wait_ready(name, READY_TIMEOUT).await;
    s.cli(&[
        "scale",
        "topology",
        name,
        "--operator",
        "enrich",
        "--instances",
        "1",
    ]);
    s.controller.wait_ready(name, READY_TIMEOUT).await;
    let after_faults = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);

    // Stop the feed; every click in the topic must then be acknowledged by the whole DAG:
    // the source group's committed offsets reach the end of `clicks`.
    s.cli(&["delete", "topology", "clicks-feed"]);
    let group = format!("concord.default.{name}.clicks");
    wait_for(
        Duration::from_secs(90),
        "every click acknowledged (committed = end)",
        || async {
            let committed = s.kafka.committed_offsets(&group, "clicks").await;
            let ends = s.kafka.high_watermarks("clicks").await;
            let total: i64 = ends.values().sum();
            (total > 0 && ends.iter().all(|(p, end)| committed.get(p) == Some(end))).then_some(())
        },
    )
    .await;
    let ends: i64 = s.kafka.high_watermarks("clicks").await.values().sum();

    // Alerts reached Kafka, also after the failures.
    let alerts = s
        .kafka
        .consume_all(
            "alerts",
            &format!("check-{}", uuid_ish()),
            1,
            Duration::from_secs(30),
        )
        .await;
    let alerts_total: i64 = s.kafka.high_watermarks("alerts").await.values().sum();
    let late = s
        .kafka
        .consume_all(
            "alerts",
            &format!("check-{}", uuid_ish()),
            alerts_total as usize,
            Duration::from_secs(30),
        )
        .await
        .into_iter()
        .filter(|r| r.timestamp.is_some_and(|t| t >= after_faults))
        .count();
    eprintln!(
        "clickfraud-kafka: {ends} clicks acknowledged, {alerts_total} alerts, {late} after the faults"
    );
    assert!(!alerts.is_empty());
    assert!(late > 0, "alerts keep coming after the failures");
    let replayed = s
        .summed(name, "clicks", "concord_replayed_records_total")
        .await;
    eprintln!("replayed by live source tasks: {replayed}");
}

#[tokio::test]
async fn poison_records_are_dead_lettered_and_everything_else_flows_on() {
    let s = Stack::start().await;
    let name = "dlq";
    let (input, output, dead) = ("in-dlq", "out-dlq", "dead-dlq");
    s.kafka.create_topic(input, 2).await;
    s.kafka.create_topic(output, 2).await;
    s.kafka.create_topic(dead, 1).await;
    // The map keys by the JSON field `id`: a value that is not JSON fails it.
    let yaml = pipeline(name, "at-least-once", &s.kafka.bootstrap(), 1, 1).replace(
        "      runtime: {builtin: {name: map}}\n",
        &format!(
            "      runtime: {{builtin: {{name: map}}}}\n      config: {{keyBy: id}}\n      onError: {{deadLetter: {{bootstrapServers: \"{}\", topic: {dead}}}}}\n",
            s.kafka.bootstrap()
        ),
    );
    assert!(yaml.contains("deadLetter"));
    s.apply(&yaml);
    s.controller.wait_ready(name, READY_TIMEOUT).await;

    produce_ids(&s.kafka, input, 0, 200, 2, Duration::from_millis(200)).await;
    let poison: Vec<(&[u8], &[u8])> = (0..5).map(|_| (&b"bad"[..], &b"not json {"[..])).collect();
    s.kafka.produce(input, &poison).await;
    produce_ids(&s.kafka, input, 200, 200, 2, Duration::from_millis(200)).await;

    let want = ids(0, 400);
    let seen = read_ids(&s.kafka, output, &want, Duration::from_secs(60)).await;
    assert!(
        want.iter().all(|id| seen.contains_key(id)),
        "every good record arrives"
    );
    let dead_letters = s
        .kafka
        .consume_all(
            dead,
            &format!("check-{}", uuid_ish()),
            5,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(
        dead_letters.len(),
        5,
        "exactly the poison records, not replayed"
    );
    assert!(
        dead_letters
            .iter()
            .all(|r| r.value.as_deref() == Some(&b"not json {"[..]))
    );
    // Acknowledged like any other record: the source commits past them.
    let group = format!("concord.default.{name}.source");
    wait_for(
        Duration::from_secs(30),
        "committed offsets at the end of the input",
        || async {
            let committed = s.kafka.committed_offsets(&group, input).await;
            let ends = s.kafka.high_watermarks(input).await;
            ends.iter()
                .all(|(p, end)| committed.get(p) == Some(end))
                .then_some(())
        },
    )
    .await;
    let failed = s.summed(name, "map", "concord_failed_records_total").await;
    assert_eq!(failed, 5.0);
}

impl Stack {
    /// The Degraded condition of topology `name`, once `accept` takes it.
    async fn wait_degraded(
        &self,
        name: &str,
        what: &str,
        accept: impl Fn(&concord_schemas::Condition) -> bool,
    ) -> concord_schemas::Condition {
        wait_for(Duration::from_secs(60), what, || async {
            let t = self.controller.topology(name).await?;
            t.status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == concord_schemas::condition_type::DEGRADED)
                .filter(|c| accept(c))
        })
        .await
    }

    /// Waits until a task's problem degrades `name`; returns the condition's message.
    async fn wait_operator_problem(&self, name: &str, what: &str) -> String {
        self.wait_degraded(name, what, |c| {
            c.status == concord_schemas::ConditionStatus::True
                && c.reason == concord_schemas::condition_reason::OPERATOR_PROBLEM
        })
        .await
        .message
    }

    async fn wait_not_degraded(&self, name: &str) {
        self.wait_degraded(name, "Degraded cleared", |c| {
            c.status == concord_schemas::ConditionStatus::False
        })
        .await;
    }
}

#[tokio::test]
async fn a_lost_broker_degrades_the_topology_and_it_resumes_by_itself_when_the_broker_is_back() {
    let mut s = Stack::start().await;
    let name = "lost";
    let (input, output) = (format!("in-{name}"), format!("out-{name}"));
    s.kafka.create_topic(&input, 2).await;
    s.kafka.create_topic(&output, 2).await;
    s.apply(&pipeline(name, "at-least-once", &s.kafka.bootstrap(), 1, 1));
    s.controller.wait_ready(name, READY_TIMEOUT).await;
    produce_ids(&s.kafka, &input, 0, 200, 2, Duration::from_millis(100)).await;
    let seen = read_ids(&s.kafka, &output, &ids(0, 200), Duration::from_secs(60)).await;
    assert!(ids(0, 200).iter().all(|id| seen.contains_key(id)));

    s.kafka.stop();
    let message = s
        .wait_operator_problem(name, "Degraded: the broker is gone")
        .await;
    eprintln!("while the broker was down: Degraded: {message}");
    assert!(message.contains("kafka"), "{message}");
    // No task was killed for it.
    assert_eq!(s.pids("source").await.len(), 1);

    // An in-memory broker comes back empty: recreate the topics, then new records flow.
    s.kafka.restart().await;
    s.kafka.create_topic(&input, 2).await;
    s.kafka.create_topic(&output, 2).await;
    produce_ids(&s.kafka, &input, 1000, 200, 2, Duration::from_millis(100)).await;
    let seen = read_ids(&s.kafka, &output, &ids(1000, 200), Duration::from_secs(90)).await;
    assert!(
        ids(1000, 200).iter().all(|id| seen.contains_key(id)),
        "records flow again"
    );
    s.wait_not_degraded(name).await;
}

#[tokio::test]
async fn a_missing_topic_is_reported_in_status_and_reading_starts_once_it_exists() {
    let s = Stack::start().await;
    let name = "notopic";
    s.kafka.create_topic(&format!("out-{name}"), 1).await;
    s.apply(&pipeline(name, "at-least-once", &s.kafka.bootstrap(), 1, 1));
    s.controller.wait_ready(name, READY_TIMEOUT).await;
    let message = s
        .wait_operator_problem(name, "Degraded: topic missing")
        .await;
    eprintln!("missing topic: {message}");
    assert!(message.contains(&format!("in-{name}")), "{message}");

    s.kafka.create_topic(&format!("in-{name}"), 2).await;
    produce_ids(
        &s.kafka,
        &format!("in-{name}"),
        0,
        100,
        1,
        Duration::from_millis(10),
    )
    .await;
    let seen = read_ids(
        &s.kafka,
        &format!("out-{name}"),
        &ids(0, 100),
        Duration::from_secs(60),
    )
    .await;
    assert!(ids(0, 100).iter().all(|id| seen.contains_key(id)));
    s.wait_not_degraded(name).await;
}
