//! `ferro-tls` lets rustls use a P-256 key it never holds: [`SignerKey`] adapts a
//! `ferro_signing::Signer` (a key in the service's key store, or later the device key in a TPM
//! or the software root of trust) to rustls' `SigningKey`, and [`server_config`] /
//! [`client_config`] build Ferrosphere's TLS configurations (TLS 1.3 and 1.2, the ring
//! provider, ECDSA P-256 only on our side) around it.
//!
//! It owns no keys and no certificates: callers bring both. It must not depend on HTTP, the
//! database or any Ferrosphere crate but `ferro-signing`.

use std::fmt;
use std::sync::Arc;

use ferro_signing::Signer;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
use rustls::server::ResolvesServerCert;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SignatureAlgorithm, SignatureScheme};

/// A signer shared across TLS connections.
pub type SharedSigner = Arc<dyn Signer + Send + Sync>;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// A trust anchor could not be used.
    #[error("trust anchor: {0}")]
    TrustAnchor(String),
    /// The certificate chain is empty.
    #[error("the certificate chain is empty")]
    EmptyChain,
}

/// The one crypto provider Ferrosphere uses with rustls.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls signing key whose private half stays behind a [`Signer`].
pub struct SignerKey {
    signer: SharedSigner,
    spki: Vec<u8>,
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerKey")
            .field("key_id", &self.signer.key_id())
            .finish()
    }
}

impl SignerKey {
    pub fn new(signer: SharedSigner) -> SignerKey {
        let spki = signer.public_key().to_spki_der();
        SignerKey { signer, spki }
    }
}

impl rustls::sign::SigningKey for SignerKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| {
                Box::new(SchemeSigner {
                    signer: self.signer.clone(),
                }) as Box<dyn rustls::sign::Signer>
            })
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.spki.as_slice()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

struct SchemeSigner {
    signer: SharedSigner,
}

impl fmt::Debug for SchemeSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemeSigner")
            .field("key_id", &self.signer.key_id())
            .finish()
    }
}

impl rustls::sign::Signer for SchemeSigner {
    /// TLS wants ECDSA signatures DER-encoded; the `Signer` gives COSE's fixed `r || s`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let raw = self
            .signer
            .sign(message)
            .map_err(|e| rustls::Error::General(format!("signing key: {e}")))?;
        let signature = p256::ecdsa::Signature::from_slice(raw.as_bytes())
            .map_err(|e| rustls::Error::General(format!("signing key returned {e}")))?;
        Ok(signature.to_der().as_bytes().to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    signer: SharedSigner,
) -> Result<Arc<CertifiedKey>, TlsError> {
    if chain.is_empty() {
        return Err(TlsError::EmptyChain);
    }
    let key = CertifiedKey::new(chain, Arc::new(SignerKey::new(signer)));
    // Refuse a chain whose leaf is not for this key: a misconfiguration would otherwise show
    // up only as handshake failures on the other side.
    key.keys_match()?;
    Ok(Arc::new(key))
}

fn roots(anchors: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for anchor in anchors {
        store
            .add(anchor.clone())
            .map_err(|e| TlsError::TrustAnchor(e.to_string()))?;
    }
    Ok(store)
}

/// A server configuration presenting `chain` (leaf first; include the issuing root so clients
/// can pin it), signing with `signer`. ALPN: HTTP/1.1.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    signer: SharedSigner,
) -> Result<ServerConfig, TlsError> {
    let resolver: Arc<dyn ResolvesServerCert> =
        Arc::new(SingleCertAndKey::from(certified_key(chain, signer)?));
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// [`server_config`] that also asks clients for a certificate, optionally: a client that sends
/// one must prove it holds the certified key (rustls checks the handshake signature with
/// [`PossessionOnlyClientVerifier`]), but the chain is **not** verified here. The application
/// must verify the certificate against its issuer before trusting anything in it (the service
/// does, against the tenant CAs in its database, which a static verifier cannot see).
pub fn server_config_with_client_certificates(
    chain: Vec<CertificateDer<'static>>,
    signer: SharedSigner,
) -> Result<ServerConfig, TlsError> {
    let resolver: Arc<dyn ResolvesServerCert> =
        Arc::new(SingleCertAndKey::from(certified_key(chain, signer)?));
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(PossessionOnlyClientVerifier {
            provider: provider(),
        }))
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Optional client authentication that checks only proof of possession: the client's handshake
/// signature under the public key of the certificate it sent. Chain and validity are left to
/// the application (see [`server_config_with_client_certificates`]).
#[derive(Debug)]
pub struct PossessionOnlyClientVerifier {
    provider: Arc<CryptoProvider>,
}

impl rustls::server::danger::ClientCertVerifier for PossessionOnlyClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        // Deliberately no chain check: the application verifies the certificate against the
        // tenant CAs before it trusts the identity (documented on the constructor).
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ECDSA_NISTP256_SHA256]
    }
}

/// A client configuration trusting only `anchors`, authenticating with `chain` and `signer`
/// when given (a device presenting its certificate while its key stays in the root of trust).
pub fn client_config(
    anchors: &[CertificateDer<'static>],
    client_auth: Option<(Vec<CertificateDer<'static>>, SharedSigner)>,
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(anchors)?);
    Ok(match client_auth {
        Some((chain, signer)) => {
            let resolver: Arc<dyn ResolvesClientCert> =
                Arc::new(SingleCertAndKey::from(certified_key(chain, signer)?));
            builder.with_client_cert_resolver(resolver)
        }
        None => builder.with_no_client_auth(),
    })
}
