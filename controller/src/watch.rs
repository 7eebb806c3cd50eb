//! Watch streams of topologies, merged with their status, for the HTTP API.
//!
//! One etcd watch on the whole prefix keeps spec and status events in revision order.
//! A watch without a start revision first replays the current state as `ADDED` events
//! (as Kubernetes does); with one it resumes strictly after that revision. A compacted
//! start revision or a lost etcd stream ends the watch with an `ERROR` event, after
//! which clients re-list (DESIGN.md, lesson 10).

use std::collections::HashMap;

use concord_schemas::api::{WatchEvent, WatchEventType};
use concord_schemas::{TaskSummary, Topology, TopologyStatus};
use etcd_client::{EventType, GetOptions, WatchOptions};
use futures::Stream;

use crate::store::{
    Store, decode_spec, decode_status, decode_task_status_kv, merge_task_status, split_ns_name,
    split_task_status_key,
};

/// What to watch.
#[derive(Debug, Clone, Default)]
pub struct WatchSpec {
    /// `None`: every namespace.
    pub namespace: Option<String>,
    /// `None`: every topology in scope.
    pub name: Option<String>,
    /// Resume strictly after this revision; `None` replays the current state first.
    pub after_revision: Option<i64>,
}

#[derive(Default)]
struct Entry {
    spec: Option<Topology>,
    status: Option<TopologyStatus>,
    /// Each operator's task list, kept in a key of its own.
    tasks: HashMap<String, Vec<TaskSummary>>,
}

impl Entry {
    fn merged(&self) -> Option<Topology> {
        self.spec.clone().map(|mut t| {
            t.status = self.status.clone().map(|mut s| {
                merge_task_status(&mut s, self.tasks.clone());
                s
            });
            t
        })
    }
}

type Id = (String, String);

enum KeyKind {
    Spec(Id),
    Status(Id),
    Tasks(Id),
}

