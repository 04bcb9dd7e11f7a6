//! The host's end of a core's mailbox: one [`Session`] per run of the core, shared by the
//! partner's [`Endpoint`]s and the supervisor.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use ferro_mailbox::{
    ComponentId, Consumer, Corruption, MAX_PAYLOAD, Producer, Ring, SendError, SharedMemory,
};

/// The shared region as the host holds it.
pub(crate) type Region = Arc<dyn SharedMemory + Send + Sync>;

/// A message from the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The RT app's component ID (the host's knowledge, not the core's claim).
    pub sender: ComponentId,
    /// The payload (at most [`MAX_PAYLOAD`] bytes).
    pub payload: Vec<u8>,
}

/// Why a mailbox operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MailboxError {
    /// The core's ring is full (`try_send`), or the wait timed out (`send_timeout`): nothing
    /// was sent.
    #[error("the core's mailbox is full")]
    WouldBlock,
    /// No message came within the timeout (`receive_timeout`).
    #[error("no message within the timeout")]
    TimedOut,
    /// The payload is larger than [`MAX_PAYLOAD`].
    #[error("a message of {len} bytes is larger than {MAX_PAYLOAD}")]
    TooLarge {
        /// The payload's length.
        len: usize,
    },
    /// The core restarted or stopped since this endpoint connected: connect again.
    #[error("the real-time app restarted or stopped: connect again")]
    Disconnected,
    /// The core wrote garbage into the rings; it is being restarted.
    #[error("the real-time core corrupted its mailbox ({what}); it is being restarted")]
    RingCorrupt {
        /// What was wrong.
        what: Corruption,
    },
}

struct Waiters {
    wakers: Vec<Waker>,
    /// Bumped by every notification, so a waiter that saw a count knows whether it missed one.
    epoch: u64,
}

