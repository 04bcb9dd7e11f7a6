//! Device-side attestation (docs/attestation.md): ask the service for a challenge, answer it
//! with evidence from the root of trust, check the device certificate the service returns, keep
//! it in the device's data directory and renew it at half its life. The device key never leaves
//! the root of trust: TLS client authentication signs through it ([`mtls_client_config`]).
//!
//! It talks to the service only through `ferro-client`'s device client (feature `device`),
//! over an HTTPS client it builds trusting only the platform root.
//!
//! Depends on `ferro-trust`, `ferro-tls`, `ferro-wire`, `ferro-client`, `ferro-pki`,
//! `ferro-signing` and the foundation `ferro-files`; never on the service.

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use ferro_client::{DeviceClient, DeviceClientError};
use ferro_pki::Certificate;
use ferro_trust::RootOfTrust;
use ferro_trust::evidence::{DebugStatus, create_evidence};
use ferro_wire::{
    AttestationChallengeRequest, AttestationEvidenceRequest, AttestationReason, AttestationVerdict,
};
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Errors of the attestation client. None carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    /// The platform root or a returned certificate is not usable PEM/X.509.
    #[error("certificate: {0}")]
    Certificate(String),
    /// TLS configuration failed.
    #[error("tls: {0}")]
    Tls(#[from] ferro_tls::TlsError),
    /// The HTTPS client could not be built, or the service's answer is unusable.
    #[error("transport: {0}")]
    Transport(String),
    /// The call to the service failed (unreachable, an error status, an unreadable answer);
    /// a 429 is [`AttestError::RateLimited`] instead.
    #[error("service: {0}")]
    Service(DeviceClientError),
    /// The service refused for now (429): too many attestation requests from this device's
    /// address. The next attempt waits at least `retry_after` (see [`CertificateManager::record`]).
    #[error("the service is limiting attestation requests from this address; retry in {}s", .retry_after.as_secs())]
    RateLimited {
        /// What the service's `Retry-After` said (`ferro_client::retry_after`: its default, a
        /// minute, if it said nothing usable).
        retry_after: Duration,
    },
    /// The root of trust failed.
    #[error("root of trust: {0}")]
    Trust(#[from] ferro_trust::TrustError),
    /// The service said Trusted but its certificate does not check out.
    #[error("the returned certificate is not acceptable: {0}")]
    BadCertificate(String),
    /// Reading or writing the certificate store failed.
    #[error("certificate store {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// The service as a device reaches it for attestation: the device's client of the service
/// (`ferro_client::DeviceClient`) over HTTPS trusting only the platform root. Attestation
/// needs no device certificate, so this connection presents none.
#[derive(Clone, Debug)]
pub struct ServiceConnection {
    client: DeviceClient,
}

/// DER certificates of a PEM bundle (`CERTIFICATE` blocks only).
pub fn pem_certificates(pem_text: &str) -> Result<Vec<CertificateDer<'static>>, AttestError> {
    let blocks = pem::parse_many(pem_text).map_err(|e| AttestError::Certificate(e.to_string()))?;
    let out: Vec<_> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| CertificateDer::from(b.into_contents()))
        .collect();
    if out.is_empty() {
        return Err(AttestError::Certificate("no CERTIFICATE in PEM".into()));
    }
    Ok(out)
}

impl ServiceConnection {
    /// A connection to `base_url` trusting only `platform_root_pem` for the service's TLS
    /// certificate. Installs the ring provider as rustls's process default if none is.
    pub fn new(base_url: &str, platform_root_pem: &str) -> Result<ServiceConnection, AttestError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let anchors = pem_certificates(platform_root_pem)?;
        let tls = ferro_tls::client_config(&anchors, None)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(ferro_client::REQUEST_TIMEOUT)
            .build()
            .map_err(|e| AttestError::Transport(e.to_string()))?;
        Ok(ServiceConnection {
            client: DeviceClient::new(base_url, http)?,
        })
    }

    /// The device's client of the service this connection uses.
    pub fn client(&self) -> &DeviceClient {
        &self.client
    }
}