/// Streams watch events until the client goes away or the etcd watch ends.
pub fn watch(store: Store, spec: WatchSpec) -> impl Stream<Item = WatchEvent> {
    async_stream::stream! {
        let topo_prefix = store.spec_prefix(None);
        let status_prefix = store.status_prefix(None);
        let tasks_prefix = store.task_status_root(None);
        let in_scope = |id: &Id| {
            spec.namespace.as_deref().is_none_or(|ns| ns == id.0)
                && spec.name.as_deref().is_none_or(|n| n == id.1)
        };
        let classify = |key: &[u8]| -> Option<KeyKind> {
            if String::from_utf8_lossy(key).starts_with(&tasks_prefix) {
                let (ns, name, _) = split_task_status_key(key).ok()?;
                return Some(KeyKind::Tasks((ns, name)));
            }
            let id = split_ns_name(key).ok()?;
            let key = String::from_utf8_lossy(key);
            if key.starts_with(&topo_prefix) {
                Some(KeyKind::Spec(id))
            } else if key.starts_with(&status_prefix) {
                Some(KeyKind::Status(id))
            } else {
                None
            }
        };

        // Initial state: at the resume revision, or now.
        let mut client = store.client();
        let mut cache: HashMap<Id, Entry> = HashMap::new();
        let mut options = GetOptions::new().with_prefix();
        if let Some(rev) = spec.after_revision {
            options = options.with_revision(rev);
        }
        let snapshot = match client.get(format!("{}/", store.prefix()), Some(options)).await {
            Ok(resp) => resp,
            Err(e) => {
                let (code, message) = classify_etcd_error(&e, spec.after_revision);
                yield WatchEvent::error(code, message, spec.after_revision.unwrap_or_default());
                return;
            }
        };
        let start = spec
            .after_revision
            .unwrap_or_else(|| snapshot.header().map(|h| h.revision()).unwrap_or_default());
        for kv in snapshot.kvs() {
            match classify(kv.key()) {
                Some(KeyKind::Spec(id)) if in_scope(&id) => {
                    if let Ok(stored) = decode_spec(kv) {
                        cache.entry(id).or_default().spec = Some(stored.topology);
                    }
                }
                Some(KeyKind::Status(id)) if in_scope(&id) => {
                    if let Ok(status) = decode_status(kv) {
                        cache.entry(id).or_default().status = Some(status);
                    }
                }
                Some(KeyKind::Tasks(id)) if in_scope(&id) => {
                    if let Ok((op, tasks)) = decode_task_status_kv(kv) {
                        cache.entry(id).or_default().tasks.insert(op, tasks);
                    }
                }
                _ => {}
            }
        }
        if spec.after_revision.is_none() {
            let mut ids: Vec<&Id> = cache.keys().collect();
            ids.sort();
            for id in ids {
                if let Some(obj) = cache[id].merged() {
                    yield WatchEvent::object(WatchEventType::Added, obj, start);
                }
            }
        }

        let options = WatchOptions::new().with_prefix().with_start_revision(start + 1);
        let mut stream = match client.watch(format!("{}/", store.prefix()), Some(options)).await {
            Ok(s) => s,
            Err(e) => {
                yield WatchEvent::error(503, format!("etcd watch failed: {e}"), start);
                return;
            }
        };
        let mut last = start;
        loop {
            let resp = match stream.message().await {
                Ok(Some(resp)) => resp,
                Ok(None) => {
                    yield WatchEvent::error(503, "etcd watch stream ended".into(), last);
                    return;
                }
                Err(e) => {
                    yield WatchEvent::error(503, format!("etcd watch failed: {e}"), last);
                    return;
                }
            };
            if resp.compact_revision() > 0 {
                yield WatchEvent::error(
                    410,
                    format!(
                        "resourceVersion {} is too old (etcd compacted up to {}); list again and watch from the new resourceVersion",
                        start,
                        resp.compact_revision()
                    ),
                    last,
                );
                return;
            }
            if resp.canceled() {
                yield WatchEvent::error(503, format!("etcd cancelled the watch: {}", resp.cancel_reason()), last);
                return;
            }
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                last = last.max(kv.mod_revision());
                let Some(kind) = classify(kv.key()) else { continue };
                match (kind, event.event_type()) {
                    (KeyKind::Spec(id), EventType::Put) if in_scope(&id) => {
                        let Ok(stored) = decode_spec(kv) else { continue };
                        let entry = cache.entry(id).or_default();
                        let kind = if entry.spec.is_some() { WatchEventType::Modified } else { WatchEventType::Added };
                        entry.spec = Some(stored.topology);
                        if let Some(obj) = entry.merged() {
                            yield WatchEvent::object(kind, obj, kv.mod_revision());
                        }
                    }
                    (KeyKind::Spec(id), EventType::Delete) if in_scope(&id) => {
                        if let Some(obj) = cache.remove(&id).and_then(|e| e.merged()) {
                            yield WatchEvent::object(WatchEventType::Deleted, obj, kv.mod_revision());
                        }
                    }
                    (KeyKind::Status(id), EventType::Put) if in_scope(&id) => {
                        let Ok(status) = decode_status(kv) else { continue };
                        let entry = cache.entry(id).or_default();
                        entry.status = Some(status);
                        if let Some(obj) = entry.merged() {
                            yield WatchEvent::object(WatchEventType::Modified, obj, kv.mod_revision());
                        }
                    }
                    (KeyKind::Status(id), EventType::Delete) if in_scope(&id) => {
                        if let Some(entry) = cache.get_mut(&id) {
                            entry.status = None;
                        }
                    }
                    (KeyKind::Tasks(id), EventType::Put) if in_scope(&id) => {
                        let Ok((op, tasks)) = decode_task_status_kv(kv) else { continue };
                        let entry = cache.entry(id).or_default();
                        entry.tasks.insert(op, tasks);
                        // Shown once the document it belongs to is there.
                        if entry.status.is_some()
                            && let Some(obj) = entry.merged()
                        {
                            yield WatchEvent::object(WatchEventType::Modified, obj, kv.mod_revision());
                        }
                    }
                    (KeyKind::Tasks(id), EventType::Delete) if in_scope(&id) => {
                        if let (Some(entry), Ok((_, _, op))) =
                            (cache.get_mut(&id), split_task_status_key(kv.key()))
                        {
                            entry.tasks.remove(&op);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn classify_etcd_error(e: &etcd_client::Error, rev: Option<i64>) -> (u16, String) {
    let text = e.to_string();
    if text.contains("compacted") {
        (
            410,
            format!(
                "resourceVersion {} is too old (compacted); list again and watch from the new resourceVersion",
                rev.unwrap_or_default()
            ),
        )
    } else if text.contains("future revision") {
        (
            400,
            format!(
                "resourceVersion {} is newer than the store",
                rev.unwrap_or_default()
            ),
        )
    } else {
        (503, format!("etcd unavailable: {text}"))
    }
}
