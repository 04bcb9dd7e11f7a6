//! The MQTT broker of the device-certificate tests: Mosquitto with a plain loopback listener (for
//! the tests' own subscribers) and a TLS listener that requires a client certificate under the
//! tenant CA (for the device), and the subscriber processes the tests start.

use std::path::Path;
use std::process::Child;

use ferro_e2e::mosquitto::Mosquitto;

use std::sync::Arc;

use super::pki::{Pki, Services, TENANT, client_config};
use super::{Device, device_with};

/// Kills and reaps a child process this test started.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Mosquitto with a plain listener and a TLS listener that requires a client certificate under
/// `pki`'s tenant CA, on fresh loopback ports (started again if one was taken before it bound).
/// Returns the broker and its (TLS, plain) ports.
pub fn start_broker(dir: &Path, pki: &Pki) -> (Mosquitto, u16, u16) {
    start_broker_with(dir, pki, "persistence false\n")
}

/// [`start_broker`] with `extra` configuration lines (for instance persistence, so that a
/// subscriber's session outlives a restart of the broker).
pub fn start_broker_with(dir: &Path, pki: &Pki, extra: &str) -> (Mosquitto, u16, u16) {
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect("write");
    write("clients.pem", &pki.tenant_ca_pem);
    write("server.pem", &pki.server_cert_pem);
    write(
        "server.key",
        &pki.server_key.to_pkcs8_pem().expect("server key pem"),
    );
    let d = dir.display();
    let broker = Mosquitto::start(dir, 2, |ports| {
        let (plain_port, tls_port) = (ports[0], ports[1]);
        format!(
            "allow_anonymous true\n{extra}\
             log_type error\nlog_type warning\nlog_type notice\nlog_type information\n\
             log_type subscribe\n\
             listener {plain_port} 127.0.0.1\n\
             listener {tls_port} 127.0.0.1\nrequire_certificate true\n\
             cafile {d}/clients.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n"
        )
    });
    let (plain_port, tls_port) = (broker.ports[0], broker.ports[1]);
    (broker, tls_port, plain_port)
}

/// A device whose apps' `DeviceAuthentication` TLS connections present the device certificate
/// of `pki` (tenant [`TENANT`]) and trust its platform root (the broker's server certificate).
pub fn device_with_certificate(pki: &Pki) -> Device {
    let tenant = TENANT.parse().expect("uuid");
    let config = client_config(pki);
    device_with(move |runtime| {
        runtime.services = Arc::new(Services {
            config: Some(config),
            tenant,
        });
    })
}
