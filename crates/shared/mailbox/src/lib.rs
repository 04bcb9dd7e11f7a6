//! `ferro-mailbox`: the contract between a real-time core and its host, in shared memory
//! (`docs/realtime.md` gives the layout byte by byte).
//!
//! It owns the byte layout of the mailbox region (a control block, then two single-producer
//! single-consumer rings of fixed slots), the ring protocol (free-running `u32` indices,
//! acquire/release publication, the waiting flags that say when a doorbell is needed) and the
//! control block's fields (state, exit code, fault record, watchdog kicks, GPIO levels). The
//! same code runs on both sides: the core's SDK (`ferro-rt`, `thumbv7em-none-eabihf`) and the
//! host (`ferro-rtcore`, feature `host`).
//!
//! The host treats every byte of the region as hostile: a core can write anywhere in it,
//! including the fields the protocol says the host owns. So each side keeps its own indices in
//! its own memory, and every index or length read from the region is validated before use
//! (an index must move forwards and stay within the ring's window, a length must be at most
//! [`MAX_PAYLOAD`]); a violation is a typed [`Corruption`], never a panic or an out-of-bounds
//! access, and an endpoint that saw one stays poisoned (the host restarts such a core).
//!
//! `no_std` and no alloc without feature `host`. It must not depend on any other Ferrosphere
//! crate (the core's build links it), nor on an async runtime.
//!
//! # `unsafe`
//! The workspace forbids `unsafe`. This crate is the one exception the tidy check
//! `unsafe-forbidden` names: viewing shared memory (a mapping of the host's file, or the core's
//! PSRAM at [`PSRAM_BASE`]) as `AtomicU32`s needs a raw pointer. That code is confined to
//! `src/raw.rs` ([`RawRegion`], bounds checked at construction and on each access, with
//! `// SAFETY:` comments); everything else, the ring protocol included, is safe code over the
//! [`SharedMemory`] trait.
#![cfg_attr(not(feature = "host"), no_std)]

#[cfg(feature = "host")]
mod host;
#[allow(unsafe_code)]
mod raw;
mod ring;

#[cfg(feature = "host")]
pub use host::{HeapRegion, MappedRegion};
pub use raw::RawRegion;
pub use ring::{Consumer, Producer, Received, Sent};

use core::fmt;
use core::sync::atomic::Ordering;

/// Where the mailbox region is in the core's address space: mps2-an386's 16 MiB PSRAM.
pub const PSRAM_BASE: u32 = 0x2100_0000;
/// The PSRAM's size, and the size of the host file that backs it.
pub const PSRAM_SIZE: usize = 16 << 20;

/// The most payload bytes one message carries.
pub const MAX_PAYLOAD: usize = 1024;
/// Slots per ring (a power of two, so a free-running index masks to a slot).
pub const SLOT_COUNT: u32 = 64;
/// Bytes of one slot: length (`u32`), reserved (`u32`), sender component ID (16), payload (1024).
pub const SLOT_SIZE: usize = 8 + 16 + MAX_PAYLOAD;

/// The control block's magic, "FSMB" as a little-endian `u32`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"FSMB");
/// The layout version this crate reads and writes.
pub const LAYOUT_VERSION: u32 = 1;

/// Byte offsets of the control block's fields (each a little-endian `u32`).
pub mod control {
    /// [`crate::MAGIC`], written by the host before the core starts.
    pub const MAGIC: usize = 0;
    /// [`crate::LAYOUT_VERSION`], written by the host before the core starts.
    pub const VERSION: usize = 4;
    /// The core's state (0 booting, 1 ready, 2 exited, 3 faulted), written by the core.
    pub const STATE: usize = 8;
    /// The exit code (`i32`) of an exited core, written before the state.
    pub const EXIT_CODE: usize = 12;
    /// The watchdog kick counter, incremented by the core.
    pub const KICKS: usize = 16;
    /// GPIO output levels (bit n = GPIO n), written by the core.
    pub const GPIO_OUT: usize = 20;
    /// GPIO output enables (bit n = GPIO n drives its level), written by the core.
    pub const GPIO_ENABLE: usize = 24;
    /// GPIO input levels, written by the host.
    pub const GPIO_IN: usize = 28;
    /// The fault record: kind, PC, LR, xPSR, CFSR, HFSR, MMFAR, BFAR (8 words), written by the
    /// core's fault handler before the state.
    pub const FAULT: usize = 32;
    /// Size of the control block; the first ring starts here.
    pub const SIZE: usize = 256;
}

