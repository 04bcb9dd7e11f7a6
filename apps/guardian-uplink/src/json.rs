//! The JSON payloads (`docs/guardian.md`, "JSON payload"): one telemetry batch per poll round,
//! the write requests the guardian takes on its command topic, and the acknowledgements it
//! publishes.

use ferro_registermap::{PointName, Quality, Reading, Value, WriteAck, WriteRequest};
use serde::{Deserialize, Serialize};

use crate::PointInfo;

/// One telemetry batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The device's ID (the MQTT client ID).
    pub device: String,
    /// The batch's number: one more than the batch before, across restarts (the spool's
    /// sequence number), so a gap or a repeat is visible to the receiver.
    pub batch: u64,
    /// When the batch was made (Unix time, milliseconds).
    pub timestamp: u64,
    /// Messages dropped from the full spool since it was made (cumulative, kept across restarts):
    /// a receiver sees a loss as an increase, even when the batch that first reported it was
    /// dropped in turn.
    pub dropped: u64,
    pub points: Vec<Point>,
    /// Present only in a batch that could not be signed (docs/provenance.md): why. A signed
    /// batch is published as the COSE_Sign1 that embeds it, never as bare JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsigned: Option<String>,
}

/// One point's reading in a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub name: PointName,
    /// `null` when the point has no good value yet.
    pub value: Option<Value>,
    /// The point's engineering unit from the register map, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// When it was read, or when the failure was seen (Unix time, milliseconds).
    pub timestamp: u64,
    /// `"good"`, `"stale"`, `"comm_error"` or `{"modbus_exception": CODE}`.
    pub quality: Quality,
}

impl Batch {
    pub fn new(
        device: &str,
        batch: u64,
        timestamp: u64,
        dropped: u64,
        readings: &[Reading],
        points: &[PointInfo],
    ) -> Self {
        Batch {
            device: device.to_owned(),
            batch,
            timestamp,
            dropped,
            unsigned: None,
            points: readings
                .iter()
                .map(|reading| Point {
                    name: reading.point.clone(),
                    value: reading.value,
                    unit: points
                        .iter()
                        .find(|p| p.name == reading.point)
                        .and_then(|p| p.unit.clone()),
                    timestamp: reading.timestamp_ms,
                    quality: reading.quality,
                })
                .collect(),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        // Serializing these types cannot fail (no maps with non-string keys, no I/O).
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A write request on the JSON command topic: `{"id": "...", "point": "...", "value": 12.5}`.
pub fn parse_command(payload: &[u8]) -> Result<WriteRequest, CommandError> {
    let request: WriteRequest =
        serde_json::from_slice(payload).map_err(|error| CommandError::Malformed {
            id: request_id(payload),
            detail: error.to_string(),
        })?;
    Ok(request)
}

/// The `id` of a command that is not a valid write request, when it has a string one.
fn request_id(payload: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let id = value.get("id")?.as_str()?;
    (id.len() <= ferro_registermap::MAX_REQUEST_ID_CHARS).then(|| id.to_owned())
}

/// A command the guardian could not take as a write request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("malformed write request: {detail}")]
    Malformed { id: Option<String>, detail: String },
    #[error("malformed Sparkplug NCMD: {0}")]
    MalformedNcmd(String),
    #[error("NCMD metric {name}: {detail}")]
    BadMetric { name: String, detail: String },
}

/// The acknowledgement of a command that was not a write request (nothing was written):
/// `{"id": ID or null, "error": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRejected {
    pub id: Option<String>,
    pub error: String,
}

/// The bytes of an acknowledgement: [`WriteAck`]'s JSON.
pub fn ack_payload(ack: &WriteAck) -> Vec<u8> {
    serde_json::to_vec(ack).unwrap_or_default()
}
