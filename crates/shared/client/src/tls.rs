//! Which certificates the client trusts, and trust on first use.
//!
//! The service presents its TLS certificate together with the platform root that issued it. On
//! `ferro login`, the user is shown the fingerprints of what the service presented
//! ([`probe_presented_chain`]) and, once they accept, the client pins the platform root (not the
//! leaf, so the service may renew its certificate). Afterwards every connection is verified
//! normally (webpki, host name included) against that root alone.

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::ClientError;

const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 of a certificate, as `openssl x509 -fingerprint -sha256` prints it.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The CA certificates a client trusts for the service.
#[derive(Clone, Debug)]
pub struct ServiceTrust {
    anchors: Vec<CertificateDer<'static>>,
}

impl ServiceTrust {
    /// Certificates from PEM text (one or more `CERTIFICATE` blocks).
    pub fn from_pem(text: &[u8]) -> Result<ServiceTrust, ClientError> {
        let blocks = pem::parse_many(text).map_err(|e| ClientError::InvalidCa(e.to_string()))?;
        let anchors: Vec<_> = blocks
            .into_iter()
            .filter(|block| block.tag() == "CERTIFICATE")
            .map(|block| CertificateDer::from(block.into_contents()))
            .collect();
        ServiceTrust::from_der(anchors)
    }

    fn from_der(anchors: Vec<CertificateDer<'static>>) -> Result<ServiceTrust, ClientError> {
        if anchors.is_empty() {
            return Err(ClientError::InvalidCa(
                "no CERTIFICATE block found".to_string(),
            ));
        }
        let trust = ServiceTrust { anchors };
        trust.root_store()?;
        Ok(trust)
    }

    /// PEM text of the trusted certificates, for storing.
    pub fn to_pem(&self) -> String {
        self.anchors
            .iter()
            .map(|der| pem::encode(&pem::Pem::new("CERTIFICATE", der.as_ref().to_vec())))
            .collect()
    }

    /// Fingerprints of the trusted certificates.
    pub fn fingerprints(&self) -> Vec<String> {
        self.anchors.iter().map(|c| fingerprint(c)).collect()
    }

    fn root_store(&self) -> Result<RootCertStore, ClientError> {
        let mut store = RootCertStore::empty();
        for anchor in &self.anchors {
            store
                .add(anchor.clone())
                .map_err(|e| ClientError::InvalidCa(e.to_string()))?;
        }
        Ok(store)
    }

    pub(crate) fn client_config(&self) -> Result<ClientConfig, ClientError> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::InvalidCa(e.to_string()))?
            .with_root_certificates(self.root_store()?)
            .with_no_client_auth();
        Ok(config)
    }
}

/// What a service presented in its TLS handshake, before anything about it is trusted.
#[derive(Clone, Debug)]
pub struct PresentedChain {
    /// DER certificates, leaf first.
    pub certificates: Vec<Vec<u8>>,
}

impl PresentedChain {
    /// The fingerprint of the service's own certificate.
    pub fn leaf_fingerprint(&self) -> Option<String> {
        self.certificates.first().map(|c| fingerprint(c))
    }

    /// The certificate to pin: the last one presented (the platform root), which must not be
    /// the leaf itself.
    pub fn anchor(&self) -> Result<ServiceTrust, ClientError> {
        match self.certificates.as_slice() {
            [_leaf, .., root] => ServiceTrust::from_der(vec![CertificateDer::from(root.clone())]),
            _ => Err(ClientError::InvalidCa(
                "the service presented only its own certificate and no CA; pass --ca-file with \
                 the CA that issued it"
                    .to_string(),
            )),
        }
    }
}

/// Records what the server presents; checks only that the server holds the leaf's key.
#[derive(Debug)]
struct Recorder {
    seen: Mutex<Vec<Vec<u8>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.as_ref().to_vec()];
        chain.extend(intermediates.iter().map(|c| c.as_ref().to_vec()));
        if let Ok(mut seen) = self.seen.lock() {
            *seen = chain;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Connects to `host:port`, completes a TLS handshake and returns the presented certificates.
/// Nothing is sent over the connection: no credentials can leak to an impostor.
pub fn probe_presented_chain(host: &str, port: u16) -> Result<PresentedChain, ClientError> {
    let tls_error = |reason: String| ClientError::Tls {
        host: host.to_string(),
        reason,
    };
    let recorder = Arc::new(Recorder {
        seen: Mutex::new(Vec::new()),
        provider: provider(),
    });
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| tls_error(e.to_string()))?;
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| tls_error(e.to_string()))?;
    let address = format!("{host}:{port}");
    let mut socket = TcpStream::connect(&address).map_err(|e| ClientError::Transport {
        url: address.clone(),
        reason: e.to_string(),
    })?;
    socket
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .and_then(|()| socket.set_write_timeout(Some(PROBE_TIMEOUT)))
        .map_err(|e| tls_error(e.to_string()))?;
    while connection.is_handshaking() {
        connection
            .complete_io(&mut socket)
            .map_err(|e| tls_error(e.to_string()))?;
    }
    // Close politely; a failure here changes nothing about what was presented.
    connection.send_close_notify();
    let _ = connection.complete_io(&mut socket);
    let _ = socket.flush();
    let certificates = recorder
        .seen
        .lock()
        .map(|seen| seen.clone())
        .unwrap_or_default();
    if certificates.is_empty() {
        return Err(tls_error(
            "the service presented no certificate".to_string(),
        ));
    }
    Ok(PresentedChain { certificates })
}
