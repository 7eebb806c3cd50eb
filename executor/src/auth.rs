//! Authentication of data-plane connections (docs/delivery.md, "Authentication").
//!
//! Every executor of a topology holds the topology's secret (a file the controller has
//! Mesos write into the sandbox). A connection is accepted only after both ends proved
//! they hold it, before any record or marker is read:
//!
//! 1. the accepting executor sends `CHALLENGE` (a fresh 32-byte nonce `na`);
//! 2. the connecting one answers `AUTH`: its own nonce `nc`, then
//!    `HMAC-SHA256(secret, "concord-dataplane-v1/connect" ‖ na ‖ nc ‖ hello)`, then its
//!    hello JSON;
//! 3. the acceptor checks the proof in constant time and answers `AUTH_OK` with
//!    `HMAC-SHA256(secret, "concord-dataplane-v1/accept" ‖ na ‖ nc ‖ hello)`, which the
//!    connector checks in turn.
//!
//! Fresh nonces on both sides make a recorded handshake useless for another connection,
//! and the two labels keep one side's proof from being reflected as the other's. What
//! is read before the proof is checked is bounded ([`MAX_HANDSHAKE_FRAME`]) and timed
//! ([`HANDSHAKE_TIMEOUT`]). A failed handshake closes the connection, is counted in
//! [`AUTH_FAILURES_METRIC`] and logged at warn with the peer address.
//!
//! This authenticates who opened the connection; it neither encrypts the records nor
//! protects a connection from someone who can rewrite packets on the path.

use std::io::Write as _;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use concord_schemas::dataplane::{DATAPLANE_SECRET_MAX_LEN, DATAPLANE_SECRET_MIN_LEN};
use hmac::{Hmac, Mac as _};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sha2::Sha256;

use crate::metrics::Labels;
use crate::wire::{FRAME_AUTH, FRAME_AUTH_OK, FRAME_CHALLENGE, read_frame_max};

/// Name of the counter of failed handshakes, labelled by `direction` (`inbound`: a peer
/// that connected to us; `outbound`: a downstream we connected to) and `reason`. The
/// Prometheus text exposition adds `_total`.
pub const AUTH_FAILURES_METRIC: &str = "concord_dataplane_auth_failures";

/// Largest frame read before the peer is authenticated.
pub const MAX_HANDSHAKE_FRAME: usize = 4096;

/// How long either side waits for the other's next handshake frame.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Nonce length, both sides.
pub const NONCE_LEN: usize = 32;

const PROOF_LEN: usize = 32;
const CONNECT_LABEL: &[u8] = b"concord-dataplane-v1/connect";
const ACCEPT_LABEL: &[u8] = b"concord-dataplane-v1/accept";

/// Why a handshake or loading the secret failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The socket failed or the peer went away (or was too slow).
    #[error("handshake i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something that is not the expected handshake frame.
    #[error("handshake protocol: {0}")]
    Protocol(&'static str),
    /// The peer's proof does not match: it does not hold the topology's secret.
    #[error("the peer did not prove it holds the topology's data-plane secret")]
    BadProof,
    /// The secret file cannot be used.
    #[error("data-plane secret file {path}: {reason}")]
    SecretFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl AuthError {
    /// The `reason` label of the failure counter.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                "timeout"
            }
            AuthError::Io(_) => "io",
            AuthError::Protocol(_) => "protocol",
            AuthError::BadProof => "bad_proof",
            AuthError::SecretFile { .. } => "secret",
        }
    }
}

/// A topology's data-plane secret and the counter of failed handshakes.
#[derive(Clone)]
pub struct DataplaneAuth {
    key: Arc<[u8]>,
    failures: Family<Labels, Counter>,
}

impl std::fmt::Debug for DataplaneAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("DataplaneAuth")
            .field("key_len", &self.key.len())
            .finish_non_exhaustive()
    }
}