/// Byte offsets inside a ring (from the ring's start).
pub mod ring_layout {
    /// The producer's free-running index (messages published), written by the producer.
    pub const HEAD: usize = 0;
    /// Non-zero while the producer sleeps waiting for a free slot (a hint: the consumer rings
    /// the doorbell after freeing one).
    pub const PRODUCER_WAITING: usize = 4;
    /// The consumer's free-running index (messages consumed), written by the consumer, on its
    /// own 64-byte line.
    pub const TAIL: usize = 64;
    /// Non-zero while the consumer sleeps waiting for a message (a hint: the producer rings the
    /// doorbell after publishing).
    pub const CONSUMER_WAITING: usize = 68;
    /// The first slot.
    pub const SLOTS: usize = 128;
    /// Inside a slot: the payload length (`u32`).
    pub const SLOT_LEN: usize = 0;
    /// Inside a slot: the sender's component ID (16 bytes).
    pub const SLOT_SENDER: usize = 8;
    /// Inside a slot: the payload (up to [`crate::MAX_PAYLOAD`] bytes).
    pub const SLOT_PAYLOAD: usize = 24;
    /// Bytes of one ring, rounded up to 256.
    pub const SIZE: usize =
        (SLOTS + crate::SLOT_COUNT as usize * crate::SLOT_SIZE).div_ceil(256) * 256;
}

/// The bytes of the region the protocol uses (from the start of the PSRAM).
pub const REGION_SIZE: usize = control::SIZE + 2 * ring_layout::SIZE;

/// One of the two rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ring {
    /// Messages from the host (the partner app) to the core.
    HostToCore,
    /// Messages from the core to the host.
    CoreToHost,
}

impl Ring {
    /// The ring's byte offset in the region.
    pub const fn offset(self) -> usize {
        match self {
            Ring::HostToCore => control::SIZE,
            Ring::CoreToHost => control::SIZE + ring_layout::SIZE,
        }
    }
}

/// A component ID (the UUID of an app's manifest), as 16 bytes in RFC 4122 order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ComponentId(pub [u8; 16]);

impl fmt::Debug for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ComponentId({self})")
    }
}

impl fmt::Display for ComponentId {
    /// The hyphenated lower-case UUID form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Access to the shared region as little-endian `u32` words.
///
/// Offsets are byte offsets from the region's start, multiples of 4 and below [`REGION_SIZE`];
/// they come from this crate's constants and masked indices, never from the region's contents.
/// An implementation may panic on an offset outside that range (a bug, not hostile input).
pub trait SharedMemory {
    /// Loads the word at `offset`.
    fn load_u32(&self, offset: usize, order: Ordering) -> u32;
    /// Stores `value` at `offset`.
    fn store_u32(&self, offset: usize, value: u32, order: Ordering);
}

impl<T: SharedMemory + ?Sized> SharedMemory for &T {
    fn load_u32(&self, offset: usize, order: Ordering) -> u32 {
        (**self).load_u32(offset, order)
    }
    fn store_u32(&self, offset: usize, value: u32, order: Ordering) {
        (**self).store_u32(offset, value, order)
    }
}

#[cfg(feature = "host")]
impl<T: SharedMemory + ?Sized> SharedMemory for std::sync::Arc<T> {
    fn load_u32(&self, offset: usize, order: Ordering) -> u32 {
        (**self).load_u32(offset, order)
    }
    fn store_u32(&self, offset: usize, value: u32, order: Ordering) {
        (**self).store_u32(offset, value, order)
    }
}

/// Copies `out.len()` bytes from `offset` (a multiple of 4) out of the region, word by word.
pub(crate) fn read_bytes<M: SharedMemory + ?Sized>(mem: &M, offset: usize, out: &mut [u8]) {
    for (i, chunk) in out.chunks_mut(4).enumerate() {
        let word = mem
            .load_u32(offset + 4 * i, Ordering::Relaxed)
            .to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// Copies `data` into the region at `offset` (a multiple of 4), word by word (a last partial
/// word is padded with zeros).
pub(crate) fn write_bytes<M: SharedMemory + ?Sized>(mem: &M, offset: usize, data: &[u8]) {
    for (i, chunk) in data.chunks(4).enumerate() {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        mem.store_u32(offset + 4 * i, u32::from_le_bytes(word), Ordering::Relaxed);
    }
}

/// What was wrong in the shared region: the host's answer to a core that wrote garbage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// The control block's magic is not [`MAGIC`].
    #[error("the control block's magic is {found:#010x}, not {MAGIC:#010x}")]
    Magic {
        /// What the region holds.
        found: u32,
    },
    /// The control block's layout version is not [`LAYOUT_VERSION`].
    #[error("the layout version is {found}, not {LAYOUT_VERSION}")]
    Version {
        /// What the region holds.
        found: u32,
    },
    /// The state word holds no known state.
    #[error("the core state word holds {found}, no known state")]
    State {
        /// What the region holds.
        found: u32,
    },
    /// The fault record's kind is no known fault kind.
    #[error("the fault record's kind is {found}, no known fault kind")]
    FaultKind {
        /// What the region holds.
        found: u32,
    },
    /// The producer's index of a ring moved backwards or past the ring's window.
    #[error(
        "the {ring:?} ring's producer index moved from {previous} to {found} (consumer at {consumer}, {SLOT_COUNT} slots)"
    )]
    Head {
        /// Which ring.
        ring: Ring,
        /// The index seen before.
        previous: u32,
        /// The index in the region now.
        found: u32,
        /// The consumer's own index.
        consumer: u32,
    },
    /// The consumer's index of a ring moved backwards or past the producer's index.
    #[error(
        "the {ring:?} ring's consumer index moved from {previous} to {found} (producer at {producer})"
    )]
    Tail {
        /// Which ring.
        ring: Ring,
        /// The index seen before.
        previous: u32,
        /// The index in the region now.
        found: u32,
        /// The producer's own index.
        producer: u32,
    },
    /// A slot's length is larger than [`MAX_PAYLOAD`].
    #[error("a slot of the {ring:?} ring says {found} payload bytes, more than {MAX_PAYLOAD}")]
    Length {
        /// Which ring.
        ring: Ring,
        /// The length in the slot.
        found: u32,
    },
}

