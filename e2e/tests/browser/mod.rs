//! Headless Chromium over WebDriver for the browser tests (`dashboard.rs`,
//! `browser_security.rs`): Debian's `chromium` and `chromium-driver`, which
//! `scripts/lib.sh` installs; without them a test fails and says so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use concord_e2e::{Process, free_port, wait_http_ok};
use fantoccini::{Client, ClientBuilder};
use serde_json::json;

pub fn require_exe(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{name} is not installed: the dashboard's browser test needs Debian's chromium and \
             chromium-driver (apt-get install -y chromium chromium-driver; scripts/test.sh \
             installs them)"
        )
    })
}

/// `chromedriver` on a free loopback port, stopped by PID on drop.
pub struct Driver {
    pub url: String,
    pub process: Process,
    _dir: tempfile::TempDir,
}

impl Driver {
    pub async fn start() -> Self {
        let exe = require_exe("chromedriver");
        let dir = tempfile::tempdir().expect("tmp");
        let port = free_port();
        let mut cmd = Command::new(exe);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver-verbose.log").display()
            ));
        let process = Process::spawn("chromedriver", cmd, dir.path().join("chromedriver.log"))
            .graceful_drop(Duration::from_secs(5));
        let url = format!("http://127.0.0.1:{port}");
        wait_http_ok(&format!("{url}/status"), "chromedriver /status").await;
        Self {
            url,
            process,
            _dir: dir,
        }
    }
}

pub async fn browser(driver: &Driver, profile: &Path) -> Client {
    let chromium = require_exe("chromium");
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1440,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot start chromium through chromedriver: {e}\n{}",
                driver.process.logs()
            )
        })
}
