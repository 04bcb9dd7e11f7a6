//! TLS for apps, authenticated by the device certificate (`apps/test-guests/tls-client`): the host makes the
//! connection with a configuration whose key the app never sees; the server sees the device
//! certificate; without a certificate, or without `DeviceAuthentication`, there is no
//! connection.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pki::{Pki, Services, TENANT, client_config, pki};
use common::{device_with, manifest_with, wasm};
use ferro_runtime::InstallOptions;
use uuid::Uuid;

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

/// How the slow server's connection ended.
#[derive(Debug, PartialEq, Eq)]
enum SlowServer {
    /// The client closed it.
    ClosedByClient,
    /// The server gave up first (its hang guard).
    GaveUp,
}

/// A device with a current device certificate running `tls-client` against 127.0.0.1:`port`.
fn install_client(pki: &Pki, port: u16) -> (common::Device, ferro_runtime::AppId) {
    let tenant: Uuid = TENANT.parse().expect("uuid");
    let device = device_with(|runtime| {
        runtime.services = Arc::new(Services {
            config: Some(client_config(pki)),
            tenant,
        });
    });
    let manifest = manifest_with("tls-client", |json| {
        json["CmdArgs"] = serde_json::json!(["127.0.0.1", port.to_string()]);
    });
    let app = device
        .runtime
        .install(&wasm("tls-client"), &manifest, InstallOptions::default())
        .expect("install");
    (device, app)
}

/// Issue 16: a TLS handshake with a slow server could not be interrupted by a stop request.
/// The server accepts, takes the ClientHello and answers with the header of a 16 KiB handshake
/// record whose body it sends one byte every half second (each read got a fresh timeout
/// before, so such a server held the handshake, and the stop, for as long as it liked). Now
/// the stop interrupts the handshake: `stop` returns with the app Stopped and it is the client
/// that closes the connection, not the server's hang guard (a minute).
#[test]
fn a_stop_interrupts_a_tls_handshake_with_a_slow_server() {
    let pki = pki();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("accept");
        socket
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let mut hello = [0u8; 5];
        socket.read_exact(&mut hello).expect("a ClientHello record");
        assert_eq!(hello[0], 22, "a handshake record");
        let mut body = vec![0u8; usize::from(u16::from_be_bytes([hello[3], hello[4]]))];
        socket.read_exact(&mut body).expect("the ClientHello");
        // A handshake record of 16 KiB, then its body a byte at a time.
        socket.write_all(&[22, 3, 3, 0x40, 0x00]).expect("header");
        started_tx.send(()).expect("send");
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        for _ in 0..120 {
            if socket.write_all(&[2]).is_err() {
                return SlowServer::ClosedByClient;
            }
            let mut byte = [0u8; 1];
            match socket.read(&mut byte) {
                Ok(0) => return SlowServer::ClosedByClient,
                Ok(_) => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return SlowServer::ClosedByClient,
            }
        }
        SlowServer::GaveUp
    });
    let (device, app) = install_client(&pki, port);
    started_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the client started a handshake");
    device.runtime.stop(app).expect("stop");
    assert_eq!(
        device.runtime.status(app).expect("status").state,
        ferro_runtime::AppState::Stopped
    );
    assert_eq!(server.join().expect("server"), SlowServer::ClosedByClient);
}

/// Issue 16: an app's TCP connect to a server that never answers (a listener whose accept
/// queue is full, so the kernel drops the SYN, as with an unreachable host) held a stop request
/// until the connect's timeout (`tls-client` asks for 5 s; a blocking `connect_timeout`). Now
/// the stop interrupts the pending connect: the instance traps inside it, so the app never
/// sees the connect time out (no `tls:` line), and `stop` returns well before the timeout.
/// The stop is requested once the app is about to connect (that a stop ends a connect seen
/// pending in `/proc/net/tcp` is `connect::tests::a_stop_interrupts_a_tcp_connect_that_gets_no_answer`).
#[test]
fn a_stop_interrupts_a_connect_that_gets_no_answer() {
    const GUEST_TIMEOUT: Duration = Duration::from_secs(5);
    let pki = pki();
    let (_listener, address, _fillers) = common::listener::full_listener();
    let (device, app) = install_client(&pki, address.port());
    // The app prints this just before it connects.
    device.wait_for_log(app, "certificate ready", Duration::from_secs(60));
    let requested = Instant::now();
    device.runtime.stop(app).expect("stop");
    let stopped = requested.elapsed();
    assert_eq!(
        device.runtime.status(app).expect("status").state,
        ferro_runtime::AppState::Stopped
    );
    let outcomes: Vec<String> = device
        .log_texts(app)
        .into_iter()
        .filter(|line| line.starts_with("tls"))
        .collect();
    assert!(
        outcomes.is_empty(),
        "the stop ended the connect before it timed out: {outcomes:?}"
    );
    assert!(
        stopped < GUEST_TIMEOUT / 2,
        "the stop took {stopped:?}, not much less than the connect's timeout"
    );
}
