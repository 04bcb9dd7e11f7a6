//! The guardian's polling, without I/O: which points are due when, how due points are batched
//! into Modbus reads, and what a read's outcome turns into (a [`Reading`] when the value moved
//! past the deadband or the quality changed; [`Quality::Stale`] for a point not refreshed for
//! two periods). The app does the I/O and passes the clocks in: `now` is a monotonic clock in
//! milliseconds (for periods), `unix_ms` the wall clock (for timestamps).

use alloc::vec::Vec;

use crate::codec;
use crate::map::{ObjectType, RegisterMap};
use crate::reading::{Quality, Reading, Value};

/// The most registers one read asks for (Modbus's limit for function codes 3 and 4).
pub const MAX_READ_REGISTERS: u16 = 125;
/// The most bits one read asks for (Modbus's limit for function codes 1 and 2).
pub const MAX_READ_BITS: u16 = 2000;

/// One Modbus read: `count` registers or bits of `object` from `address`, covering the points
/// (indices into the map's points) listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    pub object: ObjectType,
    pub address: u16,
    pub count: u16,
    pub points: Vec<usize>,
}

#[derive(Debug, Clone)]
struct PointState {
    next_due: u64,
    /// When the point last read Good (monotonic), or when polling started.
    refreshed: u64,
    last_good: Option<Value>,
    /// The last reading handed on: its value and quality.
    sent: Option<(Option<Value>, Quality)>,
}

/// The polling state of one register map.
#[derive(Debug, Clone)]
pub struct Poller {
    map: RegisterMap,
    states: Vec<PointState>,
}

impl Poller {
    /// Every point is due at `now`.
    pub fn new(map: RegisterMap, now: u64) -> Poller {
        let states = map
            .points
            .iter()
            .map(|_| PointState {
                next_due: now,
                refreshed: now,
                last_good: None,
                sent: None,
            })
            .collect();
        Poller { map, states }
    }

    pub fn map(&self) -> &RegisterMap {
        &self.map
    }

    /// When the next point is due (monotonic).
    pub fn next_due(&self) -> u64 {
        self.states
            .iter()
            .map(|state| state.next_due)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// The reads due at `now`: due points of one table at consecutive addresses share a read
    /// (never across a gap: an address the machine does not have would fail the whole read),
    /// within Modbus's size limits. Each due point's next poll is scheduled one period on (or
    /// one period from `now`, when polling fell behind).
    pub fn due(&mut self, now: u64) -> Vec<ReadRequest> {
        let mut due: Vec<(ObjectType, u16, usize)> = Vec::new();
        for (index, (point, state)) in self.map.points.iter().zip(&mut self.states).enumerate() {
            if state.next_due <= now {
                due.push((point.object, point.address, index));
                let period = u64::from(point.poll_ms);
                state.next_due = state.next_due.saturating_add(period);
                if state.next_due <= now {
                    state.next_due = now.saturating_add(period);
                }
            }
        }
        due.sort_unstable();
        let mut reads: Vec<ReadRequest> = Vec::new();
        for (object, address, index) in due {
            let width = self.map.points[index].data_type.width();
            let limit = if object.is_bit() {
                MAX_READ_BITS
            } else {
                MAX_READ_REGISTERS
            };
            if let Some(read) = reads.last_mut() {
                let end = u32::from(read.address) + u32::from(read.count);
                if read.object == object && u32::from(address) == end && read.count + width <= limit
                {
                    read.count += width;
                    read.points.push(index);
                    continue;
                }
            }
            reads.push(ReadRequest {
                object,
                address,
                count: width,
                points: alloc::vec![index],
            });
        }
        reads
    }

    /// A register read answered with `registers` (`read.count` of them from `read.address`).
    pub fn registers_read(
        &mut self,
        read: &ReadRequest,
        registers: &[u16],
        now: u64,
        unix_ms: u64,
    ) -> Vec<Reading> {
        self.values_read(read, now, unix_ms, |point, offset| {
            codec::decode_registers(point, registers.get(offset..)?)
        })
    }

    /// A bit read answered with `bits` (`read.count` of them from `read.address`).
    pub fn bits_read(
        &mut self,
        read: &ReadRequest,
        bits: &[bool],
        now: u64,
        unix_ms: u64,
    ) -> Vec<Reading> {
        self.values_read(read, now, unix_ms, |_, offset| {
            bits.get(offset).copied().map(codec::decode_bit)
        })
    }

    fn values_read(
        &mut self,
        read: &ReadRequest,
        now: u64,
        unix_ms: u64,
        decode: impl Fn(&crate::map::Point, usize) -> Option<Value>,
    ) -> Vec<Reading> {
        let mut readings = Vec::new();
        for &index in &read.points {
            let Some(point) = self.map.points.get(index) else {
                continue;
            };
            let offset = usize::from(point.address - read.address);
            let Some(value) = decode(point, offset) else {
                // A short answer: the machine did not give this point's registers.
                readings.extend(self.set_quality(index, Quality::CommError, unix_ms));
                continue;
            };
            let state = &mut self.states[index];
            state.refreshed = now;
            state.last_good = Some(value);
            let report = match state.sent {
                None => true,
                Some((_, quality)) if quality != Quality::Good => true,
                Some((None, _)) => true,
                Some((Some(sent), _)) => moved(sent, value, point.deadband),
            };
            if report {
                state.sent = Some((Some(value), Quality::Good));
                readings.push(Reading {
                    point: point.name.clone(),
                    value: Some(value),
                    timestamp_ms: unix_ms,
                    quality: Quality::Good,
                });
            }
        }
        readings
    }

    /// A read that failed (after the retries) with `quality` (`CommError` or
    /// `ModbusException`): each of its points reads so, reported when its quality changes.
    pub fn read_failed(
        &mut self,
        read: &ReadRequest,
        quality: Quality,
        unix_ms: u64,
    ) -> Vec<Reading> {
        read.points
            .iter()
            .filter_map(|&index| self.set_quality(index, quality, unix_ms))
            .collect()
    }

    /// Points that read Good but were not refreshed for two poll periods turn Stale (when the
    /// loop fell behind, or the machine answered without their values).
    pub fn stale(&mut self, now: u64, unix_ms: u64) -> Vec<Reading> {
        let mut readings = Vec::new();
        for index in 0..self.states.len() {
            let period = u64::from(self.map.points[index].poll_ms);
            let state = &self.states[index];
            let good = matches!(state.sent, Some((_, Quality::Good)));
            if good && now.saturating_sub(state.refreshed) > 2 * period {
                readings.extend(self.set_quality(index, Quality::Stale, unix_ms));
            }
        }
        readings
    }

    fn set_quality(&mut self, index: usize, quality: Quality, unix_ms: u64) -> Option<Reading> {
        let point = self.map.points.get(index)?;
        let state = self.states.get_mut(index)?;
        if state.sent.is_some_and(|(_, sent)| sent == quality) {
            return None;
        }
        state.sent = Some((state.last_good, quality));
        Some(Reading {
            point: point.name.clone(),
            value: state.last_good,
            timestamp_ms: unix_ms,
            quality,
        })
    }
}

/// Whether `new` differs from `sent` by more than `deadband` (any change, with deadband 0).
fn moved(sent: Value, new: Value, deadband: f64) -> bool {
    match (sent, new) {
        (Value::Bool(a), Value::Bool(b)) => a != b,
        _ => {
            let delta = new.as_f64() - sent.as_f64();
            let magnitude = if delta < 0.0 { -delta } else { delta };
            if deadband == 0.0 {
                sent != new
            } else {
                magnitude > deadband
            }
        }
    }
}
