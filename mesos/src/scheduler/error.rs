//! Errors of the scheduler client.

use http::StatusCode;
use thiserror::Error;

use crate::recordio::RecordIoError;

/// Everything that can go wrong talking to the scheduler API.
#[derive(Debug, Error)]
pub enum SchedulerError {
    /// Transport failure (connect, TLS, reset, timeout inside reqwest).
    #[error("HTTP transport error: {0}")]
    Http(#[from] reqwest::Error),
    /// The master answered with a non-2xx status. `body` is its plain-text reason.
    #[error("master answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: StatusCode,
        /// Response body text (Mesos error bodies are plain text).
        body: String,
    },
    /// A 307 without a usable `Location`, or too many redirects.
    #[error("bad redirect: {0}")]
    Redirect(String),
    /// The SUBSCRIBE response lacked a `Mesos-Stream-Id` header.
    #[error("SUBSCRIBE response has no Mesos-Stream-Id header")]
    MissingStreamId,
    /// The call needs a subscribed framework (framework id and stream id).
    #[error("not subscribed to the master")]
    NotSubscribed,
    /// The request did not complete in time.
    #[error("request timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The event stream is not valid RecordIO.
    #[error(transparent)]
    RecordIo(#[from] RecordIoError),
    /// An event is not valid JSON for [`Event`](crate::Event).
    #[error("cannot decode event: {0}")]
    Json(#[from] serde_json::Error),
    /// The master URL cannot be parsed.
    #[error("invalid master URL {0:?}")]
    InvalidUrl(String),
    /// An argument cannot be sent as given.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The scheduler has been shut down.
    #[error("scheduler is shut down")]
    Closed,
}

impl SchedulerError {
    /// The HTTP status, for [`SchedulerError::Status`].
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            SchedulerError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}
