//! The background task: subscribe, read events, detect dead streams, reconnect.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::SchedulerError;
use super::backoff::Backoff;
use super::http::{EventStream, subscribe_at};
use super::{SchedulerEvent, Shared};
use crate::types::{Call, EventType, FrameworkInfo, Subscribe};

/// Mesos' heartbeat interval when SUBSCRIBED does not announce one.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// Why a subscription ended.
enum End {
    /// Shut down by the user, or nobody listens any more.
    Stop,
    /// Lost; reconnect after back-off.
    Lost(String),
}

/// Runs until cancelled or until the events receiver is dropped.
pub(crate) async fn run(shared: Arc<Shared>, tx: mpsc::Sender<SchedulerEvent>) {
    let cfg = &shared.config;
    let mut backoff = Backoff::new(cfg.backoff_initial, cfg.backoff_max);
    // Report an outage once, not on every failed attempt.
    let mut outage_reported = false;
    loop {
        if shared.cancel.is_cancelled() {
            break;
        }
        let end = tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => End::Stop,
            // Nobody listens any more (the events were dropped): close the subscription
            // now rather than at the next event, so a deposed scheduler lets go at once.
            _ = tx.closed() => End::Stop,
            end = session(&shared, &tx, &mut backoff, &mut outage_reported) => end,
        };
        shared.session().stream_id = None;
        let reason = match end {
            End::Stop => break,
            // The master closes the stream in answer to our TEARDOWN.
            End::Lost(_) if shared.tearing_down.load(Ordering::SeqCst) => break,
            End::Lost(reason) => reason,
        };
        if !outage_reported {
            outage_reported = true;
            if tx
                .send(SchedulerEvent::Disconnected {
                    reason: reason.clone(),
                })
                .await
                .is_err()
            {
                break;
            }
        }
        let delay = backoff.next_delay();
        warn!(%reason, ?delay, "subscription lost; reconnecting after back-off");
        tokio::select! {
            _ = shared.cancel.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    shared.session().stream_id = None;
    let _ = tx.try_send(SchedulerEvent::Disconnected {
        reason: "scheduler shut down".into(),
    });
    debug!("scheduler task stopped");
}

/// An error with its sources (reqwest's own message alone rarely says why).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The SUBSCRIBE call for the current framework id (top-level and in the info).
fn subscribe_call(shared: &Shared) -> Call {
    let s = shared.session();
    let mut info = s.framework_info.clone();
    // The session's id wins: it starts as the configured one, is replaced by the
    // master's SUBSCRIBED and may be cleared with `set_framework_id(None)`.
    info.id = s.framework_id.clone();
    Call {
        framework_id: info.id.clone(),
        subscribe: Some(Subscribe {
            framework_info: info,
            suppressed_roles: s.suppressed_roles.iter().cloned().collect(),
            offer_constraints: None,
        }),
        ..Call::subscribe(FrameworkInfo::default())
    }
}

/// One subscription, from SUBSCRIBE to its end.
async fn session(
    shared: &Shared,
    tx: &mpsc::Sender<SchedulerEvent>,
    backoff: &mut Backoff,
    outage_reported: &mut bool,
) -> End {
    let cfg = &shared.config;
    let call = subscribe_call(shared);
    let url = shared.session().url.clone();
    debug!(%url, framework_id = ?call.framework_id, "subscribing");
    let (leader, stream_id, mut events): (_, _, EventStream) = match subscribe_at(
        &shared.client,
        &url,
        &call,
        cfg.credentials.as_ref(),
        cfg.request_timeout,
    )
    .await
    {
        Ok(ok) => ok,
        Err(e) => return End::Lost(format!("SUBSCRIBE failed: {}", error_chain(&e))),
    };
    if leader != url {
        info!(%leader, "subscribed through a redirect; using the leading master");
    }
    {
        let mut s = shared.session();
        s.url = leader;
    }
    // Until SUBSCRIBED tells us the interval, give the master one request timeout.
    let mut idle_limit = cfg.request_timeout;
    loop {
        let next = tokio::time::timeout(idle_limit, events.next()).await;
        let event = match next {
            Err(_) => {
                return End::Lost(format!(
                    "no event for {idle_limit:?} ({} missed heartbeats)",
                    cfg.heartbeat_misses
                ));
            }
            Ok(None) => return End::Lost("event stream closed by the master".into()),
            Ok(Some(Err(SchedulerError::Json(e)))) => {
                // The framing is intact, only this record is unusable: skip it rather
                // than reconnect forever over one event (the agent re-sends
                // unacknowledged updates anyway).
                error!(error = %e, "skipping an event that cannot be decoded");
                continue;
            }
            Ok(Some(Err(e))) => {
                return End::Lost(format!("event stream failed: {}", error_chain(&e)));
            }
            Ok(Some(Ok(event))) => event,
        };
        match event.r#type {
            EventType::Subscribed => {
                let Some(sub) = event.subscribed.clone() else {
                    return End::Lost("SUBSCRIBED event without body".into());
                };
                let interval = sub
                    .heartbeat_interval_seconds
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(Duration::from_secs_f64)
                    .unwrap_or(DEFAULT_HEARTBEAT);
                idle_limit = interval.saturating_mul(cfg.heartbeat_misses.max(1));
                {
                    let mut s = shared.session();
                    s.framework_id = Some(sub.framework_id.clone());
                    s.stream_id = Some(stream_id.clone());
                }
                backoff.reset();
                *outage_reported = false;
                info!(framework_id = %sub.framework_id, ?interval, "subscribed");
                let note = SchedulerEvent::Subscribed {
                    framework_id: sub.framework_id,
                    heartbeat_interval: interval,
                };
                if tx.send(note).await.is_err() {
                    return End::Stop;
                }
            }
            EventType::Error => {
                let message = event
                    .error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default();
                warn!(%message, "master sent ERROR");
                if tx.send(SchedulerEvent::Event(event)).await.is_err() {
                    return End::Stop;
                }
                return End::Lost(format!("master error: {message}"));
            }
            _ => {}
        }
        if tx.send(SchedulerEvent::Event(event)).await.is_err() {
            return End::Stop;
        }
    }
}
