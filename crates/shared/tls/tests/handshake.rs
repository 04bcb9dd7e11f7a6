//! Real TLS handshakes over loopback: a server whose key is only reachable through a `Signer`,
//! and a client that trusts only the platform root.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use ferro_pki::time::{Duration, OffsetDateTime};
use ferro_pki::{Certificate, issue_platform_root_certificate, issue_service_tls_certificate};
use ferro_signing::SoftwareSigningKey;
use ferro_tls::{SharedSigner, TlsError, client_config, server_config};
use rustls::pki_types::{CertificateDer, ServerName};

struct Platform {
    root: Certificate,
    service_chain: Vec<CertificateDer<'static>>,
    service_key: SharedSigner,
}

fn platform() -> Platform {
    let root_key = SoftwareSigningKey::generate();
    let now = OffsetDateTime::now_utc() - Duration::minutes(1);
    let root = issue_platform_root_certificate(&root_key, now).expect("root");
    let service_key = SoftwareSigningKey::generate();
    let leaf = issue_service_tls_certificate(
        &root_key,
        &root,
        service_key.public_key(),
        &["127.0.0.1", "localhost"],
        now,
        Duration::days(30),
    )
    .expect("service certificate");
    Platform {
        service_chain: vec![
            CertificateDer::from(leaf.der().to_vec()),
            CertificateDer::from(root.der().to_vec()),
        ],
        root,
        service_key: Arc::new(service_key),
    }
}

/// Serves one connection: reads a line, answers it reversed.
fn serve_once(config: rustls::ServerConfig) -> (u16, thread::JoinHandle<Result<(), String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = thread::spawn(move || {
        let (socket, _) = listener.accept().map_err(|e| e.to_string())?;
        let connection =
            rustls::ServerConnection::new(Arc::new(config)).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(connection, socket);
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        buf.reverse();
        tls.write_all(&buf).map_err(|e| e.to_string())?;
        tls.conn.send_close_notify();
        tls.flush().map_err(|e| e.to_string())
    });
    (port, handle)
}

fn exchange(client: rustls::ClientConfig, port: u16) -> Result<[u8; 5], String> {
    let socket = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let connection =
        rustls::ClientConnection::new(Arc::new(client), name).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(connection, socket);
    tls.write_all(b"hello").map_err(|e| e.to_string())?;
    let mut answer = [0u8; 5];
    tls.read_exact(&mut answer).map_err(|e| e.to_string())?;
    Ok(answer)
}

#[test]
fn server_key_behind_a_signer_completes_a_handshake() {
    let platform = platform();
    let server = server_config(platform.service_chain.clone(), platform.service_key.clone())
        .expect("server config");
    let (port, server_thread) = serve_once(server);
    let client = client_config(&[CertificateDer::from(platform.root.der().to_vec())], None)
        .expect("client config");
    assert_eq!(exchange(client, port).expect("exchange"), *b"olleh");
    server_thread
        .join()
        .expect("server thread")
        .expect("server");
}

#[test]
fn a_client_trusting_another_root_refuses_the_server() {
    let platform = platform();
    let other = self::platform();
    let server = server_config(platform.service_chain.clone(), platform.service_key.clone())
        .expect("server config");
    let (port, server_thread) = serve_once(server);
    let client = client_config(&[CertificateDer::from(other.root.der().to_vec())], None)
        .expect("client config");
    let error = exchange(client, port).expect_err("must be refused");
    assert!(
        error.contains("UnknownIssuer") || error.contains("invalid peer certificate"),
        "{error}"
    );
    assert!(server_thread.join().expect("server thread").is_err());
}

#[test]
fn a_chain_for_another_key_is_refused_at_configuration() {
    let platform = platform();
    let stranger: SharedSigner = Arc::new(SoftwareSigningKey::generate());
    let error = server_config(platform.service_chain.clone(), stranger).expect_err("mismatch");
    assert!(matches!(error, TlsError::Config(_)), "{error}");
    assert!(matches!(
        server_config(Vec::new(), platform.service_key),
        Err(TlsError::EmptyChain)
    ));
}
