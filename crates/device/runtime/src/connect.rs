//! Waits a stop request interrupts: the runtime's one TCP connect ([`connect_tcp`]) and its one
//! way to run a blocking name lookup ([`LookupSlot::run`]). Neither holds a stop request (app
//! update, uninstall, device shutdown) for longer than [`STOP_POLL`] (plus [`CONNECT_POLL`]).
//!
//! A connect is non-blocking (socket2): started, then looked at in steps until it completes,
//! fails, its deadline passes or a stop is requested, never a blocking connect that would hold
//! a stop until its timeout. A name lookup (`getaddrinfo`, which cannot be interrupted) runs on
//! a helper thread; the caller waits for its answer in steps and, when a stop comes first,
//! returns at once and drops the answer when it comes. At most one lookup thread per app runs
//! at a time ([`LookupSlot`]): a lookup abandoned by a stop keeps the slot until `getaddrinfo`
//! returns, and a lookup asked meanwhile (by the app's next instance) is refused.

use std::io::ErrorKind as IoErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::host::{STOP_POLL, StopSignal};

/// How often a pending connect is looked at after its first wait (a stop request ends the
/// wait at once).
const CONNECT_POLL: Duration = Duration::from_millis(5);

/// Why an interruptible wait ended without its result.
#[derive(Debug)]
pub(crate) enum Interrupted<E> {
    /// A stop was requested.
    Stopped,
    /// The deadline passed first.
    TimedOut,
    /// The operation failed.
    Failed(E),
}

/// How long the next wait may be: at most [`STOP_POLL`], ending at `deadline`.
fn next_wait<E>(deadline: Instant, stop: &StopSignal) -> Result<Duration, Interrupted<E>> {
    if stop.is_requested() {
        return Err(Interrupted::Stopped);
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(Interrupted::TimedOut);
    }
    Ok(remaining.min(STOP_POLL).max(Duration::from_millis(1)))
}

/// A TCP connection to `address`: a non-blocking connect, waited for in steps (at most
/// [`STOP_POLL`], then [`CONNECT_POLL`]) until it completes, fails, `deadline` passes or `stop`
/// is requested. With `device`, the socket is bound to that interface first (`SO_BINDTODEVICE`:
/// the connection leaves through it or fails; needs `CAP_NET_RAW`, and a failure to bind fails
/// the connect).
pub(crate) fn connect_tcp(
    address: SocketAddr,
    deadline: Instant,
    stop: &StopSignal,
    device: Option<&str>,
) -> Result<TcpStream, Interrupted<std::io::Error>> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(Interrupted::Failed)?;
    if let Some(device) = device {
        socket
            .bind_device(Some(device.as_bytes()))
            .map_err(|error| {
                Interrupted::Failed(std::io::Error::new(
                    error.kind(),
                    format!("cannot bind to interface {device} (SO_BINDTODEVICE): {error}"),
                ))
            })?;
    }
    // The first wait connects or starts the connect (socket2 tells an immediate failure from
    // one in progress); the connect goes on after a timed out wait.
    match socket.connect_timeout(&address.into(), next_wait(deadline, stop)?) {
        Ok(()) => {}
        Err(error) if error.kind() == IoErrorKind::TimedOut => loop {
            if let Some(error) = socket.take_error().map_err(Interrupted::Failed)? {
                return Err(Interrupted::Failed(error));
            }
            if socket.peer_addr().is_ok() {
                break;
            }
            let wait = next_wait(deadline, stop)?.min(CONNECT_POLL);
            if stop.wait(wait) {
                return Err(Interrupted::Stopped);
            }
        },
        Err(error) => return Err(Interrupted::Failed(error)),
    }
    Ok(socket.into())
}

/// An app's one slot for a blocking name lookup on a helper thread (see the module comment).
#[derive(Debug, Default)]
pub(crate) struct LookupSlot {
    busy: Arc<AtomicBool>,
}

