//! Failure reporting (docs/design.md §3.6): the app runtime's error events (exits, crashes,
//! limit hits), aggregated per kind and uploaded to the service (`POST /v1/device/events`, device
//! certificate in TLS), at once (after a short pause that gathers a crash loop into one batch) for
//! crashes and daily otherwise. They appear in the tenant's `ferro tenant download-error-report`.
//!
//! Nothing is lost to a restart or a lost answer: `events/state.json` holds, in one file written
//! atomically, the events not yet sent and the batch being sent with its batch ID; a batch is
//! resent with the same ID until the service answers, so a retry is stored once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferro_client::DeviceClientError;
use ferro_runtime::{ErrorEvent, ErrorKind};
use ferro_wire::{
    DeviceEventRecord, DeviceEventsUpload, MAX_EVENT_DESCRIPTION_LEN, MAX_EVENT_NAME_LEN,
    MAX_EVENTS_PER_UPLOAD,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use crate::identity::DeviceContext;
use crate::layout::{read_json, write_json};

/// How long after a crash the upload waits for more (a crash loop becomes one batch).
const CRASH_DEBOUNCE: Duration = Duration::from_secs(2);
/// Wait before retrying a failed upload (doubling up to [`MAX_RETRY`]).
const FIRST_RETRY: Duration = Duration::from_secs(10);
const MAX_RETRY: Duration = Duration::from_secs(3600);
/// Most distinct pending events kept; more are counted in one `EventsDropped` event.
const MAX_PENDING: usize = 2 * MAX_EVENTS_PER_UPLOAD;

/// One aggregated event in the state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Aggregate {
    event_type: String,
    event_class: String,
    event_category: String,
    description: String,
    count: u32,
    /// Unix seconds.
    start: i64,
    end: i64,
}

/// A batch on its way: resent with the same ID until the service answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Outgoing {
    batch_id: Uuid,
    events: Vec<Aggregate>,
}

/// `events/state.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct State {
    pending: Vec<Aggregate>,
    outgoing: Option<Outgoing>,
    /// Unix seconds of the last successful upload.
    last_upload: Option<i64>,
}

impl State {
    fn add(&mut self, event: Aggregate) {
        if let Some(a) = self.pending.iter_mut().find(|a| {
            a.event_type == event.event_type
                && a.event_class == event.event_class
                && a.event_category == event.event_category
                && a.description == event.description
        }) {
            a.count = a.count.saturating_add(event.count);
            a.start = a.start.min(event.start);
            a.end = a.end.max(event.end);
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            let dropped = Aggregate {
                event_type: "EventsDropped".into(),
                event_class: "Warnings".into(),
                event_category: "Device".into(),
                description: "more distinct events than the device keeps between uploads".into(),
                count: event.count,
                start: event.start,
                end: event.end,
            };
            if let Some(a) = self
                .pending
                .iter_mut()
                .find(|a| a.event_type == dropped.event_type)
            {
                a.count = a.count.saturating_add(event.count);
                a.end = a.end.max(event.end);
            } else if let Some(last) = self.pending.last_mut() {
                // The last row makes room for the counter and is counted in it.
                let replaced = std::mem::replace(last, dropped);
                last.count = last.count.saturating_add(replaced.count);
                last.start = last.start.min(replaced.start);
            }
            return;
        }
        self.pending.push(event);
    }

    /// Move up to one upload's worth of pending events into a new outgoing batch.
    fn take_batch(&mut self) {
        if self.outgoing.is_some() || self.pending.is_empty() {
            return;
        }
        let n = self.pending.len().min(MAX_EVENTS_PER_UPLOAD);
        let events: Vec<Aggregate> = self.pending.drain(..n).collect();
        self.outgoing = Some(Outgoing {
            batch_id: Uuid::new_v4(),
            events,
        });
    }
}

