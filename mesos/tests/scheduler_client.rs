//! Scheduler client tests against a tiny in-test master (axum on 127.0.0.1:0).
//!
//! Every wait is bounded by a deadline; conditions are awaited, never slept on.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes as AxBytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use mesos_v1::scheduler::{Backoff, subscribe_raw};
use mesos_v1::*;
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

const DEADLINE: Duration = Duration::from_secs(10);

/// What the fake master does on SUBSCRIBE.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// SUBSCRIBED + HEARTBEAT, then whatever the test pushes.
    Normal,
    /// ERROR then EOF.
    Refuse,
}

#[derive(Default)]
struct Recorded {
    subscribes: Vec<Call>,
    /// (stream id header, call, authorization header)
    calls: Vec<(Option<String>, Call, Option<String>)>,
    auth_on_subscribe: Vec<Option<String>>,
    stream_id_on_subscribe: Vec<bool>,
}

struct Master {
    mode: Mutex<Mode>,
    heartbeat_interval: f64,
    rec: Mutex<Recorded>,
    /// Sender of the live stream; dropping it ends the stream.
    live: Mutex<Option<mpsc::Sender<Result<AxBytes, Infallible>>>>,
    stream_counter: Mutex<u32>,
    current_stream: Mutex<Option<String>>,
}

impl Master {
    fn new(mode: Mode, heartbeat_interval: f64) -> Arc<Self> {
        Arc::new(Master {
            mode: Mutex::new(mode),
            heartbeat_interval,
            rec: Mutex::new(Recorded::default()),
            live: Mutex::new(None),
            stream_counter: Mutex::new(0),
            current_stream: Mutex::new(None),
        })
    }

    fn rec(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.rec.lock().expect("lock")
    }

    fn drop_stream(&self) {
        self.live.lock().expect("lock").take();
    }

    async fn push(&self, event: &Event) {
        self.push_raw(record(event)).await;
    }

    async fn push_raw(&self, bytes: AxBytes) {
        let tx = self.live.lock().expect("lock").clone();
        if let Some(tx) = tx {
            let _ = tx.send(Ok(bytes)).await;
        }
    }
}

fn record(event: &Event) -> AxBytes {
    let json = serde_json::to_vec(event).expect("json");
    mesos_v1::recordio::encode(&json)
}

async fn scheduler_endpoint(
    State(m): State<Arc<Master>>,
    headers: HeaderMap,
    body: AxBytes,
) -> Response {
    let Ok(call) = serde_json::from_slice::<Call>(&body) else {
        return (StatusCode::BAD_REQUEST, "Failed to parse body").into_response();
    };
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let stream_hdr = headers
        .get("mesos-stream-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if call.r#type != CallType::Subscribe {
        let current = m.current_stream.lock().expect("lock").clone();
        m.rec().calls.push((stream_hdr.clone(), call.clone(), auth));
        if stream_hdr.is_none() || stream_hdr != current {
            return (
                StatusCode::BAD_REQUEST,
                "The stream ID included in this request didn't match",
            )
                .into_response();
        }
        if let Some(k) = &call.kill {
            if k.task_id.as_str() == "bad" {
                return (StatusCode::BAD_REQUEST, "bad task").into_response();
            }
        }
        return StatusCode::ACCEPTED.into_response();
    }
    {
        let mut r = m.rec();
        r.subscribes.push(call.clone());
        r.auth_on_subscribe.push(auth);
        r.stream_id_on_subscribe.push(stream_hdr.is_some());
    }
    let stream_id = {
        let mut n = m.stream_counter.lock().expect("lock");
        *n += 1;
        format!("stream-{n}")
    };
    let (tx, rx) = mpsc::channel::<Result<AxBytes, Infallible>>(64);
    let mode = *m.mode.lock().expect("lock");
    match mode {
        Mode::Refuse => {
            let _ = tx.try_send(Ok(record(&Event::error("Framework has been removed"))));
            drop(tx);
        }
        Mode::Normal => {
            let fid = call
                .framework_id
                .clone()
                .unwrap_or_else(|| FrameworkId::new("FW-0000"));
            let _ = tx.try_send(Ok(record(&Event::subscribed(
                fid,
                m.heartbeat_interval,
                None,
            ))));
            let _ = tx.try_send(Ok(record(&Event::heartbeat())));
            *m.live.lock().expect("lock") = Some(tx);
            *m.current_stream.lock().expect("lock") = Some(stream_id.clone());
        }
    }
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("mesos-stream-id", stream_id)
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Serves `router` on 127.0.0.1:0; returns the base URL and the server task.
async fn serve(router: Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}"), task)
}

