//! TLS for apps, authenticated by the device certificate (`apps/tls-client`): the host makes the
//! connection with a configuration whose key the app never sees; the server sees the device
//! certificate; without a certificate, or without `DeviceAuthentication`, there is no
//! connection.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use common::{device_with, manifest_with, wasm};
use ferro_pki::time::{Duration as CertDuration, OffsetDateTime};
use ferro_pki::{
    FileKeyStore, create_tenant_ca, issue_device_certificate, issue_platform_root_certificate,
    issue_service_tls_certificate,
};
use ferro_runtime::{AppId, DeviceServices, InstallOptions};
use ferro_signing::{DeviceId, SoftwareSigningKey};
use rustls::pki_types::CertificateDer;
use uuid::Uuid;

const TENANT: &str = "2d7f3c1e-9b4a-4c5d-8e6f-7a8b9c0d1e2f";

struct Pki {
    /// The server's chain (leaf, platform root) and key.
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Arc<SoftwareSigningKey>,
    platform_root: CertificateDer<'static>,
    tenant_ca: CertificateDer<'static>,
    device_chain: Vec<CertificateDer<'static>>,
    device_key: Arc<SoftwareSigningKey>,
    _store: tempfile::TempDir,
}

fn pki() -> Pki {
    let now = OffsetDateTime::now_utc() - CertDuration::minutes(1);
    let root_key = SoftwareSigningKey::generate();
    let root = issue_platform_root_certificate(&root_key, now).expect("root");
    let server_key = SoftwareSigningKey::generate();
    let server = issue_service_tls_certificate(
        &root_key,
        &root,
        server_key.public_key(),
        &["127.0.0.1"],
        now,
        CertDuration::days(1),
    )
    .expect("server certificate");
    let store_dir = tempfile::tempdir().expect("tempdir");
    let store = FileKeyStore::open(&store_dir.path().join("keys")).expect("key store");
    let tenant: Uuid = TENANT.parse().expect("uuid");
    let ca = create_tenant_ca(&store, tenant, "Test tenant", now).expect("tenant CA");
    let device_key = SoftwareSigningKey::generate();
    let device_id = DeviceId::from_public_key(device_key.public_key());
    let device = issue_device_certificate(
        &ca,
        &store,
        &device_id,
        tenant,
        device_key.public_key(),
        now,
        CertDuration::hours(24),
    )
    .expect("device certificate");
    Pki {
        server_chain: vec![
            CertificateDer::from(server.der().to_vec()),
            CertificateDer::from(root.der().to_vec()),
        ],
        server_key: Arc::new(server_key),
        platform_root: CertificateDer::from(root.der().to_vec()),
        tenant_ca: CertificateDer::from(ca.der().to_vec()),
        device_chain: vec![CertificateDer::from(device.der().to_vec())],
        device_key: Arc::new(device_key),
        _store: store_dir,
    }
}

/// A server that requires a client certificate from the tenant CA, answers `hello` with the
/// size of the client's certificate, and reports the certificate it saw.
fn serve(pki: &Pki) -> (u16, std::thread::JoinHandle<Option<Vec<u8>>>) {
    let provider = ferro_tls::provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.tenant_ca.clone()).expect("tenant CA");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("verifier");
    let key = rustls::sign::CertifiedKey::new(
        pki.server_chain.clone(),
        Arc::new(ferro_tls::SignerKey::new(pki.server_key.clone())),
    );
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let handle = std::thread::spawn(move || {
        let (socket, _) = listener.accept().ok()?;
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let connection = rustls::ServerConnection::new(Arc::new(config)).ok()?;
        let mut tls = rustls::StreamOwned::new(connection, socket);
        let mut hello = [0u8; 5];
        tls.read_exact(&mut hello).ok()?;
        let seen = tls
            .conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|certificate| certificate.to_vec());
        tls.write_all(b"hello, device").ok()?;
        tls.conn.send_close_notify();
        tls.flush().ok()?;
        seen
    });
    (port, handle)
}

