//! A small client of the controller's HTTP API.

use std::time::Duration;

use concord_schemas::Topology;
use concord_schemas::api::{
    API_BASE, ApiStatus, ApplyOutcome, ApplyResponse, TopologyList, WatchEvent,
};
use concord_schemas::gitops::{GitRepository, GitRepositoryList, SyncRequested};
use futures::{Stream, StreamExt};
use reqwest::StatusCode;
use thiserror::Error;

/// Why a call failed; each maps to an exit code.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error(
        "cannot reach the controller at {url} (set CONCORD_API or --api to another address): {reason}"
    )]
    Unreachable { url: String, reason: String },
    #[error("{}", .0.message)]
    Rejected(ApiStatus),
    #[error("unexpected answer from the controller ({status}): {body}")]
    Protocol { status: StatusCode, body: String },
}

impl ClientError {
    /// The API's status code, if the server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Rejected(s) => Some(s.code),
            Self::Protocol { status, .. } => Some(status.as_u16()),
            Self::Unreachable { .. } => None,
        }
    }
}

/// Talks to one controller.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    /// Bearer token sent with every request, when the API requires one.
    token: Option<String>,
}

impl Client {
    /// `base` is like `http://127.0.0.1:7070`.
    pub fn new(base: &str, token: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            token: token.filter(|t| !t.is_empty()),
        }
    }

    fn collection(&self, ns: Option<&str>) -> String {
        match ns {
            Some(ns) => format!("{}{API_BASE}/namespaces/{ns}/topologies", self.base),
            None => format!("{}{API_BASE}/topologies", self.base),
        }
    }

    fn item(&self, ns: &str, name: &str) -> String {
        format!("{}{API_BASE}/namespaces/{ns}/topologies/{name}", self.base)
    }

    fn unreachable(&self, e: reqwest::Error) -> ClientError {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason = format!("{reason}: {s}");
            source = s.source();
        }
        ClientError::Unreachable {
            url: self.base.clone(),
            reason,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let req = match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        };
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.text().await.map_err(|e| self.unreachable(e))?;
        match serde_json::from_str::<ApiStatus>(&body) {
            Ok(s) => Err(ClientError::Rejected(s)),
            Err(_) => Err(ClientError::Protocol { status, body }),
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        resp: reqwest::Response,
    ) -> Result<T, ClientError> {
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
            status,
            body: format!("{e}: {}", String::from_utf8_lossy(&body)),
        })
    }

    /// Creates or updates a topology.
    pub async fn apply(
        &self,
        topology: &Topology,
        dry_run: bool,
    ) -> Result<ApplyResponse, ClientError> {
        let mut url = self.item(&topology.metadata.namespace, &topology.metadata.name);
        if dry_run {
            url.push_str("?dryRun=true");
        }
        let resp = self.send(self.http.put(url).json(topology)).await?;
        self.json(resp).await
    }

    /// Reads one topology with its status.
    pub async fn get(&self, ns: &str, name: &str) -> Result<Topology, ClientError> {
        let resp = self.send(self.http.get(self.item(ns, name))).await?;
        self.json(resp).await
    }

    /// Lists topologies in a namespace, or all: every page (the server answers at most
    /// a few hundred per request), one consistent snapshot.
    pub async fn list(&self, ns: Option<&str>) -> Result<TopologyList, ClientError> {
        let mut list: TopologyList = self.page(self.collection(ns), None).await?;
        while let Some(token) = list.metadata.continue_token.take() {
            let next: TopologyList = self.page(self.collection(ns), Some(&token)).await?;
            // A page that adds nothing cannot lead anywhere: stop rather than loop.
            let progressed = !next.items.is_empty();
            list.items.extend(next.items);
            list.metadata.continue_token = next.metadata.continue_token.filter(|_| progressed);
        }
        Ok(list)
    }

    /// One page of a list: the first, or the one `token` continues with.
    async fn page<T: serde::de::DeserializeOwned>(
        &self,
        url: String,
        token: Option<&str>,
    ) -> Result<T, ClientError> {
        let mut req = self.http.get(url);
        if let Some(token) = token {
            req = req.query(&[("continue", token)]);
        }
        let resp = self.send(req).await?;
        self.json(resp).await
    }

    /// Re-applies the last spec that became Ready.
    pub async fn rollback(&self, ns: &str, name: &str) -> Result<ApplyResponse, ClientError> {
        let url = format!("{}/rollback", self.item(ns, name));
        let resp = self.send(self.http.post(url)).await?;
        self.json(resp).await
    }

    /// Kills one task; the controller replaces it.
    pub async fn kill(&self, ns: &str, name: &str, task: &str) -> Result<(), ClientError> {
        let url = format!("{}/tasks/{task}/kill", self.item(ns, name));
        self.send(self.http.post(url)).await.map(|_| ())
    }

    /// Live per-operator metrics (`GET .../topologies/<name>/metrics`).
    pub async fn metrics<T: serde::de::DeserializeOwned>(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<T, ClientError> {
        let url = format!("{}/metrics", self.item(ns, name));
        let resp = self.send(self.http.get(url)).await?;
        self.json(resp).await
    }

    /// Recent sampled records' paths (`GET .../topologies/<name>/traces`).
    pub async fn traces<T: serde::de::DeserializeOwned>(
        &self,
        ns: &str,
        name: &str,
        trace_id: Option<&str>,
        limit: usize,
    ) -> Result<T, ClientError> {
        let url = format!("{}/traces", self.item(ns, name));
        let mut query = vec![("limit", limit.to_string())];
        if let Some(id) = trace_id {
            query.push(("traceId", id.to_owned()));
        }
        let resp = self.send(self.http.get(url).query(&query)).await?;
        self.json(resp).await
    }

    /// Part of a task's stdout (or stderr) from `offset` (`-1`: only the size), at most
    /// `length` bytes (`GET .../tasks/<task>/logs`).
    pub async fn logs<T: serde::de::DeserializeOwned>(
        &self,
        ns: &str,
        name: &str,
        task: &str,
        stderr: bool,
        offset: i64,
        length: Option<u64>,
    ) -> Result<T, ClientError> {
        let stream = if stderr { "stderr" } else { "stdout" };
        let mut url = format!(
            "{}/tasks/{task}/logs?stream={stream}&offset={offset}",
            self.item(ns, name)
        );
        if let Some(length) = length {
            url.push_str(&format!("&length={length}"));
        }
        let resp = self.send(self.http.get(url)).await?;
        self.json(resp).await
    }

    /// Requests deletion.
    pub async fn delete(&self, ns: &str, name: &str) -> Result<Topology, ClientError> {
        let resp = self.send(self.http.delete(self.item(ns, name))).await?;
        self.json(resp).await
    }

    fn repo_url(&self, ns: Option<&str>, name: Option<&str>) -> String {
        match (ns, name) {
            (Some(ns), Some(name)) => {
                format!(
                    "{}{API_BASE}/namespaces/{ns}/gitrepositories/{name}",
                    self.base
                )
            }
            (Some(ns), None) => format!("{}{API_BASE}/namespaces/{ns}/gitrepositories", self.base),
            (None, _) => format!("{}{API_BASE}/gitrepositories", self.base),
        }
    }

    /// Creates or updates a GitRepository; returns the outcome and the stored object.
    pub async fn apply_repo(
        &self,
        repo: &GitRepository,
    ) -> Result<(ApplyOutcome, GitRepository), ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            outcome: ApplyOutcome,
            object: GitRepository,
        }
        let url = self.repo_url(Some(&repo.metadata.namespace), Some(&repo.metadata.name));
        let resp = self.send(self.http.put(url).json(repo)).await?;
        let answer: Answer = self.json(resp).await?;
        Ok((answer.outcome, answer.object))
    }

    /// One GitRepository with its status.
    pub async fn get_repo(&self, ns: &str, name: &str) -> Result<GitRepository, ClientError> {
        let resp = self
            .send(self.http.get(self.repo_url(Some(ns), Some(name))))
            .await?;
        self.json(resp).await
    }

    /// GitRepositories in a namespace, or all.
    pub async fn list_repos(&self, ns: Option<&str>) -> Result<GitRepositoryList, ClientError> {
        let mut list: GitRepositoryList = self.page(self.repo_url(ns, None), None).await?;
        while let Some(token) = list.metadata.continue_token.take() {
            let next: GitRepositoryList = self.page(self.repo_url(ns, None), Some(&token)).await?;
            // A page that adds nothing cannot lead anywhere: stop rather than loop.
            let progressed = !next.items.is_empty();
            list.items.extend(next.items);
            list.metadata.continue_token = next.metadata.continue_token.filter(|_| progressed);
        }
        Ok(list)
    }

    /// Deletes a GitRepository (its topologies stay).
    pub async fn delete_repo(&self, ns: &str, name: &str) -> Result<(), ClientError> {
        let url = self.repo_url(Some(ns), Some(name));
        self.send(self.http.delete(url)).await.map(|_| ())
    }

    /// Asks for a sync now; returns the request id to wait for.
    pub async fn sync_repo(&self, ns: &str, name: &str) -> Result<i64, ClientError> {
        let url = format!("{}/sync", self.repo_url(Some(ns), Some(name)));
        let resp = self.send(self.http.post(url)).await?;
        let answer: SyncRequested = self.json(resp).await?;
        Ok(answer.request)
    }

    /// Opens a watch; `name` narrows it to one topology, `after` resumes after a revision.
    pub async fn watch(
        &self,
        ns: Option<&str>,
        name: Option<&str>,
        after: Option<&str>,
    ) -> Result<impl Stream<Item = Result<WatchEvent, ClientError>> + use<>, ClientError> {
        let base = match (ns, name) {
            (Some(ns), Some(name)) => self.item(ns, name),
            _ => self.collection(ns),
        };
        let mut url = format!("{base}?watch=true");
        if let Some(rv) = after {
            url.push_str(&format!("&resourceVersion={rv}"));
        }
        let resp = self.send(self.http.get(url)).await?;
        Ok(ndjson_events(resp.bytes_stream(), self.base.clone()))
    }
}

/// Splits a byte stream into newline-delimited JSON watch events.
fn ndjson_events<S>(bytes: S, base: String) -> impl Stream<Item = Result<WatchEvent, ClientError>>
where
    S: Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
{
    futures::stream::unfold(
        (bytes, Vec::<u8>::new(), false),
        move |(mut bytes, mut buf, done)| {
            let base = base.clone();
            async move {
                if done {
                    return None;
                }
                loop {
                    if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        if line.iter().all(|b| b.is_ascii_whitespace()) {
                            continue;
                        }
                        let item = serde_json::from_slice::<WatchEvent>(&line).map_err(|e| {
                            ClientError::Protocol {
                                status: StatusCode::OK,
                                body: format!("bad watch line: {e}"),
                            }
                        });
                        return Some((item, (bytes, buf, false)));
                    }
                    match bytes.next().await {
                        Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                        Some(Err(e)) => {
                            let err = ClientError::Unreachable {
                                url: base,
                                reason: e.to_string(),
                            };
                            return Some((Err(err), (bytes, buf, true)));
                        }
                        None => return None,
                    }
                }
            }
        },
    )
}