impl DataplaneAuth {
    /// Uses `key` (16 to 4096 bytes) as the secret; `failures` is the executor's
    /// [`AUTH_FAILURES_METRIC`] family.
    pub fn new(key: Vec<u8>, failures: Family<Labels, Counter>) -> Result<Self, AuthError> {
        if !(DATAPLANE_SECRET_MIN_LEN..=DATAPLANE_SECRET_MAX_LEN).contains(&key.len()) {
            return Err(AuthError::SecretFile {
                path: "(in memory)".into(),
                reason: format!(
                    "a secret must be {DATAPLANE_SECRET_MIN_LEN} to {DATAPLANE_SECRET_MAX_LEN} bytes, got {}",
                    key.len()
                ),
            });
        }
        Ok(Self {
            key: key.into(),
            failures,
        })
    }

    /// Reads the secret from `path` (its bytes as they are).
    pub fn from_file(path: &Path, failures: Family<Labels, Counter>) -> Result<Self, AuthError> {
        let shown = path.display().to_string();
        let err = |reason: String| AuthError::SecretFile {
            path: shown.clone(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if !meta.is_file() {
            return Err(err("not a regular file".into()));
        }
        if meta.len() > DATAPLANE_SECRET_MAX_LEN as u64 {
            return Err(err(format!(
                "{} bytes; a secret is at most {DATAPLANE_SECRET_MAX_LEN}",
                meta.len()
            )));
        }
        let key = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        Self::new(key, failures).map_err(|e| match e {
            AuthError::SecretFile { reason, .. } => err(reason),
            other => other,
        })
    }

    /// The accepting side: challenges the peer on `stream` and returns its hello JSON
    /// once it proved it holds the secret. On failure the caller closes the connection;
    /// the failure is already counted and logged.
    pub fn accept(&self, stream: &mut TcpStream) -> Result<Vec<u8>, AuthError> {
        let result = self.try_accept(stream);
        if let Err(e) = &result {
            self.failed("inbound", stream, e);
        }
        result
    }

    fn try_accept(&self, stream: &mut TcpStream) -> Result<Vec<u8>, AuthError> {
        stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
        let na: [u8; NONCE_LEN] = rand::random();
        stream.write_all(&frame(FRAME_CHALLENGE, &[&na]))?;
        let body = match read_frame_max(stream, MAX_HANDSHAKE_FRAME)? {
            Some((FRAME_AUTH, body)) => body,
            Some(_) => return Err(AuthError::Protocol("expected AUTH")),
            None => return Err(AuthError::Protocol("closed before AUTH")),
        };
        if body.len() < NONCE_LEN + PROOF_LEN {
            return Err(AuthError::Protocol("short AUTH"));
        }
        let (nc, rest) = body.split_at(NONCE_LEN);
        let (proof, hello) = rest.split_at(PROOF_LEN);
        self.mac(CONNECT_LABEL, &na, nc, hello)
            .verify_slice(proof)
            .map_err(|_| AuthError::BadProof)?;
        let ours = self
            .mac(ACCEPT_LABEL, &na, nc, hello)
            .finalize()
            .into_bytes();
        stream.write_all(&frame(FRAME_AUTH_OK, &[&ours]))?;
        stream.set_read_timeout(None)?;
        Ok(hello.to_vec())
    }

    /// The connecting side: answers the acceptor's challenge with `hello` (the hello
    /// JSON) and checks the acceptor's proof. The failure is counted and logged.
    pub fn connect(&self, stream: &mut TcpStream, hello: &[u8]) -> Result<(), AuthError> {
        let result = self.try_connect(stream, hello);
        if let Err(e) = &result {
            self.failed("outbound", stream, e);
        }
        result
    }

    fn try_connect(&self, stream: &mut TcpStream, hello: &[u8]) -> Result<(), AuthError> {
        stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        let na = match read_frame_max(stream, MAX_HANDSHAKE_FRAME)? {
            Some((FRAME_CHALLENGE, body)) if body.len() == NONCE_LEN => body,
            Some(_) => return Err(AuthError::Protocol("expected CHALLENGE")),
            None => return Err(AuthError::Protocol("closed before CHALLENGE")),
        };
        let nc: [u8; NONCE_LEN] = rand::random();
        let proof = self
            .mac(CONNECT_LABEL, &na, &nc, hello)
            .finalize()
            .into_bytes();
        stream.write_all(&frame(FRAME_AUTH, &[&nc, &proof, hello]))?;
        let theirs = match read_frame_max(stream, MAX_HANDSHAKE_FRAME)? {
            Some((FRAME_AUTH_OK, body)) => body,
            Some(_) => return Err(AuthError::Protocol("expected AUTH_OK")),
            None => return Err(AuthError::Protocol("closed before AUTH_OK")),
        };
        self.mac(ACCEPT_LABEL, &na, &nc, hello)
            .verify_slice(&theirs)
            .map_err(|_| AuthError::BadProof)?;
        stream.set_read_timeout(None)?;
        Ok(())
    }

    /// Counts a connection refused before any handshake (e.g. too many at once).
    pub fn refused(&self, stream: &TcpStream, reason: &'static str) {
        self.count("inbound", reason);
        tracing::warn!(peer = ?stream.peer_addr().ok(), reason, "data-plane connection refused");
    }

    fn failed(&self, direction: &'static str, stream: &TcpStream, e: &AuthError) {
        self.count(direction, e.reason());
        tracing::warn!(
            peer = ?stream.peer_addr().ok(),
            direction,
            error = %e,
            "data-plane connection refused: authentication failed"
        );
    }

    fn count(&self, direction: &'static str, reason: &'static str) {
        self.failures
            .get_or_create(&vec![
                ("direction".to_owned(), direction.to_owned()),
                ("reason".to_owned(), reason.to_owned()),
            ])
            .inc();
    }

    fn mac(&self, label: &[u8], na: &[u8], nc: &[u8], hello: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length; `new` checked ours is 16..=4096 bytes.
        let mut m = <Hmac<Sha256> as hmac::Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        m.update(label);
        m.update(na);
        m.update(nc);
        m.update(hello);
        m
    }
}

/// Encodes a frame of `kind` whose body is `parts` concatenated.
fn frame(kind: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut b = Vec::with_capacity(len + 5);
    b.extend_from_slice(&((len + 1) as u32).to_be_bytes());
    b.push(kind);
    for p in parts {
        b.extend_from_slice(p);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn auth(key: &[u8]) -> DataplaneAuth {
        DataplaneAuth::new(key.to_vec(), Family::default()).expect("key")
    }

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let c = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (s, _) = l.accept().expect("accept");
        (s, c)
    }

    #[test]
    fn both_sides_with_the_same_secret_agree_and_the_hello_arrives() {
        let (mut s, mut c) = pair();
        let a = auth(b"0123456789abcdef0123456789abcdef");
        let b = a.clone();
        let t = std::thread::spawn(move || b.connect(&mut c, br#"{"operator":"up"}"#).is_ok());
        let hello = a.accept(&mut s).expect("accepted");
        assert_eq!(hello, br#"{"operator":"up"}"#);
        assert!(t.join().expect("thread"));
    }

    #[test]
    fn a_wrong_secret_is_refused_on_both_sides_and_counted() {
        let (mut s, mut c) = pair();
        let a = auth(b"0123456789abcdef0123456789abcdef");
        let b = auth(b"fedcba9876543210fedcba9876543210");
        let failures = a.failures.clone();
        let t = std::thread::spawn(move || b.connect(&mut c, b"{}").is_err());
        assert!(matches!(a.accept(&mut s), Err(AuthError::BadProof)));
        drop(s);
        assert!(t.join().expect("thread"));
        let labels = vec![
            ("direction".to_owned(), "inbound".to_owned()),
            ("reason".to_owned(), "bad_proof".to_owned()),
        ];
        assert_eq!(failures.get_or_create(&labels).get(), 1);
    }

    #[test]
    fn short_secrets_are_rejected() {
        assert!(DataplaneAuth::new(b"short".to_vec(), Family::default()).is_err());
    }
}
