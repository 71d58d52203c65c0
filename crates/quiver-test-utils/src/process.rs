//! What the server fixtures share: picking an ephemeral loopback port, retrying a start when
//! another process took that port first, restarting on the same port, killing by pid.

use std::net::TcpListener;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// A port that was free a moment ago: bind port 0 and let the kernel choose, then release it.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}

/// Runs `spawn` on fresh ports until one start succeeds, returning the port. The port is free
/// when picked but not reserved: another process may take it before the server binds. Such a
/// server exits at once, so pick another port and try again.
pub(crate) fn start_on_free_port(
    what: &str,
    attempts: usize,
    mut spawn: impl FnMut(u16) -> Result<(), String>,
) -> u16 {
    let mut last_error = String::new();
    for _ in 0..attempts {
        let port = free_port();
        match spawn(port) {
            Ok(()) => return port,
            Err(e) => last_error = e,
        }
    }
    panic!("{what} did not start after {attempts} attempts: {last_error}");
}

/// Retries `spawn` every `pause` until it succeeds or `timeout` passes (a killed server's port
/// or shared memory may linger for a moment).
pub(crate) fn restart_until(
    what: &str,
    port: u16,
    timeout: Duration,
    pause: Duration,
    mut spawn: impl FnMut() -> Result<(), String>,
) {
    let deadline = Instant::now() + timeout;
    loop {
        match spawn() {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => {
                panic!("{what} did not restart on port {port}: {e}")
            }
            Err(_) => std::thread::sleep(pause),
        }
    }
}

/// Kills the child with SIGKILL (as a crash would) and reaps it.
pub(crate) fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        // Errors mean the process already exited; either way it is gone after `wait`.
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Sends signal `name` (`STOP`, `CONT`) to `pid` with `kill(1)`: std has no signal API beyond
/// SIGKILL, and the workspace forbids the `unsafe` a libc call would need.
pub(crate) fn signal(pid: u32, name: &str) -> Result<(), String> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .map_err(|e| format!("cannot run `kill -{name} {pid}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`kill -{name} {pid}` exited with {status}"))
    }
}

/// A server's log for an error message.
pub(crate) fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(no log: {e})"))
}
