//! The host's regions: the file QEMU backs the core's PSRAM with, and a heap region for tests.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{PSRAM_SIZE, REGION_SIZE, RawRegion, SharedMemory};

/// The core's shared-memory file, mapped (shared) into this process.
#[derive(Debug)]
pub struct MappedRegion {
    // Field order: `region` points into `map`, so it is dropped first.
    region: RawRegion,
    _map: memmap2::MmapRaw,
    _file: File,
}

impl MappedRegion {
    /// Creates `path` (mode 0600, it must not exist), sizes it to [`PSRAM_SIZE`] and maps it.
    pub fn create(path: &Path) -> io::Result<MappedRegion> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.set_len(PSRAM_SIZE as u64)?;
        Self::map(file)
    }

    /// Maps an existing file of at least [`REGION_SIZE`] bytes.
    pub fn open(path: &Path) -> io::Result<MappedRegion> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Self::map(file)
    }

    fn map(file: File) -> io::Result<MappedRegion> {
        let len = file.metadata()?.len();
        if len < REGION_SIZE as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the mailbox file has {len} bytes, fewer than {REGION_SIZE}"),
            ));
        }
        let map = memmap2::MmapOptions::new()
            .len(REGION_SIZE)
            .map_raw(&file)?;
        let region = Self::view(&map)?;
        Ok(MappedRegion {
            region,
            _map: map,
            _file: file,
        })
    }

    fn view(map: &memmap2::MmapRaw) -> io::Result<RawRegion> {
        RawRegion::of_mapping(map)
            .ok_or_else(|| io::Error::other("the mapping is not an aligned region"))
    }
}

impl SharedMemory for MappedRegion {
    fn load_u32(&self, offset: usize, order: Ordering) -> u32 {
        self.region.load_u32(offset, order)
    }
    fn store_u32(&self, offset: usize, value: u32, order: Ordering) {
        self.region.store_u32(offset, value, order)
    }
}

/// A region on the heap: the same protocol between two threads of one process (tests).
#[derive(Debug)]
pub struct HeapRegion {
    words: Box<[AtomicU32]>,
}

impl HeapRegion {
    /// A zeroed region of [`REGION_SIZE`] bytes.
    pub fn new() -> HeapRegion {
        HeapRegion {
            words: (0..REGION_SIZE / 4).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

impl Default for HeapRegion {
    fn default() -> Self {
        Self::new()
    }
}

impl SharedMemory for HeapRegion {
    fn load_u32(&self, offset: usize, order: Ordering) -> u32 {
        self.words[offset / 4].load(order)
    }
    fn store_u32(&self, offset: usize, value: u32, order: Ordering) {
        self.words[offset / 4].store(value, order)
    }
}
