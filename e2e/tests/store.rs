//! The etcd store against a real etcd server.

use concord_controller::{ApplyOutcome, Store, StoreError};
use concord_e2e::Etcd;
use concord_schemas::{Topology, TopologyStatus};

const PREFIX: &str = "/concord-test";

fn topology(name: &str, instances: u32) -> Topology {
    let yaml = format!(
        r#"
apiVersion: concord.io/v1alpha1
kind: Topology
metadata: {{name: {name}}}
spec:
  operators:
    - name: source
      runtime: {{builtin: {{name: generator}}}}
    - name: count
      instances: {instances}
      runtime: {{builtin: {{name: keyed-count}}}}
      inputs: [{{from: source, partitioning: key}}]
"#
    );
    concord_schemas::parse_yaml(yaml.as_bytes(), "test.yaml")
        .expect("valid")
        .remove(0)
}

async fn store(etcd: &Etcd) -> Store {
    Store::connect(std::slice::from_ref(&etcd.url), PREFIX)
        .await
        .expect("connect")
}

async fn revision(etcd: &Etcd) -> i64 {
    let mut c = etcd.client().await;
    c.get("x", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision()
}

#[tokio::test]
async fn apply_creates_then_is_idempotent_then_bumps_generation_only_on_spec_change() {
    let etcd = Etcd::start().await;
    let store = store(&etcd).await;

    let (outcome, created) = store.apply(topology("wc", 2)).await.expect("create");
    assert_eq!(outcome, ApplyOutcome::Created);
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let rv = created
        .metadata
        .resource_version
        .clone()
        .expect("resourceVersion");

    // The same spec again writes nothing: the etcd revision does not move.
    let before = revision(&etcd).await;
    let (outcome, same) = store.apply(topology("wc", 2)).await.expect("re-apply");
    assert_eq!(outcome, ApplyOutcome::Unchanged);
    assert_eq!(same.metadata.generation, Some(1));
    assert_eq!(same.metadata.resource_version.as_deref(), Some(rv.as_str()));
    assert_eq!(
        revision(&etcd).await,
        before,
        "an unchanged apply must not write"
    );

    // Changing one operator bumps the generation by exactly one.
    let (outcome, changed) = store.apply(topology("wc", 5)).await.expect("update");
    assert_eq!(outcome, ApplyOutcome::Configured);
    assert_eq!(changed.metadata.generation, Some(2));
    assert_eq!(changed.metadata.uid, created.metadata.uid);

    // Labels alone change metadata but not the generation.
    let mut labelled = topology("wc", 5);
    labelled.metadata.labels.insert("team".into(), "ads".into());
    let (outcome, labelled) = store.apply(labelled).await.expect("label");
    assert_eq!(outcome, ApplyOutcome::Configured);
    assert_eq!(labelled.metadata.generation, Some(2));

    let stored = store
        .get("default", "wc")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stored.topology.spec.operators[1].instances, 5);
    assert_eq!(
        stored
            .topology
            .metadata
            .labels
            .get("team")
            .map(String::as_str),
        Some("ads")
    );
}

