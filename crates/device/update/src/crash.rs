//! Named crash points for the crash-injection tests (`docs/updates.md`, "Proof").
//!
//! With `FERRO_CRASH_AT=N` in the environment, the N-th crash point this process passes aborts
//! it on the spot (`std::process::abort`: no destructors, no buffered writes flushed, as with a
//! SIGKILL or a power cut after the last completed system call). `FERRO_CRASH_LOG=FILE` appends
//! each point's label, one per line, so a harness can count the points an update passes; with a
//! log, points are numbered across processes (the N-th line of the log is point N), so a device
//! that re-executes `ferro-boot` to switch its OS keeps counting. Without the variables a crash
//! point costs one check of a cached configuration.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

struct Config {
    crash_at: Option<u64>,
    log: Option<std::path::PathBuf>,
}

static CONFIG: OnceLock<Config> = OnceLock::new();
static PASSED: AtomicU64 = AtomicU64::new(0);

fn config() -> &'static Config {
    CONFIG.get_or_init(|| Config {
        crash_at: std::env::var("FERRO_CRASH_AT")
            .ok()
            .and_then(|v| v.parse().ok()),
        log: std::env::var_os("FERRO_CRASH_LOG").map(Into::into),
    })
}

/// Pass a crash point named `label` (a short constant such as `download.chunk`).
pub fn point(label: &str) {
    let c = config();
    if c.crash_at.is_none() && c.log.is_none() {
        return;
    }
    let n = match &c.log {
        Some(log) => {
            std::fs::read(log)
                .map(|b| b.iter().filter(|c| **c == b'\n').count() as u64)
                .unwrap_or(0)
                + 1
        }
        None => PASSED.fetch_add(1, Ordering::Relaxed) + 1,
    };
    if let Some(log) = &c.log
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
    {
        let _ = writeln!(f, "{n} {label}");
    }
    if c.crash_at == Some(n) {
        eprintln!("crash injection: aborting at point {n} ({label})");
        std::process::abort();
    }
}
