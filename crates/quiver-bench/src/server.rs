//! The feature server as its own process, so its memory is measured apart from the load
//! generator's.
//!
//! The bench re-runs its own executable with `--serve-project DIR`: that process opens the
//! project, serves it on 127.0.0.1:0, prints `listening ADDR` on stdout, and shuts down
//! gracefully when its stdin closes (so it never outlives the bench, even one that crashed).
//! The parent reads `VmRSS` / `VmHWM` of that process from `/proc/PID/status`.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::machine::status_bytes;

/// Serves `dir` until stdin closes (the child side).
pub async fn run(dir: &Path) -> anyhow::Result<()> {
    let store = quiver::FeatureStore::open(dir)
        .await
        .with_context(|| format!("opening the project at {}", dir.display()))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        // EOF (or an error) on stdin: the parent is done or gone.
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = stop_tx.send(());
    });
    quiver_server::serve(
        store,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        |addr| {
            println!("listening {addr}");
            use std::io::Write;
            let _ = std::io::stdout().flush();
        },
        async {
            let _ = stop_rx.await;
        },
    )
    .await?;
    Ok(())
}

/// A running server process (the parent side). Dropping it closes the child's stdin and kills
/// it if it has not exited.
pub struct ServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `quiver-bench --serve-project dir` and waits for its address.
    pub fn spawn(dir: &Path) -> anyhow::Result<ServerProcess> {
        let exe = std::env::current_exe().context("locating the quiver-bench executable")?;
        let mut child = Command::new(exe)
            .arg("--serve-project")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the feature server process")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the feature server's address")?;
        let addr = match line.trim().strip_prefix("listening ") {
            Some(addr) => addr
                .parse()
                .context("parsing the feature server's address")?,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("the feature server process did not start (said {line:?})");
            }
        };
        Ok(ServerProcess { child, stdin, addr })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `VmRSS`, `VmHWM`, ... of the server process, bytes.
    pub fn status_bytes(&self, field: &str) -> Option<u64> {
        status_bytes(&format!("/proc/{}/status", self.pid()), field)
    }

    /// Closes its stdin and waits up to 10 s for a graceful exit, then kills it.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(
                    status.success(),
                    "the feature server process exited with {status}"
                );
                return Ok(());
            }
            if Instant::now() >= deadline {
                eprintln!("  (the feature server did not shut down within 10 s; killing it)");
                self.child.kill()?;
                self.child.wait()?;
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stdin.take();
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
