//! The HTTP exchanges of the scheduler API: SUBSCRIBE (with 307 handling) and calls.

use std::time::Duration;

use futures::{Stream, StreamExt};
use http::StatusCode;
use http::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use reqwest::Url;
use tracing::{debug, warn};

use super::{Credentials, SchedulerError};
use crate::recordio::{self, DEFAULT_MAX_RECORD_SIZE};
use crate::types::{Call, Event};

/// Name of the stream id header.
pub const STREAM_ID_HEADER: &str = "Mesos-Stream-Id";

/// Path of the scheduler endpoint.
pub const SCHEDULER_PATH: &str = "/api/v1/scheduler";

/// Redirect hops followed before giving up (leadership moving repeatedly).
const MAX_REDIRECTS: usize = 5;

/// Builds `<master>/api/v1/scheduler` from a base URL such as `http://127.0.0.1:5050`.
pub fn scheduler_url(master: &str) -> Result<Url, SchedulerError> {
    let base = master.trim().trim_end_matches('/');
    let with_scheme = if base.contains("://") {
        base.to_string()
    } else {
        format!("http://{base}")
    };
    Url::parse(&format!("{with_scheme}{SCHEDULER_PATH}"))
        .map_err(|_| SchedulerError::InvalidUrl(master.to_string()))
}

/// Resolves a 307 `Location` (Mesos sends the protocol-relative `//host:port/path`)
/// against the URL that was redirected.
pub fn resolve_redirect(from: &Url, location: &str) -> Result<Url, SchedulerError> {
    let loc = location.trim();
    if loc.is_empty() {
        return Err(SchedulerError::Redirect("307 without Location".into()));
    }
    from.join(loc)
        .map_err(|e| SchedulerError::Redirect(format!("unusable Location {loc:?}: {e}")))
}

/// A client suitable for the scheduler API: no automatic redirects (we follow 307
/// ourselves to learn the leader and keep the Authorization header), pooled
/// connections for calls, TCP keep-alive for the long-lived stream.
pub fn default_client(connect_timeout: Duration) -> Result<reqwest::Client, SchedulerError> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .build()?)
}

fn body_of(call: &Call) -> Result<Vec<u8>, SchedulerError> {
    Ok(serde_json::to_vec(call)?)
}

/// Reads an error body, bounded so a misbehaving server cannot make us buffer much.
async fn error_text(resp: reqwest::Response) -> String {
    match resp.text().await {
        Ok(mut t) => {
            if t.len() > 4096 {
                let mut end = 4096;
                while !t.is_char_boundary(end) {
                    end -= 1;
                }
                t.truncate(end);
            }
            t
        }
        Err(e) => format!("<unreadable body: {e}>"),
    }
}

/// One POST of a JSON call, following 307s. Returns the final URL and the response
/// (any status other than 307).
async fn post(
    client: &reqwest::Client,
    url: &Url,
    body: Vec<u8>,
    stream_id: Option<&str>,
    credentials: Option<&Credentials>,
    timeout: Option<Duration>,
) -> Result<(Url, reqwest::Response), SchedulerError> {
    let mut url = url.clone();
    for _ in 0..=MAX_REDIRECTS {
        let mut req = client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body.clone());
        if let Some(id) = stream_id {
            req = req.header(STREAM_ID_HEADER, id);
        }
        if let Some(c) = credentials {
            req = req.basic_auth(&c.principal, Some(&c.secret));
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                SchedulerError::Timeout(timeout.unwrap_or_default())
            } else {
                SchedulerError::Http(e)
            }
        })?;
        if resp.status() == StatusCode::TEMPORARY_REDIRECT {
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let next = resolve_redirect(&url, &location)?;
            debug!(from = %url, to = %next, "following redirect to the leading master");
            url = next;
            continue;
        }
        return Ok((url, resp));
    }
    Err(SchedulerError::Redirect(format!(
        "more than {MAX_REDIRECTS} redirects"
    )))
}

/// Sends a non-SUBSCRIBE call. 2xx (202, or 200 for UPDATE_FRAMEWORK) is success;
/// anything else becomes [`SchedulerError::Status`].
pub async fn send_call(
    client: &reqwest::Client,
    url: &Url,
    call: &Call,
    stream_id: &str,
    credentials: Option<&Credentials>,
    timeout: Duration,
) -> Result<(), SchedulerError> {
    let (_, resp) = post(
        client,
        url,
        body_of(call)?,
        Some(stream_id),
        credentials,
        Some(timeout),
    )
    .await?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = error_text(resp).await;
    warn!(%status, call = %call.r#type, %body, "call refused by the master");
    Err(SchedulerError::Status { status, body })
}

/// The event stream of a subscription.
pub type EventStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<Event, SchedulerError>> + Send + 'static>>;

/// SUBSCRIBE, following 307s. Returns the URL that accepted it (the leader), the
/// stream id and the decoded event stream.
pub async fn subscribe_at(
    client: &reqwest::Client,
    url: &Url,
    call: &Call,
    credentials: Option<&Credentials>,
    timeout: Duration,
) -> Result<(Url, String, EventStream), SchedulerError> {
    // The timeout covers only the response head: the body is a stream that lives
    // as long as the subscription.
    let fut = post(client, url, body_of(call)?, None, credentials, None);
    let (url, resp) = tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| SchedulerError::Timeout(timeout))??;
    let status = resp.status();
    if status != StatusCode::OK {
        let body = error_text(resp).await;
        return Err(SchedulerError::Status { status, body });
    }
    let stream_id = resp
        .headers()
        .get(STREAM_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or(SchedulerError::MissingStreamId)?;
    let events = recordio::decode_stream(resp.bytes_stream(), DEFAULT_MAX_RECORD_SIZE).map(|r| {
        let record = r?;
        Ok(serde_json::from_slice::<Event>(&record)?)
    });
    Ok((url, stream_id, Box::pin(events)))
}

/// Low-level SUBSCRIBE for step-by-step protocol tests: POSTs `call` to `url` (the
/// full scheduler endpoint, e.g. `http://127.0.0.1:5050/api/v1/scheduler`), follows
/// 307s, and returns the `Mesos-Stream-Id` and the stream of decoded events.
///
/// The client should not follow redirects itself (see [`default_client`]); one that
/// does also works for masters that answer with absolute `Location`s.
pub async fn subscribe_raw(
    client: &reqwest::Client,
    url: &str,
    call: &Call,
) -> Result<
    (
        String,
        impl Stream<Item = Result<Event, SchedulerError>> + Send + 'static,
    ),
    SchedulerError,
> {
    let url = Url::parse(url).map_err(|_| SchedulerError::InvalidUrl(url.to_string()))?;
    let (_, stream_id, events) =
        subscribe_at(client, &url, call, None, Duration::from_secs(30)).await?;
    Ok((stream_id, events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = scheduler_url("http://127.0.0.1:5050/").expect("url");
        assert_eq!(u.as_str(), "http://127.0.0.1:5050/api/v1/scheduler");
        let u2 = scheduler_url("10.0.0.1:5050").expect("url");
        assert_eq!(u2.as_str(), "http://10.0.0.1:5050/api/v1/scheduler");
        let r = resolve_redirect(&u, "//m2:5051/master/api/v1/scheduler").expect("resolve");
        assert_eq!(r.as_str(), "http://m2:5051/master/api/v1/scheduler");
        let r = resolve_redirect(&u, "https://m3:5050/api/v1/scheduler").expect("resolve");
        assert_eq!(r.as_str(), "https://m3:5050/api/v1/scheduler");
        assert!(resolve_redirect(&u, "").is_err());
    }
}
