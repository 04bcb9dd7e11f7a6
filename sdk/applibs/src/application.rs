//! The mailbox to a real-time partner app (manifest capability `AllowedApplicationConnections`),
//! as Azure Sphere's `Application_Connect`.
//!
//! Both apps' manifests must name each other's component ID in `AllowedApplicationConnections`;
//! otherwise [`Connection::connect`] fails with [`Error::NotPermitted`] and both apps' logs say
//! why. A message holds 1 to [`MAX_MESSAGE_BYTES`] bytes and arrives whole, in order, exactly
//! once. When the partner's queue is full, [`Connection::send`] waits (up to its timeout) rather
//! than drop anything. When the partner restarts, the connection is gone: calls answer
//! [`Error::NoSuchResource`] ([`Error::is_disconnect`]), and the app connects again.
//!
//! ```no_run
//! use applibs::application::Connection;
//! use std::time::Duration;
//!
//! const RT_ECHO: &str = "005180bc-402f-4cb3-a662-72937dbcde47";
//! let mut partner = Connection::connect(RT_ECHO)?;
//! partner.send(b"hello", Duration::from_secs(1))?;
//! if let Some(answer) = partner.receive(Duration::from_secs(1))? {
//!     applibs::log::info(&format!("{}: {:?}", answer.sender, answer.data));
//! }
//! # Ok::<(), applibs::Error>(())
//! ```

use std::time::Duration;

use crate::bindings::ferrosphere::device::application as raw;
use crate::error::{Error, Result};

/// Largest payload of one message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// One message from the partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender's component ID (a lower-case GUID).
    pub sender: String,
    /// The payload.
    pub data: Vec<u8>,
}

/// A connection to a real-time partner app; closed when dropped.
#[derive(Debug)]
pub struct Connection {
    handle: u32,
    partner: String,
}

fn millis(timeout: Duration) -> u32 {
    u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX)
}

impl Connection {
    /// Connects to the real-time app `component_id`.
    pub fn connect(component_id: &str) -> Result<Self> {
        let handle = raw::connect(component_id)?;
        Ok(Self {
            handle,
            partner: component_id.to_owned(),
        })
    }

    /// The partner's component ID, as given to [`Self::connect`].
    pub fn partner(&self) -> &str {
        &self.partner
    }

    /// Sends `data` (1 to [`MAX_MESSAGE_BYTES`] bytes), waiting at most `timeout` for room in
    /// the partner's queue. [`Error::TimedOut`] means nothing was sent: try again later
    /// (`Duration::ZERO` makes this a non-blocking "would block").
    pub fn send(&mut self, data: &[u8], timeout: Duration) -> Result<()> {
        Ok(raw::send(self.handle, data, millis(timeout))?)
    }

    /// The next message, waiting at most `timeout`; `None` when none arrived.
    pub fn receive(&mut self, timeout: Duration) -> Result<Option<Message>> {
        match raw::receive(self.handle, millis(timeout)) {
            Ok(message) => Ok(Some(Message {
                sender: message.sender,
                data: message.data,
            })),
            Err(raw_error) => match Error::from(raw_error) {
                Error::TimedOut => Ok(None),
                other => Err(other),
            },
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        raw::close(self.handle);
    }
}
