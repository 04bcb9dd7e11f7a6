//! The mailbox to the partner app: messages of at most [`MAX_PAYLOAD`] bytes, whole, in order,
//! exactly once; a full ring is backpressure, never a drop.

use core::cell::Cell;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::interrupt::Mutex;

use ferro_mailbox::{
    ComponentId, Consumer, MAX_PAYLOAD, Producer, RawRegion, Ring, RingCorrupt, SendError,
};

use crate::time::{self, Instant};
use crate::{PSRAM, hw};

/// Doorbells the host rang (a count: the handler's only state).
static DOORBELLS: AtomicU32 = AtomicU32::new(0);

static DOORBELL_HOOK: crate::Hook = Mutex::new(Cell::new(None));

/// Calls `hook` from the doorbell's interrupt each time the host rings (an executor wakes its
/// mailbox tasks there; see `rt-echo-async`).
pub fn set_doorbell_hook(hook: fn()) {
    cortex_m::interrupt::free(|cs| DOORBELL_HOOK.borrow(cs).set(Some(hook)));
}

/// The doorbell interrupt: drain UART1's receive buffer (any byte is a ring).
pub(crate) fn on_doorbell() {
    hw::UART1.clear_interrupts();
    while hw::UART1.try_read().is_some() {}
    DOORBELLS.fetch_add(1, Ordering::Relaxed);
    if let Some(hook) = cortex_m::interrupt::free(|cs| DOORBELL_HOOK.borrow(cs).get()) {
        hook();
    }
}

/// Rings the host's doorbell (one byte on UART3).
pub(crate) fn ring_doorbell() {
    hw::UART3.write_byte(1);
}

/// A message the mailbox took: its payload is in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// The sending app's component ID (the host tags each message).
    pub sender: ComponentId,
    /// Payload bytes in the buffer.
    pub len: usize,
}

/// Writes Azure Sphere's IntercoreComms answer into `out`: the sender's component ID, then
/// `payload`, cut at [`MAX_PAYLOAD`] bytes; answers the part of `out` to send.
pub fn prefixed_with_sender<'a>(
    sender: &ComponentId,
    payload: &[u8],
    out: &'a mut [u8; MAX_PAYLOAD],
) -> &'a [u8] {
    out[..16].copy_from_slice(&sender.0);
    let len = (16 + payload.len()).min(MAX_PAYLOAD);
    out[16..len].copy_from_slice(&payload[..len - 16]);
    &out[..len]
}

/// The core's end of the mailbox (from [`crate::init`]).
#[derive(Debug)]
pub struct Mailbox {
    tx: Producer<&'static RawRegion>,
    rx: Consumer<&'static RawRegion>,
}

/// Sleeps in WFI unless `still_waiting` says otherwise; interrupts are masked between the
/// check and the WFI, so a doorbell in between is not lost (WFI wakes on a pending one).
fn sleep_unless(
    still_waiting: impl FnOnce() -> Result<bool, RingCorrupt>,
) -> Result<(), RingCorrupt> {
    cortex_m::interrupt::disable();
    let r = still_waiting();
    if let Ok(true) = r {
        cortex_m::asm::wfi();
    }
    // SAFETY: re-enables what this function disabled; no critical section spans it.
    unsafe { cortex_m::interrupt::enable() };
    r.map(|_| ())
}

impl Mailbox {
    pub(crate) fn new() -> Mailbox {
        Mailbox {
            tx: Producer::new(&PSRAM, Ring::CoreToHost),
            rx: Consumer::new(&PSRAM, Ring::HostToCore),
        }
    }

    /// Sends `payload` now, or answers [`SendError::WouldBlock`] when the host's ring is full.
    pub fn try_send(&mut self, payload: &[u8]) -> Result<(), SendError> {
        let sent = self.tx.try_send(&ComponentId::default(), payload)?;
        if sent.doorbell {
            ring_doorbell();
        }
        Ok(())
    }

    /// Sends `payload`, sleeping (WFI) while the host's ring is full.
    pub fn send(&mut self, payload: &[u8]) -> Result<(), SendError> {
        loop {
            match self.try_send(payload) {
                Err(SendError::WouldBlock) => {}
                other => return other,
            }
            let tx = &mut self.tx;
            let r = sleep_unless(|| tx.prepare_wait());
            self.tx.end_wait();
            r.map_err(|e| SendError::RingCorrupt { what: e.what })?;
        }
    }

    /// Takes the next message into `buf`, if one waits.
    pub fn try_receive(
        &mut self,
        buf: &mut [u8; MAX_PAYLOAD],
    ) -> Result<Option<Message>, RingCorrupt> {
        match self.rx.try_receive(buf)? {
            None => Ok(None),
            Some(r) => {
                if r.doorbell {
                    ring_doorbell();
                }
                Ok(Some(Message {
                    sender: r.sender,
                    len: r.len,
                }))
            }
        }
    }

    /// Takes the next message into `buf`, sleeping (WFI) until one comes.
    pub fn receive(&mut self, buf: &mut [u8; MAX_PAYLOAD]) -> Result<Message, RingCorrupt> {
        loop {
            if let Some(m) = self.try_receive(buf)? {
                return Ok(m);
            }
            let rx = &mut self.rx;
            let r = sleep_unless(|| rx.prepare_wait());
            self.rx.end_wait();
            r?;
        }
    }

    /// Takes the next message into `buf`, sleeping (WFI) until one comes or `deadline`
    /// passes (`None`).
    pub fn receive_until(
        &mut self,
        buf: &mut [u8; MAX_PAYLOAD],
        deadline: Instant,
    ) -> Result<Option<Message>, RingCorrupt> {
        loop {
            if let Some(m) = self.try_receive(buf)? {
                return Ok(Some(m));
            }
            if time::now() >= deadline {
                return Ok(None);
            }
            time::set_alarm(deadline);
            let rx = &mut self.rx;
            let r = sleep_unless(|| Ok(rx.prepare_wait()? && !time::alarm_pending()));
            self.rx.end_wait();
            r?;
        }
    }

    /// Raises the "waiting for a message" flag and answers whether the ring is still empty
    /// (for executors that sleep themselves: see `rt-echo-async`).
    pub fn prepare_wait(&mut self) -> Result<bool, RingCorrupt> {
        self.rx.prepare_wait()
    }

    /// Lowers the flag [`Self::prepare_wait`] raised.
    pub fn end_wait(&mut self) {
        self.rx.end_wait()
    }

    /// Raises the "waiting for a free slot" flag and answers whether the host's ring is still
    /// full (for executors that sleep themselves).
    pub fn prepare_send_wait(&mut self) -> Result<bool, RingCorrupt> {
        self.tx.prepare_wait()
    }

    /// Lowers the flag [`Self::prepare_send_wait`] raised.
    pub fn end_send_wait(&mut self) {
        self.tx.end_wait()
    }
}

/// Doorbells rung since boot (an executor compares it to know whether to poll the mailbox).
pub fn doorbells() -> u32 {
    DOORBELLS.load(Ordering::Relaxed)
}
