//! TLS for the HTTP API (`--tls-cert`, `--tls-key`): loads a PEM certificate chain and
//! private key with rustls, and serves the API router over TLS (HTTP/1.1 and HTTP/2 by
//! ALPN) with the same graceful shutdown as plain HTTP.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The PEM files of the API's certificate chain and private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, server certificate first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the certificate or key cannot be used; each names the file.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate file {path}: {source}")]
    ReadCert {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the TLS certificate file {path} holds no PEM certificate (expected `-----BEGIN CERTIFICATE-----`)"
    )]
    NoCert { path: String },
    #[error("the TLS certificate file {path} is not valid PEM: {message}")]
    BadCert { path: String, message: String },
    #[error("cannot read the TLS key file {path}: {source}")]
    ReadKey {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the TLS key file {path} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {message}"
    )]
    BadKey { path: String, message: String },
    #[error("the TLS key {key} does not go with the certificate {cert}: {message}")]
    Mismatch {
        cert: String,
        key: String,
        message: String,
    },
}

/// A client that has not finished its handshake by then is dropped, so idle
/// connections cannot pile up before any request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Loads and checks the certificate chain and key into a rustls server configuration
/// that offers HTTP/2 and HTTP/1.1.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_path = files.cert.display().to_string();
    let key_path = files.key.display().to_string();
    let certs = load_certs(&files.cert)?;
    let key = load_key(&files.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mismatch = |e: rustls::Error| TlsError::Mismatch {
        cert: cert_path.clone(),
        key: key_path.clone(),
        message: match e {
            rustls::Error::InconsistentKeys(_) => {
                "its public key is not the certificate's".to_owned()
            }
            other => other.to_string(),
        },
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(&mismatch)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(&mismatch)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| TlsError::ReadCert {
        path: shown.clone(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCert {
            path: shown.clone(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCert { path: shown });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| TlsError::ReadKey {
        path: shown.clone(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::BadKey {
        path: shown,
        message: match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no `PRIVATE KEY` block".to_owned(),
            other => other.to_string(),
        },
    })
}

/// Serves `app` over TLS on `listener` until `shutdown` resolves, then stops accepting
/// and waits for open connections to finish, as `axum::serve`'s graceful shutdown does.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    config: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(config);
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "cannot accept an API connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    // Often a client that does not trust the certificate: its side says why.
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "API connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_non_pem_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let missing = TlsFiles {
            cert: dir.path().join("nope.pem"),
            key: dir.path().join("nope.key"),
        };
        let err = server_config(&missing).expect_err("missing files");
        assert!(
            matches!(err, TlsError::ReadCert { .. }),
            "{err}: the certificate is read first"
        );
        assert!(err.to_string().contains("nope.pem"), "{err}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").expect("write");
        let err = server_config(&TlsFiles {
            cert: garbage.clone(),
            key: garbage,
        })
        .expect_err("not PEM");
        assert!(matches!(err, TlsError::NoCert { .. }), "{err}");
        assert!(err.to_string().contains("garbage.pem"), "{err}");
    }
}
