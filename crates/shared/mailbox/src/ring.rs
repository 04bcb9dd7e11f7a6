//! The single-producer single-consumer rings: each side keeps its own index in its own memory
//! and validates the other side's before use.

use core::sync::atomic::{Ordering, fence};

use crate::{
    ComponentId, Corruption, MAX_PAYLOAD, Ring, RingCorrupt, SLOT_COUNT, SLOT_SIZE, SendError,
    SharedMemory, read_bytes, ring_layout as at, write_bytes,
};

const MASK: u32 = SLOT_COUNT - 1;
const _: () = assert!(SLOT_COUNT.is_power_of_two());

fn slot_offset(ring: Ring, index: u32) -> usize {
    ring.offset() + at::SLOTS + (index & MASK) as usize * SLOT_SIZE
}

/// What a successful send asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "ring the doorbell when asked to"]
pub struct Sent {
    /// The consumer said it sleeps: ring its doorbell.
    pub doorbell: bool,
}

/// A message taken off a ring (its payload is in the caller's buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "ring the doorbell when asked to"]
pub struct Received {
    /// The sender's component ID as the slot says (the host replaces a core's claim with the
    /// ID it knows).
    pub sender: ComponentId,
    /// Payload bytes written to the buffer.
    pub len: usize,
    /// The producer said it sleeps waiting for a slot: ring its doorbell.
    pub doorbell: bool,
}

/// The producing end of one ring.
#[derive(Debug)]
pub struct Producer<M: SharedMemory> {
    mem: M,
    ring: Ring,
    /// Messages published (own memory: never read back from the region).
    head: u32,
    /// The consumer's index last seen.
    tail: u32,
    poisoned: Option<Corruption>,
}

impl<M: SharedMemory> Producer<M> {
    /// The producer of `ring` in a freshly initialised region (both indices zero).
    pub const fn new(mem: M, ring: Ring) -> Self {
        Producer {
            mem,
            ring,
            head: 0,
            tail: 0,
            poisoned: None,
        }
    }

    /// Reads and validates the consumer's index: it may only move forwards, up to `head`.
    fn refresh_tail(&mut self) -> Result<u32, Corruption> {
        if let Some(what) = self.poisoned {
            return Err(what);
        }
        let found = self
            .mem
            .load_u32(self.ring.offset() + at::TAIL, Ordering::Acquire);
        if found.wrapping_sub(self.tail) > self.head.wrapping_sub(self.tail) {
            let what = Corruption::Tail {
                ring: self.ring,
                previous: self.tail,
                found,
                producer: self.head,
            };
            self.poisoned = Some(what);
            return Err(what);
        }
        self.tail = found;
        Ok(self.head.wrapping_sub(found))
    }

    /// Publishes one message, or answers [`SendError::WouldBlock`] when every slot is full
    /// (nothing written).
    pub fn try_send(&mut self, sender: &ComponentId, payload: &[u8]) -> Result<Sent, SendError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(SendError::TooLarge { len: payload.len() });
        }
        let used = self
            .refresh_tail()
            .map_err(|what| SendError::RingCorrupt { what })?;
        if used >= SLOT_COUNT {
            return Err(SendError::WouldBlock);
        }
        let slot = slot_offset(self.ring, self.head);
        self.mem
            .store_u32(slot + at::SLOT_LEN, payload.len() as u32, Ordering::Relaxed);
        write_bytes(&self.mem, slot + at::SLOT_SENDER, &sender.0);
        write_bytes(&self.mem, slot + at::SLOT_PAYLOAD, payload);
        self.head = self.head.wrapping_add(1);
        self.mem
            .store_u32(self.ring.offset() + at::HEAD, self.head, Ordering::Release);
        // Pairs with the consumer's fence in `prepare_wait`: either it sees the new head, or we
        // see its waiting flag.
        fence(Ordering::SeqCst);
        let waiting = self
            .mem
            .load_u32(self.ring.offset() + at::CONSUMER_WAITING, Ordering::Relaxed);
        Ok(Sent {
            doorbell: waiting != 0,
        })
    }

    /// Before sleeping on a full ring: raises the producer-waiting flag and answers whether the
    /// ring is still full (sleep only then; call [`Self::end_wait`] on waking).
    pub fn prepare_wait(&mut self) -> Result<bool, RingCorrupt> {
        self.mem.store_u32(
            self.ring.offset() + at::PRODUCER_WAITING,
            1,
            Ordering::Relaxed,
        );
        fence(Ordering::SeqCst);
        let used = self.refresh_tail().map_err(|what| RingCorrupt { what })?;
        if used < SLOT_COUNT {
            self.end_wait();
            return Ok(false);
        }
        Ok(true)
    }

    /// Clears the producer-waiting flag.
    pub fn end_wait(&mut self) {
        self.mem.store_u32(
            self.ring.offset() + at::PRODUCER_WAITING,
            0,
            Ordering::Relaxed,
        );
    }

    /// Validates the consumer's index without sending (the host's periodic check).
    pub fn check(&mut self) -> Result<(), RingCorrupt> {
        self.refresh_tail()
            .map(|_| ())
            .map_err(|what| RingCorrupt { what })
    }

    /// Messages published and not yet consumed, as last seen.
    pub fn in_flight(&self) -> u32 {
        self.head.wrapping_sub(self.tail)
    }
}