impl From<DeviceClientError> for AttestError {
    fn from(error: DeviceClientError) -> AttestError {
        match error {
            DeviceClientError::RateLimited { retry_after } => {
                AttestError::RateLimited { retry_after }
            }
            other => AttestError::Service(other),
        }
    }
}

/// A device certificate the service issued, checked by [`attest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceCertificate {
    /// The leaf (PEM).
    pub certificate_pem: String,
    /// The tenant CA chain (PEM bundle).
    pub ca_chain_pem: String,
    /// Validity start.
    pub not_before: OffsetDateTime,
    /// Validity end.
    pub not_after: OffsetDateTime,
}

impl DeviceCertificate {
    /// The leaf then the CA that signed it, as TLS wants the chain.
    pub fn chain_der(&self) -> Result<Vec<CertificateDer<'static>>, AttestError> {
        let mut chain = pem_certificates(&self.certificate_pem)?;
        let leaf = Certificate::from_der(&chain[0])
            .map_err(|e| AttestError::Certificate(e.to_string()))?;
        if let Some(issuer) = issuing_ca(&leaf, &self.ca_chain_pem)? {
            chain.truncate(1);
            chain.push(issuer);
        }
        Ok(chain)
    }
}

/// What an attestation came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttestationOutcome {
    /// Trusted: the certificate (already checked: chains to a CA of the chain, for our key).
    Trusted {
        /// The certificate.
        certificate: DeviceCertificate,
        /// The service's clock.
        service_time: OffsetDateTime,
    },
    /// Untrusted, with the service's reasons.
    Untrusted {
        /// Why.
        reasons: Vec<AttestationReason>,
        /// The service's clock.
        service_time: OffsetDateTime,
    },
}

fn issuing_ca(
    leaf: &Certificate,
    ca_chain_pem: &str,
) -> Result<Option<CertificateDer<'static>>, AttestError> {
    for ca in pem_certificates(ca_chain_pem)? {
        let Ok(parsed) = Certificate::from_der(&ca) else {
            continue;
        };
        let Ok(key) = ferro_signing::PublicKey::from_spki_der(parsed.subject_public_key_info())
        else {
            continue;
        };
        if ferro_pki::verify_certificate_signature(leaf.der(), &key).is_ok() {
            return Ok(Some(ca));
        }
    }
    Ok(None)
}

/// Check a returned certificate: it parses, is signed by a CA of `ca_chain_pem`, and certifies
/// exactly the root of trust's device key.
pub fn check_certificate(
    rot: &dyn RootOfTrust,
    certificate_pem: &str,
    ca_chain_pem: &str,
) -> Result<DeviceCertificate, AttestError> {
    let bad = |m: &str| AttestError::BadCertificate(m.to_string());
    let leaf_der = pem_certificates(certificate_pem).map_err(|_| bad("not PEM"))?;
    let leaf = Certificate::from_der(&leaf_der[0]).map_err(|e| bad(&e.to_string()))?;
    if leaf.subject_public_key_info() != rot.public_key().to_spki_der().as_slice() {
        return Err(bad("the certificate is for another key"));
    }
    if issuing_ca(&leaf, ca_chain_pem)?.is_none() {
        return Err(bad("no CA of the returned chain signed the certificate"));
    }
    Ok(DeviceCertificate {
        certificate_pem: certificate_pem.to_string(),
        ca_chain_pem: ca_chain_pem.to_string(),
        not_before: leaf.not_before(),
        not_after: leaf.not_after(),
    })
}

/// Attest once, stating debugging disabled: see [`attest_with`].
pub async fn attest(
    rot: &dyn RootOfTrust,
    connection: &ServiceConnection,
) -> Result<AttestationOutcome, AttestError> {
    attest_with(rot, connection, DebugStatus::Disabled).await
}

