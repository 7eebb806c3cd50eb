//! The Kafka harness against the real broker (Tansu, see `concord_e2e::kafka`): topics,
//! keyed produce, group consume with commit and resume, a group of two splitting the
//! partitions, and a broker restart on the same port.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concord_e2e::kafka::{KafkaRecord, commit_after, poll_record};
use concord_e2e::{Kafka, wait_for};
use rdkafka::consumer::Consumer;

fn keyed(n: usize, from: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (from..from + n)
        .map(|i| {
            (
                format!("key-{}", i % 37).into_bytes(),
                format!("id-{i}").into_bytes(),
            )
        })
        .collect()
}

fn as_refs(records: &[(Vec<u8>, Vec<u8>)]) -> Vec<(&[u8], &[u8])> {
    records
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect()
}

fn ids(records: &[KafkaRecord]) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_round_trip_with_commit_and_resume() {
    let kafka = Kafka::start().await;
    kafka.create_topic("clicks", 4).await;
    assert_eq!(kafka.partitions("clicks").await, vec![0, 1, 2, 3]);

    let input = keyed(1000, 0);
    let landed = kafka.produce("clicks", &as_refs(&input)).await;
    assert_eq!(landed.len(), 1000);
    // The same key always lands in the same partition, and offsets are dense per partition.
    let mut partition_of: BTreeMap<&[u8], i32> = BTreeMap::new();
    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for ((key, _), (p, o)) in input.iter().zip(&landed) {
        let first = *partition_of.entry(key.as_slice()).or_insert(*p);
        assert_eq!(first, *p, "key {key:?} in two partitions");
        per_partition.entry(*p).or_default().push(*o);
    }
    assert!(
        per_partition.len() > 1,
        "37 keys over 4 partitions use more than one: {per_partition:?}"
    );
    for offsets in per_partition.values_mut() {
        offsets.sort_unstable();
        assert_eq!(*offsets, (0..offsets.len() as i64).collect::<Vec<_>>());
    }
    let ends: BTreeMap<i32, i64> = (0..4)
        .map(|p| (p, per_partition.get(&p).map_or(0, |o| o.len() as i64)))
        .collect();
    assert_eq!(kafka.high_watermarks("clicks").await, ends);
    // A group reads all of them, from the earliest, and commits.
    let started = Instant::now();
    let read = kafka
        .consume_all("clicks", "g1", 1000, Duration::from_secs(30))
        .await;
    eprintln!("first group read of 1000 records: {:?}", started.elapsed());
    assert_eq!(read.len(), 1000);
    assert_eq!(ids(&read), ids_of(&input));
    for r in &read {
        assert_eq!(
            Some(&r.partition),
            partition_of.get(r.key.as_deref().unwrap_or_default()),
            "{r:?}"
        );
        assert!(r.timestamp.is_some_and(|t| t > 0), "{r:?}");
    }
    assert_eq!(kafka.committed_offsets("g1", "clicks").await, ends);

    // More records: the same group resumes after its commit and reads only the new ones.
    let more = keyed(100, 1000);
    kafka.produce("clicks", &as_refs(&more)).await;
    let again = kafka
        .consume_all("clicks", "g1", 100, Duration::from_secs(30))
        .await;
    assert_eq!(ids(&again), ids_of(&more));
    let hw = kafka.high_watermarks("clicks").await;
    assert_eq!(hw.values().sum::<i64>(), 1100);
    assert_eq!(kafka.committed_offsets("g1", "clicks").await, hw);
    // Another group starts from the earliest record.
    let other = kafka
        .consume_all("clicks", "g2", 1100, Duration::from_secs(30))
        .await;
    assert_eq!(other.len(), 1100);
    assert!(kafka.committed_offsets("g3", "clicks").await.is_empty());
}

