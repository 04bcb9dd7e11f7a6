//! The `application` interface (the mailbox to a real-time partner) as the runtime serves it:
//! linked only with `AllowedApplicationConnections`; a connect to a component the app's manifest
//! does not name refused before the device is asked (logged, and an access-denied event); the
//! device's refusal (the partner's manifest lacks the app) shown to the app and in its log;
//! messages of 1 to 1024 bytes moved whole, in order, exactly once, tagged with the sender; a
//! full queue a wait, never a drop; a partner restart a disconnect the app recovers from.
//!
//! The partner here is an in-process echo behind `PartnerConnector` (the runtime's side of the
//! contract); the device's connector over real cores is tested in `ferro-device`. The guest is
//! `apps/test-guests/partner-probe`.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::{device_with, manifest_with, wasm};
use ferro_runtime::{
    AppId, ErrorKind, InstallError, InstallOptions, PartnerConnector, PartnerError, PartnerLink,
    PartnerMessage,
};
use uuid::Uuid;

const PARTNER: &str = "005180bc-402f-4cb3-a662-72937dbcde47";
const STRANGER: &str = "11111111-2222-4333-8444-555555555555";
const WAIT: Duration = Duration::from_secs(60);

/// An echo partner answering as rt-echo does: a queue of at most `capacity` answers per connection; a "restart" ends
/// every open connection (their next call answers `Disconnected`).
#[derive(Debug)]
struct EchoPartner {
    id: Uuid,
    /// Whether the partner's manifest names the connecting app.
    allows: bool,
    capacity: usize,
    /// Restart after this many messages in total (once).
    restart_after: Option<usize>,
    state: Arc<(Mutex<EchoState>, Condvar)>,
}

#[derive(Debug, Default)]
struct EchoState {
    /// Incremented by a restart; a link of an older generation is disconnected.
    generation: u64,
    received: usize,
    connects: usize,
    refusals: Vec<String>,
    queues: Vec<(u64, VecDeque<Vec<u8>>)>,
}

struct EchoLink {
    partner: Uuid,
    app: Uuid,
    generation: u64,
    index: usize,
    capacity: usize,
    restart_after: Option<usize>,
    state: Arc<(Mutex<EchoState>, Condvar)>,
}

impl PartnerConnector for EchoPartner {
    fn connect(&self, app: AppId, partner: Uuid) -> Result<Box<dyn PartnerLink>, PartnerError> {
        if partner != self.id {
            return Err(PartnerError::NoSuchPartner(partner));
        }
        let (lock, _) = &*self.state;
        let mut state = lock.lock().expect("lock");
        if !self.allows {
            let refusal = PartnerError::Refused {
                app: app.uuid(),
                partner,
            };
            state.refusals.push(refusal.to_string());
            return Err(refusal);
        }
        state.connects += 1;
        let generation = state.generation;
        state.queues.push((generation, VecDeque::new()));
        Ok(Box::new(EchoLink {
            partner,
            app: app.uuid(),
            generation,
            index: state.queues.len() - 1,
            capacity: self.capacity,
            restart_after: self.restart_after,
            state: self.state.clone(),
        }))
    }
}

impl PartnerLink for EchoLink {
    fn send(&mut self, data: &[u8], timeout: Duration) -> Result<(), PartnerError> {
        let (lock, wake) = &*self.state;
        let mut state = lock.lock().expect("lock");
        loop {
            if state.generation != self.generation {
                return Err(PartnerError::Disconnected(self.partner));
            }
            if state.queues[self.index].1.len() < self.capacity {
                break;
            }
            let (next, waited) = wake.wait_timeout(state, timeout).expect("wait");
            state = next;
            if waited.timed_out() && state.queues[self.index].1.len() >= self.capacity {
                return Err(PartnerError::TimedOut);
            }
        }
        state.received += 1;
        if self.restart_after == Some(state.received) {
            // The partner restarts before answering: this message is not echoed.
            state.generation += 1;
            wake.notify_all();
            return Err(PartnerError::Disconnected(self.partner));
        }
        // As rt-echo answers: the sender's component ID, then the message, cut at 1024 bytes.
        let mut answer = self.app.as_bytes().to_vec();
        answer.extend_from_slice(data);
        answer.truncate(ferro_runtime::MAX_MESSAGE_BYTES);
        state.queues[self.index].1.push_back(answer);
        wake.notify_all();
        Ok(())
    }

    fn receive(&mut self, timeout: Duration) -> Result<PartnerMessage, PartnerError> {
        let (lock, wake) = &*self.state;
        let mut state = lock.lock().expect("lock");
        loop {
            if state.generation != self.generation {
                return Err(PartnerError::Disconnected(self.partner));
            }
            if let Some(data) = state.queues[self.index].1.pop_front() {
                wake.notify_all();
                return Ok(PartnerMessage {
                    sender: self.partner,
                    data,
                });
            }
            let (next, waited) = wake.wait_timeout(state, timeout).expect("wait");
            state = next;
            if waited.timed_out() && state.queues[self.index].1.is_empty() {
                return Err(PartnerError::TimedOut);
            }
        }
    }
}

