//! What the run ran on, and the memory of this process or another.

use std::process::Command;

/// The machine description written next to the figures.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    pub uname: String,
    pub nproc: String,
    pub cpu_model: String,
    pub memory: String,
    /// `/proc/loadavg` when the run started: > 0.5 on an idle box means others were busy.
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub redis_version: String,
}

impl Machine {
    pub fn describe() -> Machine {
        Machine {
            uname: command_output("uname", &["-a"]),
            nproc: command_output("nproc", &[]),
            cpu_model: cpu_model().unwrap_or_else(|| "unknown".into()),
            memory: proc_field("/proc/meminfo", "MemTotal").unwrap_or_default(),
            loadavg_start: loadavg(),
            loadavg_end: String::new(),
            redis_version: String::new(),
        }
    }
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| format!("(`{program}` unavailable)"))
}

fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// The 1-, 5- and 15-minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A `Name:   value` line of a `/proc` file, value trimmed.
fn proc_field(path: &str, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_proc_field(&text, name)
}

fn parse_proc_field(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// `VmRSS` (or another `kB` field of `/proc/self/status`) in bytes.
pub fn self_status_bytes(field: &str) -> Option<u64> {
    status_bytes("/proc/self/status", field)
}

/// A `kB` field of a `/proc/PID/status` file, in bytes.
pub fn status_bytes(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_kb(&parse_proc_field(&text, field)?)
}

fn parse_kb(value: &str) -> Option<u64> {
    let kb: u64 = value.strip_suffix("kB")?.trim().parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_fields() {
        let text = "Name:\tquiver-bench\nVmHWM:\t  20000 kB\nVmRSS:\t   12345 kB\n";
        assert_eq!(parse_proc_field(text, "VmRSS").as_deref(), Some("12345 kB"));
        assert_eq!(parse_kb("12345 kB"), Some(12345 * 1024));
        assert_eq!(parse_proc_field(text, "VmSwap"), None);
    }
}
