//! Chromium for the browser tests of both test crates (`tests/browser` and the UI tests in
//! `tests/api`): finding the binaries, a chromedriver of the test's own on a free port, and a
//! headless session. Included with `#[path = "../support/chromium.rs"] mod chromium;`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// Under CI a missing browser is a failure, not a skip.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default))
}

/// chromedriver and Chromium (`RAPPORT_CHROMEDRIVER`, `RAPPORT_CHROMIUM`, Debian's paths by
/// default); `None` (skip, with a note) when either is missing, outside CI.
pub fn browser_binaries() -> Option<(PathBuf, PathBuf)> {
    let driver = env_path("RAPPORT_CHROMEDRIVER", "/usr/bin/chromedriver");
    let chromium = env_path("RAPPORT_CHROMIUM", "/usr/bin/chromium");
    let missing: Vec<String> = [&driver, &chromium].iter().filter(|p| !p.is_file()).map(|p| p.display().to_string()).collect();
    if missing.is_empty() {
        return Some((driver, chromium));
    }
    let missing = missing.join(" and ");
    if in_ci() {
        panic!(
            "{missing} missing and CI=true, so this browser test fails instead of skipping. \
             Run scripts/browser-deps (it installs Debian's chromium and chromium-driver)."
        );
    }
    // Straight to stderr, past the test harness's capture: a skip should be seen.
    let _ = writeln!(
        std::io::stderr(),
        "note: skipping this browser test: {missing} missing; run scripts/browser-deps to install Chromium and chromedriver"
    );
    None
}

/// This test's own chromedriver on a free port; shut down (with its browsers) when dropped.
pub struct Chromedriver {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Chromedriver {
    pub async fn start(path: &Path) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("chromedriver.log");
        let out = std::fs::File::create(&log).expect("chromedriver log");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let mut driver = Self { child, port, log, _dir: dir };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("http client");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited ({status}) before answering: {}", driver.log_tail());
            }
            if let Ok(r) = http.get(format!("{}/status", driver.url())).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                return driver;
            }
            if Instant::now() > deadline {
                panic!("chromedriver did not answer on port {port} within 20 s: {}", driver.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The last lines chromedriver logged, for a failure's message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Opens a headless Chromium session with a window of `width`×`height` (the flags the
    /// project's guide names, plus a fixed scale and language so that pages look the same on
    /// every machine).
    pub async fn connect(&self, chromium: &Path, (width, height): (u32, u32)) -> Client {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--lang=en-US",
            &format!("--window-size={width},{height}"),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), json!({"binary": chromium, "args": args}));
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url())
            .await
            .unwrap_or_else(|e| panic!("cannot open a Chromium session: {e}\n{}", self.log_tail()))
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // A graceful shutdown quits the browsers it started; a plain kill would orphan them.
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(s, "GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", self.port);
            let _ = s.read_to_end(&mut Vec::new());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