/// Attest once: challenge, evidence by the root of trust stating `debug` (a device in
/// development mode says `Enabled`: the service then requires its AppDevelopment capability),
/// submission, and (Trusted) the checks of [`check_certificate`]. Uses only the device key,
/// never a certificate, so an expired or missing certificate never prevents attestation.
pub async fn attest_with(
    rot: &dyn RootOfTrust,
    connection: &ServiceConnection,
    debug: DebugStatus,
) -> Result<AttestationOutcome, AttestError> {
    let device_id = rot.device_id();
    let challenge = connection
        .client
        .attestation_challenge(&AttestationChallengeRequest { device_id })
        .await?;
    let nonce = Base64UrlUnpadded::decode_vec(&challenge.nonce)
        .map_err(|_| AttestError::Transport("the challenge nonce is not base64url".into()))?;
    let evidence = create_evidence(rot, &nonce, debug)?;
    let result = connection
        .client
        .attestation_evidence(&AttestationEvidenceRequest {
            device_id,
            nonce: challenge.nonce,
            evidence: Base64::encode_string(&evidence),
        })
        .await?;
    match result.verdict {
        AttestationVerdict::Untrusted => Ok(AttestationOutcome::Untrusted {
            reasons: result.reasons,
            service_time: result.service_time,
        }),
        AttestationVerdict::Trusted => {
            let (Some(cert), Some(chain)) = (&result.certificate_pem, &result.ca_chain_pem) else {
                return Err(AttestError::BadCertificate(
                    "Trusted without a certificate and chain".into(),
                ));
            };
            Ok(AttestationOutcome::Trusted {
                certificate: check_certificate(rot, cert, chain)?,
                service_time: result.service_time,
            })
        }
    }
}

/// A rustls client configuration that presents `cert_chain` and signs the handshake with the
/// root of trust's device key (which never leaves it), trusting only `anchors` for the server.
pub fn mtls_client_config(
    rot: &dyn RootOfTrust,
    cert_chain: Vec<CertificateDer<'static>>,
    anchors: &[CertificateDer<'static>],
) -> Result<rustls::ClientConfig, AttestError> {
    Ok(ferro_tls::client_config(
        anchors,
        Some((cert_chain, rot.device_key())),
    )?)
}

/// Renewal and retry timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenewalPolicy {
    /// Renew at this fraction of the life (percent), less jitter.
    pub renew_at_percent: u8,
    /// Up to this fraction of the life (percent) earlier, uniformly random, so a fleet that
    /// attested together does not renew together.
    pub jitter_percent: u8,
    /// First retry delay after a failure.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

impl Default for RenewalPolicy {
    fn default() -> Self {
        RenewalPolicy {
            renew_at_percent: 50,
            jitter_percent: 10,
            initial_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(3600),
        }
    }
}

fn random_below(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let mut b = [0u8; 8];
    // A failing OS RNG only removes jitter; timing is not a security property.
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b) % n
}

impl RenewalPolicy {
    /// When to renew a certificate valid from `not_before` to `not_after`: at
    /// `renew_at_percent` of its life, minus up to `jitter_percent` of it.
    pub fn renew_at(
        &self,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> OffsetDateTime {
        let life = (not_after - not_before).whole_milliseconds().max(0);
        let life = u64::try_from(life).unwrap_or(0);
        let at = life * u64::from(self.renew_at_percent.min(100)) / 100;
        let jitter = random_below(life * u64::from(self.jitter_percent.min(100)) / 100 + 1);
        let ms = at.saturating_sub(jitter);
        not_before + time::Duration::milliseconds(i64::try_from(ms).unwrap_or(0))
    }

    /// Delay before retry number `failures` (1 = after the first failure): exponential from
    /// `initial_backoff`, capped at `max_backoff`, with "equal jitter" (half fixed, half
    /// random), so retries spread out but never come back immediately.
    pub fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        let half = base / 2;
        let ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(random_below(ms + 1))
    }
}