fn echo(allows: bool, restart_after: Option<usize>) -> Arc<EchoPartner> {
    Arc::new(EchoPartner {
        id: Uuid::parse_str(PARTNER).expect("uuid"),
        allows,
        capacity: 4,
        restart_after,
        state: Arc::default(),
    })
}

/// Runs partner-probe with `args` against `partner`; returns its log once it printed a line
/// starting with `last`.
fn run_probe(
    partner: Arc<EchoPartner>,
    args: &[&str],
    last: &str,
) -> (Vec<String>, Vec<ErrorKind>) {
    let device = device_with(|config| config.partners = partner.clone());
    let manifest = manifest_with("partner-probe", |json| {
        json["CmdArgs"] = serde_json::json!(args);
    });
    let app = device
        .runtime
        .install(&wasm("partner-probe"), &manifest, InstallOptions::default())
        .expect("install partner-probe");
    device.wait_for_log(app, last, WAIT);
    let events = device
        .runtime
        .recent_events()
        .into_iter()
        .filter(|event| event.app == app)
        .map(|event| event.kind)
        .collect();
    let log = device.log_texts(app);
    device.runtime.stop(app).expect("stop");
    (log, events)
}

#[test]
fn messages_arrive_whole_in_order_exactly_once_from_the_partner() {
    let partner = echo(true, None);
    let (log, _) = run_probe(partner.clone(), &[PARTNER, "300"], "done");
    assert!(log.iter().any(|l| l == "done 300"), "{log:#?}");
    assert!(!log.iter().any(|l| l.starts_with("mismatch")), "{log:#?}");
    // 1025 bytes is refused by the runtime, nothing reaches the partner.
    assert!(
        log.iter()
            .any(|l| l.starts_with("oversize: invalid argument") && l.contains("1025")),
        "{log:#?}"
    );
    let (lock, _) = &*partner.state;
    let state = lock.lock().expect("lock");
    assert_eq!(state.received, 300, "exactly once");
    assert_eq!(state.connects, 1);
}

#[test]
fn a_partner_restart_is_a_disconnect_the_app_recovers_from() {
    let partner = echo(true, Some(40));
    let (log, _) = run_probe(partner.clone(), &[PARTNER, "100"], "done");
    assert!(log.iter().any(|l| l == "disconnected at 39"), "{log:#?}");
    assert!(log.iter().any(|l| l == "done 100"), "{log:#?}");
    assert!(!log.iter().any(|l| l.starts_with("mismatch")), "{log:#?}");
    let (lock, _) = &*partner.state;
    assert_eq!(lock.lock().expect("lock").connects, 2);
}

#[test]
fn a_connect_neither_manifest_allows_is_refused_and_logged() {
    // The app's own manifest lacks STRANGER: refused by the runtime, the device never asked.
    let partner = echo(true, None);
    let (log, events) = run_probe(partner.clone(), &[PARTNER, "1", STRANGER], "done");
    assert!(
        log.iter()
            .any(|l| l.starts_with(&format!("connect {STRANGER}: not permitted"))),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|l| l.contains(&format!(
            "connection to app {STRANGER} refused: it is not in this app's AllowedApplicationConnections"
        ))),
        "{log:#?}"
    );
    assert!(
        events
            .iter()
            .any(|kind| matches!(kind, ErrorKind::AccessDenied { resource } if resource.contains(STRANGER))),
        "{events:#?}"
    );
    // The partner's manifest lacks the app: the device refuses, the app sees why.
    let partner = echo(false, None);
    let (log, _) = run_probe(
        partner.clone(),
        &[PARTNER, "1"],
        &format!("connect {PARTNER}"),
    );
    assert!(
        log.iter().any(
            |l| l.starts_with(&format!("connect {PARTNER}: not permitted"))
                && l.contains("does not list")
        ),
        "{log:#?}"
    );
    let (lock, _) = &*partner.state;
    assert_eq!(lock.lock().expect("lock").refusals.len(), 1);
}

#[test]
fn the_interface_is_linked_only_with_allowed_application_connections() {
    let device = device_with(|_| {});
    let manifest = manifest_with("partner-probe", |json| {
        json["Capabilities"] = serde_json::json!({});
    });
    let error = device
        .runtime
        .install(&wasm("partner-probe"), &manifest, InstallOptions::default())
        .expect_err("installed without the capability");
    assert!(
        matches!(&error, InstallError::ImportNotGranted { import, reason, .. }
            if import.contains("application") && reason.contains("AllowedApplicationConnections")),
        "{error}"
    );
}
