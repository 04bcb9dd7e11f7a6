//! Per-app logs: a bounded ring of lines with a rate limit, fed by the `log` interface and by
//! the app's standard output and error.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::events::{ErrorKind, EventLog};
use crate::{AppId, Limits};

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warning,
    Info,
    Debug,
}

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// The `log` interface.
    Log,
    Stdout,
    Stderr,
    /// The runtime, about the app (starts, exits, dropped lines).
    Runtime,
}

/// One line of an app's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Position in this app's log (starts at 1).
    pub seq: u64,
    pub at: SystemTime,
    pub level: LogLevel,
    pub source: LogSource,
    pub text: String,
}

#[derive(Debug)]
struct Inner {
    lines: VecDeque<LogLine>,
    next_seq: u64,
    bucket: crate::limits::TokenBucket,
    dropped: u64,
    dropped_total: u64,
    last_drop_event: Option<Instant>,
}

/// An app's log. Survives restarts of the app (a new instance appends to it).
#[derive(Debug)]
pub(crate) struct LogBuffer {
    app: AppId,
    app_name: String,
    inner: Mutex<Inner>,
    arrived: Condvar,
    capacity: usize,
    limits: Limits,
    events: Arc<EventLog>,
}

impl LogBuffer {
    pub(crate) fn new(
        app: AppId,
        app_name: &str,
        capacity: usize,
        limits: Limits,
        events: Arc<EventLog>,
    ) -> Self {
        Self {
            app,
            app_name: app_name.to_owned(),
            inner: Mutex::new(Inner {
                lines: VecDeque::new(),
                next_seq: 1,
                bucket: crate::limits::TokenBucket::new(
                    limits.log_lines_per_second,
                    limits.log_burst_lines,
                ),
                dropped: 0,
                dropped_total: 0,
                last_drop_event: None,
            }),
            arrived: Condvar::new(),
            capacity: capacity.max(1),
            limits,
            events,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn append(&self, inner: &mut Inner, level: LogLevel, source: LogSource, text: String) {
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.lines.push_back(LogLine {
            seq,
            at: SystemTime::now(),
            level,
            source,
            text,
        });
        while inner.lines.len() > self.capacity {
            inner.lines.pop_front();
        }
    }

    /// Appends a line from the app, subject to the rate limit.
    pub(crate) fn app_line(&self, level: LogLevel, source: LogSource, text: &str) {
        let text = truncate(text, self.limits.max_log_line_bytes);
        let mut inner = self.lock();
        let now = Instant::now();
        if !inner.bucket.take(now) {
            inner.dropped += 1;
            inner.dropped_total += 1;
            let due = inner
                .last_drop_event
                .is_none_or(|last| now.duration_since(last) >= Duration::from_secs(1));
            if due {
                inner.last_drop_event = Some(now);
                let dropped_lines = inner.dropped_total;
                drop(inner);
                self.events.push(
                    self.app,
                    &self.app_name,
                    ErrorKind::LogRateLimited { dropped_lines },
                    None,
                );
            }
            return;
        }
        if inner.dropped > 0 {
            let note = format!("[{} lines dropped by the log rate limit]", inner.dropped);
            inner.dropped = 0;
            self.append(&mut inner, LogLevel::Warning, LogSource::Runtime, note);
        }
        tracing::debug!(app = %self.app, app_name = %self.app_name, line = %text, "app log");
        self.append(&mut inner, level, source, text);
        self.arrived.notify_all();
    }

    /// Appends a line from the runtime (not rate-limited).
    pub(crate) fn runtime_line(&self, level: LogLevel, text: &str) {
        let mut inner = self.lock();
        self.append(&mut inner, level, LogSource::Runtime, text.to_owned());
        self.arrived.notify_all();
    }

    pub(crate) fn snapshot(&self) -> Vec<LogLine> {
        self.lock().lines.iter().cloned().collect()
    }

    pub(crate) fn dropped_total(&self) -> u64 {
        self.lock().dropped_total
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    fn wait_from(&self, from: u64, timeout: Duration) -> Option<LogLine> {
        let deadline = Instant::now() + timeout;
        let mut inner = self.lock();
        loop {
            if let Some(line) = inner.lines.iter().find(|line| line.seq >= from) {
                return Some(line.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            inner = self
                .arrived
                .wait_timeout(inner, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Follows an app's log (`ferro device app logs --follow`).
#[derive(Debug)]
pub struct LogFollower {
    pub(crate) buffer: Arc<LogBuffer>,
    pub(crate) next: u64,
}

impl LogFollower {
    /// The next line, waiting at most `timeout`.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<LogLine> {
        let line = self.buffer.wait_from(self.next, timeout)?;
        self.next = line.seq + 1;
        Some(line)
    }
}

/// Splits a byte stream (stdout or stderr) into log lines.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    buffer: Arc<LogBuffer>,
    source: LogSource,
    pending: Vec<u8>,
}

impl LineSplitter {
    pub(crate) fn new(buffer: Arc<LogBuffer>, source: LogSource) -> Self {
        Self {
            buffer,
            source,
            pending: Vec::new(),
        }
    }

    fn emit(&mut self) {
        let line = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        let level = match self.source {
            LogSource::Stderr => LogLevel::Warning,
            _ => LogLevel::Info,
        };
        self.buffer
            .app_line(level, self.source, line.trim_end_matches('\r'));
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        let max = self.buffer.limits.max_log_line_bytes;
        for &byte in bytes {
            if byte == b'\n' {
                self.emit();
            } else if self.pending.len() < max + 4 {
                self.pending.push(byte);
            }
        }
    }

    pub(crate) fn flush_partial(&mut self) {
        if !self.pending.is_empty() {
            self.emit();
        }
    }
}

impl Drop for LineSplitter {
    fn drop(&mut self) {
        self.flush_partial();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer(limits: Limits) -> (Arc<LogBuffer>, Arc<EventLog>) {
        let events = Arc::new(EventLog::new(100));
        let buffer = Arc::new(LogBuffer::new(
            AppId::from(uuid::Uuid::nil()),
            "test",
            5,
            limits,
            events.clone(),
        ));
        (buffer, events)
    }

    #[test]
    fn ring_keeps_the_newest_lines() {
        let (buffer, _) = buffer(Limits::default());
        for index in 0..8 {
            buffer.app_line(LogLevel::Info, LogSource::Log, &format!("line {index}"));
        }
        let lines = buffer.snapshot();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0].text, "line 3");
        assert_eq!(lines[4].seq, 8);
    }

    #[test]
    fn rate_limit_drops_counts_and_reports() {
        let limits = Limits {
            log_lines_per_second: 1,
            log_burst_lines: 3,
            ..Limits::default()
        };
        let (buffer, events) = buffer(limits);
        for index in 0..10 {
            buffer.app_line(LogLevel::Info, LogSource::Stdout, &format!("{index}"));
        }
        assert_eq!(buffer.snapshot().len(), 3);
        assert_eq!(buffer.dropped_total(), 7);
        let reported = events.snapshot();
        assert_eq!(reported.len(), 1, "one event per second at most");
        assert_eq!(
            reported[0].kind,
            ErrorKind::LogRateLimited { dropped_lines: 1 }
        );
    }

    #[test]
    fn splitter_cuts_lines_and_long_lines() {
        let limits = Limits {
            max_log_line_bytes: 8,
            ..Limits::default()
        };
        let (buffer, _) = buffer(limits);
        let mut splitter = LineSplitter::new(buffer.clone(), LogSource::Stdout);
        splitter.write(b"hello\nwor");
        splitter.write(b"ld\n0123456789abcdef\nrest");
        drop(splitter);
        let texts: Vec<String> = buffer
            .snapshot()
            .into_iter()
            .map(|line| line.text)
            .collect();
        assert_eq!(texts, ["hello", "world", "01234567…", "rest"]);
    }

    #[test]
    fn follower_waits_for_new_lines() {
        let (buffer, _) = buffer(Limits::default());
        let mut follower = LogFollower {
            buffer: buffer.clone(),
            next: buffer.next_seq(),
        };
        assert!(follower.next_timeout(Duration::from_millis(5)).is_none());
        let writer = buffer.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            writer.app_line(LogLevel::Info, LogSource::Log, "late");
        });
        let line = follower.next_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(line.text, "late");
        thread.join().unwrap();
    }
}