/// Why a message was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Every slot is full: try again after the consumer frees one (nothing was written).
    #[error("the ring is full")]
    WouldBlock,
    /// The payload is larger than [`MAX_PAYLOAD`].
    #[error("a message of {len} bytes is larger than {MAX_PAYLOAD}")]
    TooLarge {
        /// The payload's length.
        len: usize,
    },
    /// The ring's shared indices are corrupt; the endpoint is poisoned.
    #[error("ring corrupt: {what}")]
    RingCorrupt {
        /// What was wrong.
        what: Corruption,
    },
}

/// The ring's shared state was corrupt; the endpoint is poisoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ring corrupt: {what}")]
pub struct RingCorrupt {
    /// What was wrong.
    pub what: Corruption,
}

/// A core's fault kinds (the Cortex-M exception that caught it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// HardFault (exception 3), including escalated faults.
    HardFault,
    /// MemManage (exception 4): an MPU violation.
    MemManage,
    /// BusFault (exception 5).
    BusFault,
    /// UsageFault (exception 6): undefined instruction, unaligned access, divide by zero, ...
    UsageFault,
}

impl FaultKind {
    /// The value in the fault record's kind word.
    pub const fn code(self) -> u32 {
        match self {
            FaultKind::HardFault => 1,
            FaultKind::MemManage => 2,
            FaultKind::BusFault => 3,
            FaultKind::UsageFault => 4,
        }
    }

    /// The kind of a kind word, if it is one.
    pub const fn from_code(code: u32) -> Option<FaultKind> {
        match code {
            1 => Some(FaultKind::HardFault),
            2 => Some(FaultKind::MemManage),
            3 => Some(FaultKind::BusFault),
            4 => Some(FaultKind::UsageFault),
            _ => None,
        }
    }

    /// The kind of an exception number (IPSR), if it is a fault.
    pub const fn from_exception(number: u32) -> Option<FaultKind> {
        Self::from_code(number.wrapping_sub(2))
    }
}

/// What the core's fault handler recorded: the stacked PC, LR and xPSR and the fault status and
/// address registers of the System Control Block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRecord {
    /// Which exception caught the fault.
    pub kind: FaultKind,
    /// The stacked program counter (the faulting instruction).
    pub pc: u32,
    /// The stacked link register.
    pub lr: u32,
    /// The stacked program status register.
    pub xpsr: u32,
    /// Configurable Fault Status Register (0xE000ED28).
    pub cfsr: u32,
    /// HardFault Status Register (0xE000ED2C).
    pub hfsr: u32,
    /// MemManage Fault Address Register (0xE000ED34).
    pub mmfar: u32,
    /// BusFault Address Register (0xE000ED38).
    pub bfar: u32,
}

/// A core's state as its control block says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreState {
    /// Started, not yet attached to the mailbox (the host's initial value).
    Booting,
    /// Attached: the rings are in use.
    Ready,
    /// The app returned or called `exit` with this code.
    Exited(i32),
    /// A fault handler ran and recorded this.
    Faulted(FaultRecord),
}

/// The GPIO words of the control block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GpioLevels {
    /// Output levels written by the core (bit n = GPIO n).
    pub output: u32,
    /// Output enables written by the core.
    pub enable: u32,
    /// Input levels written by the host.
    pub input: u32,
}

/// The control block of a region.
#[derive(Debug)]
pub struct ControlBlock<M: SharedMemory> {
    mem: M,
}

