//! The API over TLS (`--tls-cert`, `--tls-key`) with a test CA made by openssl: the CLI
//! reaches it with `--ca` or a context's certificateAuthority, and refuses it without the
//! CA or with another one, saying what to do. Bad certificate or key files, and an open
//! API on a non-loopback address, stop the controller at start-up with a clear message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use concord_e2e::{Etcd, Process, binary, free_port, wait_for};

const ADMIN: &str = "tls-admin-0123456789abcdef";

/// `ca.pem`/`ca.key`, `server.pem`/`server.key` (for 127.0.0.1, signed by the CA) and
/// another CA, `other-ca.pem`/`other-ca.key`, that signed nothing here.
fn make_certs(dir: &Path) {
    let sh = format!(
        r#"set -e
cd {dir}
for ca in ca other-ca; do
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=$ca -keyout $ca.key -out $ca.pem 2>/dev/null
done
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > ext.cnf
openssl req -newkey rsa:2048 -nodes -subj /CN=concord -keyout server.key -out server.csr 2>/dev/null
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out server.pem 2>/dev/null
"#,
        dir = dir.display()
    );
    let status = Command::new("sh").arg("-c").arg(sh).status().expect("sh");
    assert!(status.success(), "openssl failed");
}

/// A loopback server that answers every connection with a plain-HTTP 400, as any HTTP
/// server answers a TLS ClientHello; it lives as long as the test process.
fn plain_http_server() -> std::net::SocketAddr {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    addr
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `concord` with only the environment given here (and an isolated config file).
fn concord(config: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(binary("concord"));
    cmd.args(args)
        .env("CONCORD_CONFIG", config)
        .env_remove("CONCORD_API")
        .env_remove("CONCORD_TOKEN")
        .env_remove("CONCORD_CA");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run concord")
}

/// The controller with `args`, expected to refuse to start: its exit code and output.
fn controller_refuses(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("timeout")
        .arg("30")
        .arg(binary("concord-controller"))
        .args(["--no-scheduler", "--no-gitops"])
        // Nothing listens there: a controller that got past its checks would fail
        // (or wait) on etcd instead, before binding anything.
        .args(["--etcd", &format!("http://127.0.0.1:{}", free_port())])
        .args(args)
        .output()
        .expect("run concord-controller");
    (out.status.code(), text(&out.stderr) + &text(&out.stdout))
}

#[tokio::test]
async fn the_cli_reaches_a_tls_controller_with_its_ca_and_refuses_it_otherwise() {
    let dir = tempfile::tempdir().expect("tmp");
    make_certs(dir.path());
    let file = |f: &str| dir.path().join(f).display().to_string();
    std::fs::write(
        dir.path().join("tokens"),
        format!("{ADMIN} admin tls-test\n"),
    )
    .expect("write");
    let etcd = Etcd::start().await;
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let mut cmd = Command::new(binary("concord-controller"));
    cmd.args(["--etcd", &etcd.url, "--no-scheduler", "--no-gitops"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--tls-cert",
            &file("server.pem"),
            "--tls-key",
            &file("server.key"),
        ])
        .args(["--token-file", &file("tokens")])
        .env("RUST_LOG", "info");
    let mut controller =
        Process::spawn("concord-controller", cmd, dir.path().join("controller.log"));

    // HTTPS with the CA; plain HTTP on the same port gets no answer.
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("ca.pem")).expect("ca"))
        .expect("ca pem");
    let https = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .expect("client");
    wait_for(Duration::from_secs(20), "the controller over https", || {
        let req = https
            .get(format!("{url}/healthz"))
            .timeout(Duration::from_secs(1))
            .send();
        async move {
            req.await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        }
    })
    .await;
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(
        !plain.is_ok_and(|r| r.status().is_success()),
        "plain HTTP must not be served"
    );
    // TLS does not replace the token.
    let list = format!("{url}/apis/concord.io/v1alpha1/topologies");
    assert_eq!(https.get(&list).send().await.expect("list").status(), 401);

    let config = dir.path().join("concord-config");
    let ca_pem = file("ca.pem");
    // --ca (and CONCORD_CA) with the right CA: works, writes included.
    let out = concord(
        &config,
        &[],
        &[
            "get",
            "topologies",
            "--api",
            &url,
            "--token",
            ADMIN,
            "--ca",
            &ca_pem,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = concord(
        &config,
        &[
            ("CONCORD_API", &url),
            ("CONCORD_TOKEN", ADMIN),
            ("CONCORD_CA", &ca_pem),
        ],
        &["kill", "default.t.op.0.hash.suffix"],
    );
    // The request went through TLS, auth and the JSON content type: the API answers
    // about the task itself.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("certificate"),
        "{}",
        text(&out.stderr)
    );

    // Without a CA (system roots only) and with another CA: refused, exit 3, and told how.
    for ca in [None, Some(file("other-ca.pem"))] {
        let mut args = vec!["get", "topologies", "--api", &url, "--token", ADMIN];
        if let Some(ca) = &ca {
            args.extend(["--ca", ca.as_str()]);
        }
        let out = concord(&config, &[], &args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "ca {ca:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "the controller's certificate at {url} is not trusted"
            )),
            "ca {ca:?}: {stderr}"
        );
        assert!(
            stderr.contains("pass --ca") && stderr.contains("certificateAuthority"),
            "{stderr}"
        );
    }
    // The right CA but a name the certificate does not have (it names 127.0.0.1 only).
    let by_name = format!("https://localhost:{port}");
    let out = concord(
        &config,
        &[],
        &[
            "get",
            "topologies",
            "--api",
            &by_name,
            "--token",
            ADMIN,
            "--ca",
            &ca_pem,
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the controller's certificate at {by_name} was refused"
        )),
        "{stderr}"
    );
    // https:// to a plain-HTTP server: told so.
    let plain_url = format!("https://{}", plain_http_server());
    let out = concord(&config, &[], &["get", "topologies", "--api", &plain_url]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("is it an http:// URL?"), "{stderr}");

    // A CA file that is not one is named.
    let out = concord(
        &config,
        &[],
        &[
            "get",
            "topologies",
            "--api",
            &url,
            "--ca",
            &file("server.key"),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("the CA file {}", file("server.key"))),
        "{}",
        text(&out.stderr)
    );

    // A context with the CA and the token file: no flags at all.
    let tokens = file("tokens");
    for args in [
        vec![
            "config",
            "set-context",
            "secure",
            "--server",
            &url,
            "--ca",
            &ca_pem,
            "--token-file",
            &tokens,
        ],
        vec!["config", "use-context", "secure"],
    ] {
        let out = concord(&config, &[], &args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = concord(&config, &[], &["get", "topologies"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let view = text(&concord(&config, &[], &["config", "view"]).stdout);
    assert!(
        view.contains(&format!("certificateAuthority: {ca_pem}")),
        "{view}"
    );

    // SIGTERM: the TLS server shuts down gracefully, like the plain one.
    let _ = Command::new("kill")
        .args(["-TERM", &controller.pid().to_string()])
        .status();
    wait_for(
        Duration::from_secs(10),
        "the controller to exit on SIGTERM",
        || {
            let exited = controller.exited();
            async move { exited.then_some(()) }
        },
    )
    .await;
    assert!(
        controller.logs().contains("shutting down"),
        "{}",
        controller.logs()
    );
}

#[test]
fn unusable_certificate_or_key_files_stop_the_controller_with_their_names() {
    let dir = tempfile::tempdir().expect("tmp");
    make_certs(dir.path());
    let file = |f: &str| -> PathBuf { dir.path().join(f) };
    let listen = format!("127.0.0.1:{}", free_port());
    let arg = |p: &PathBuf| p.display().to_string();
    let cases: [(PathBuf, PathBuf, String); 3] = [
        (
            file("missing.pem"),
            file("server.key"),
            format!(
                "cannot read the TLS certificate file {}",
                arg(&file("missing.pem"))
            ),
        ),
        (
            file("server.pem"),
            file("other-ca.key"),
            format!(
                "the TLS key {} does not go with the certificate {}",
                arg(&file("other-ca.key")),
                arg(&file("server.pem"))
            ),
        ),
        (
            file("server.pem"),
            file("server.pem"),
            format!(
                "the TLS key file {} holds no usable PEM private key",
                arg(&file("server.pem"))
            ),
        ),
    ];
    for (cert, key, expect) in cases {
        let (code, out) = controller_refuses(&[
            "--listen",
            &listen,
            "--tls-cert",
            &arg(&cert),
            "--tls-key",
            &arg(&key),
        ]);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains(&expect), "expected {expect:?} in:\n{out}");
    }
    // One without the other is a usage error.
    let (code, out) =
        controller_refuses(&["--listen", &listen, "--tls-cert", &arg(&file("server.pem"))]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--tls-key"), "{out}");
}

#[test]
fn an_open_api_on_a_non_loopback_address_is_refused_unless_allowed_explicitly() {
    // The check runs before anything is bound, so this never listens on 0.0.0.0.
    let listen = format!("0.0.0.0:{}", free_port());
    let (code, out) = controller_refuses(&["--listen", &listen]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "refusing to serve the API on {listen} without authentication"
        )),
        "{out}"
    );
    assert!(
        out.contains("--token-file") && out.contains("--insecure-allow-anonymous"),
        "{out}"
    );
}
