//! A throwaway Prometheus server for tests.
//!
//! Each [`PrometheusServer`] is its own `prometheus` process on an ephemeral port on 127.0.0.1,
//! with its configuration and TSDB in a temporary directory. It scrapes the given targets'
//! `/metrics` every second (job `quiver`) and evaluates the given rule files every second, so a
//! test can run PromQL against what a real Prometheus recorded ([`query`](PrometheusServer::query))
//! and read the state of the rules ([`get`](PrometheusServer::get) `/api/v1/rules`).
//!
//! The HTTP calls are plain HTTP/1.0 over a `TcpStream` (Prometheus then answers without chunked
//! encoding and closes the connection), so the fixture needs no HTTP client and no runtime.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::{kill, read_log, start_on_free_port};

/// How long a fresh server may take to answer `/-/ready` before we give up on it.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Port picks that may collide with another test's server before we give up.
const START_ATTEMPTS: usize = 5;
/// Timeout of one HTTP call to the server.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `prometheus`, killed when dropped.
pub struct PrometheusServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl PrometheusServer {
    /// Starts `prometheus` on a free loopback port, scraping `http://<target>/metrics` every
    /// second for each target and evaluating `rule_files` every second, and waits until it
    /// answers `/-/ready`.
    ///
    /// Panics if `prometheus` is not installed or does not come up: a fixture failure is a
    /// broken test environment, not a test result.
    pub fn start(targets: &[SocketAddr], rule_files: &[&Path]) -> PrometheusServer {
        let binary = find_on_path("prometheus").unwrap_or_else(|| {
            panic!(
                "`prometheus` is not on PATH; the Prometheus tests need a real server \
                 (install it with `apt-get install -y prometheus`)"
            )
        });
        for target in targets {
            assert!(
                target.ip().is_loopback(),
                "the Prometheus fixture scrapes loopback targets only, not {target}"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("quiver-prometheus-")
            .tempdir()
            .expect("create a temporary directory for prometheus");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_yaml(targets, rule_files)).expect("write prometheus.yml");
        let mut server = PrometheusServer {
            child: None,
            port: 0,
            dir,
        };
        server.port = start_on_free_port("prometheus", START_ATTEMPTS, |port| {
            server.spawn(&binary, &config, port)
        });
        server
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs an instant query (`GET /api/v1/query?query=...`) and returns Prometheus's JSON answer
    /// as is: `{"status": "success", "data": {"resultType", "result"}}`, or `{"status": "error",
    /// "errorType", "error"}` when the expression does not parse or cannot be evaluated.
    pub fn query(&self, expr: &str) -> Value {
        self.get(&format!("/api/v1/query?query={}", percent_encode(expr)))
    }

    /// `GET path` (with its query string, already encoded) as JSON; panics on a transport error
    /// or a body that is not JSON.
    pub fn get(&self, path: &str) -> Value {
        let (status, body) =
            http_get(self.port, path).unwrap_or_else(|e| panic!("GET {path} from prometheus: {e}"));
        serde_json::from_str(&body).unwrap_or_else(|e| {
            panic!("GET {path} from prometheus: HTTP {status}, not JSON ({e}): {body}")
        })
    }

    /// Waits until every scrape target is up (`/api/v1/targets`) and has been scraped at least
    /// `scrapes` times (`count_over_time(up[10m])`), so rates over the samples exist. Panics
    /// with the targets' state after `timeout`.
    pub fn wait_for_scrapes(&self, scrapes: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let targets = self.get("/api/v1/targets");
            let active = targets["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let all_up = !active.is_empty() && active.iter().all(|t| t["health"] == "up");
            let scraped = all_up && {
                let counts = self.query("count_over_time(up[10m])");
                let result = counts["data"]["result"].as_array().cloned();
                result.is_some_and(|r| {
                    r.len() == active.len()
                        && r.iter().all(|s| {
                            s["value"][1]
                                .as_str()
                                .and_then(|v| v.parse::<f64>().ok())
                                .is_some_and(|n| n >= scrapes as f64)
                        })
                })
            };
            if scraped {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "prometheus did not scrape every target {scrapes} times within {timeout:?}: \
                     {targets}; log: {}",
                    read_log(&self.log_path())
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Prometheus's own log (stderr), for assertion messages.
    pub fn log(&self) -> String {
        read_log(&self.log_path())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("prometheus.log")
    }

    /// Spawns the server on `port` and waits for `/-/ready`; on failure the child is reaped and
    /// the error describes why.
    fn spawn(&mut self, binary: &Path, config: &Path, port: u16) -> Result<(), String> {
        let log = self.log_path();
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("cannot create {log:?}: {e}"))?;
        let data = self.dir.path().join(format!("data-{port}"));
        let mut child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| format!("cannot run `{}`: {e}", binary.display()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "prometheus on port {port} exited with {status}; log: {}",
                    read_log(&log)
                ));
            }
            if matches!(http_get(port, "/-/ready"), Ok((200, _))) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "prometheus on port {port} was not ready within {START_TIMEOUT:?}; log: {}",
                    read_log(&log)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// The configuration: one job scraping every target each second, the rules evaluated each second.
fn config_yaml(targets: &[SocketAddr], rule_files: &[&Path]) -> String {
    // JSON strings are valid YAML scalars, and quote whatever a path contains.
    let quote = |s: String| Value::String(s).to_string();
    let rules: Vec<String> = rule_files
        .iter()
        .map(|p| {
            let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
            quote(p.display().to_string())
        })
        .collect();
    let targets: Vec<String> = targets.iter().map(|t| quote(t.to_string())).collect();
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files: [{}]\n\
         scrape_configs:\n  - job_name: quiver\n    metrics_path: /metrics\n    \
         static_configs:\n      - targets: [{}]\n",
        rules.join(", "),
        targets.join(", ")
    )
}

/// One HTTP/1.0 GET on 127.0.0.1: the status code and the body.
fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(HTTP_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(HTTP_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| e.to_string())?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {response:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, body.to_string()))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_unreserved_only() {
        assert_eq!(
            percent_encode(r#"rate(x{a=~"b.*"}[1m]) > 0"#),
            "rate%28x%7Ba%3D~%22b.%2A%22%7D%5B1m%5D%29%20%3E%200"
        );
    }

    #[test]
    fn config_quotes_targets_and_rule_files() {
        let yaml = config_yaml(
            &[SocketAddr::from(([127, 0, 0, 1], 6566))],
            &[Path::new("/tmp/a b/alerts.yml")],
        );
        assert!(
            yaml.contains(r#"rule_files: ["/tmp/a b/alerts.yml"]"#),
            "{yaml}"
        );
        assert!(yaml.contains(r#"- targets: ["127.0.0.1:6566"]"#), "{yaml}");
    }
}