impl<M: SharedMemory> ControlBlock<M> {
    /// A view of the control block of `mem`.
    pub const fn new(mem: M) -> Self {
        ControlBlock { mem }
    }

    /// The host, before a core starts: zeroes the control block and both rings' headers, then
    /// writes the magic and layout version (state booting, no kicks, no messages).
    pub fn initialise(&self) {
        for offset in (0..control::SIZE).step_by(4) {
            self.mem.store_u32(offset, 0, Ordering::Relaxed);
        }
        for ring in [Ring::HostToCore, Ring::CoreToHost] {
            for offset in (0..ring_layout::SLOTS).step_by(4) {
                self.mem
                    .store_u32(ring.offset() + offset, 0, Ordering::Relaxed);
            }
        }
        self.mem
            .store_u32(control::VERSION, LAYOUT_VERSION, Ordering::Relaxed);
        self.mem.store_u32(control::MAGIC, MAGIC, Ordering::Release);
    }

    /// Checks the magic and layout version (the core does so before it attaches).
    pub fn check_header(&self) -> Result<(), Corruption> {
        let magic = self.mem.load_u32(control::MAGIC, Ordering::Acquire);
        if magic != MAGIC {
            return Err(Corruption::Magic { found: magic });
        }
        let version = self.mem.load_u32(control::VERSION, Ordering::Relaxed);
        if version != LAYOUT_VERSION {
            return Err(Corruption::Version { found: version });
        }
        Ok(())
    }

    /// The core's state, validated.
    pub fn state(&self) -> Result<CoreState, Corruption> {
        let state = self.mem.load_u32(control::STATE, Ordering::Acquire);
        match state {
            0 => Ok(CoreState::Booting),
            1 => Ok(CoreState::Ready),
            2 => Ok(CoreState::Exited(
                self.mem.load_u32(control::EXIT_CODE, Ordering::Relaxed) as i32,
            )),
            3 => {
                let word = |i: usize| self.mem.load_u32(control::FAULT + 4 * i, Ordering::Relaxed);
                let kind = FaultKind::from_code(word(0))
                    .ok_or(Corruption::FaultKind { found: word(0) })?;
                Ok(CoreState::Faulted(FaultRecord {
                    kind,
                    pc: word(1),
                    lr: word(2),
                    xpsr: word(3),
                    cfsr: word(4),
                    hfsr: word(5),
                    mmfar: word(6),
                    bfar: word(7),
                }))
            }
            found => Err(Corruption::State { found }),
        }
    }

    /// The core: records `state` (an exit code or fault record first, then the state word with
    /// release ordering).
    pub fn set_state(&self, state: CoreState) {
        let word = match state {
            CoreState::Booting => 0,
            CoreState::Ready => 1,
            CoreState::Exited(code) => {
                self.mem
                    .store_u32(control::EXIT_CODE, code as u32, Ordering::Relaxed);
                2
            }
            CoreState::Faulted(record) => {
                let words = [
                    record.kind.code(),
                    record.pc,
                    record.lr,
                    record.xpsr,
                    record.cfsr,
                    record.hfsr,
                    record.mmfar,
                    record.bfar,
                ];
                for (i, w) in words.into_iter().enumerate() {
                    self.mem
                        .store_u32(control::FAULT + 4 * i, w, Ordering::Relaxed);
                }
                3
            }
        };
        self.mem.store_u32(control::STATE, word, Ordering::Release);
    }

    /// The core: one watchdog kick.
    pub fn kick(&self) {
        let kicks = self.mem.load_u32(control::KICKS, Ordering::Relaxed);
        self.mem
            .store_u32(control::KICKS, kicks.wrapping_add(1), Ordering::Release);
    }

    /// The watchdog kick counter (the host compares it with its previous reading: any change
    /// is a kick).
    pub fn kicks(&self) -> u32 {
        self.mem.load_u32(control::KICKS, Ordering::Acquire)
    }

    /// The GPIO words.
    pub fn gpio(&self) -> GpioLevels {
        GpioLevels {
            output: self.mem.load_u32(control::GPIO_OUT, Ordering::Acquire),
            enable: self.mem.load_u32(control::GPIO_ENABLE, Ordering::Acquire),
            input: self.mem.load_u32(control::GPIO_IN, Ordering::Acquire),
        }
    }

    /// The core: sets its output levels and enables.
    pub fn set_gpio_outputs(&self, output: u32, enable: u32) {
        self.mem
            .store_u32(control::GPIO_OUT, output, Ordering::Release);
        self.mem
            .store_u32(control::GPIO_ENABLE, enable, Ordering::Release);
    }

    /// The host: sets the input levels the core reads.
    pub fn set_gpio_inputs(&self, input: u32) {
        self.mem
            .store_u32(control::GPIO_IN, input, Ordering::Release);
    }
}