async fn start_master(
    mode: Mode,
    heartbeat: f64,
) -> (Arc<Master>, String, tokio::task::JoinHandle<()>) {
    let m = Master::new(mode, heartbeat);
    let router = Router::new()
        .route("/api/v1/scheduler", post(scheduler_endpoint))
        .route("/master/api/v1/scheduler", post(scheduler_endpoint))
        .with_state(m.clone());
    let (url, task) = serve(router).await;
    (m, url, task)
}

fn config(master: &str) -> SchedulerConfig {
    let mut fi = FrameworkInfo::new("tester", "client-test");
    fi.failover_timeout = 60.0;
    let mut c = SchedulerConfig::new(master, fi);
    c.backoff_initial = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(400);
    c.request_timeout = Duration::from_secs(5);
    c
}

/// Next event matching `pred`, within the deadline.
async fn wait_event(
    events: &mut SchedulerEvents,
    mut pred: impl FnMut(&SchedulerEvent) -> bool,
) -> SchedulerEvent {
    let fut = async {
        while let Some(e) = events.recv().await {
            if pred(&e) {
                return e;
            }
        }
        panic!("event stream ended");
    };
    tokio::time::timeout(DEADLINE, fut)
        .await
        .expect("timed out waiting for an event")
}

async fn wait_until(mut cond: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "condition not met in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn is_subscribed(e: &SchedulerEvent) -> bool {
    matches!(e, SchedulerEvent::Subscribed { .. })
}

