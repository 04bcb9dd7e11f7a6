//! The one module of `ferro-mailbox` that uses `unsafe`: a view of shared memory (the host's
//! mapping of the core's PSRAM file, or the PSRAM itself on the core) as `AtomicU32`s.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::{REGION_SIZE, SharedMemory};

/// Shared memory at a raw address: at least [`REGION_SIZE`] bytes, 4-byte aligned, that another
/// party (the other side of the mailbox) may write at any time.
#[derive(Debug)]
pub struct RawRegion {
    base: *mut u8,
    len: usize,
}

// SAFETY: the region is only ever accessed through atomic loads and stores (`AtomicU32` is
// `Sync`), so sharing the pointer between threads adds no data race.
unsafe impl Send for RawRegion {}
// SAFETY: as above.
unsafe impl Sync for RawRegion {}

impl RawRegion {
    /// A view of `len` bytes at `base`, or `None` when `base` is null or not 4-byte aligned or
    /// `len` is smaller than [`REGION_SIZE`].
    ///
    /// # Safety
    /// For as long as the returned value (or anything borrowing it) lives, `base..base + len`
    /// must be memory this process may read and write, and nothing may access it but through
    /// atomic operations (other processes or cores included, which see it as plain memory and
    /// cannot break Rust's aliasing rules for us: we never create references to it other than
    /// `&AtomicU32`).
    pub unsafe fn new(base: *mut u8, len: usize) -> Option<RawRegion> {
        if base.is_null() || !(base as usize).is_multiple_of(4) || len < REGION_SIZE {
            return None;
        }
        Some(RawRegion { base, len })
    }

    /// The mailbox region of the core's PSRAM ([`crate::PSRAM_BASE`]), as the core sees it.
    ///
    /// # Safety
    /// Only on the core (where the PSRAM is mapped at that address), and only once: the caller
    /// owns the mailbox region.
    pub const unsafe fn psram() -> RawRegion {
        RawRegion {
            base: crate::PSRAM_BASE as usize as *mut u8,
            len: crate::PSRAM_SIZE,
        }
    }

    /// A view of a shared mapping the caller keeps alive longer than the view (the host's
    /// `MappedRegion` owns both and drops the view first).
    #[cfg(feature = "host")]
    pub(crate) fn of_mapping(map: &memmap2::MmapRaw) -> Option<RawRegion> {
        // SAFETY: the mapping is `map.len()` bytes, readable and writable (shared), page
        // aligned, and outlives the view (the caller's contract above); this process accesses
        // it only through the view's atomics.
        unsafe { RawRegion::new(map.as_mut_ptr(), map.len()) }
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        assert!(
            offset.is_multiple_of(4) && offset + 4 <= self.len,
            "mailbox offset {offset} outside the region"
        );
        // SAFETY: `offset + 4 <= len` keeps the word inside the region the constructor's caller
        // vouched for; `base` and `offset` are multiples of 4, so the pointer is aligned for
        // `AtomicU32`; every access to the region is atomic (constructor contract), so a shared
        // reference to an `AtomicU32` there is sound for as long as `self` lives.
        unsafe { &*(self.base.add(offset) as *const AtomicU32) }
    }
}

impl SharedMemory for RawRegion {
    fn load_u32(&self, offset: usize, order: Ordering) -> u32 {
        self.word(offset).load(order)
    }
    fn store_u32(&self, offset: usize, value: u32, order: Ordering) {
        self.word(offset).store(value, order)
    }
}