fn unix(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn clip(text: &str, max: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if clean.trim().is_empty() {
        "-".into()
    } else {
        clean
    }
}

/// The report row of a runtime event: type, class and a description that repeats for the same
/// failure (so a crash loop aggregates into one row with a count).
fn aggregate(event: &ErrorEvent) -> Aggregate {
    let (event_type, event_class) = match &event.kind {
        ErrorKind::Exited { code: 0 } => ("AppExit", "Informational"),
        ErrorKind::Exited { .. } => ("AppExit", "Errors"),
        ErrorKind::StartFailed { .. } => ("AppStartFailure", "Errors"),
        kind if kind.is_crash() => ("AppCrash", "Errors"),
        ErrorKind::AccessDenied { .. } => ("AppAccessDenied", "Warnings"),
        ErrorKind::AppReported { .. } => ("AppReported", "Errors"),
        _ => ("AppLimit", "Warnings"),
    };
    let at = unix(event.at);
    Aggregate {
        event_type: event_type.into(),
        event_class: event_class.into(),
        event_category: clip(&event.app.to_string(), MAX_EVENT_NAME_LEN),
        description: clip(
            &format!("{}: {}", event.app_name, event.kind),
            MAX_EVENT_DESCRIPTION_LEN,
        ),
        count: 1,
        start: at,
        end: at,
    }
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// What became of one upload.
enum Sent {
    Stored,
    /// Refused for good (a 4xx other than 429): retrying cannot help.
    Refused(String),
    /// Try again after this long.
    Later(Duration),
}

/// The reporter task's handle.
#[derive(Debug)]
pub struct EventReporter {
    ctx: DeviceContext,
    path: PathBuf,
    state: State,
    upload_interval: Duration,
}

impl EventReporter {
    /// The reporter of `ctx`'s device; routine events go up every `upload_interval`.
    pub fn open(ctx: &DeviceContext, upload_interval: Duration) -> EventReporter {
        let dir = ctx.data_dir.root().join("events");
        let path = dir.join("state.json");
        let state = if std::fs::symlink_metadata(&path).is_ok() {
            read_json(&path).unwrap_or_else(|error| {
                tracing::warn!(%error, "event state unreadable; starting a new one");
                State::default()
            })
        } else {
            State::default()
        };
        EventReporter {
            ctx: ctx.clone(),
            path,
            state,
            upload_interval,
        }
    }

    fn save(&self) {
        let dir = self.path.parent().map(PathBuf::from).unwrap_or_default();
        let result = crate::layout::create_private_dir(&dir)
            .and_then(|()| write_json(&self.path, &self.state));
        if let Err(error) = result {
            tracing::warn!(%error, "cannot save pending events");
        }
    }

    /// Forward the runtime's events to the reporter (a thread, since the subscription blocks).
    pub fn forward(
        mut subscription: ferro_runtime::EventSubscription,
        tx: mpsc::Sender<ErrorEvent>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("event-forwarder".into())
            .spawn(move || {
                while !tx.is_closed() {
                    if let Some(event) = subscription.next_timeout(Duration::from_millis(500))
                        && tx.blocking_send(event).is_err()
                    {
                        break;
                    }
                }
            })
    }

    /// Collect events from `rx` and upload them until `stop` is notified (pending events are
    /// saved for the next run).
    pub async fn run(mut self, mut rx: mpsc::Receiver<ErrorEvent>, stop: Arc<Notify>) {
        let now = unix(SystemTime::now());
        let last = self.state.last_upload.unwrap_or(now);
        let interval = i64::try_from(self.upload_interval.as_secs()).unwrap_or(i64::MAX);
        let mut due = tokio::time::Instant::now()
            + Duration::from_secs(u64::try_from((last + interval - now).max(0)).unwrap_or(0));
        // Anything left from an earlier run that was urgent goes now.
        if self.state.outgoing.is_some() {
            due = tokio::time::Instant::now();
        }
        let mut retry = FIRST_RETRY;
        loop {
            tokio::select! {
                event = rx.recv() => {
                    let Some(event) = event else { break };
                    let crash = event.kind.is_crash();
                    tracing::info!(app = %event.app, kind = %event.kind, "app event");
                    self.state.add(aggregate(&event));
                    self.save();
                    if crash {
                        due = due.min(tokio::time::Instant::now() + CRASH_DEBOUNCE);
                    }
                }
                () = tokio::time::sleep_until(due) => {
                    match self.upload().await {
                        None => {
                            retry = FIRST_RETRY;
                            due = tokio::time::Instant::now() + self.upload_interval;
                        }
                        Some(wait) => {
                            let wait = wait.unwrap_or(retry);
                            retry = (retry * 2).min(MAX_RETRY);
                            due = tokio::time::Instant::now() + wait;
                        }
                    }
                }
                () = stop.notified() => break,
            }
        }
        self.save();
    }

    /// Send what is pending. None: all sent; Some(wait): try again (after `wait` if the
    /// service said, else the caller's backoff).
    async fn upload(&mut self) -> Option<Option<Duration>> {
        loop {
            self.state.take_batch();
            self.save();
            let batch = self.state.outgoing.clone()?;
            match self.send(&batch).await {
                Sent::Stored => {
                    tracing::info!(batch = %batch.batch_id, events = batch.events.len(), "events uploaded");
                    self.state.outgoing = None;
                    self.state.last_upload = Some(unix(SystemTime::now()));
                }
                Sent::Refused(reason) => {
                    tracing::error!(batch = %batch.batch_id, %reason, "the service refused an event batch; dropped");
                    self.state.outgoing = None;
                }
                Sent::Later(wait) => {
                    return Some((!wait.is_zero()).then_some(wait));
                }
            }
        }
    }

    async fn send(&self, batch: &Outgoing) -> Sent {
        let Some(pem_text) =
            crate::run::stored_certificate(&self.ctx).map(|c| crate::run::pem_bundle(&c))
        else {
            tracing::debug!("no device certificate yet; events wait");
            return Sent::Later(Duration::ZERO);
        };
        let client = match crate::net::device_client(&self.ctx, &pem_text) {
            Ok(c) => c,
            Err(error) => return Sent::Refused(error.to_string()),
        };
        let body = DeviceEventsUpload {
            batch_id: batch.batch_id,
            events: batch
                .events
                .iter()
                .map(|a| DeviceEventRecord {
                    event_type: a.event_type.clone(),
                    event_class: a.event_class.clone(),
                    event_category: a.event_category.clone(),
                    count: a.count.max(1),
                    description: a.description.clone(),
                    start: rfc3339(a.start),
                    end: rfc3339(a.end.max(a.start)),
                })
                .collect(),
        };
        sent(client.events(&body).await)
    }
}

/// What an upload's result means for the batch.
fn sent(result: Result<(), DeviceClientError>) -> Sent {
    match result {
        Ok(()) => Sent::Stored,
        // At least a second, however soon the service (or its default) says.
        Err(DeviceClientError::RateLimited { retry_after }) => {
            Sent::Later(retry_after.max(Duration::from_secs(1)))
        }
        // Malformed or too large: resending the same batch can never succeed. (401 waits for a
        // new certificate; 404 for a service that knows the route.)
        Err(error) if matches!(error.status(), Some(400 | 413 | 415 | 422)) => {
            Sent::Refused(clip(&error.to_string(), 512))
        }
        Err(error) => {
            tracing::warn!(%error, "event upload failed; will retry");
            Sent::Later(Duration::ZERO)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, description: &str, at: i64) -> Aggregate {
        Aggregate {
            event_type: kind.into(),
            event_class: "Errors".into(),
            event_category: "c".into(),
            description: description.into(),
            count: 1,
            start: at,
            end: at,
        }
    }

    #[test]
    fn repeats_aggregate_into_one_row() {
        let mut state = State::default();
        for at in [30, 10, 20] {
            state.add(event("AppCrash", "trap", at));
        }
        state.add(event("AppExit", "exit 1", 5));
        assert_eq!(state.pending.len(), 2);
        assert_eq!(state.pending[0].count, 3);
        assert_eq!((state.pending[0].start, state.pending[0].end), (10, 30));
    }

    #[test]
    fn batches_are_bounded_and_keep_their_id() {
        let mut state = State::default();
        for i in 0..(MAX_EVENTS_PER_UPLOAD + 7) {
            state.add(event("AppCrash", &format!("trap {i}"), 1));
        }
        state.take_batch();
        let first = state.outgoing.clone().expect("batch");
        assert_eq!(first.events.len(), MAX_EVENTS_PER_UPLOAD);
        assert_eq!(state.pending.len(), 7);
        // A second call while a batch is out changes nothing (it is resent as it was).
        state.take_batch();
        assert_eq!(state.outgoing, Some(first));
    }

    #[test]
    fn a_flood_of_distinct_events_is_capped() {
        let mut state = State::default();
        for i in 0..(MAX_PENDING + 50) {
            state.add(event("AppCrash", &format!("trap {i}"), 1));
        }
        assert_eq!(state.pending.len(), MAX_PENDING);
        let dropped = state
            .pending
            .iter()
            .find(|a| a.event_type == "EventsDropped")
            .expect("dropped row");
        assert_eq!(dropped.count, 51);
    }

    /// What each upload result does to the batch: stored, dropped for good, or kept for later.
    #[test]
    fn upload_results_decide_the_batch() {
        let api = |status| {
            Err(DeviceClientError::Api {
                status,
                code: "c".into(),
                message: "m".into(),
            })
        };
        let limited = |secs| {
            Err(DeviceClientError::RateLimited {
                retry_after: Duration::from_secs(secs),
            })
        };
        let cases: Vec<(Result<(), DeviceClientError>, &str)> = vec![
            (Ok(()), "stored"),
            (limited(30), "later 30"),
            (limited(0), "later 1"),
            (api(400), "refused"),
            (api(413), "refused"),
            (
                Err(DeviceClientError::UnexpectedStatus { status: 415 }),
                "refused",
            ),
            (api(422), "refused"),
            (api(404), "later 0"),
            (api(500), "later 0"),
            (
                Err(DeviceClientError::Unauthorized {
                    message: String::new(),
                }),
                "later 0",
            ),
            (
                Err(DeviceClientError::Transport {
                    url: "u".into(),
                    reason: "r".into(),
                }),
                "later 0",
            ),
        ];
        for (result, expected) in cases {
            let label = format!("{result:?}");
            let got = match sent(result) {
                Sent::Stored => "stored".to_string(),
                Sent::Refused(_) => "refused".to_string(),
                Sent::Later(wait) => format!("later {}", wait.as_secs()),
            };
            assert_eq!(got, expected, "{label}");
        }
    }

    #[test]
    fn text_is_clipped_to_what_the_service_takes() {
        assert_eq!(clip("a\nb", 10), "a b");
        assert_eq!(clip("", 10), "-");
        assert_eq!(
            clip(&"x".repeat(2000), MAX_EVENT_DESCRIPTION_LEN).len(),
            1024
        );
    }
}