#[tokio::test]
async fn stale_resource_version_is_a_conflict_and_changes_nothing() {
    let etcd = Etcd::start().await;
    let store = store(&etcd).await;
    let (_, created) = store.apply(topology("wc", 1)).await.expect("create");
    let old_rv = created.metadata.resource_version.clone();
    store.apply(topology("wc", 2)).await.expect("update");

    let before = etcd.dump(PREFIX).await;
    let mut stale = topology("wc", 7);
    stale.metadata.resource_version = old_rv;
    match store.apply(stale).await {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(etcd.dump(PREFIX).await, before);

    let mut missing = topology("nope", 1);
    missing.metadata.resource_version = Some("5".into());
    assert!(matches!(
        store.apply(missing).await,
        Err(StoreError::Conflict { .. })
    ));
}

#[tokio::test]
async fn concurrent_applies_never_lose_an_update() {
    let etcd = Etcd::start().await;
    let store = store(&etcd).await;
    store.apply(topology("wc", 1)).await.expect("create");

    // Many writers race from the same read; each either wins or gets a conflict.
    let mut handles = Vec::new();
    for i in 2..22u32 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut t = topology("wc", i);
            t.metadata.resource_version = store
                .get("default", "wc")
                .await
                .expect("get")
                .map(|s| s.mod_revision.to_string());
            (i, store.apply(t).await)
        }));
    }
    let mut accepted = Vec::new();
    for h in handles {
        let (i, result) = h.await.expect("join");
        match result {
            Ok((ApplyOutcome::Configured, t)) => accepted.push((
                t.metadata
                    .resource_version
                    .clone()
                    .expect("rv")
                    .parse::<i64>()
                    .expect("num"),
                i,
            )),
            Ok((other, _)) => panic!("unexpected outcome {other:?}"),
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(!accepted.is_empty(), "at least one writer must win");
    accepted.sort();
    let last = accepted.last().expect("one").1;
    let stored = store
        .get("default", "wc")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        stored.topology.spec.operators[1].instances, last,
        "the last accepted write is what is stored"
    );
    assert_eq!(
        stored.topology.metadata.generation,
        Some(1 + accepted.len() as i64)
    );
}

#[tokio::test]
async fn status_lives_in_its_own_key_and_is_written_only_when_changed() {
    let etcd = Etcd::start().await;
    let store = store(&etcd).await;
    let (_, created) = store.apply(topology("wc", 1)).await.expect("create");

    let status = TopologyStatus {
        observed_generation: 1,
        ..Default::default()
    };
    assert!(
        store
            .put_status("default", "wc", &status)
            .await
            .expect("put")
    );
    assert!(
        !store
            .put_status("default", "wc", &status)
            .await
            .expect("put again")
    );

    let spec = store
        .get("default", "wc")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        spec.topology.metadata.resource_version, created.metadata.resource_version,
        "status must not touch the spec key"
    );
    let merged = store
        .get_with_status("default", "wc")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(merged.status, Some(status.clone()));
    let (list, _) = store.list(Some("default")).await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].status, Some(status));
}

