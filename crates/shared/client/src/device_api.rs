//! The local device API's client (`ferro_wire::device_api`): one method per route, on the Unix
//! socket in an attached device's data directory. Its routes are in
//! [`crate::routes::device`]; its errors are the service's, so [`ClientError`] serves both.

use std::path::Path;

use ferro_wire::device_api::{
    AppMemoryStats, AppQuota, AppStatus, AppStatusList, AttachedDevice, BoardState, ButtonPress,
    DEVELOPER_KEY_HEADER, DevelopmentMode, InstalledImages, LogLine, SideloadResult,
    TemperatureSetting, UartPeerExchange, UartPeerSend,
};
use serde::Serialize;
use uuid::Uuid;

use crate::client::{Client, Raw};
use crate::error::ClientError;
use crate::routes::device as route;

/// The content type of a capability file.
const COSE_TYPE: &str = "application/cose";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SideloadQuery {
    manual_start: bool,
}

#[derive(Serialize)]
struct LogQuery {
    follow: bool,
}

/// A client of one attached device's local API.
#[derive(Debug)]
pub struct LocalDevice {
    client: Client,
}

impl LocalDevice {
    /// A client of the device API listening on the Unix socket at `socket` (plain HTTP: the
    /// socket's file permissions are its access control).
    #[cfg(unix)]
    pub fn connect(socket: &Path) -> Result<LocalDevice, ClientError> {
        Ok(LocalDevice {
            client: Client::local_device(socket)?,
        })
    }

    /// Raw requests on any path, for tests of malformed input (see [`Client::raw`]).
    pub fn raw(&self) -> Raw<'_> {
        self.client.raw()
    }

    pub fn show(&self) -> Result<AttachedDevice, ClientError> {
        self.client.call(&route::SHOW_DEVICE, &[])?.fetch()
    }

    /// Asks the device to restart (it answers before it does).
    pub fn restart(&self) -> Result<(), ClientError> {
        self.client.call(&route::RESTART, &[])?.no_content()
    }

    /// Applies a capability file (COSE): development mode with the keys it names.
    pub fn apply_capability(&self, file: Vec<u8>) -> Result<DevelopmentMode, ClientError> {
        self.client
            .call(&route::APPLY_CAPABILITY, &[])?
            .body(COSE_TYPE, file)
            .fetch()
    }

    /// Removes the capability: development mode off.
    pub fn remove_capability(&self) -> Result<DevelopmentMode, ClientError> {
        self.client
            .call(&route::REMOVE_CAPABILITY, &[])?
            .json(&serde_json::Map::new())
            .fetch()
    }

    pub fn list_images(&self) -> Result<InstalledImages, ClientError> {
        self.client.call(&route::LIST_IMAGES, &[])?.fetch()
    }

    /// Sideloads an image package signed with the developer key whose SPKI DER is given base64.
    pub fn sideload(
        &self,
        package: Vec<u8>,
        developer_key_spki_base64: &str,
        manual_start: bool,
    ) -> Result<SideloadResult, ClientError> {
        self.client
            .call(&route::SIDELOAD, &[])?
            .query(&SideloadQuery { manual_start })
            .body("application/octet-stream", package)
            .header(DEVELOPER_KEY_HEADER, developer_key_spki_base64)
            .fetch()
    }

    pub fn delete_sideloaded(&self, component: Uuid) -> Result<(), ClientError> {
        self.client
            .call(&route::DELETE_SIDELOADED, &[&component])?
            .no_content()
    }

    pub fn list_apps(&self) -> Result<AppStatusList, ClientError> {
        self.client.call(&route::LIST_APPS, &[])?.fetch()
    }

    pub fn app_status(&self, component: Uuid) -> Result<AppStatus, ClientError> {
        self.client.call(&route::APP_STATUS, &[&component])?.fetch()
    }

    pub fn start_app(&self, component: Uuid) -> Result<AppStatus, ClientError> {
        self.client
            .call(&route::START_APP, &[&component])?
            .json(&serde_json::Map::new())
            .fetch()
    }

    pub fn stop_app(&self, component: Uuid) -> Result<AppStatus, ClientError> {
        self.client
            .call(&route::STOP_APP, &[&component])?
            .json(&serde_json::Map::new())
            .fetch()
    }

    pub fn app_quota(&self, component: Uuid) -> Result<AppQuota, ClientError> {
        self.client.call(&route::APP_QUOTA, &[&component])?.fetch()
    }

    pub fn app_memory(&self, component: Uuid) -> Result<AppMemoryStats, ClientError> {
        self.client.call(&route::APP_MEMORY, &[&component])?.fetch()
    }

    /// The app's kept log lines, then (with `follow`) new ones as they come: each goes to
    /// `line` until the stream ends or `line` returns `Ok(false)`; an error of `line` ends the
    /// stream and is returned. A line that is not a [`LogLine`] is a [`ClientError::Decode`].
    pub fn app_logs<E: From<ClientError>>(
        &self,
        component: Uuid,
        follow: bool,
        mut line: impl FnMut(LogLine) -> Result<bool, E>,
    ) -> Result<(), E> {
        let call = self
            .client
            .call(&route::APP_LOGS, &[&component])?
            .query(&LogQuery { follow });
        let url = call.url_text();
        let mut failed = None;
        call.lines(|text| {
            let next = serde_json::from_str::<LogLine>(text)
                .map_err(|e| {
                    E::from(ClientError::Decode {
                        url: url.clone(),
                        reason: format!("a log line: {e}"),
                    })
                })
                .and_then(&mut line);
            match next {
                Ok(more) => more,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        })?;
        failed.map_or(Ok(()), Err)
    }

    pub fn board(&self) -> Result<BoardState, ClientError> {
        self.client.call(&route::BOARD, &[])?.fetch()
    }

    /// Presses (`pressed: true`) or releases a button of the virtual board.
    pub fn press_button(&self, name: &str, press: &ButtonPress) -> Result<BoardState, ClientError> {
        self.client
            .call(&route::PRESS_BUTTON, &[&name])?
            .json(press)
            .fetch()
    }

    /// Sends `data` from the virtual board's UART peer of `uart` to the app and takes what the
    /// app wrote.
    pub fn uart_peer(
        &self,
        uart: &str,
        send: &UartPeerSend,
    ) -> Result<UartPeerExchange, ClientError> {
        self.client
            .call(&route::UART_PEER, &[&uart])?
            .json(send)
            .fetch()
    }

    /// Sets the virtual board's temperature sensor.
    pub fn set_temperature(&self, setting: &TemperatureSetting) -> Result<BoardState, ClientError> {
        self.client
            .call(&route::SET_TEMPERATURE, &[])?
            .json(setting)
            .fetch()
    }
}
