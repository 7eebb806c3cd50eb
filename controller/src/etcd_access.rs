//! How the controller (and, through the same environment variables, every executor it
//! launches) authenticates to etcd: TLS with a CA and a client certificate, and etcd's
//! user/password authentication. Paths, not secrets, travel to the tasks: the files must
//! exist at the same paths on every agent (installed there like the executor itself).

use std::path::PathBuf;

use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};

use crate::store::StoreError;

/// etcd credentials. Everything is optional: plain HTTP without a user by default.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EtcdAccess {
    /// CA certificate (PEM) that signed etcd's server certificate; enables TLS.
    #[arg(long = "etcd-ca-file", env = "CONCORD_ETCD_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM), for etcd's `--client-cert-auth`.
    #[arg(
        long = "etcd-cert-file",
        env = "CONCORD_ETCD_CERT_FILE",
        requires = "key_file"
    )]
    pub cert_file: Option<PathBuf>,
    /// Key of the client certificate (PEM).
    #[arg(
        long = "etcd-key-file",
        env = "CONCORD_ETCD_KEY_FILE",
        requires = "cert_file"
    )]
    pub key_file: Option<PathBuf>,
    /// etcd user (with `--etcd-password-file`).
    #[arg(
        long = "etcd-user",
        env = "CONCORD_ETCD_USER",
        requires = "password_file"
    )]
    pub user: Option<String>,
    /// File holding the etcd user's password.
    #[arg(
        long = "etcd-password-file",
        env = "CONCORD_ETCD_PASSWORD_FILE",
        requires = "user"
    )]
    pub password_file: Option<PathBuf>,
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|source| StoreError::Credentials {
        what: what.to_owned(),
        path: path.clone(),
        source,
    })
}

impl EtcdAccess {
    /// `options` with TLS and the user added, as configured.
    pub fn apply(&self, mut options: ConnectOptions) -> Result<ConnectOptions, StoreError> {
        if self.ca_file.is_some() || self.cert_file.is_some() {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &self.ca_file {
                tls = tls.ca_certificate(Certificate::from_pem(read(ca, "etcd CA")?));
            }
            if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
                tls = tls.identity(Identity::from_pem(
                    read(cert, "etcd client certificate")?,
                    read(key, "etcd client key")?,
                ));
            }
            options = options.with_tls(tls);
        }
        if let (Some(user), Some(file)) = (&self.user, &self.password_file) {
            let password = String::from_utf8_lossy(&read(file, "etcd password")?)
                .trim()
                .to_owned();
            options = options.with_user(user.clone(), password);
        }
        Ok(options)
    }

    /// The environment that hands the same access to an executor.
    pub fn task_env(&self) -> Vec<(String, String)> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        [
            ("CONCORD_ETCD_CA_FILE", path(&self.ca_file)),
            ("CONCORD_ETCD_CERT_FILE", path(&self.cert_file)),
            ("CONCORD_ETCD_KEY_FILE", path(&self.key_file)),
            ("CONCORD_ETCD_USER", self.user.clone()),
            ("CONCORD_ETCD_PASSWORD_FILE", path(&self.password_file)),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect()
    }
}