#[tokio::test]
async fn deletion_marks_then_finalizes_and_blocks_updates_meanwhile() {
    let etcd = Etcd::start().await;
    let store = store(&etcd).await;
    store.apply(topology("wc", 1)).await.expect("create");
    store
        .put_status("default", "wc", &TopologyStatus::default())
        .await
        .expect("status");

    let marked = store
        .mark_deleted("default", "wc", None)
        .await
        .expect("mark");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert!(matches!(
        store.apply(topology("wc", 3)).await,
        Err(StoreError::Terminating(_))
    ));

    let stored = store
        .get("default", "wc")
        .await
        .expect("get")
        .expect("still there");
    store
        .finalize_delete("default", "wc", stored.mod_revision)
        .await
        .expect("finalize");
    assert!(store.get("default", "wc").await.expect("get").is_none());
    assert!(
        etcd.dump(PREFIX).await.is_empty(),
        "spec and status keys are both gone"
    );
    assert!(matches!(
        store.mark_deleted("default", "wc", None).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn operators_task_lists_live_in_keys_of_their_own_and_are_merged_back() {
    use concord_schemas::{OperatorStatus, TaskSummary};
    let etcd = Etcd::start().await;
    let store = store(&etcd).await;
    store.apply(topology("wc", 2)).await.expect("create");
    let task = |id: &str, instance| TaskSummary {
        task_id: id.into(),
        instance,
        state: "TASK_RUNNING".into(),
        ..Default::default()
    };
    let counts = |name: &str, n| OperatorStatus {
        name: name.into(),
        desired: n,
        ready: n,
        ..Default::default()
    };
    // As the reconciler's writer stores it: the lists, then the document without them.
    let source = vec![task("s-0", 0)];
    let count = vec![task("c-0", 0), task("c-1", 1)];
    store
        .put_task_status("default", "wc", "source", &source)
        .await
        .expect("source tasks");
    store
        .put_task_status("default", "wc", "count", &count)
        .await
        .expect("count tasks");
    let stored = TopologyStatus {
        observed_generation: 1,
        operators: vec![counts("source", 1), counts("count", 2)],
        ..Default::default()
    };
    store
        .put_status("default", "wc", &stored)
        .await
        .expect("document");

    let mut expected = stored.clone();
    expected.operators[0].tasks = source;
    expected.operators[1].tasks = count.clone();
    assert_eq!(
        store.get_status("default", "wc").await.expect("get"),
        Some(expected.clone())
    );
    let (list, _) = store.list(None).await.expect("list");
    assert_eq!(list[0].status, Some(expected.clone()));

    // One operator's list rewritten leaves the others and the document alone.
    let before = revision(&etcd).await;
    store
        .put_task_status("default", "wc", "count", &count[..1])
        .await
        .expect("count shrinks");
    assert_eq!(revision(&etcd).await, before + 1, "one key written");
    expected.operators[1].tasks.truncate(1);
    assert_eq!(
        store.get_status("default", "wc").await.expect("get"),
        Some(expected)
    );

    // Finalizing a deletion removes the lists with the rest.
    store
        .mark_deleted("default", "wc", None)
        .await
        .expect("mark");
    let stored = store
        .get("default", "wc")
        .await
        .expect("get")
        .expect("still there");
    store
        .finalize_delete("default", "wc", stored.mod_revision)
        .await
        .expect("finalize");
    assert!(
        etcd.dump(PREFIX).await.is_empty(),
        "spec, status and task lists are all gone"
    );
}

#[tokio::test]
async fn a_topology_has_one_data_plane_secret_from_first_launch_to_deletion() {
    let etcd = Etcd::start().await;
    let store = store(&etcd).await;
    let mut client = etcd.client().await;
    let put = client
        .put(store.leader_key(), "me", None)
        .await
        .expect("leader key");
    let fenced = store.fenced(concord_controller::store::Fence {
        key: store.leader_key(),
        revision: put.header().expect("header").revision(),
    });
    let key = store.dataplane_secret_key("default", "wc");

    // No topology, no secret.
    assert!(matches!(
        fenced.ensure_dataplane_secret("default", "wc").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        client
            .get(key.as_str(), None)
            .await
            .expect("get")
            .kvs()
            .is_empty()
    );

    store.apply(topology("wc", 1)).await.expect("create");
    // Concurrent first launches agree on one secret; later ones (a new leader) reuse it.
    let (a, b) = tokio::join!(
        fenced.ensure_dataplane_secret("default", "wc"),
        fenced.ensure_dataplane_secret("default", "wc")
    );
    let (a, b) = (a.expect("a"), b.expect("b"));
    assert_eq!(a.len(), 32);
    assert_eq!(a, b);
    assert_eq!(
        store
            .ensure_dataplane_secret("default", "wc")
            .await
            .expect("again"),
        a
    );
    assert_ne!(a, vec![0u8; 32]);

    // A leader that lost its term creates none.
    store.apply(topology("other", 1)).await.expect("create");
    client.delete(store.leader_key(), None).await.expect("lose");
    assert!(matches!(
        fenced.ensure_dataplane_secret("default", "other").await,
        Err(StoreError::Fenced { .. })
    ));

    // Deleting the topology removes it.
    let deleted = store
        .mark_deleted("default", "wc", None)
        .await
        .expect("mark");
    let rv: i64 = deleted
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("rv");
    store
        .finalize_delete("default", "wc", rv)
        .await
        .expect("finalize");
    assert!(
        client
            .get(key.as_str(), None)
            .await
            .expect("get")
            .kvs()
            .is_empty()
    );
}