/// The certificate file in the certificate directory: the device certificate (leaf), then the
/// tenant CA chain it was issued with, in one PEM file, so the pair is replaced as one atomic
/// unit and never seen half old, half new (tools reading the leaf, such as `openssl x509`, read
/// the first block).
pub const CERT_FILE: &str = "device-cert.pem";
/// Where versions before the one-file layout kept the chain, beside a leaf-only [`CERT_FILE`]:
/// still read when [`CERT_FILE`] holds only the leaf, and removed by the next
/// [`CertificateManager::store`].
pub const LEGACY_CHAIN_FILE: &str = "tenant-ca-chain.pem";

/// Keeps the device certificate in the device's data directory and decides when to attest.
/// The certificate and its chain are one file ([`CERT_FILE`]), written atomically
/// (`ferro_files`: temp file, fsync, rename, fsync of the directory) with mode 0600 in a 0700
/// directory, as the device's data directory promises (docs/device.md).
#[derive(Debug)]
pub struct CertificateManager {
    dir: PathBuf,
    policy: RenewalPolicy,
    failures: u32,
    renew_at: Option<OffsetDateTime>,
    current: Option<DeviceCertificate>,
}

impl CertificateManager {
    /// Open (creating) `dir` and load a stored certificate if any. A stored certificate that
    /// does not parse is ignored (the next attestation replaces it).
    pub fn open(dir: &Path, policy: RenewalPolicy) -> Result<CertificateManager, AttestError> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| AttestError::Io(dir.to_path_buf(), e))?;
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
        let current = read(CERT_FILE).and_then(|stored| {
            let (leaf, chain) = split_leaf(&stored)?;
            let chain = if chain.trim().is_empty() {
                // The layout before one file: the chain beside a leaf-only file.
                read(LEGACY_CHAIN_FILE)?
            } else {
                chain.to_string()
            };
            let der = pem_certificates(leaf).ok()?;
            let c = Certificate::from_der(&der[0]).ok()?;
            Some(DeviceCertificate {
                certificate_pem: leaf.to_string(),
                ca_chain_pem: chain,
                not_before: c.not_before(),
                not_after: c.not_after(),
            })
        });
        let renew_at = current
            .as_ref()
            .map(|c| policy.renew_at(c.not_before, c.not_after));
        Ok(CertificateManager {
            dir: dir.to_path_buf(),
            policy,
            failures: 0,
            renew_at,
            current,
        })
    }

    /// The stored certificate, if any (possibly expired).
    pub fn current(&self) -> Option<&DeviceCertificate> {
        self.current.as_ref()
    }

    /// The stored certificate if it is valid at `now`.
    pub fn valid_at(&self, now: OffsetDateTime) -> Option<&DeviceCertificate> {
        self.current
            .as_ref()
            .filter(|c| c.not_before <= now && now < c.not_after)
    }

    /// When to attest next: now if there is no certificate or it has expired (an expired
    /// certificate never locks the device out: attestation uses the device key), at the renewal
    /// time otherwise; after failures, the backoff decides (see [`CertificateManager::record`]).
    pub fn next_attempt(&self, now: OffsetDateTime) -> OffsetDateTime {
        match (&self.current, self.renew_at) {
            (Some(c), Some(at)) if now < c.not_after => at,
            _ => now,
        }
    }

    /// Store a Trusted outcome's certificate and schedule its renewal.
    pub fn store(&mut self, certificate: DeviceCertificate) -> Result<(), AttestError> {
        // Stored as read back: the leaf's first PEM block, then everything else.
        let mut text = certificate.certificate_pem.clone();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&certificate.ca_chain_pem);
        let (leaf, chain) = split_leaf(&text)
            .filter(|(_, chain)| !chain.trim().is_empty())
            .ok_or_else(|| AttestError::BadCertificate("no PEM certificate and chain".into()))?;
        let certificate = DeviceCertificate {
            certificate_pem: leaf.to_string(),
            ca_chain_pem: chain.to_string(),
            ..certificate
        };
        let path = self.dir.join(CERT_FILE);
        ferro_files::write_atomic(&path, text.as_bytes(), ferro_files::Mode::SECRET)
            .map_err(|e| AttestError::Io(path, e))?;
        let legacy = self.dir.join(LEGACY_CHAIN_FILE);
        match std::fs::remove_file(&legacy) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(AttestError::Io(legacy, e));
            }
            _ => {}
        }
        self.renew_at = Some(
            self.policy
                .renew_at(certificate.not_before, certificate.not_after),
        );
        self.current = Some(certificate);
        self.failures = 0;
        Ok(())
    }

    /// Record the result of an attempt made at `now`: a Trusted outcome is stored; an Untrusted
    /// outcome or an error schedules a retry after the backoff, or after the service's
    /// `Retry-After` if it limited the request and that is later (the old certificate, if still
    /// valid, stays in use). Returns when to try next.
    pub fn record(
        &mut self,
        now: OffsetDateTime,
        outcome: &Result<AttestationOutcome, AttestError>,
    ) -> Result<OffsetDateTime, AttestError> {
        if let Ok(AttestationOutcome::Trusted { certificate, .. }) = outcome {
            self.store(certificate.clone())?;
            return Ok(self.next_attempt(now));
        }
        self.failures = self.failures.saturating_add(1);
        let mut delay = self.policy.backoff(self.failures);
        if let Err(AttestError::RateLimited { retry_after }) = outcome {
            delay = delay.max(*retry_after);
        }
        let at = now + time::Duration::try_from(delay).unwrap_or(time::Duration::HOUR);
        self.renew_at = Some(at);
        Ok(at)
    }

    /// The service refused the stored certificate on a device route (401: the device moved to
    /// another tenant, or was blocked): attest at the next tick instead of at half-life, unless
    /// a backoff after failures already decides (a blocked device's attempts fail, so its
    /// refusals never make it attest faster than the backoff). Callers learn of refusals from
    /// update checks, so this happens at most once a check. Returns whether it brought the
    /// attempt forward.
    pub fn attest_again_soon(&mut self, now: OffsetDateTime) -> bool {
        if self.failures > 0 {
            return false;
        }
        self.renew_at = Some(self.renew_at.map_or(now, |at| at.min(now)));
        true
    }

    /// Consecutive failed attempts.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Attest if due at `now` (stating debugging disabled), record the result, and return (the
    /// outcome if an attempt was made, when to call again).
    pub async fn tick(
        &mut self,
        rot: &dyn RootOfTrust,
        connection: &ServiceConnection,
        now: OffsetDateTime,
    ) -> (
        Option<Result<AttestationOutcome, AttestError>>,
        OffsetDateTime,
    ) {
        self.tick_with(rot, connection, now, DebugStatus::Disabled)
            .await
    }

    /// [`CertificateManager::tick`], the evidence stating `debug`.
    pub async fn tick_with(
        &mut self,
        rot: &dyn RootOfTrust,
        connection: &ServiceConnection,
        now: OffsetDateTime,
        debug: DebugStatus,
    ) -> (
        Option<Result<AttestationOutcome, AttestError>>,
        OffsetDateTime,
    ) {
        let due = self.next_attempt(now);
        if due > now {
            return (None, due);
        }
        let outcome = attest_with(rot, connection, debug).await;
        let next = match self.record(now, &outcome) {
            Ok(next) => next,
            Err(e) => return (Some(Err(e)), now + time::Duration::minutes(1)),
        };
        (Some(outcome), next)
    }
}

/// `text` split after its first PEM certificate block's end line: the leaf, then the rest.
fn split_leaf(text: &str) -> Option<(&str, &str)> {
    const END: &str = "-----END CERTIFICATE-----";
    let end = text.find(END)? + END.len();
    let rest = text.get(end..)?;
    let eol = if rest.starts_with("\r\n") {
        2
    } else {
        usize::from(rest.starts_with('\n'))
    };
    Some(text.split_at(end + eol))
}

/// Shared handle type for a root of trust.
pub type SharedRot = Arc<dyn RootOfTrust>;
