//! The mailbox between a high-level app and its real-time partner, as the runtime sees it: the
//! WIT `application` interface is linked for apps whose manifest has
//! `AllowedApplicationConnections`, and its calls reach a [`PartnerConnector`] that the device
//! integration implements over its real-time cores (so this crate knows nothing of cores,
//! shared memory or QEMU). The runtime checks the app's own manifest before asking; the
//! connector checks the partner's.

use std::fmt;
use std::time::Duration;

use uuid::Uuid;

use crate::AppId;

/// Largest payload of one mailbox message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// One message from a partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerMessage {
    /// The sender's component ID.
    pub sender: Uuid,
    /// 1 to [`MAX_MESSAGE_BYTES`] bytes.
    pub data: Vec<u8>,
}

/// Why a partner operation failed. The message reaches the app's log, so it names the apps and
/// says what to do, and nothing of the device's internals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartnerError {
    /// The partner's manifest does not name the connecting app (the runtime checks the
    /// connecting app's own manifest before it asks).
    #[error(
        "app {partner} does not list {app} in its AllowedApplicationConnections, so the \
         connection is refused"
    )]
    Refused { app: Uuid, partner: Uuid },
    /// No real-time app of that component is installed.
    #[error("no real-time app {0} is installed")]
    NoSuchPartner(Uuid),
    /// The partner is installed but its core is not running it.
    #[error("real-time app {0} is not running")]
    NotRunning(Uuid),
    /// The partner restarted or stopped: the connection is gone; connect again.
    #[error("the connection to app {0} is gone (its core restarted or stopped); connect again")]
    Disconnected(Uuid),
    /// Nothing arrived, or there was no room, within the wait.
    #[error("timed out")]
    TimedOut,
    /// The device could not move the message.
    #[error("{0}")]
    Io(String),
}

/// One open connection to a partner. Calls block at most the given time; the runtime calls
/// them in short slices so that a stopped app never waits long.
pub trait PartnerLink: Send {
    /// Queues `data` (1 to [`MAX_MESSAGE_BYTES`] bytes, checked by the runtime) for the
    /// partner, waiting at most `timeout` for room; [`PartnerError::TimedOut`] when there was
    /// none, with nothing queued.
    fn send(&mut self, data: &[u8], timeout: Duration) -> Result<(), PartnerError>;
    /// The next message from the partner, waiting at most `timeout`.
    fn receive(&mut self, timeout: Duration) -> Result<PartnerMessage, PartnerError>;
}

/// Opens connections from high-level apps to real-time apps; implemented by the device.
pub trait PartnerConnector: Send + Sync + fmt::Debug {
    /// Connects `app` to the real-time app `partner`. The runtime has checked that `app`'s
    /// manifest names `partner`; the connector refuses unless `partner`'s names `app`, and
    /// records a refusal in the partner's log too.
    fn connect(&self, app: AppId, partner: Uuid) -> Result<Box<dyn PartnerLink>, PartnerError>;
}

/// The connector of a device without real-time apps: every partner is missing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPartners;

impl PartnerConnector for NoPartners {
    fn connect(&self, _app: AppId, partner: Uuid) -> Result<Box<dyn PartnerLink>, PartnerError> {
        Err(PartnerError::NoSuchPartner(partner))
    }
}
