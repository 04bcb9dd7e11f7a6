//! The store-and-forward spool: an append-only log of messages in the app's mutable storage
//! (one file, within its quota), delivered oldest first, the oldest dropped (and counted) when
//! the quota is full.
//!
//! Layout (`docs/guardian.md`, "Store and forward"): two header slots at offsets 0 and 48, then
//! the data region, used as a ring. A header slot is `"FSPL"`, generation, head offset, head
//! sequence number, dropped count, connect count (u64 little-endian each) and a CRC-32 of the
//! 44 bytes before it; the valid slot with the highest generation is the header, and a
//! header is written to the other slot, so a torn header write leaves the previous one. A record
//! is `length u32, crc u32, seq u64, payload` (little-endian; the CRC covers length, seq and
//! payload); records never straddle the end of the region: one that does not fit at the end
//! goes to its start. The live records are those from the head, each the next sequence number
//! after the one before, at the next offset or at the start of the region; a torn last record
//! (a crash while it was written) fails its CRC and ends the log, and a stale record left from
//! an earlier lap has a lower sequence number and ends it too.
//!
//! Appending writes the record first and nothing else, unless space must be made: then the
//! oldest records are dropped by a header write (head moved past them, dropped count raised)
//! before the record is written over them. Delivering a record is a header write.
//!
//! The connect count is the uplink's, kept here because the spool has all of the app's mutable
//! storage: how many MQTT CONNECTs were made since the spool was made (Sparkplug B's `bdSeq`
//! must go on across restarts of the app, [`Spool::count_connect`]).

use std::collections::VecDeque;
use std::io;

/// The app's mutable storage as the spool sees it: one file of at most `capacity` bytes.
pub trait Storage {
    /// The most bytes the file may hold (the app's quota).
    fn capacity(&self) -> u64;
    /// Reads up to `len` bytes at `offset` (fewer at the end of the file).
    fn read(&mut self, offset: u64, len: u32) -> io::Result<Vec<u8>>;
    /// Writes `data` at `offset` (extending the file).
    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
}

const MAGIC: &[u8; 4] = b"FSPL";
const SLOT_LEN: u64 = 48;
/// Where the data region starts: after the two header slots.
pub const DATA_START: u64 = 2 * SLOT_LEN;
/// A record's header: length, CRC, sequence number.
pub const RECORD_HEADER_LEN: u64 = 16;

/// Why the spool failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the storage quota ({capacity} bytes) leaves no room for a spool")]
    NoRoom { capacity: u64 },
    #[error("a message of {len} bytes cannot fit the spool's {region} bytes")]
    TooLarge { len: usize, region: u64 },
    #[error("storage: {0}")]
    Storage(#[from] io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    generation: u64,
    head: u64,
    head_seq: u64,
    dropped: u64,
    connects: u64,
}

impl Header {
    fn encode(&self) -> [u8; SLOT_LEN as usize] {
        let mut out = [0u8; SLOT_LEN as usize];
        out[..4].copy_from_slice(MAGIC);
        for (i, value) in [
            self.generation,
            self.head,
            self.head_seq,
            self.dropped,
            self.connects,
        ]
        .into_iter()
        .enumerate()
        {
            out[4 + 8 * i..12 + 8 * i].copy_from_slice(&value.to_le_bytes());
        }
        let crc = crc32fast::hash(&out[..44]);
        out[44..48].copy_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Header> {
        if bytes.len() < SLOT_LEN as usize || &bytes[..4] != MAGIC {
            return None;
        }
        let crc = u32::from_le_bytes(bytes[44..48].try_into().ok()?);
        if crc != crc32fast::hash(&bytes[..44]) {
            return None;
        }
        let field = |i: usize| {
            u64::from_le_bytes(bytes[4 + 8 * i..12 + 8 * i].try_into().unwrap_or_default())
        };
        Some(Header {
            generation: field(0),
            head: field(1),
            head_seq: field(2),
            dropped: field(3),
            connects: field(4),
        })
    }
}

/// Where a live record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    offset: u64,
    /// Header and payload.
    len: u64,
    seq: u64,
}

/// A message taken from the spool, still in it until [`Spool::delivered`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spooled {
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// The spool over a [`Storage`].
pub struct Spool<S: Storage> {
    storage: S,
    header: Header,
    end: u64,
    live: VecDeque<Entry>,
    /// Where the next record goes.
    tail: u64,
    next_seq: u64,
}

