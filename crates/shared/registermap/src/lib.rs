//! Guardian mode's shared vocabulary (`docs/guardian.md`): the register map (the declarative
//! JSON document in the guardian app's image package that says which Modbus points to poll and
//! which may be written), the codecs between Modbus registers and engineering values, and the
//! reading types the app hands to its uplink.
//!
//! It must stay `no_std` (with `alloc`) and depend on no other Ferrosphere crate and on nothing
//! that does I/O: the guardian app (wasm32-wasip2), the CLI's pack-time check and the cloud-side
//! tools link the same rules.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod codec;
pub mod map;
mod name;
pub mod poll;
pub mod reading;
mod strict;

pub use map::{
    DataType, Grants, IssueKind, ManifestJsonError, MapErrors, MapIssue, ObjectType, Parity, Point,
    RegisterMap, StopBits, Transport, WordOrder, Writable,
};
pub use name::{MAX_POINT_NAME_CHARS, PointName, PointNameError};
pub use poll::{Poller, ReadRequest};
pub use reading::{
    MAX_REQUEST_ID_CHARS, Quality, Reading, Refusal, Value, ValueKind, WriteAck, WriteFailure,
    WriteOutcome, WriteRequest,
};
pub use strict::MAX_MAP_BYTES;
