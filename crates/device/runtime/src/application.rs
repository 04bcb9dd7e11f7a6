//! The host side of the WIT `application` interface: connections from a high-level app to its
//! real-time partners through the device's [`crate::PartnerConnector`]. The app's own manifest
//! is checked here (a refusal is logged in the app's log and is an access-denied event); the
//! partner's by the connector. Waits are cut into [`STOP_POLL`] slices so a stop interrupts them.

use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::host::{HostResult, HostState, STOP_POLL, api};
use crate::logs::LogLevel;
use crate::partners::{MAX_MESSAGE_BYTES, PartnerError, PartnerLink, PartnerMessage};

use api::types::Error as ApiError;

/// Most connections one instance holds at once.
pub(crate) const MAX_CONNECTIONS: usize = 16;

/// An instance's open connections.
#[derive(Default)]
pub(crate) struct Connections {
    open: std::collections::BTreeMap<u32, (Uuid, Box<dyn PartnerLink>)>,
    next: u32,
}

fn partner_error(error: PartnerError) -> ApiError {
    match error {
        PartnerError::Refused { .. } => ApiError::NotPermitted(error.to_string()),
        PartnerError::NoSuchPartner(_) | PartnerError::Disconnected(_) => {
            ApiError::NoSuchResource(error.to_string())
        }
        PartnerError::TimedOut => ApiError::TimedOut,
        PartnerError::NotRunning(_) | PartnerError::Io(_) => ApiError::Io(error.to_string()),
    }
}

impl HostState {
    /// Runs `attempt` in slices of at most [`STOP_POLL`] until it answers something other than
    /// `TimedOut`, `timeout` passes, or a stop is requested (a trap).
    fn in_slices<T>(
        &mut self,
        connection: u32,
        timeout: Duration,
        mut attempt: impl FnMut(&mut dyn PartnerLink, Duration) -> Result<T, PartnerError>,
    ) -> HostResult<T> {
        let deadline = Instant::now() + timeout;
        self.begin_blocking();
        let result = loop {
            if let Err(stopped) = self.check_stop() {
                self.yielded();
                return Err(stopped);
            }
            let Some((_, link)) = self.connections.open.get_mut(&connection) else {
                break Err(ApiError::NoSuchResource(format!(
                    "no open connection {connection}"
                )));
            };
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(STOP_POLL);
            match attempt(link.as_mut(), slice) {
                Err(PartnerError::TimedOut) if Instant::now() < deadline => continue,
                Err(error @ PartnerError::Disconnected(_)) => {
                    // The connection is gone for good: forget it.
                    self.connections.open.remove(&connection);
                    break Err(partner_error(error));
                }
                other => break other.map_err(partner_error),
            }
        };
        self.yielded();
        Ok(result)
    }
}

impl api::application::Host for HostState {
    fn connect(&mut self, component_id: String) -> HostResult<u32> {
        let Some(partner) = ferro_manifest::parse_guid(&component_id) else {
            return Ok(Err(ApiError::InvalidArgument(format!(
                "{component_id:?} is not a component ID (a GUID)"
            ))));
        };
        if !self
            .app
            .capabilities
            .application_connections()
            .contains(&partner)
        {
            let refusal = format!(
                "connection to app {partner} refused: it is not in this app's \
                 AllowedApplicationConnections"
            );
            self.app.logs.runtime_line(LogLevel::Error, &refusal);
            return Ok(Err(self.app.denied(format!(
                "app {partner} is not in the app manifest's AllowedApplicationConnections"
            ))));
        }
        if self.connections.open.len() >= MAX_CONNECTIONS {
            return Ok(Err(ApiError::LimitExceeded(format!(
                "{MAX_CONNECTIONS} connections are open; close one first"
            ))));
        }
        match self.partners.connect(self.app.id, partner) {
            Ok(link) => {
                let id = self.connections.next;
                self.connections.next = self.connections.next.wrapping_add(1);
                self.connections.open.insert(id, (partner, link));
                self.app.logs.runtime_line(
                    LogLevel::Info,
                    &format!("connected to real-time app {partner} (connection {id})"),
                );
                Ok(Ok(id))
            }
            Err(error) => {
                self.app.logs.runtime_line(
                    LogLevel::Error,
                    &format!("connection to app {partner} failed: {error}"),
                );
                Ok(Err(partner_error(error)))
            }
        }
    }

    fn send(&mut self, connection: u32, data: Vec<u8>, timeout_ms: u32) -> HostResult<()> {
        if data.is_empty() || data.len() > MAX_MESSAGE_BYTES {
            return Ok(Err(ApiError::InvalidArgument(format!(
                "a message holds 1 to {MAX_MESSAGE_BYTES} bytes, not {}",
                data.len()
            ))));
        }
        self.in_slices(
            connection,
            Duration::from_millis(u64::from(timeout_ms)),
            |link, slice| link.send(&data, slice),
        )
    }

    fn receive(
        &mut self,
        connection: u32,
        timeout_ms: u32,
    ) -> HostResult<api::application::Message> {
        let result = self.in_slices(
            connection,
            Duration::from_millis(u64::from(timeout_ms)),
            |link, slice| link.receive(slice),
        )?;
        Ok(result.map(
            |PartnerMessage { sender, data }| api::application::Message {
                sender: sender.to_string(),
                data,
            },
        ))
    }

    fn close(&mut self, connection: u32) -> wasmtime::Result<()> {
        if let Some((partner, _)) = self.connections.open.remove(&connection) {
            self.app.logs.runtime_line(
                LogLevel::Info,
                &format!("connection {connection} to app {partner} closed"),
            );
        }
        Ok(())
    }
}
