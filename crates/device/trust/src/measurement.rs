//! Measurement events, the per-boot measurement log and PCR-style extension.
//!
//! An event is encoded as the deterministic CBOR map
//! `{1: component_id (bstr 16), 2: image_id (bstr 16), 3: version (tstr), 4: digest (bstr 32)}`.
//! Its log entry digest is SHA-256 of that encoding (so the component, image and version are
//! bound, not only the image digest), and extending means
//! `register = SHA-256(register || entry_digest)`, starting from 32 zero bytes at boot: exactly
//! TPM2_PCR_Extend on a SHA-256 PCR.

use ferro_cbor::Value;
use ferro_signing::Sha256;
use uuid::Uuid;

use crate::TrustError;
use ferro_cbor as cbor;

/// The most entries one boot's log holds.
pub const MAX_LOG_ENTRIES: usize = 1024;
/// The longest version string.
pub const MAX_VERSION_LEN: usize = 64;

/// One measured boot component.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MeasurementEvent {
    /// The component ID (stable across versions; OS, board config, app).
    pub component_id: Uuid,
    /// The image ID of the measured image.
    pub image_id: Uuid,
    /// Its version, as text (1..=64 bytes), e.g. `"1.2.3"`.
    pub version: String,
    /// SHA-256 of the measured image (payload).
    pub digest: [u8; 32],
}

impl MeasurementEvent {
    pub(crate) fn validate(&self) -> Result<(), TrustError> {
        if self.version.is_empty() || self.version.len() > MAX_VERSION_LEN {
            return Err(TrustError::InvalidEvent("version must be 1 to 64 bytes"));
        }
        Ok(())
    }

    pub(crate) fn to_value(&self) -> Value {
        Value::Map(vec![
            (
                cbor::uint(1),
                Value::Bytes(self.component_id.as_bytes().to_vec()),
            ),
            (
                cbor::uint(2),
                Value::Bytes(self.image_id.as_bytes().to_vec()),
            ),
            (cbor::uint(3), Value::Text(self.version.clone())),
            (cbor::uint(4), Value::Bytes(self.digest.to_vec())),
        ])
    }

    pub(crate) fn from_value(v: &Value) -> Option<MeasurementEvent> {
        let map = cbor::int_map(v)?;
        if map.len() != 4 {
            return None;
        }
        let uuid = |k| {
            cbor::get(&map, k)
                .and_then(cbor::as_bytes)
                .and_then(|b| Uuid::from_slice(b).ok())
        };
        let event = MeasurementEvent {
            component_id: uuid(1)?,
            image_id: uuid(2)?,
            version: cbor::get(&map, 3).and_then(cbor::as_text)?.to_string(),
            digest: cbor::get(&map, 4)
                .and_then(cbor::as_bytes)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())?,
        };
        event.validate().ok()?;
        Some(event)
    }

    /// The deterministic CBOR encoding of this event.
    pub fn encode(&self) -> Vec<u8> {
        // Encoding a map of byte and text strings into a Vec cannot fail.
        cbor::encode(&self.to_value()).unwrap_or_default()
    }

    /// The digest that is extended into the register: SHA-256 of [`MeasurementEvent::encode`].
    pub fn entry_digest(&self) -> [u8; 32] {
        Sha256::digest(self.encode())
    }
}

/// One entry of the measurement log: the event and the digest that was extended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// What was measured.
    pub event: MeasurementEvent,
    /// [`MeasurementEvent::entry_digest`] of `event`.
    pub digest: [u8; 32],
}

impl LogEntry {
    /// The entry for `event`.
    pub fn new(event: MeasurementEvent) -> LogEntry {
        let digest = event.entry_digest();
        LogEntry { event, digest }
    }
}

/// `SHA-256(register || digest)`: one PCR extension.
pub fn extend_pcr(register: &[u8; 32], digest: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(register);
    h.update(digest);
    h.finalize()
}

/// This boot's measurements, in the order they were extended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeasurementLog {
    entries: Vec<LogEntry>,
}

impl MeasurementLog {
    /// An empty log.
    pub fn new() -> MeasurementLog {
        MeasurementLog::default()
    }

    /// The entries.
    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn push(&mut self, event: MeasurementEvent) -> Result<LogEntry, TrustError> {
        event.validate()?;
        if self.entries.len() >= MAX_LOG_ENTRIES {
            return Err(TrustError::LogFull(MAX_LOG_ENTRIES));
        }
        let entry = LogEntry::new(event);
        self.entries.push(entry.clone());
        Ok(entry)
    }

    /// A log of these events (entry digests recomputed, so a log can never carry a digest that
    /// disagrees with its event).
    pub fn from_events(events: impl IntoIterator<Item = MeasurementEvent>) -> MeasurementLog {
        MeasurementLog {
            entries: events.into_iter().map(LogEntry::new).collect(),
        }
    }

    /// The register value this log produces from a fresh (all-zero) register.
    pub fn replay(&self) -> [u8; 32] {
        self.entries.iter().fold([0u8; 32], |reg, e| {
            extend_pcr(&reg, &e.event.entry_digest())
        })
    }
}

/// What [`crate::RootOfTrust::read_measurements`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measurements {
    /// The register (TPM: PCR [`crate::FERRO_PCR`], SHA-256 bank).
    pub pcr_value: [u8; 32],
    /// This boot's log.
    pub log: MeasurementLog,
}

impl Measurements {
    /// Whether replaying the log gives the register value.
    pub fn replays(&self) -> bool {
        self.log.replay() == self.pcr_value
    }
}