/// The consuming end of one ring.
#[derive(Debug)]
pub struct Consumer<M: SharedMemory> {
    mem: M,
    ring: Ring,
    /// Messages consumed (own memory: never read back from the region).
    tail: u32,
    /// The producer's index last seen.
    head: u32,
    poisoned: Option<Corruption>,
}

impl<M: SharedMemory> Consumer<M> {
    /// The consumer of `ring` in a freshly initialised region (both indices zero).
    pub const fn new(mem: M, ring: Ring) -> Self {
        Consumer {
            mem,
            ring,
            tail: 0,
            head: 0,
            poisoned: None,
        }
    }

    /// Reads and validates the producer's index: it may only move forwards, and at most
    /// [`SLOT_COUNT`] ahead of `tail`.
    fn refresh_head(&mut self) -> Result<u32, RingCorrupt> {
        if let Some(what) = self.poisoned {
            return Err(RingCorrupt { what });
        }
        let found = self
            .mem
            .load_u32(self.ring.offset() + at::HEAD, Ordering::Acquire);
        let ahead = found.wrapping_sub(self.tail);
        if ahead > SLOT_COUNT || ahead < self.head.wrapping_sub(self.tail) {
            let what = Corruption::Head {
                ring: self.ring,
                previous: self.head,
                found,
                consumer: self.tail,
            };
            self.poisoned = Some(what);
            return Err(RingCorrupt { what });
        }
        self.head = found;
        Ok(ahead)
    }

    /// Validates the producer's index without consuming (the host's periodic check).
    pub fn check(&mut self) -> Result<(), RingCorrupt> {
        self.refresh_head().map(|_| ())
    }

    /// Takes the next message into `buf`, or answers `None` when the ring is empty.
    pub fn try_receive(
        &mut self,
        buf: &mut [u8; MAX_PAYLOAD],
    ) -> Result<Option<Received>, RingCorrupt> {
        if self.refresh_head()? == 0 {
            return Ok(None);
        }
        let slot = slot_offset(self.ring, self.tail);
        // Read once: the producer may rewrite it, but only this value is used.
        let len = self.mem.load_u32(slot + at::SLOT_LEN, Ordering::Relaxed);
        if len as usize > MAX_PAYLOAD {
            let what = Corruption::Length {
                ring: self.ring,
                found: len,
            };
            self.poisoned = Some(what);
            return Err(RingCorrupt { what });
        }
        let len = len as usize;
        let mut sender = [0u8; 16];
        read_bytes(&self.mem, slot + at::SLOT_SENDER, &mut sender);
        read_bytes(&self.mem, slot + at::SLOT_PAYLOAD, &mut buf[..len]);
        self.tail = self.tail.wrapping_add(1);
        self.mem
            .store_u32(self.ring.offset() + at::TAIL, self.tail, Ordering::Release);
        fence(Ordering::SeqCst);
        let waiting = self
            .mem
            .load_u32(self.ring.offset() + at::PRODUCER_WAITING, Ordering::Relaxed);
        Ok(Some(Received {
            sender: ComponentId(sender),
            len,
            doorbell: waiting != 0,
        }))
    }

    /// Before sleeping on an empty ring: raises the consumer-waiting flag and answers whether
    /// the ring is still empty (sleep only then; call [`Self::end_wait`] on waking).
    pub fn prepare_wait(&mut self) -> Result<bool, RingCorrupt> {
        self.mem.store_u32(
            self.ring.offset() + at::CONSUMER_WAITING,
            1,
            Ordering::Relaxed,
        );
        fence(Ordering::SeqCst);
        if self.refresh_head()? != 0 {
            self.end_wait();
            return Ok(false);
        }
        Ok(true)
    }

    /// Clears the consumer-waiting flag.
    pub fn end_wait(&mut self) {
        self.mem.store_u32(
            self.ring.offset() + at::CONSUMER_WAITING,
            0,
            Ordering::Relaxed,
        );
    }
}
