//! The core's debug UART as lines: a bounded buffer and followers.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// Lines kept per core.
pub(crate) const LOG_LINES: usize = 1000;
/// Longest line kept (longer lines are cut there and the rest starts a new line).
pub(crate) const LINE_BYTES: usize = 1024;

/// One line of a core's debug UART.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its number since the core's log was created (gaps: lines dropped from the buffer).
    pub seq: u64,
    /// When the host read its end.
    pub at: SystemTime,
    /// The text (invalid UTF-8 replaced, control characters but tab dropped).
    pub text: String,
}

#[derive(Debug, Default)]
struct Inner {
    lines: VecDeque<LogLine>,
    next_seq: u64,
    partial: Vec<u8>,
}

/// A core's log, shared by the supervisor (writer) and readers.
#[derive(Debug, Clone, Default)]
pub(crate) struct CoreLog {
    inner: Arc<(Mutex<Inner>, Condvar)>,
}

impl CoreLog {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds bytes read from the UART: complete lines go to the buffer.
    pub(crate) fn feed(&self, bytes: &[u8]) {
        let mut inner = self.lock();
        let mut added = false;
        for &b in bytes {
            if b == b'\n' || inner.partial.len() >= LINE_BYTES {
                let line = std::mem::take(&mut inner.partial);
                push(&mut inner, &line);
                added = true;
                if b == b'\n' {
                    continue;
                }
            }
            if b == b'\t' || !b.is_ascii_control() {
                inner.partial.push(b);
            }
        }
        drop(inner);
        if added {
            self.inner.1.notify_all();
        }
    }

    /// Ends a partial line (the core stopped).
    pub(crate) fn flush(&self) {
        let mut inner = self.lock();
        if !inner.partial.is_empty() {
            let line = std::mem::take(&mut inner.partial);
            push(&mut inner, &line);
            drop(inner);
            self.inner.1.notify_all();
        }
    }

    /// Adds a line of the host's own (`[ferro] ...`: restarts, crashes).
    pub(crate) fn note(&self, text: &str) {
        let mut inner = self.lock();
        let line = format!("[ferro] {text}");
        push(&mut inner, line.as_bytes());
        drop(inner);
        self.inner.1.notify_all();
    }

    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.lines.clear();
        inner.partial.clear();
    }

    pub(crate) fn snapshot(&self) -> Vec<LogLine> {
        self.lock().lines.iter().cloned().collect()
    }

    pub(crate) fn follower(&self) -> LogFollower {
        let next = self.lock().next_seq;
        LogFollower {
            log: self.clone(),
            next,
        }
    }
}

fn push(inner: &mut Inner, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes)
        .trim_end_matches('\r')
        .to_string();
    let seq = inner.next_seq;
    inner.next_seq += 1;
    if inner.lines.len() == LOG_LINES {
        inner.lines.pop_front();
    }
    inner.lines.push_back(LogLine {
        seq,
        at: SystemTime::now(),
        text,
    });
}

/// Follows a core's log: each line once, from the line after the follower was made.
#[derive(Debug)]
pub struct LogFollower {
    log: CoreLog,
    next: u64,
}

impl LogFollower {
    /// The next line, waiting up to `timeout` for it (lines dropped from the buffer before they
    /// were read are skipped).
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<LogLine> {
        let deadline = Instant::now() + timeout;
        let mut inner = self.log.lock();
        loop {
            if let Some(line) = inner.lines.iter().find(|l| l.seq >= self.next) {
                self.next = line.seq + 1;
                return Some(line.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            inner = self
                .log
                .inner
                .1
                .wait_timeout(inner, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}