fn ids_of(records: &[(Vec<u8>, Vec<u8>)]) -> BTreeSet<String> {
    records
        .iter()
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// What one group member has seen so far: its current assignment and its records.
#[derive(Default)]
struct Member {
    assigned: BTreeSet<i32>,
    records: Vec<KafkaRecord>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_of_one_group_split_the_partitions() {
    let kafka = Kafka::start().await;
    kafka.create_topic("split", 4).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut members = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..2 {
        let consumer = kafka.consumer("pair", "split");
        let seen = Arc::new(Mutex::new(Member::default()));
        members.push(seen.clone());
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            // Bounded even if the test fails before telling it to stop.
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut mine = Vec::new();
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let record = poll_record(&consumer, Duration::from_millis(50));
                let mut seen = seen.lock().expect("member state");
                seen.assigned = assignment(&consumer);
                if let Some(r) = record {
                    mine.push(r.clone());
                    seen.records.push(r);
                }
            }
            commit_after(&consumer, "split", &mine);
        }));
    }
    let snapshot = |members: &[Arc<Mutex<Member>>]| -> Vec<(BTreeSet<i32>, Vec<KafkaRecord>)> {
        members
            .iter()
            .map(|m| {
                let m = m.lock().expect("member state");
                (m.assigned.clone(), m.records.clone())
            })
            .collect()
    };

    // The group settles: each member holds a share, together all four, none twice.
    let started = Instant::now();
    let split = wait_for(
        Duration::from_secs(30),
        "the group of two to split the partitions",
        || {
            let s = snapshot(&members);
            async move {
                let (a, b) = (&s[0].0, &s[1].0);
                let all: BTreeSet<i32> = a.union(b).copied().collect();
                (!a.is_empty() && !b.is_empty() && a.is_disjoint(b) && all.len() == 4)
                    .then(|| (a.clone(), b.clone()))
            }
        },
    )
    .await;
    eprintln!(
        "group of two settled after {:?}: {split:?}",
        started.elapsed()
    );

    let input = keyed(1000, 0);
    kafka.produce("split", &as_refs(&input)).await;
    wait_for(
        Duration::from_secs(30),
        "the group to read 1000 records",
        || {
            let n: usize = snapshot(&members).iter().map(|(_, r)| r.len()).sum();
            async move { (n >= 1000).then_some(()) }
        },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    tokio::task::spawn_blocking(move || {
        for t in threads {
            t.join().expect("member thread");
        }
    })
    .await
    .expect("join members");

    let s = snapshot(&members);
    let read_by = |i: usize| -> BTreeSet<i32> { s[i].1.iter().map(|r| r.partition).collect() };
    assert!(
        read_by(0).is_disjoint(&read_by(1)),
        "a partition read by both: {:?} / {:?}",
        read_by(0),
        read_by(1)
    );
    assert!(read_by(0).is_subset(&split.0) && read_by(1).is_subset(&split.1));
    assert_eq!(
        (s[0].0.clone(), s[1].0.clone()),
        split,
        "no rebalance while reading"
    );
    let all: Vec<KafkaRecord> = s.iter().flat_map(|(_, r)| r.clone()).collect();
    assert_eq!(all.len(), 1000, "no record twice");
    assert_eq!(ids(&all), ids_of(&input));
    let hw = kafka.high_watermarks("split").await;
    assert_eq!(kafka.committed_offsets("pair", "split").await, hw);
}

fn assignment<C: rdkafka::consumer::ConsumerContext>(
    consumer: &rdkafka::consumer::BaseConsumer<C>,
) -> BTreeSet<i32> {
    consumer
        .assignment()
        .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_survives_a_broker_restart_on_the_same_port() {
    let mut kafka = Kafka::start().await;
    let port = kafka.port();
    kafka.create_topic("before", 2).await;
    kafka.produce("before", &as_refs(&keyed(10, 0))).await;
    let pid = kafka.process().pid();
    // A producer that lives across the restart (as an executor's would).
    let producer = kafka.producer();

    kafka.restart().await;
    assert_eq!(kafka.port(), port);
    assert_ne!(kafka.process().pid(), pid, "a new broker process");
    // An in-memory broker: a restart starts empty.
    assert_eq!(
        kafka.partitions("before").await,
        Vec::<i32>::new(),
        "in-memory storage: the topic is gone"
    );
    // The producer reconnects by itself; its produce auto-creates the topic again.
    let sent = producer
        .send(
            rdkafka::producer::FutureRecord::to("before")
                .key("k")
                .payload("after-restart"),
            Duration::from_secs(15),
        )
        .await;
    let delivered = sent
        .map_err(|(e, _)| e.to_string())
        .expect("a producer from before the restart delivers after it");
    assert_eq!(delivered.offset, 0, "{delivered:?}");

    kafka.create_topic("after", 3).await;
    let input = keyed(200, 0);
    kafka.produce("after", &as_refs(&input)).await;
    let read = kafka
        .consume_all("after", "g", 200, Duration::from_secs(30))
        .await;
    assert_eq!(ids(&read), ids_of(&input));
    let hw = kafka.high_watermarks("after").await;
    assert_eq!(kafka.committed_offsets("g", "after").await, hw);

    // A stopped broker refuses connections; wait_for proves it is bounded.
    kafka.stop();
    wait_for(
        Duration::from_secs(5),
        "the broker's port to close",
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics_works_and_what_auto_creation_does() {
    let kafka = Kafka::start().await;
    kafka.create_topic("made", 6).await;
    assert_eq!(kafka.partitions("made").await, (0..6).collect::<Vec<_>>());
    assert_eq!(
        kafka.try_create_topic("made", 6).await,
        Err(rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)
    );
    // A consumer's metadata request (librdkafka: allow.auto.create.topics=false) does
    // not create a missing topic ...
    assert!(kafka.partitions("never-created").await.is_empty());
    // ... a producer's does: the first produce lands in an auto-created topic.
    let landed = kafka
        .produce("produced-first", &[(b"k".as_slice(), b"v".as_slice())])
        .await;
    let auto = kafka.auto_created_partitions("produced-first").await;
    eprintln!("auto-created topic: {auto} partitions, first record at {landed:?}");
    assert!(auto >= 1 && landed[0].1 == 0, "{auto} {landed:?}");
}
