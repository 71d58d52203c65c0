//! The seeded loop: input `i` is bytes from a `StdRng` seeded with `(seed, i)`, so any input can
//! be made again from its index; each runs under `catch_unwind`. A panicking input is saved to
//! the crash directory as `<target>-<xxh3>.bin`; panics are grouped by where they happened.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::targets::Target;

/// How to run a target.
#[derive(Clone, Debug)]
pub struct Options {
    pub inputs: u64,
    pub seed: u64,
    pub threads: usize,
    /// Longest input in bytes (most are shorter: see [`input_bytes`]).
    pub max_len: usize,
    /// Where panicking inputs are saved; `None` keeps them in memory only.
    pub crash_dir: Option<PathBuf>,
    /// Print progress to stderr every ten seconds.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            inputs: 10_000,
            seed: 0,
            threads: 1,
            max_len: 8192,
            crash_dir: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crashes")),
            progress: false,
        }
    }
}

/// One distinct panic (grouped by its location).
#[derive(Clone, Debug)]
pub struct Finding {
    pub count: u64,
    /// The first message seen there.
    pub message: String,
    /// The first input that panicked there, by index, and where it was saved.
    pub input: u64,
    pub saved: Option<PathBuf>,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct Summary {
    pub target: &'static str,
    pub inputs: u64,
    pub panics: u64,
    pub findings: BTreeMap<String, Finding>,
    pub elapsed: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        write!(
            f,
            "{}: {} inputs in {:.1} s ({:.0} inputs/s), {} panics, {} distinct",
            self.target,
            self.inputs,
            secs,
            self.inputs as f64 / secs,
            self.panics,
            self.findings.len()
        )?;
        let outcomes = crate::stats::outcomes(self.target);
        if !outcomes.is_empty() {
            let top: Vec<String> = outcomes
                .iter()
                .take(12)
                .map(|(o, n)| format!("{o}: {n}"))
                .collect();
            write!(f, "\n  outcomes: {}", top.join(", "))?;
        }
        for (location, finding) in &self.findings {
            let message: String = finding.message.chars().take(400).collect();
            write!(
                f,
                "\n  {location} ({}x, first input #{}{}): {message}",
                finding.count,
                finding.input,
                finding
                    .saved
                    .as_ref()
                    .map(|p| format!(", saved to {}", p.display()))
                    .unwrap_or_default()
            )?;
        }
        Ok(())
    }
}

/// The bytes of input `index` of the run seeded with `seed`: mostly 64 bytes to 2 KiB, some
/// shorter, some up to `max_len`.
pub fn input_bytes(seed: u64, index: u64, max_len: usize) -> Vec<u8> {
    let mut rng =
        rand::rngs::StdRng::seed_from_u64(seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let pick = rng.next_u32();
    let len = match pick % 8 {
        0 => pick as usize / 8 % 64,
        1..=5 => 64 + pick as usize / 8 % 1984,
        _ => 2048 + pick as usize / 8 % max_len.saturating_sub(2048).max(1),
    }
    .min(max_len);
    let mut bytes = vec![0u8; len];
    rng.fill_bytes(&mut bytes);
    bytes
}

thread_local! {
    static FUZZING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static LAST_PANIC: std::cell::RefCell<Option<(String, String)>> =
        const { std::cell::RefCell::new(None) };
}

/// Records panics of fuzzed inputs (location, message) instead of printing them; other panics
/// go to the previous hook.
fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !FUZZING.with(|f| f.get()) {
                return previous(info);
            }
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_else(|| "unknown".into());
            let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
                s.to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "non-string panic".into()
            };
            LAST_PANIC.with(|p| *p.borrow_mut() = Some((location, message)));
        }));
    });
}

/// Runs `target` once over `data`; the panic's (location, message) if it panicked.
pub fn run_one(target: Target, data: &[u8]) -> Option<(String, String)> {
    install_hook();
    FUZZING.with(|f| f.set(true));
    let result = std::panic::catch_unwind(|| (target.1)(data));
    FUZZING.with(|f| f.set(false));
    match result {
        Ok(()) => None,
        Err(_) => Some(
            LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| ("unknown".into(), "panic without a message".into())),
        ),
    }
}

/// Runs `options.inputs` seeded inputs through `target` on `options.threads` threads.
pub fn run(target: Target, options: &Options) -> Summary {
    let started = Instant::now();
    let threads = options.threads.max(1) as u64;
    let parts: Vec<(u64, BTreeMap<String, Finding>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || run_share(target, options, t, threads, started)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a fuzz thread panicked outside a target"))
            .collect()
    });
    let mut summary = Summary {
        target: target.0,
        inputs: options.inputs,
        panics: 0,
        findings: BTreeMap::new(),
        elapsed: started.elapsed(),
    };
    for (panics, findings) in parts {
        summary.panics += panics;
        for (location, finding) in findings {
            summary
                .findings
                .entry(location)
                .and_modify(|f| {
                    f.count += finding.count;
                    if finding.input < f.input {
                        *f = Finding {
                            count: f.count,
                            ..finding.clone()
                        };
                    }
                })
                .or_insert(finding);
        }
    }
    summary
}

fn run_share(
    target: Target,
    options: &Options,
    thread: u64,
    threads: u64,
    started: Instant,
) -> (u64, BTreeMap<String, Finding>) {
    let mut panics = 0;
    let mut findings: BTreeMap<String, Finding> = BTreeMap::new();
    let mut last_report = Instant::now();
    let mut index = thread;
    while index < options.inputs {
        let data = input_bytes(options.seed, index, options.max_len);
        if let Some((location, message)) = run_one(target, &data) {
            panics += 1;
            let saved = save(target.0, &data, options);
            findings
                .entry(location)
                .and_modify(|f| f.count += 1)
                .or_insert(Finding {
                    count: 1,
                    message,
                    input: index,
                    saved,
                });
        }
        if options.progress && thread == 0 && last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            let done = index + 1;
            eprintln!(
                "{}: {done}/{} ({:.0}/s), {panics} panics on this thread",
                target.0,
                options.inputs,
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
        index += threads;
    }
    (panics, findings)
}

fn save(target: &str, data: &[u8], options: &Options) -> Option<PathBuf> {
    let dir = options.crash_dir.as_ref()?;
    let path = dir.join(format!(
        "{target}-{:016x}.bin",
        xxhash_rust::xxh3::xxh3_64(data)
    ));
    std::fs::create_dir_all(dir).ok()?;
    std::fs::write(&path, data).ok()?;
    Some(path)
}