#[tokio::test]
async fn subscribes_and_sends_calls_with_stream_id() {
    let (m, url, server) = start_master(Mode::Normal, 15.0).await;
    let (h, mut events) = Scheduler::start(config(&url));
    let SchedulerEvent::Subscribed {
        framework_id,
        heartbeat_interval,
    } = wait_event(&mut events, is_subscribed).await
    else {
        unreachable!()
    };
    assert_eq!(framework_id.as_str(), "FW-0000");
    assert_eq!(heartbeat_interval, Duration::from_secs(15));
    // The SUBSCRIBED event itself and the first heartbeat are forwarded.
    wait_event(
        &mut events,
        |e| matches!(e, SchedulerEvent::Event(ev) if ev.r#type == EventType::Subscribed),
    )
    .await;
    wait_event(
        &mut events,
        |e| matches!(e, SchedulerEvent::Event(ev) if ev.r#type == EventType::Heartbeat),
    )
    .await;
    assert_eq!(h.framework_id(), Some(framework_id.clone()));
    assert!(
        !m.rec().stream_id_on_subscribe[0],
        "SUBSCRIBE must not carry a stream id"
    );
    assert!(m.rec().subscribes[0].framework_id.is_none());

    h.revive(vec![]).await.expect("revive");
    h.suppress(vec!["r".into()]).await.expect("suppress");
    h.decline(vec!["O1".into()], Some(Filters::refuse_seconds(30.0)))
        .await
        .expect("decline");
    h.reconcile(vec![]).await.expect("reconcile");
    h.kill("t1".into(), Some("S0".into()), None)
        .await
        .expect("kill");
    h.launch(vec!["O2".into()], vec![TaskInfo::default()], None)
        .await
        .expect("launch");
    // acknowledge_status without uuid is a no-op; with uuid it sends ACKNOWLEDGE.
    let mut st = TaskStatus::new("t1", TaskState::Running);
    h.acknowledge_status(&st).await.expect("noop ack");
    st.agent_id = Some("S0".into());
    st.uuid = Some(Bytes::new(vec![7u8; 16]));
    h.acknowledge_status(&st).await.expect("ack");
    h.message("S0".into(), "e".into(), Bytes::from("hi"))
        .await
        .expect("message");

    let calls = m.rec().calls.clone();
    let types: Vec<CallType> = calls.iter().map(|(_, c, _)| c.r#type.clone()).collect();
    assert_eq!(
        types,
        vec![
            CallType::Revive,
            CallType::Suppress,
            CallType::Decline,
            CallType::Reconcile,
            CallType::Kill,
            CallType::Accept,
            CallType::Acknowledge,
            CallType::Message
        ]
    );
    for (sid, call, _) in &calls {
        assert_eq!(sid.as_deref(), Some("stream-1"));
        assert_eq!(
            call.framework_id.as_ref().map(FrameworkId::as_str),
            Some("FW-0000")
        );
    }
    let ack = calls[6].1.acknowledge.clone().expect("ack body");
    assert_eq!(ack.uuid, Bytes::new(vec![7u8; 16]));

    // A refused call surfaces as a typed error with status and body.
    let err = h.kill("bad".into(), None, None).await.expect_err("refused");
    assert_eq!(err.status(), Some(http::StatusCode::BAD_REQUEST));
    assert!(
        matches!(&err, SchedulerError::Status { body, .. } if body == "bad task"),
        "{err}"
    );

    // Events pushed by the master arrive in order.
    m.push(&Event::rescind("O9".into())).await;
    let e = wait_event(
        &mut events,
        |e| matches!(e, SchedulerEvent::Event(ev) if ev.r#type == EventType::Rescind),
    )
    .await;
    let SchedulerEvent::Event(ev) = e else {
        unreachable!()
    };
    assert_eq!(ev.rescind.map(|r| r.offer_id.value), Some("O9".to_string()));

    h.shutdown();
    wait_event(&mut events, |e| {
        matches!(e, SchedulerEvent::Disconnected { .. })
    })
    .await;
    assert!(
        tokio::time::timeout(DEADLINE, events.recv())
            .await
            .expect("stream ends")
            .is_none()
    );
    assert!(matches!(
        h.revive(vec![]).await,
        Err(SchedulerError::Closed)
    ));
    server.abort();
}

#[tokio::test]
async fn reconnects_and_resubscribes_with_same_framework_id() {
    let (m, url, server) = start_master(Mode::Normal, 15.0).await;
    let (h, mut events) = Scheduler::start(config(&url));
    wait_event(&mut events, is_subscribed).await;
    m.drop_stream();
    let SchedulerEvent::Disconnected { reason } = wait_event(&mut events, |e| {
        matches!(e, SchedulerEvent::Disconnected { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(reason.contains("closed"), "{reason}");
    let SchedulerEvent::Subscribed { framework_id, .. } =
        wait_event(&mut events, is_subscribed).await
    else {
        unreachable!()
    };
    assert_eq!(framework_id.as_str(), "FW-0000");
    {
        let rec = m.rec();
        assert_eq!(rec.subscribes.len(), 2);
        let again = &rec.subscribes[1];
        assert_eq!(
            again.framework_id.as_ref().map(FrameworkId::as_str),
            Some("FW-0000")
        );
        let info = &again.subscribe.as_ref().expect("body").framework_info;
        assert_eq!(info.id.as_ref().map(FrameworkId::as_str), Some("FW-0000"));
    }
    // Calls now use the new stream id.
    h.revive(vec![]).await.expect("revive");
    assert_eq!(
        m.rec().calls.last().and_then(|c| c.0.clone()).as_deref(),
        Some("stream-2")
    );
    h.shutdown();
    wait_until(|| !h.is_subscribed()).await;
    server.abort();
}

#[tokio::test]
async fn detects_missed_heartbeats() {
    // Heartbeat interval 0.1 s, 3 misses: the master sends nothing after the first
    // HEARTBEAT, so the client must give up on the stream after ~0.3 s.
    let (m, url, server) = start_master(Mode::Normal, 0.1).await;
    let mut cfg = config(&url);
    cfg.heartbeat_misses = 3;
    let (h, mut events) = Scheduler::start(cfg);
    wait_event(&mut events, is_subscribed).await;
    let SchedulerEvent::Disconnected { reason } = wait_event(&mut events, |e| {
        matches!(e, SchedulerEvent::Disconnected { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(reason.contains("missed heartbeats"), "{reason}");
    wait_event(&mut events, is_subscribed).await;
    assert!(m.rec().subscribes.len() >= 2);
    h.shutdown();
    server.abort();
}

#[tokio::test]
async fn follows_307_to_the_leader() {
    let (leader, leader_url, leader_task) = start_master(Mode::Normal, 15.0).await;
    let leader_hostport = leader_url.trim_start_matches("http://").to_string();
    // A non-leading master redirects with a protocol-relative Location.
    let follower = Router::new().route(
        "/api/v1/scheduler",
        post(move || {
            let loc = format!("//{leader_hostport}/master/api/v1/scheduler");
            async move { (StatusCode::TEMPORARY_REDIRECT, [("location", loc)]).into_response() }
        }),
    );
    let (follower_url, follower_task) = serve(follower).await;
    let (h, mut events) = Scheduler::start(config(&follower_url));
    wait_event(&mut events, is_subscribed).await;
    assert_eq!(leader.rec().subscribes.len(), 1);
    assert!(
        h.master_url().starts_with(&leader_url),
        "{}",
        h.master_url()
    );
    assert!(h.master_url().ends_with("/master/api/v1/scheduler"));
    h.revive(vec![]).await.expect("revive goes to the leader");
    assert_eq!(leader.rec().calls.len(), 1);
    h.shutdown();
    leader_task.abort();
    follower_task.abort();
}

#[tokio::test]
async fn error_event_reports_disconnected_without_spinning() {
    let (m, url, server) = start_master(Mode::Refuse, 15.0).await;
    let mut cfg = config(&url);
    cfg.backoff_initial = Duration::from_millis(100);
    cfg.backoff_max = Duration::from_secs(2);
    let (h, mut events) = Scheduler::start(cfg);
    let e = wait_event(
        &mut events,
        |e| matches!(e, SchedulerEvent::Event(ev) if ev.r#type == EventType::Error),
    )
    .await;
    let SchedulerEvent::Event(ev) = e else {
        unreachable!()
    };
    assert_eq!(
        ev.error.map(|e| e.message).as_deref(),
        Some("Framework has been removed")
    );
    let SchedulerEvent::Disconnected { reason } = wait_event(&mut events, |e| {
        matches!(e, SchedulerEvent::Disconnected { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(reason.contains("Framework has been removed"), "{reason}");
    // Observe for a while: with back-off 100 ms doubling, ~1.5 s allows at most a
    // handful of attempts; a hot loop would make hundreds.
    let window = tokio::time::Instant::now();
    while window.elapsed() < Duration::from_millis(1500) {
        let _ = tokio::time::timeout(Duration::from_millis(100), events.recv()).await;
    }
    let attempts = m.rec().subscribes.len();
    assert!((2..=8).contains(&attempts), "{attempts} SUBSCRIBE attempts");
    // Once the master accepts again, the client recovers.
    *m.mode.lock().expect("lock") = Mode::Normal;
    wait_event(&mut events, is_subscribed).await;
    h.shutdown();
    server.abort();
}

#[tokio::test]
async fn basic_auth_and_configured_framework_id() {
    let (m, url, server) = start_master(Mode::Normal, 15.0).await;
    let mut cfg = config(&url).with_credentials("concord", "s3cret");
    cfg.framework_info.id = Some(FrameworkId::new("KNOWN-0001"));
    let (h, mut events) = Scheduler::start(cfg);
    let SchedulerEvent::Subscribed { framework_id, .. } =
        wait_event(&mut events, is_subscribed).await
    else {
        unreachable!()
    };
    assert_eq!(framework_id.as_str(), "KNOWN-0001");
    let expected = "Basic Y29uY29yZDpzM2NyZXQ=";
    assert_eq!(m.rec().auth_on_subscribe[0].as_deref(), Some(expected));
    assert_eq!(
        m.rec().subscribes[0]
            .framework_id
            .as_ref()
            .map(FrameworkId::as_str),
        Some("KNOWN-0001")
    );
    h.teardown().await.expect("teardown");
    assert_eq!(m.rec().calls[0].2.as_deref(), Some(expected));
    assert_eq!(m.rec().calls[0].1.r#type, CallType::Teardown);
    // Teardown stops the client: the stream ends.
    let end =
        tokio::time::timeout(DEADLINE, async { while events.recv().await.is_some() {} }).await;
    assert!(end.is_ok());
    server.abort();
}

#[tokio::test]
async fn subscribe_raw_step_by_step() {
    let (m, url, server) = start_master(Mode::Normal, 15.0).await;
    let client = mesos_v1::scheduler::default_client(Duration::from_secs(5)).expect("client");
    let call = Call::subscribe(FrameworkInfo::new("u", "raw"));
    let (stream_id, mut stream) = subscribe_raw(&client, &format!("{url}/api/v1/scheduler"), &call)
        .await
        .expect("subscribe");
    assert_eq!(stream_id, "stream-1");
    let first = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("in time")
        .expect("event")
        .expect("ok");
    assert_eq!(first.r#type, EventType::Subscribed);
    let second = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("in time")
        .expect("event")
        .expect("ok");
    assert_eq!(second.r#type, EventType::Heartbeat);
    // A call on another connection with the stream id.
    mesos_v1::scheduler::send_call(
        &client,
        &reqwest::Url::parse(&format!("{url}/api/v1/scheduler")).expect("url"),
        &Call::revive("FW-0000".into(), vec![]),
        &stream_id,
        None,
        Duration::from_secs(5),
    )
    .await
    .expect("call");
    m.drop_stream();
    let end = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("in time");
    assert!(end.is_none());
    server.abort();
}

#[tokio::test]
async fn unreachable_master_reports_disconnected_once_and_keeps_trying() {
    // Bind and drop to get a port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let (h, mut events) = Scheduler::start(config(&format!("http://127.0.0.1:{port}")));
    let e = wait_event(&mut events, |_| true).await;
    let SchedulerEvent::Disconnected { reason } = e else {
        panic!("unexpected {e:?}")
    };
    // The reason carries the transport cause, not just "error sending request".
    assert!(reason.starts_with("SUBSCRIBE failed"), "{reason}");
    assert!(reason.contains("Connection refused"), "{reason}");
    assert!(matches!(
        h.revive(vec![]).await,
        Err(SchedulerError::NotSubscribed)
    ));
    // No second Disconnected while the outage lasts.
    let next = tokio::time::timeout(Duration::from_millis(500), events.recv()).await;
    assert!(next.is_err(), "unexpected {next:?}");
    h.shutdown();
}

#[tokio::test]
async fn suppression_survives_reconnect_and_bad_records_are_skipped() {
    let (m, url, server) = start_master(Mode::Normal, 15.0).await;
    let (h, mut events) = Scheduler::start(config(&url));
    wait_event(&mut events, is_subscribed).await;
    h.suppress(vec![]).await.expect("suppress");
    assert_eq!(h.suppressed_roles(), vec!["*".to_string()]);

    // A well-framed but undecodable record is skipped; the stream stays up.
    m.push_raw(mesos_v1::recordio::encode(
        br#"{"type":"UPDATE","update":{"status":{"task_id":"x"}}}"#,
    ))
    .await;
    m.push(&Event::rescind("O1".into())).await;
    let e = wait_event(&mut events, |e| {
        matches!(e, SchedulerEvent::Disconnected { .. })
            || matches!(e, SchedulerEvent::Event(ev) if ev.r#type == EventType::Rescind)
    })
    .await;
    assert!(matches!(e, SchedulerEvent::Event(_)), "{e:?}");

    m.drop_stream();
    wait_event(&mut events, |e| {
        matches!(e, SchedulerEvent::Disconnected { .. })
    })
    .await;
    wait_event(&mut events, is_subscribed).await;
    let again = m.rec().subscribes[1].subscribe.clone().expect("body");
    assert_eq!(again.suppressed_roles, vec!["*".to_string()]);
    h.revive(vec![]).await.expect("revive");
    assert!(h.suppressed_roles().is_empty());
    h.shutdown();
    server.abort();
}

#[tokio::test]
async fn invalid_master_url_reports_and_ends() {
    let (h, mut events) = Scheduler::start(config("http://[::1"));
    let e = tokio::time::timeout(DEADLINE, events.recv())
        .await
        .expect("in time");
    assert!(
        matches!(e, Some(SchedulerEvent::Disconnected { ref reason }) if reason.contains("invalid master URL")),
        "{e:?}"
    );
    assert!(
        tokio::time::timeout(DEADLINE, events.recv())
            .await
            .expect("in time")
            .is_none()
    );
    assert!(h.is_shut_down());
    assert!(matches!(
        Scheduler::try_start(config("http://[::1")),
        Err(SchedulerError::InvalidUrl(_))
    ));
}

#[tokio::test]
async fn cleared_framework_id_subscribes_as_new() {
    let (m, url, server) = start_master(Mode::Normal, 15.0).await;
    let mut cfg = config(&url);
    cfg.framework_info.id = Some(FrameworkId::new("OLD-0001"));
    let (h, mut events) = Scheduler::start(cfg);
    wait_event(&mut events, is_subscribed).await;
    h.set_framework_id(None);
    m.drop_stream();
    wait_event(&mut events, is_subscribed).await;
    let again = m.rec().subscribes[1].clone();
    assert!(again.framework_id.is_none());
    assert!(again.subscribe.expect("body").framework_info.id.is_none());
    assert_eq!(
        h.framework_id().map(|f| f.value),
        Some("FW-0000".to_string())
    );
    h.shutdown();
    server.abort();
}

#[test]
fn backoff_is_bounded() {
    let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(50));
    for _ in 0..20 {
        assert!(b.next_delay() <= Duration::from_millis(50));
    }
}
