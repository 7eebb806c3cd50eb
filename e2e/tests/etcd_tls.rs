//! etcd over TLS with client certificates and user/password authentication: the
//! controller and the executors it launches reach it with the same credentials.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use concord_e2e::{Controller, MesosLite, Process, concord, free_port, wait_for};
use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl.
fn make_certs(dir: &Path) {
    let sh = format!(
        r#"set -e
cd {dir}
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > ext.cnf
for who in server client; do
  openssl req -newkey rsa:2048 -nodes -subj /CN=$who -keyout $who.key -out $who.csr 2>/dev/null
  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out $who.pem 2>/dev/null
done
echo s3cret-password > password
"#,
        dir = dir.display()
    );
    let status = Command::new("sh").arg("-c").arg(sh).status().expect("sh");
    assert!(status.success(), "openssl failed");
}

fn tls(dir: &Path) -> TlsOptions {
    let read = |f: &str| std::fs::read(dir.join(f)).expect("cert file");
    TlsOptions::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem")))
        .identity(Identity::from_pem(read("client.pem"), read("client.key")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_and_executors_use_tls_client_certificates_and_an_etcd_user() {
    let dir = tempfile::tempdir().expect("tmp");
    make_certs(dir.path());
    let (port, peer) = (free_port(), free_port());
    let url = format!("https://127.0.0.1:{port}");
    let file = |f: &str| dir.path().join(f).display().to_string();
    let mut cmd = Command::new(std::env::var("CONCORD_ETCD_BIN").unwrap_or_else(|_| "etcd".into()));
    cmd.args(["--name", "tls", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args([
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
        ])
        .args(["--initial-cluster", &format!("tls=http://127.0.0.1:{peer}")])
        .args([
            "--cert-file",
            &file("server.pem"),
            "--key-file",
            &file("server.key"),
        ])
        .args(["--client-cert-auth", "--trusted-ca-file", &file("ca.pem")])
        .args(["--logger", "zap", "--log-level", "warn"]);
    let _etcd = Process::spawn("etcd", cmd, dir.path().join("etcd.log"));

    // Wait for it, then enable authentication with a root user.
    let options = || {
        ConnectOptions::new()
            .with_tls(tls(dir.path()))
            .with_connect_timeout(Duration::from_secs(2))
    };
    let mut admin = wait_for(Duration::from_secs(20), "etcd over TLS", || async {
        let mut c = etcd_client::Client::connect([url.as_str()], Some(options()))
            .await
            .ok()?;
        c.status().await.ok().map(|_| c)
    })
    .await;
    admin
        .user_add("root", "s3cret-password", None)
        .await
        .expect("user");
    admin.user_grant_role("root", "root").await.expect("grant");
    admin.auth_enable().await.expect("auth enable");
    // Without the password, the certificate's CN ("client") has no rights: refused.
    let mut anonymous = etcd_client::Client::connect([url.as_str()], Some(options()))
        .await
        .expect("connect");
    assert!(
        anonymous.get("/concord/", None).await.is_err(),
        "auth is on"
    );

    let mesos = MesosLite::start(1, 4.0, 4096).await;
    let creds = [
        "--etcd-ca-file".to_owned(),
        file("ca.pem"),
        "--etcd-cert-file".to_owned(),
        file("client.pem"),
        "--etcd-key-file".to_owned(),
        file("client.key"),
        "--etcd-user".to_owned(),
        "root".to_owned(),
        "--etcd-password-file".to_owned(),
        file("password"),
    ];
    let creds: Vec<&str> = creds.iter().map(String::as_str).collect();
    let controller = Controller::start_with(&url, &mesos.url, "/concord", &creds).await;
    wait_for(
        Duration::from_secs(30),
        "the controller to lead",
        || async {
            let text = reqwest::get(format!("{}/readyz", controller.url))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            (text.contains("[+] etcd ok") && text.contains("[+] leader ok")).then_some(())
        },
    )
    .await;

    // Ready needs every executor to have registered its endpoint in etcd: over TLS, as
    // root, with the files the controller named in the task environment.
    let manifest = dir.path().join("t.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: concord.io/v1alpha1\nkind: Topology\nmetadata: {name: secure}\nspec:\n  operators:\n    - name: gen\n      runtime: {builtin: {name: generator}}\n      config: {rate: 10}\n      resources: {cpus: 0.1, mem: 32}\n    - name: out\n      runtime: {builtin: {name: sink}}\n      inputs: [{from: gen}]\n      resources: {cpus: 0.1, mem: 32}\n",
    )
    .expect("write");
    let out = concord(
        &controller.url,
        &["apply", "-f", manifest.to_str().expect("utf-8")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    controller
        .wait_ready("secure", Duration::from_secs(60))
        .await;
    let mut root = etcd_client::Client::connect(
        [url.as_str()],
        Some(options().with_user("root", "s3cret-password")),
    )
    .await
    .expect("connect as root");
    let endpoints = root
        .get(
            "/concord/endpoints/default/secure/",
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .expect("endpoints");
    assert_eq!(
        endpoints.kvs().len(),
        2,
        "both executors registered over TLS"
    );

    // A controller without credentials cannot use this etcd, and says so.
    let blind = Controller::start_with(&url, &mesos.url, "/concord", &["--no-scheduler"]).await;
    let text = reqwest::get(format!("{}/readyz", blind.url))
        .await
        .expect("readyz")
        .text()
        .await
        .expect("body");
    assert!(text.contains("[-] etcd"), "{text}");
}