/// One run of a core, as the host sees its mailbox.
pub(crate) struct Session {
    app: ComponentId,
    producer: Mutex<Producer<Region>>,
    consumer: Mutex<Consumer<Region>>,
    connected: AtomicBool,
    corrupt: Mutex<Option<Corruption>>,
    waiters: Mutex<Waiters>,
    cond: Condvar,
    doorbell: Box<dyn Fn() + Send + Sync>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("app", &self.app)
            .field("connected", &self.connected)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Session {
    /// A session over a freshly initialised region; `doorbell` rings the core's.
    pub(crate) fn new(
        region: Region,
        app: ComponentId,
        doorbell: Box<dyn Fn() + Send + Sync>,
    ) -> Arc<Session> {
        Arc::new(Session {
            app,
            producer: Mutex::new(Producer::new(region.clone(), Ring::HostToCore)),
            consumer: Mutex::new(Consumer::new(region, Ring::CoreToHost)),
            connected: AtomicBool::new(true),
            corrupt: Mutex::new(None),
            waiters: Mutex::new(Waiters {
                wakers: Vec::new(),
                epoch: 0,
            }),
            cond: Condvar::new(),
            doorbell,
        })
    }

    /// Wakes every waiter (a doorbell from the core, a disconnect).
    pub(crate) fn notify(&self) {
        let mut w = lock(&self.waiters);
        w.epoch = w.epoch.wrapping_add(1);
        for waker in w.wakers.drain(..) {
            waker.wake();
        }
        drop(w);
        self.cond.notify_all();
    }

    /// Rings the core's doorbell (its GPIO inputs changed: a core asleep in WFI wakes).
    pub(crate) fn ring(&self) {
        (self.doorbell)();
    }

    /// Ends the session: every endpoint answers `Disconnected` from now on.
    pub(crate) fn disconnect(&self) {
        self.connected.store(false, Ordering::SeqCst);
        self.notify();
    }

    /// The corruption an endpoint saw, if any (the supervisor restarts the core).
    pub(crate) fn corruption(&self) -> Option<Corruption> {
        *lock(&self.corrupt)
    }

    /// Validates both rings' shared indices (the supervisor, on each doorbell and tick).
    pub(crate) fn check_rings(&self) -> Result<(), Corruption> {
        if let Some(what) = self.corruption() {
            return Err(what);
        }
        let r = lock(&self.producer)
            .check()
            .and_then(|()| lock(&self.consumer).check());
        r.map_err(|e| {
            self.poison(e.what);
            e.what
        })
    }

    fn poison(&self, what: Corruption) -> MailboxError {
        lock(&self.corrupt).get_or_insert(what);
        MailboxError::RingCorrupt { what }
    }

    fn check(&self) -> Result<(), MailboxError> {
        if let Some(what) = self.corruption() {
            return Err(MailboxError::RingCorrupt { what });
        }
        if !self.connected.load(Ordering::SeqCst) {
            return Err(MailboxError::Disconnected);
        }
        Ok(())
    }

    fn try_send(&self, sender: &ComponentId, payload: &[u8]) -> Result<(), MailboxError> {
        self.check()?;
        match lock(&self.producer).try_send(sender, payload) {
            Ok(sent) => {
                if sent.doorbell {
                    (self.doorbell)();
                }
                Ok(())
            }
            Err(SendError::WouldBlock) => Err(MailboxError::WouldBlock),
            Err(SendError::TooLarge { len }) => Err(MailboxError::TooLarge { len }),
            Err(SendError::RingCorrupt { what }) => Err(self.poison(what)),
        }
    }

    fn try_receive(&self) -> Result<Option<Message>, MailboxError> {
        self.check()?;
        let mut buf = [0u8; MAX_PAYLOAD];
        match lock(&self.consumer).try_receive(&mut buf) {
            Ok(None) => Ok(None),
            Ok(Some(received)) => {
                if received.doorbell {
                    (self.doorbell)();
                }
                Ok(Some(Message {
                    sender: self.app,
                    payload: buf[..received.len].to_vec(),
                }))
            }
            Err(e) => Err(self.poison(e.what)),
        }
    }

    /// Raises the waiting flag of the ring `sending` says, and answers whether to sleep.
    fn prepare_wait(&self, sending: bool) -> Result<bool, MailboxError> {
        let r = if sending {
            lock(&self.producer).prepare_wait()
        } else {
            lock(&self.consumer).prepare_wait()
        };
        r.map_err(|e| self.poison(e.what))
    }

    fn end_wait(&self, sending: bool) {
        if sending {
            lock(&self.producer).end_wait()
        } else {
            lock(&self.consumer).end_wait()
        }
    }

    fn epoch(&self) -> u64 {
        lock(&self.waiters).epoch
    }

    /// Blocks until a notification after `epoch` or the deadline; answers false at the deadline.
    fn wait_until(&self, epoch: u64, deadline: Instant) -> bool {
        let mut w = lock(&self.waiters);
        while w.epoch == epoch {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            w = self
                .cond
                .wait_timeout(w, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Runs `attempt` until it answers something other than `None`, sleeping between tries
    /// until a doorbell, a disconnect or the deadline.
    fn blocking<T>(
        &self,
        sending: bool,
        timeout: Duration,
        mut attempt: impl FnMut() -> Result<Option<T>, MailboxError>,
        timed_out: MailboxError,
    ) -> Result<T, MailboxError> {
        let deadline = Instant::now() + timeout;
        loop {
            let epoch = self.epoch();
            if let Some(v) = attempt()? {
                return Ok(v);
            }
            if self.prepare_wait(sending)? {
                let woke = self.wait_until(epoch, deadline);
                self.end_wait(sending);
                if !woke {
                    return match attempt()? {
                        Some(v) => Ok(v),
                        None => Err(timed_out),
                    };
                }
            }
        }
    }
}

/// A partner app's end of a core's mailbox, for one run of the core (clones share it).
///
/// Every message is delivered whole, in order, exactly once; a full ring is backpressure
/// (`WouldBlock`, or a wait), never a drop. After the core restarts or stops every call
/// answers [`MailboxError::Disconnected`]; connect again with
/// [`crate::RealTimeCore::connect`].
#[derive(Debug, Clone)]
pub struct Endpoint {
    session: Arc<Session>,
    partner: ComponentId,
}

impl Endpoint {
    pub(crate) fn new(session: Arc<Session>, partner: ComponentId) -> Endpoint {
        Endpoint { session, partner }
    }

    /// The partner this endpoint sends as.
    pub fn partner(&self) -> ComponentId {
        self.partner
    }

    /// The RT app at the other end.
    pub fn app(&self) -> ComponentId {
        self.session.app
    }

    /// Whether the run of the core this endpoint belongs to goes on.
    pub fn is_connected(&self) -> bool {
        self.session.check().is_ok()
    }

    /// Sends `payload` now, or answers [`MailboxError::WouldBlock`] when the core's ring is
    /// full (nothing sent).
    pub fn try_send(&self, payload: &[u8]) -> Result<(), MailboxError> {
        self.session.try_send(&self.partner, payload)
    }

    /// Sends `payload`, waiting up to `timeout` for a free slot ([`MailboxError::WouldBlock`]
    /// after it; nothing sent).
    pub fn send_timeout(&self, payload: &[u8], timeout: Duration) -> Result<(), MailboxError> {
        self.session.blocking(
            true,
            timeout,
            || match self.try_send(payload) {
                Ok(()) => Ok(Some(())),
                Err(MailboxError::WouldBlock) => Ok(None),
                Err(e) => Err(e),
            },
            MailboxError::WouldBlock,
        )
    }

    /// Takes the next message, if one waits.
    pub fn try_receive(&self) -> Result<Option<Message>, MailboxError> {
        self.session.try_receive()
    }

    /// Takes the next message, waiting up to `timeout` ([`MailboxError::TimedOut`] after it).
    pub fn receive_timeout(&self, timeout: Duration) -> Result<Message, MailboxError> {
        self.session.blocking(
            false,
            timeout,
            || self.try_receive(),
            MailboxError::TimedOut,
        )
    }

    /// Sends `payload`, waiting as long as the ring is full (no thread blocked: the task is
    /// woken by the core's doorbell).
    pub async fn send(&self, payload: &[u8]) -> Result<(), MailboxError> {
        WaitFor {
            session: &self.session,
            sending: true,
            attempt: || match self.try_send(payload) {
                Ok(()) => Ok(Some(())),
                Err(MailboxError::WouldBlock) => Ok(None),
                Err(e) => Err(e),
            },
        }
        .await
    }

    /// Takes the next message, waiting for one.
    pub async fn receive(&self) -> Result<Message, MailboxError> {
        WaitFor {
            session: &self.session,
            sending: false,
            attempt: || self.try_receive(),
        }
        .await
    }
}

/// The future of an async send or receive: tries, and registers its waker before sleeping.
struct WaitFor<'a, F> {
    session: &'a Session,
    sending: bool,
    attempt: F,
}

impl<T, F: FnMut() -> Result<Option<T>, MailboxError> + Unpin> Future for WaitFor<'_, F> {
    type Output = Result<T, MailboxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(v) = (this.attempt)()? {
            this.session.end_wait(this.sending);
            return Poll::Ready(Ok(v));
        }
        // Register first, then raise the flag and look again: a doorbell after this point
        // wakes us.
        lock(&this.session.waiters).wakers.push(cx.waker().clone());
        match this.session.prepare_wait(this.sending) {
            Err(e) => Poll::Ready(Err(e)),
            Ok(true) => Poll::Pending,
            Ok(false) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}
