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
    #[error(
        "the controller's certificate at {url} is not trusted ({reason}): pass --ca FILE (or set CONCORD_CA) with the CA that signed it, or set certificateAuthority in the context (`concord config set-context NAME --ca FILE`)"
    )]
    Untrusted { url: String, reason: String },
    #[error("the controller's certificate at {url} was refused: {reason}")]
    BadCertificate { url: String, reason: String },
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
            Self::Unreachable { .. } | Self::Untrusted { .. } | Self::BadCertificate { .. } => None,
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

/// Why a client could not be set up (exit 1).
#[derive(Debug, Error)]
pub enum SetupError {
    #[error("cannot read the CA file {path}: {source}")]
    ReadCa {
        path: String,
        source: std::io::Error,
    },
    #[error("the CA file {path} holds no PEM certificate: {reason}")]
    BadCa { path: String, reason: String },
    #[error("cannot set up the HTTP client: {0}")]
    Build(String),
}

impl Client {
    /// `base` is like `http://127.0.0.1:7070`. HTTPS servers are verified against the
    /// system's roots (and the bundled webpki roots), or only against `ca` when given.
    pub fn new(
        base: &str,
        token: Option<String>,
        ca: Option<&std::path::Path>,
    ) -> Result<Self, SetupError> {
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
        if let Some(path) = ca {
            let shown = path.display().to_string();
            let pem = std::fs::read(path).map_err(|source| SetupError::ReadCa {
                path: shown.clone(),
                source,
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| SetupError::BadCa {
                    path: shown.clone(),
                    reason: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(SetupError::BadCa {
                    path: shown,
                    reason: "expected `-----BEGIN CERTIFICATE-----`".into(),
                });
            }
            // A given CA is the only one trusted, as kubectl's certificate-authority.
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| SetupError::Build(e.to_string()))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            token: token.filter(|t| !t.is_empty()),
        })
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
        // The likely reason when the other side does not speak TLS at all.
        const NOT_TLS: &str = " (the server does not speak TLS there: is it an http:// URL?)";
        let mut hint = "";
        if self.base.starts_with("https://") && handshake_eof(&e) {
            hint = NOT_TLS;
        }
        if let Some(refused) = tls_error(&e) {
            let url = self.base.clone();
            match refused {
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer
                    | rustls::CertificateError::BadSignature,
                ) => {
                    return ClientError::Untrusted {
                        url,
                        reason: "signed by an unknown authority".into(),
                    };
                }
                rustls::Error::InvalidCertificate(_) => {
                    return ClientError::BadCertificate {
                        url,
                        reason: refused.to_string(),
                    };
                }
                // Not TLS on the other side: most likely a plain-HTTP controller.
                rustls::Error::InvalidMessage(_) => hint = NOT_TLS,
                _ => {}
            }
        }
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason = format!("{reason}: {s}");
            source = s.source();
        }
        ClientError::Unreachable {
            url: self.base.clone(),
            reason: format!("{reason}{hint}"),
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

    /// A POST whose meaning is all in its URL. It still sends a JSON body (`{}`): the
    /// controller refuses writes without a JSON or YAML Content-Type (415), which keeps
    /// web pages from sending them without a CORS preflight.
    fn post_empty(&self, url: String) -> reqwest::RequestBuilder {
        self.http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body("{}")
    }

    /// Re-applies the last spec that became Ready.
    pub async fn rollback(&self, ns: &str, name: &str) -> Result<ApplyResponse, ClientError> {
        let url = format!("{}/rollback", self.item(ns, name));
        let resp = self.send(self.post_empty(url)).await?;
        self.json(resp).await
    }

    /// Kills one task; the controller replaces it.
    pub async fn kill(&self, ns: &str, name: &str, task: &str) -> Result<(), ClientError> {
        let url = format!("{}/tasks/{task}/kill", self.item(ns, name));
        self.send(self.post_empty(url)).await.map(|_| ())
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
        let resp = self.send(self.post_empty(url)).await?;
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

/// Every error behind a failed request, outermost first. rustls's errors sit inside
/// `io::Error`s (hyper-rustls wraps tokio-rustls's in another), whose `source()` skips
/// the error they wrap: those are unwrapped with `get_ref`.
fn error_chain(e: &reqwest::Error) -> Vec<&(dyn std::error::Error + 'static)> {
    let mut chain = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(mut err) = next {
        chain.push(err);
        while let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            err = inner;
            chain.push(err);
        }
        next = err.source();
    }
    chain
}

/// The TLS error behind a failed request, if any.
fn tls_error(e: &reqwest::Error) -> Option<&rustls::Error> {
    error_chain(e)
        .into_iter()
        .find_map(|err| err.downcast_ref::<rustls::Error>())
}

/// Whether the connection ended in the middle of the TLS handshake.
fn handshake_eof(e: &reqwest::Error) -> bool {
    error_chain(e).into_iter().any(|err| {
        err.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodyless_posts_send_an_empty_json_object_with_its_content_type() {
        let client = Client::new("http://127.0.0.1:7070/", None, None).expect("client");
        let req = client
            .post_empty(format!("{}/x/rollback", client.base))
            .build()
            .expect("request");
        assert_eq!(req.method(), reqwest::Method::POST);
        assert_eq!(req.url().as_str(), "http://127.0.0.1:7070/x/rollback");
        assert_eq!(
            req.headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        assert_eq!(
            req.body().and_then(|b| b.as_bytes()),
            Some(b"{}".as_slice())
        );
    }

    #[test]
    fn a_ca_file_that_is_missing_or_not_pem_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let missing = dir.path().join("missing.pem");
        let err = Client::new("https://x:1", None, Some(&missing))
            .err()
            .expect("missing CA");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot read the CA file {}", missing.display())),
            "{err}"
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello\n").expect("write");
        let err = Client::new("https://x:1", None, Some(&junk))
            .err()
            .expect("not PEM");
        assert!(
            err.to_string().starts_with(&format!(
                "the CA file {} holds no PEM certificate",
                junk.display()
            )),
            "{err}"
        );
    }
}
