//! A small client for the master's operator API (`POST /api/v1`), the legacy
//! `/state` endpoint and the files API (`GET /files/read`, master or agent).

use std::time::Duration;

use http::StatusCode;
use http::header::{ACCEPT, CONTENT_TYPE};
use reqwest::Url;
use thiserror::Error;

use crate::legacy::MasterState;
use crate::scheduler::Credentials;
use crate::types::{
    FileRead, GetAgents, GetFrameworks, GetHealth, GetState, GetTasks, GetVersion, OperatorCall,
    OperatorCallType, OperatorResponse,
};

/// Errors of the operator client.
#[derive(Debug, Error)]
pub enum OperatorError {
    /// Transport failure.
    #[error("HTTP transport error: {0}")]
    Http(#[from] reqwest::Error),
    /// Non-2xx answer.
    #[error("{url} answered {status}: {body}")]
    Status {
        /// The URL called.
        url: String,
        /// HTTP status.
        status: StatusCode,
        /// Body text.
        body: String,
    },
    /// Body is not the expected JSON.
    #[error("cannot decode response: {0}")]
    Json(#[from] serde_json::Error),
    /// The response lacks the body for its type.
    #[error("response to {0} has no body")]
    MissingBody(String),
    /// The base URL is unusable.
    #[error("invalid URL {0:?}")]
    InvalidUrl(String),
    /// The answer is longer than this client reads for its kind of request.
    #[error("{url} answered more than {max} bytes; not read")]
    TooLarge {
        /// The URL called.
        url: String,
        /// The cap.
        max: usize,
    },
}

/// Most bytes read from one operator call or `/state` answer (a large cluster's state is
/// tens of megabytes).
pub const MAX_STATE_BYTES: usize = 256 * 1024 * 1024;
/// Most bytes read from one `/files/read` answer: Mesos reads at most 16 pages per
/// request, and JSON escaping at most sextuples them; anything longer is not a read.
pub const MAX_FILE_READ_BYTES: usize = 8 * 1024 * 1024;

/// Operator API client for one master (or agent, for `/files/read`).
#[derive(Debug, Clone)]
pub struct OperatorClient {
    client: reqwest::Client,
    base: Url,
    credentials: Option<Credentials>,
}

impl OperatorClient {
    /// A client for `base` (e.g. `http://127.0.0.1:5050`) with a request timeout.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, OperatorError> {
        let trimmed = base.trim().trim_end_matches('/');
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_string()
        } else {
            format!("http://{trimmed}")
        };
        let base = Url::parse(&format!("{with_scheme}/"))
            .map_err(|_| OperatorError::InvalidUrl(base.to_string()))?;
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(OperatorClient {
            client,
            base,
            credentials: None,
        })
    }

    /// Uses HTTP Basic credentials.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    fn url(&self, path: &str) -> Result<Url, OperatorError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|_| OperatorError::InvalidUrl(path.to_string()))
    }

    async fn check(url: &Url, resp: reqwest::Response) -> Result<bytes::Bytes, OperatorError> {
        Self::check_capped(url, resp, MAX_STATE_BYTES).await
    }

    /// The body of a successful answer, at most `max` bytes (a longer one is an error as
    /// soon as it is known, without reading the rest).
    async fn check_capped(
        url: &Url,
        mut resp: reqwest::Response,
        max: usize,
    ) -> Result<bytes::Bytes, OperatorError> {
        let too_large = || OperatorError::TooLarge {
            url: url.to_string(),
            max,
        };
        if resp
            .content_length()
            .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
        {
            return Err(too_large());
        }
        let status = resp.status();
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = resp.chunk().await? {
            if body.len() + chunk.len() > max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let body = body.freeze();
        if !status.is_success() {
            return Err(OperatorError::Status {
                url: url.to_string(),
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(body)
    }

    /// Sends an operator call and decodes the response envelope.
    pub async fn call(&self, call: &OperatorCall) -> Result<OperatorResponse, OperatorError> {
        let url = self.url("api/v1")?;
        let mut req = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(serde_json::to_vec(call)?);
        if let Some(c) = &self.credentials {
            req = req.basic_auth(&c.principal, Some(&c.secret));
        }
        let body = Self::check(&url, req.send().await?).await?;
        Ok(serde_json::from_slice(&body)?)
    }

    async fn simple(&self, t: OperatorCallType) -> Result<OperatorResponse, OperatorError> {
        self.call(&OperatorCall::new(t)).await
    }

    /// GET_STATE.
    pub async fn get_state(&self) -> Result<GetState, OperatorError> {
        self.simple(OperatorCallType::GetState)
            .await?
            .get_state
            .ok_or_else(|| OperatorError::MissingBody("GET_STATE".into()))
    }

    /// GET_TASKS.
    pub async fn get_tasks(&self) -> Result<GetTasks, OperatorError> {
        self.simple(OperatorCallType::GetTasks)
            .await?
            .get_tasks
            .ok_or_else(|| OperatorError::MissingBody("GET_TASKS".into()))
    }

    /// GET_AGENTS.
    pub async fn get_agents(&self) -> Result<GetAgents, OperatorError> {
        self.simple(OperatorCallType::GetAgents)
            .await?
            .get_agents
            .ok_or_else(|| OperatorError::MissingBody("GET_AGENTS".into()))
    }

    /// GET_FRAMEWORKS.
    pub async fn get_frameworks(&self) -> Result<GetFrameworks, OperatorError> {
        self.simple(OperatorCallType::GetFrameworks)
            .await?
            .get_frameworks
            .ok_or_else(|| OperatorError::MissingBody("GET_FRAMEWORKS".into()))
    }

    /// GET_HEALTH.
    pub async fn get_health(&self) -> Result<GetHealth, OperatorError> {
        self.simple(OperatorCallType::GetHealth)
            .await?
            .get_health
            .ok_or_else(|| OperatorError::MissingBody("GET_HEALTH".into()))
    }

    /// GET_VERSION.
    pub async fn get_version(&self) -> Result<GetVersion, OperatorError> {
        self.simple(OperatorCallType::GetVersion)
            .await?
            .get_version
            .ok_or_else(|| OperatorError::MissingBody("GET_VERSION".into()))
    }

    /// Legacy `GET /state`.
    pub async fn legacy_state(&self) -> Result<MasterState, OperatorError> {
        let url = self.url("state")?;
        let mut req = self.client.get(url.clone());
        if let Some(c) = &self.credentials {
            req = req.basic_auth(&c.principal, Some(&c.secret));
        }
        let body = Self::check(&url, req.send().await?).await?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// `GET /files/read?path=…&offset=…&length=…`. `offset = -1` asks for the size;
    /// `length = None` reads to the end (capped by the server).
    pub async fn read_file(
        &self,
        path: &str,
        offset: i64,
        length: Option<i64>,
    ) -> Result<FileRead, OperatorError> {
        let mut url = self.url("files/read")?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("path", path);
            q.append_pair("offset", &offset.to_string());
            if let Some(l) = length {
                q.append_pair("length", &l.to_string());
            }
        }
        let mut req = self.client.get(url.clone());
        if let Some(c) = &self.credentials {
            req = req.basic_auth(&c.principal, Some(&c.secret));
        }
        let body = Self::check_capped(&url, req.send().await?, MAX_FILE_READ_BYTES).await?;
        Ok(serde_json::from_slice(&body)?)
    }
}