impl<S: Storage> Spool<S> {
    /// Opens the spool in `storage`: reads the header and finds the live records (a torn last
    /// record is skipped). Empty or unreadable storage starts an empty spool.
    pub fn open(mut storage: S) -> Result<Self, SpoolError> {
        let end = storage.capacity();
        if end < DATA_START + RECORD_HEADER_LEN + 1 {
            return Err(SpoolError::NoRoom { capacity: end });
        }
        let slots = storage.read(0, DATA_START as u32)?;
        let header = [0, SLOT_LEN as usize]
            .into_iter()
            .filter_map(|at| slots.get(at..).and_then(Header::decode))
            .filter(|h| h.head >= DATA_START && h.head <= end)
            .max_by_key(|h| h.generation);
        let fresh = header.is_none();
        let header = header.unwrap_or(Header {
            generation: 0,
            head: DATA_START,
            head_seq: 0,
            dropped: 0,
            connects: 0,
        });
        let mut spool = Spool {
            storage,
            header,
            end,
            live: VecDeque::new(),
            tail: header.head,
            next_seq: header.head_seq,
        };
        if fresh {
            spool.write_header(header)?;
        } else {
            spool.scan()?;
        }
        Ok(spool)
    }

    /// Finds the live records from the head.
    fn scan(&mut self) -> Result<(), SpoolError> {
        let mut at = self.header.head;
        let mut seq = self.header.head_seq;
        while let Some(entry) = self
            .record_at(at, seq)?
            .or(self.record_at(DATA_START, seq)?)
        {
            // The ring never holds more than it has room for; a chain that comes back to its
            // own head (impossible unless the storage was edited) ends here.
            if self
                .live
                .front()
                .is_some_and(|first| first.offset == entry.offset)
            {
                break;
            }
            self.live.push_back(entry);
            at = entry.offset + entry.len;
            seq += 1;
        }
        if let Some(first) = self.live.front() {
            // The head record was at the start of the region.
            self.header.head = first.offset;
        }
        self.tail = at;
        if let Some(last) = self.live.back() {
            self.tail = last.offset + last.len;
        }
        self.next_seq = seq;
        Ok(())
    }

    /// The record at `at` when it is whole and has sequence number `seq`.
    fn record_at(&mut self, at: u64, seq: u64) -> Result<Option<Entry>, SpoolError> {
        if at + RECORD_HEADER_LEN > self.end {
            return Ok(None);
        }
        let head = self.storage.read(at, RECORD_HEADER_LEN as u32)?;
        if head.len() < RECORD_HEADER_LEN as usize {
            return Ok(None);
        }
        let len = u64::from(u32::from_le_bytes(
            head[0..4].try_into().unwrap_or_default(),
        ));
        let crc = u32::from_le_bytes(head[4..8].try_into().unwrap_or_default());
        let found_seq = u64::from_le_bytes(head[8..16].try_into().unwrap_or_default());
        if found_seq != seq || at + RECORD_HEADER_LEN + len > self.end {
            return Ok(None);
        }
        let payload = self.storage.read(at + RECORD_HEADER_LEN, len as u32)?;
        if payload.len() as u64 != len || crc != record_crc(len as u32, seq, &payload) {
            return Ok(None);
        }
        Ok(Some(Entry {
            offset: at,
            len: RECORD_HEADER_LEN + len,
            seq,
        }))
    }

    fn write_header(&mut self, mut header: Header) -> Result<(), SpoolError> {
        header.generation = self.header.generation + 1;
        let slot = (header.generation % 2) * SLOT_LEN;
        self.storage.write(slot, &header.encode())?;
        self.header = header;
        Ok(())
    }

    /// The sequence number the next message gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The sequence number of the oldest live message.
    pub fn first_seq(&self) -> Option<u64> {
        self.live.front().map(|e| e.seq)
    }

    /// The number of live messages.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The bytes of the data region (what the records share).
    pub fn region(&self) -> u64 {
        self.end - DATA_START
    }

    /// The bytes the live records take.
    pub fn live_bytes(&self) -> u64 {
        self.live.iter().map(|e| e.len).sum()
    }

    /// Messages dropped to make room since the spool was made.
    pub fn dropped_total(&self) -> u64 {
        self.header.dropped
    }

    /// The MQTT CONNECTs counted since the spool was made ([`Spool::count_connect`]).
    pub fn connects(&self) -> u64 {
        self.header.connects
    }

    /// Counts one more CONNECT, durably (one header write) before it is made, and returns the
    /// count before it: the first CONNECT is number 0. A crash after the write only skips a
    /// number; a number is never given out twice.
    pub fn count_connect(&mut self) -> Result<u64, SpoolError> {
        let count = self.header.connects;
        let mut header = self.header;
        header.connects = count.wrapping_add(1);
        self.write_header(header)?;
        Ok(count)
    }