/// Frees a [`LookupSlot`] when its lookup thread ends (whether or not anyone still waits).
struct Release(Arc<AtomicBool>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Why [`LookupSlot::run`] gave no answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LookupRefused {
    /// A stop was requested while the lookup ran (its answer is dropped when it comes).
    Stopped,
    /// A lookup this app started earlier (abandoned by a stop) has not returned yet.
    Busy,
    /// No helper thread could be started.
    Spawn(String),
}

impl LookupSlot {
    /// Runs `lookup` on a helper thread and returns its answer, waiting in steps of
    /// [`STOP_POLL`]; returns as soon as `stop` is requested, leaving the thread to finish
    /// alone (holding the slot until then).
    pub(crate) fn run<T: Send + 'static>(
        &self,
        stop: &StopSignal,
        lookup: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, LookupRefused> {
        if stop.is_requested() {
            return Err(LookupRefused::Stopped);
        }
        if self
            .busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(LookupRefused::Busy);
        }
        let release = Release(self.busy.clone());
        let (sender, receiver) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("ferro-lookup".to_owned())
            .spawn(move || {
                // The slot is free again before the answer is handed over: the waiter may ask
                // its next lookup the moment it has this one (also if `lookup` panics).
                let answer = {
                    let _release = release;
                    lookup()
                };
                // The waiter may be gone (a stop): the answer is then dropped.
                let _ = sender.send(answer);
            })
            .map_err(|error| LookupRefused::Spawn(error.to_string()))?;
        loop {
            match receiver.recv_timeout(STOP_POLL) {
                Ok(answer) => return Ok(answer),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if stop.is_requested() {
                        return Err(LookupRefused::Stopped);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(LookupRefused::Spawn(
                        "the name lookup thread ended without an answer".to_owned(),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "../tests/common/listener.rs"]
mod test_listener;

#[cfg(test)]
mod tests {
    use super::test_listener::full_listener;
    use super::*;
    use std::net::Ipv4Addr;

    /// Whether a socket on this host is connecting (SYN sent, no answer yet) to
    /// 127.0.0.1:`port` (Linux's `/proc/net/tcp`: remote address in hex, state `02`).
    pub(crate) fn connecting_to(port: u16) -> bool {
        let remote = format!("0100007F:{port:04X}");
        std::fs::read_to_string("/proc/net/tcp").is_ok_and(|table| {
            table.lines().skip(1).any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.get(2) == Some(&remote.as_str()) && fields.get(3) == Some(&"02")
            })
        })
    }

    /// A stop requested while a connect is pending (no answer) ends it well before its
    /// deadline (a blocking connect would hold it until then, 10 s away). The stop is
    /// requested only once the connect is seen pending.
    #[test]
    fn a_stop_interrupts_a_tcp_connect_that_gets_no_answer() {
        const DEADLINE: Duration = Duration::from_secs(10);
        let (_listener, address, _fillers) = full_listener();
        let stop = Arc::new(StopSignal::default());
        let requester = stop.clone();
        let port = address.port();
        let watcher = std::thread::spawn(move || {
            let deadline = Instant::now() + DEADLINE;
            while !connecting_to(port) {
                assert!(Instant::now() < deadline, "the connect was never pending");
                std::thread::yield_now();
            }
            requester.request();
            Instant::now()
        });
        let outcome = connect_tcp(address, Instant::now() + DEADLINE, &stop, None);
        let returned = Instant::now();
        let requested = watcher.join().expect("watcher");
        assert!(
            matches!(outcome, Err(Interrupted::Stopped)),
            "the stop ended the pending connect (not a connection): {outcome:?}"
        );
        assert!(
            returned.saturating_duration_since(requested) < DEADLINE / 2,
            "the stop ended the connect well before the deadline"
        );
    }

    /// Without a stop, the same pending connect ends at its deadline, and a listener that
    /// answers is connected to.
    #[test]
    fn a_connect_ends_at_its_deadline_or_connects() {
        let (_listener, address, _fillers) = full_listener();
        let stop = StopSignal::default();
        let outcome = connect_tcp(
            address,
            Instant::now() + Duration::from_millis(200),
            &stop,
            None,
        );
        assert!(matches!(outcome, Err(Interrupted::TimedOut)), "{outcome:?}");
        let open = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let address = open.local_addr().expect("address");
        let stream = connect_tcp(
            address,
            Instant::now() + Duration::from_secs(10),
            &stop,
            None,
        )
        .expect("a connection");
        assert_eq!(stream.peer_addr().expect("peer"), address);
    }

    /// The slot is free when the answer arrives: an app that asks its next lookup at once is
    /// never refused as `Busy` (it was, now and then, when the slot was freed only after the
    /// answer had been handed over).
    #[test]
    fn a_lookup_right_after_another_finds_the_slot_free() {
        let slot = LookupSlot::default();
        let stop = StopSignal::default();
        for i in 0..5_000 {
            assert_eq!(slot.run(&stop, move || i), Ok(i), "lookup {i}");
        }
    }

    /// A lookup that never returns (here: until the test lets it) does not hold a stop: `run`
    /// returns `Stopped` once the stop is requested, the slot stays taken until the lookup
    /// returns (a second lookup meanwhile is `Busy`), then is free again.
    #[test]
    fn a_stop_interrupts_a_lookup_that_never_returns() {
        let slot = Arc::new(LookupSlot::default());
        let stop = Arc::new(StopSignal::default());
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let waiter = {
            let (slot, stop) = (slot.clone(), stop.clone());
            std::thread::spawn(move || {
                slot.run(&stop, move || {
                    started_tx.send(()).expect("started");
                    let _ = release_rx.recv();
                    7
                })
            })
        };
        started_rx.recv().expect("the lookup started");
        stop.request();
        assert_eq!(waiter.join().expect("waiter"), Err(LookupRefused::Stopped));
        let fresh = StopSignal::default();
        assert_eq!(slot.run(&fresh, || 1), Err(LookupRefused::Busy));
        release_tx.send(()).expect("release");
        // The abandoned thread frees the slot when its lookup returns.
        let deadline = Instant::now() + Duration::from_secs(10);
        while slot.busy.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "the slot was never freed");
            std::thread::yield_now();
        }
        assert_eq!(slot.run(&fresh, || 1), Ok(1));
        assert_eq!(slot.run(&stop, || 1), Err(LookupRefused::Stopped));
    }
}