#[derive(Debug)]
struct Services {
    config: Option<Arc<rustls::ClientConfig>>,
    tenant: Uuid,
}

impl DeviceServices for Services {
    fn tls_client_config(&self, _app: AppId, tenant: Uuid) -> Option<Arc<rustls::ClientConfig>> {
        (tenant == self.tenant)
            .then(|| self.config.clone())
            .flatten()
    }
    fn certificate_chain_pem(&self, _app: AppId) -> Option<String> {
        self.config
            .as_ref()
            .map(|_| "-----BEGIN CERTIFICATE-----".to_owned())
    }
}

fn client_config(pki: &Pki) -> Arc<rustls::ClientConfig> {
    Arc::new(
        ferro_tls::client_config(
            std::slice::from_ref(&pki.platform_root),
            Some((pki.device_chain.clone(), pki.device_key.clone())),
        )
        .expect("client config"),
    )
}

fn run_client(config: Option<Arc<rustls::ClientConfig>>, port: u16, grant: bool) -> Vec<String> {
    let tenant: Uuid = TENANT.parse().expect("uuid");
    let device = device_with(|runtime| {
        runtime.services = Arc::new(Services { config, tenant });
    });
    let manifest = manifest_with("tls-client", |json| {
        json["CmdArgs"] = serde_json::json!(["127.0.0.1", port.to_string()]);
        if !grant {
            json["Capabilities"]
                .as_object_mut()
                .expect("capabilities")
                .remove("DeviceAuthentication");
        }
    });
    let install = device
        .runtime
        .install(&wasm("tls-client"), &manifest, InstallOptions::default());
    let app = match install {
        Ok(app) => app,
        Err(error) => return vec![format!("install: {error}")],
    };
    device.wait_for_log(app, "tls", Duration::from_secs(30));
    device.log_texts(app)
}

#[test]
fn tls_connects_with_the_device_certificate() {
    let pki = pki();
    let (port, server) = serve(&pki);
    let log = run_client(Some(client_config(&pki)), port, true);
    assert!(
        log.contains(&"certificate ready: true".to_owned()),
        "{log:#?}"
    );
    assert!(
        log.contains(&"tls reply: hello, device".to_owned()),
        "{log:#?}"
    );
    let seen = server
        .join()
        .expect("server")
        .expect("a client certificate");
    assert_eq!(seen, pki.device_chain[0].to_vec());
}

#[test]
fn no_certificate_no_connection() {
    let pki = pki();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let log = run_client(None, port, true);
    assert!(
        log.contains(&"certificate ready: false".to_owned()),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|line| line.starts_with("tls: no such resource: no current device certificate")),
        "{log:#?}"
    );
    listener.set_nonblocking(true).expect("nonblocking");
    assert!(listener.accept().is_err(), "nothing connected");
    drop(pki);
}

#[test]
fn without_device_authentication_tls_is_refused() {
    let pki = pki();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    // The app imports deviceauth, which this manifest no longer grants: it cannot install.
    let log = run_client(Some(client_config(&pki)), port, false);
    assert_eq!(log.len(), 1, "{log:#?}");
    assert!(log[0].contains("ferrosphere:device/deviceauth"), "{log:#?}");
    assert!(log[0].contains("DeviceAuthentication"), "{log:#?}");
}

#[test]
fn the_server_must_be_trusted() {
    let pki = pki();
    let other = self::pki();
    let (port, server) = serve(&other);
    // The client trusts `pki`'s platform root, not `other`'s.
    let log = run_client(Some(client_config(&pki)), port, true);
    assert!(
        log.iter()
            .any(|line| line.starts_with("tls: I/O error: TLS handshake with 127.0.0.1")),
        "{log:#?}"
    );
    assert_eq!(server.join().expect("server"), None);
}