    /// Appends `payload`, dropping the oldest messages when it does not fit otherwise; returns
    /// its sequence number and how many were dropped for it.
    pub fn append(&mut self, payload: &[u8]) -> Result<(u64, u64), SpoolError> {
        let record_len = RECORD_HEADER_LEN + payload.len() as u64;
        if record_len > self.region() || payload.len() > u32::MAX as usize {
            return Err(SpoolError::TooLarge {
                len: payload.len(),
                region: self.region(),
            });
        }
        let mut dropped = 0u64;
        let at = loop {
            if let Some(at) = self.place(record_len) {
                break at;
            }
            self.live.pop_front();
            dropped += 1;
        };
        if dropped > 0 {
            let mut header = self.header;
            header.dropped += dropped;
            match self.live.front() {
                Some(first) => {
                    header.head = first.offset;
                    header.head_seq = first.seq;
                }
                None => {
                    header.head = at;
                    header.head_seq = self.next_seq;
                }
            }
            self.write_header(header)?;
        } else if self.live.is_empty()
            && (self.header.head != at || self.header.head_seq != self.next_seq)
        {
            // An empty spool's head is where the next record goes.
            let mut header = self.header;
            header.head = at;
            header.head_seq = self.next_seq;
            self.write_header(header)?;
        }
        let seq = self.next_seq;
        let mut record = Vec::with_capacity(record_len as usize);
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&record_crc(payload.len() as u32, seq, payload).to_le_bytes());
        record.extend_from_slice(&seq.to_le_bytes());
        record.extend_from_slice(payload);
        self.storage.write(at, &record)?;
        self.live.push_back(Entry {
            offset: at,
            len: record_len,
            seq,
        });
        self.tail = at + record_len;
        self.next_seq += 1;
        Ok((seq, dropped))
    }

    /// Where a record of `len` bytes goes without overwriting a live one, if anywhere.
    fn place(&self, len: u64) -> Option<u64> {
        let Some(first) = self.live.front() else {
            // Empty: at the tail if it fits before the end, else at the start.
            return Some(if self.tail + len <= self.end {
                self.tail
            } else {
                DATA_START
            });
        };
        let head = first.offset;
        if self.tail > head {
            // Not wrapped: after the tail, or at the start before the head.
            if self.tail + len <= self.end {
                Some(self.tail)
            } else if DATA_START + len <= head {
                Some(DATA_START)
            } else {
                None
            }
        } else if self.tail + len <= head {
            // Wrapped: between the tail and the head.
            Some(self.tail)
        } else {
            None
        }
    }

    /// The `n` oldest messages (fewer when the spool holds fewer), oldest first.
    pub fn peek(&mut self, n: usize) -> Result<Vec<Spooled>, SpoolError> {
        let entries: Vec<Entry> = self.live.iter().take(n).copied().collect();
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let payload = self.storage.read(
                entry.offset + RECORD_HEADER_LEN,
                (entry.len - RECORD_HEADER_LEN) as u32,
            )?;
            out.push(Spooled {
                seq: entry.seq,
                payload,
            });
        }
        Ok(out)
    }

    /// Removes the messages up to and including sequence number `seq` (they were delivered).
    pub fn delivered(&mut self, seq: u64) -> Result<(), SpoolError> {
        let before = self.live.len();
        while self.live.front().is_some_and(|e| e.seq <= seq) {
            self.live.pop_front();
        }
        if self.live.len() == before {
            return Ok(());
        }
        let mut header = self.header;
        match self.live.front() {
            Some(first) => {
                header.head = first.offset;
                header.head_seq = first.seq;
            }
            None => {
                header.head = self.tail;
                header.head_seq = self.next_seq;
            }
        }
        self.write_header(header)
    }

    /// The storage, for tests that inspect or damage it.
    pub fn into_storage(self) -> S {
        self.storage
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }
}

fn record_crc(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Storage in memory, for the host tests: a byte vector of at most `capacity` bytes, and an
/// optional budget of bytes after which writes stop part way (a crash while writing).
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    pub bytes: Vec<u8>,
    pub capacity: u64,
    /// When set, the bytes that may still be written; a write that goes past it writes the
    /// first bytes and fails.
    pub crash_after: Option<usize>,
}

impl MemoryStorage {
    pub fn new(capacity: u64) -> Self {
        MemoryStorage {
            bytes: Vec::new(),
            capacity,
            crash_after: None,
        }
    }
}

impl Storage for MemoryStorage {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read(&mut self, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        let start = (offset as usize).min(self.bytes.len());
        let end = (start + len as usize).min(self.bytes.len());
        Ok(self.bytes[start..end].to_vec())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if offset + data.len() as u64 > self.capacity {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "past the quota"));
        }
        let (data, crashed) = match self.crash_after {
            Some(budget) if budget < data.len() => {
                self.crash_after = Some(0);
                (&data[..budget], true)
            }
            Some(budget) => {
                self.crash_after = Some(budget - data.len());
                (data, false)
            }
            None => (data, false),
        };
        let start = offset as usize;
        if self.bytes.len() < start + data.len() {
            self.bytes.resize(start + data.len(), 0);
        }
        self.bytes[start..start + data.len()].copy_from_slice(data);
        if crashed {
            return Err(io::Error::other("crashed while writing"));
        }
        Ok(())
    }
}
