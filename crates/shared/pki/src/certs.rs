//! X.509 certificates (RFC 5280), all ECDSA P-256 with SHA-256, built by rcgen and signed through
//! [`ferro_signing::Signer`] (so every CA key may live in an HSM). Profiles: `docs/pki.md`.

use std::fmt;
use std::net::IpAddr;

use ferro_signing::{DeviceId, KeyId, PublicKey, Signer, SoftwareSigningKey};
use p256::elliptic_curve::rand_core::{OsRng, RngCore};
use p256::pkcs8::LineEnding;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime, UtcOffset};
use uuid::Uuid;
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

use crate::error::CertError;
use crate::keystore::{KeyName, KeyStore};
use crate::rcgen_signer::{RcgenSigner, SubjectKey};

/// Validity of the platform root certificate (20 years).
pub const PLATFORM_ROOT_VALIDITY: Duration = Duration::days(20 * 365 + 5);
/// Default validity of the service TLS certificate (1 year).
pub const SERVICE_TLS_VALIDITY: Duration = Duration::days(365);
/// Validity of a tenant CA certificate (2 years, docs/design.md §2).
pub const TENANT_CA_VALIDITY: Duration = Duration::days(730);
/// Default validity of a device certificate (24 hours, docs/design.md §3.4).
pub const DEVICE_CERT_VALIDITY: Duration = Duration::hours(24);
/// Validity of a proof-of-possession (verification) certificate (1 day; brokers check it once,
/// when the CA is registered).
pub const PROOF_OF_POSSESSION_VALIDITY: Duration = Duration::days(1);
/// A new tenant CA must be made when no CA of the tenant has more than this much life left.
pub const TENANT_CA_ROTATION_MARGIN: Duration = Duration::days(60);
/// Device certificates are issued by a newer CA once the older one has less than this much
/// life left: between the rotation margin and this cutover, operators can register the new CA
/// with their brokers (`download-chain` already includes it).
pub const TENANT_CA_CUTOVER_MARGIN: Duration = Duration::days(30);
/// Most names a service TLS certificate may carry.
pub const MAX_SERVICE_NAMES: usize = 32;
/// Longest proof-of-possession verification code (the X.520 upper bound of a common name).
pub const MAX_VERIFICATION_CODE_LEN: usize = 64;
/// The subject CN prefix of tenant CA certificates; the tenant UUID follows.
pub const TENANT_CA_CN_PREFIX: &str = "Ferrosphere tenant CA ";
/// The longest organisation name (X.520 `ub-organization-name`).
const MAX_ORG_LEN: usize = 64;

/// A certificate issued or read by this crate, with the fields callers display and index by.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    serial: Vec<u8>,
    spki: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("serial", &self.serial_hex())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("sha256", &self.sha256_thumbprint())
            .finish()
    }
}

impl Certificate {
    /// Parse the fields this type carries from a DER certificate (no signature check).
    pub fn from_der(der: &[u8]) -> Result<Certificate, CertError> {
        let cert = parse(der, "X.509")?;
        Ok(Certificate::from_parsed(der, &cert))
    }

    fn from_parsed(der: &[u8], cert: &X509Certificate<'_>) -> Certificate {
        let tbs = &cert.tbs_certificate;
        Certificate {
            der: der.to_vec(),
            serial: tbs.raw_serial().to_vec(),
            spki: tbs.subject_pki.raw.to_vec(),
            not_before: tbs.validity.not_before.to_datetime(),
            not_after: tbs.validity.not_after.to_datetime(),
        }
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The PEM encoding (`CERTIFICATE`, LF line endings).
    pub fn pem(&self) -> String {
        pem_encode(&self.der)
    }

    /// The serial number (DER integer content bytes, big-endian).
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// The serial number in lowercase hex.
    pub fn serial_hex(&self) -> String {
        hex::encode(&self.serial)
    }

    /// The subject's DER SubjectPublicKeyInfo.
    pub fn subject_public_key_info(&self) -> &[u8] {
        &self.spki
    }

    /// notBefore (UTC).
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// notAfter (UTC).
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Whether `at` lies in `[not_before, not_after)`.
    pub fn is_valid_at(&self, at: OffsetDateTime) -> bool {
        self.not_before <= at && at < self.not_after
    }

    /// SHA-1 of the DER, uppercase hex (the thumbprint Azure Sphere and Azure IoT Hub show;
    /// for display and matching only, never as a security check).
    pub fn sha1_thumbprint(&self) -> String {
        hex::encode_upper(sha1::Sha1::digest(&self.der))
    }

    /// SHA-256 of the DER, uppercase hex.
    pub fn sha256_thumbprint(&self) -> String {
        hex::encode_upper(Sha256::digest(&self.der))
    }
}

/// PEM-encode one DER certificate.
pub(crate) fn pem_encode(der: &[u8]) -> String {
    // Encoding into a String cannot fail for any input length we produce; an empty string
    // would fail every later parse rather than pass silently.
    p256::pkcs8::der::pem::encode_string("CERTIFICATE", LineEnding::LF, der).unwrap_or_default()
}

fn parse<'a>(der: &'a [u8], expected: &'static str) -> Result<X509Certificate<'a>, CertError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(CertError::InvalidCertificate {
            expected,
            reason: "trailing bytes after the certificate",
        }),
        Err(_) => Err(CertError::InvalidCertificate {
            expected,
            reason: "not a DER X.509 certificate",
        }),
    }
}

/// Verify that `der` is signed by `issuer` (ECDSA P-256 / SHA-256 over the TBSCertificate).
pub fn verify_certificate_signature(der: &[u8], issuer: &PublicKey) -> Result<(), CertError> {
    let cert = parse(der, "X.509")?;
    if !signature_ok(&cert, issuer) {
        return Err(CertError::SelfCheckFailed(issuer.key_id()));
    }
    Ok(())
}

fn signature_ok(cert: &X509Certificate<'_>, issuer: &PublicKey) -> bool {
    cert.signature_algorithm.algorithm == x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256
        && issuer.verify_der_signature(
            cert.tbs_certificate.as_ref(),
            cert.signature_value.data.as_ref(),
        )
}

/// RFC 7093 method 1 key identifier: the first 160 bits of SHA-256 over the DER
/// SubjectPublicKeyInfo (what rcgen itself computes when it has a crypto backend).
fn key_identifier(key: &PublicKey) -> Vec<u8> {
    Sha256::digest(key.to_spki_der())
        .get(..20)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// A fresh 16-byte positive serial with 126 random bits (RFC 5280: positive, at most 20 bytes;
/// the top bits are fixed so the DER integer is always exactly 16 bytes).
fn random_serial() -> [u8; 16] {
    let mut s = [0u8; 16];
    OsRng.fill_bytes(&mut s);
    s[0] = (s[0] & 0x3f) | 0x40;
    s
}

/// `t` in UTC, truncated to whole seconds (X.509 times have no fractions), within X.509's range.
fn x509_time(t: OffsetDateTime) -> Result<OffsetDateTime, CertError> {
    let t = t.to_offset(UtcOffset::UTC);
    if !(1950..=9999).contains(&t.year()) {
        return Err(CertError::InvalidValidity("outside the years 1950 to 9999"));
    }
    t.replace_nanosecond(0)
        .map_err(|_| CertError::InvalidValidity("cannot truncate to seconds"))
}

fn end_of(not_before: OffsetDateTime, validity: Duration) -> Result<OffsetDateTime, CertError> {
    if validity < Duration::seconds(1) {
        return Err(CertError::InvalidValidity(
            "validity must be at least one second",
        ));
    }
    let end = not_before
        .checked_add(validity)
        .ok_or(CertError::InvalidValidity("the end of validity overflows"))?;
    x509_time(end)
}

fn params(
    dn: DistinguishedName,
    serial: &[u8],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    subject: &PublicKey,
) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn;
    p.serial_number = Some(SerialNumber::from_slice(serial));
    p.not_before = not_before;
    p.not_after = not_after;
    p.key_identifier_method = KeyIdMethod::PreSpecified(key_identifier(subject));
    p
}

/// What signing under a CA certificate needs of it, read from its DER once: the subject as rcgen
/// writes it into the issued certificate's issuer field (rebuilt attribute by attribute: only CN
/// and O, all our CAs use), the subject key identifier (the
/// authority key identifier of what it signs) and the subject's DER (which the issued
/// certificate's issuer field must equal, byte for byte).
#[derive(Clone, Debug, PartialEq, Eq)]
struct IssuerData {
    name: DistinguishedName,
    ski: Vec<u8>,
    subject_der: Vec<u8>,
}

impl IssuerData {
    fn from_der(ca_der: &[u8]) -> Result<IssuerData, CertError> {
        const WHAT: &str = "issuer";
        let bad = |reason| CertError::InvalidCertificate {
            expected: WHAT,
            reason,
        };
        let cert = parse(ca_der, WHAT)?;
        let mut name = DistinguishedName::new();
        for attr in cert.tbs_certificate.subject.iter_attributes() {
            let value = attr
                .as_str()
                .map_err(|_| bad("a subject attribute is not a string"))?;
            let ty = if *attr.attr_type() == x509_parser::oid_registry::OID_X509_COMMON_NAME {
                DnType::CommonName
            } else if *attr.attr_type() == x509_parser::oid_registry::OID_X509_ORGANIZATION_NAME {
                DnType::OrganizationName
            } else {
                return Err(bad("the subject has attributes other than CN and O"));
            };
            name.push(ty, value);
        }
        let ski = cert
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            })
            .ok_or(bad("no subject key identifier"))?;
        Ok(IssuerData {
            name,
            ski,
            subject_der: cert.tbs_certificate.subject.as_raw().to_vec(),
        })
    }

    /// The rcgen issuer that signs with `key` under this CA's name and key identifier.
    fn issuer<'k>(&self, key: RcgenSigner<'k>) -> Issuer<'static, RcgenSigner<'k>> {
        let mut p = CertificateParams::default();
        p.distinguished_name = self.name.clone();
        p.key_identifier_method = KeyIdMethod::PreSpecified(self.ski.clone());
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Issuer::new(p, key)
    }
}

/// Sign `params` (self-signed when `issuer_der` is `None`), then check that the result parses,
/// names its issuer exactly as the issuer certificate's subject, and verifies with the signer's
/// public key before returning it.
fn sign(
    params: &CertificateParams,
    subject: &PublicKey,
    signer: &dyn Signer,
    issuer_der: Option<&[u8]>,
) -> Result<Certificate, CertError> {
    let issuer = issuer_der.map(IssuerData::from_der).transpose()?;
    sign_checked(params, subject, signer, issuer.as_ref(), SelfCheck::Full)
}

/// How much of a freshly issued certificate [`issue_device_certificate_checked`] checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfCheck {
    /// Everything in [`SelfCheck::Structure`], and the signature verifies with the issuer key
    /// (an ECDSA verify): a faulty signer yields [`CertError::SelfCheckFailed`].
    Full,
    /// The certificate parses as exactly one DER X.509 certificate, names the CA's subject as
    /// issuer, certifies exactly the subject key, is signed with ecdsa-with-SHA256 and carries a
    /// well-formed ECDSA signature (r and s in range); the signature itself is not verified.
    /// For high-volume issuance whose relying parties verify the signature anyway (device
    /// certificates: `ferro-attest` checks the leaf against the chain); see docs/attestation.md.
    Structure,
}

fn sign_checked(
    params: &CertificateParams,
    subject: &PublicKey,
    signer: &dyn Signer,
    issuer: Option<&IssuerData>,
    check: SelfCheck,
) -> Result<Certificate, CertError> {
    let key = RcgenSigner::new(signer);
    let result = match issuer {
        None => params.self_signed(&key).map_err(|e| (e, key.take_error())),
        Some(data) => {
            let issuer = data.issuer(key);
            params
                .signed_by(&SubjectKey::new(subject), &issuer)
                .map_err(|e| (e, issuer.key().take_error()))
        }
    };
    let cert = match result {
        Ok(c) => c,
        Err((_, Some(sign_error))) => return Err(CertError::Sign(sign_error)),
        Err((e, None)) => return Err(CertError::Encoding(e.to_string())),
    };
    let der = cert.der().to_vec();
    let parsed = parse(&der, "issued")?;
    if let Some(data) = issuer
        && parsed.tbs_certificate.issuer.as_raw() != data.subject_der.as_slice()
    {
        return Err(CertError::Encoding(
            "the issued certificate's issuer name differs from the CA's subject".into(),
        ));
    }
    if parsed.tbs_certificate.subject_pki.raw != subject.to_spki_der().as_slice() {
        return Err(CertError::Encoding(
            "the issued certificate certifies another key than the subject's".into(),
        ));
    }
    let well_formed = parsed.signature_algorithm.algorithm
        == x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256
        && p256::ecdsa::DerSignature::try_from(parsed.signature_value.data.as_ref())
            .is_ok_and(|s| p256::ecdsa::Signature::try_from(s).is_ok());
    let verified = match check {
        SelfCheck::Full => signature_ok(&parsed, signer.public_key()),
        SelfCheck::Structure => true,
    };
    if !well_formed || !verified {
        return Err(CertError::SelfCheckFailed(signer.key_id()));
    }
    Ok(Certificate::from_parsed(&der, &parsed))
}

fn dn(entries: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (t, v) in entries {
        dn.push(t.clone(), *v);
    }
    dn
}

/// The platform root CA certificate: self-signed by the platform root key, 20 years, CA with
/// pathLen 0 (it certifies the service TLS key directly), keyCertSign + cRLSign.
/// Subject: `CN=Ferrosphere platform root <first 16 hex digits of the key ID>, O=Ferrosphere`.
pub fn issue_platform_root_certificate(
    root: &dyn Signer,
    not_before: OffsetDateTime,
) -> Result<Certificate, CertError> {
    let nb = x509_time(not_before)?;
    let na = end_of(nb, PLATFORM_ROOT_VALIDITY)?;
    let kid = root.key_id().to_string();
    let cn = format!(
        "Ferrosphere platform root {}",
        kid.get(..16).unwrap_or(&kid)
    );
    let mut p = params(
        dn(&[
            (DnType::CommonName, &cn),
            (DnType::OrganizationName, "Ferrosphere"),
        ]),
        &random_serial(),
        nb,
        na,
        root.public_key(),
    );
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    sign(&p, root.public_key(), root, None)
}

/// A validated service name: a DNS name or an IP address.
fn service_san(name: &str) -> Result<SanType, CertError> {
    let invalid = |reason| CertError::InvalidServiceName {
        name: name
            .chars()
            .take(64)
            .map(|c| if c.is_ascii_graphic() { c } else { '?' })
            .collect(),
        reason,
    };
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if name.is_empty() || name.len() > 253 {
        return Err(invalid("a DNS name is 1 to 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(invalid("each DNS label is 1 to 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid(
                "DNS names may contain only a-z, 0-9, '-' and '.' (lower case; no wildcards)",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid("a DNS label cannot start or end with '-'"));
        }
    }
    let ia5 = name
        .to_string()
        .try_into()
        .map_err(|_| invalid("not an IA5 string"))?;
    Ok(SanType::DnsName(ia5))
}

/// The service TLS certificate: issued by the platform root (so devices and the CLI, which hold
/// the platform root certificate, can authenticate the service), for `names` (DNS names or IP
/// addresses, 1 to 32; the first is also the CN), serverAuth, keyUsage digitalSignature, CA:false.
/// notAfter is clamped to the root's.
pub fn issue_service_tls_certificate(
    root: &dyn Signer,
    root_certificate: &Certificate,
    service_key: &PublicKey,
    names: &[&str],
    not_before: OffsetDateTime,
    validity: Duration,
) -> Result<Certificate, CertError> {
    if names.is_empty() || names.len() > MAX_SERVICE_NAMES {
        return Err(CertError::InvalidServiceName {
            name: String::new(),
            reason: "give 1 to 32 DNS names or IP addresses",
        });
    }
    let sans = names
        .iter()
        .map(|n| service_san(n))
        .collect::<Result<Vec<_>, _>>()?;
    let issuer_key_matches = root.public_key().to_spki_der() == root_certificate.spki;
    if !issuer_key_matches {
        return Err(CertError::InvalidCertificate {
            expected: "platform root",
            reason: "its public key is not the signer's",
        });
    }
    let (nb, na) = validity_under(root_certificate, not_before, validity)?;
    let cn = names.first().copied().unwrap_or_default();
    let mut p = params(
        dn(&[
            (DnType::CommonName, cn),
            (DnType::OrganizationName, "Ferrosphere"),
        ]),
        &random_serial(),
        nb,
        na,
        service_key,
    );
    p.subject_alt_names = sans;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    sign(&p, service_key, root, Some(root_certificate.der()))
}

/// `[not_before, not_before + validity)` in whole seconds, clamped to the issuer's notAfter;
/// refused if the issuer is not valid at `not_before`.
fn validity_under(
    issuer: &Certificate,
    not_before: OffsetDateTime,
    validity: Duration,
) -> Result<(OffsetDateTime, OffsetDateTime), CertError> {
    let nb = x509_time(not_before)?;
    if !issuer.is_valid_at(nb) {
        return Err(CertError::CaNotValid {
            serial: issuer.serial_hex(),
            at: nb,
            not_before: issuer.not_before,
            not_after: issuer.not_after,
        });
    }
    let na = end_of(nb, validity)?.min(issuer.not_after);
    Ok((nb, na))
}

/// One generation of a tenant's CA: a self-signed certificate and the name of its key in the
/// key store (`tenants/<tenant>/ca/<serial hex>`).
#[derive(Clone, PartialEq, Eq)]
pub struct TenantCa {
    tenant_id: Uuid,
    key_name: KeyName,
    certificate: Certificate,
    /// Read from the certificate once: what each certificate it issues needs.
    issuer: IssuerData,
    /// Encoded once: every trusted attestation answer carries the chain.
    pem: String,
}

impl fmt::Debug for TenantCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantCa")
            .field("tenant_id", &self.tenant_id)
            .field("key_name", &self.key_name)
            .field("certificate", &self.certificate)
            .finish()
    }
}

impl TenantCa {
    /// Read a stored tenant CA certificate (e.g. from the service database). Checks that it is
    /// one of ours: self-issued and self-signed, CA with pathLen 0, CN naming the tenant. The
    /// key name follows from tenant and serial.
    pub fn from_der(der: &[u8]) -> Result<TenantCa, CertError> {
        const WHAT: &str = "tenant CA";
        let bad = |reason| CertError::InvalidCertificate {
            expected: WHAT,
            reason,
        };
        let cert = parse(der, WHAT)?;
        let tbs = &cert.tbs_certificate;
        if tbs.subject.as_raw() != tbs.issuer.as_raw() {
            return Err(bad("not self-issued"));
        }
        match cert.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca && bc.value.path_len_constraint == Some(0) => {}
            _ => return Err(bad("not a CA with pathLen 0")),
        }
        let cn = tbs
            .subject
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .ok_or(bad("no common name"))?;
        let tenant_id = cn
            .strip_prefix(TENANT_CA_CN_PREFIX)
            .and_then(|u| Uuid::try_parse(u).ok())
            .ok_or(bad("the common name does not name a tenant"))?;
        let public = PublicKey::from_spki_der(tbs.subject_pki.raw)
            .map_err(|_| bad("not an ECDSA P-256 key"))?;
        if !signature_ok(&cert, &public) {
            return Err(bad("the self-signature does not verify"));
        }
        let certificate = Certificate::from_parsed(der, &cert);
        let key_name = KeyName::tenant_ca(tenant_id, &certificate.serial_hex())
            .map_err(|_| bad("the serial does not make a key name"))?;
        let issuer = IssuerData::from_der(der)?;
        let pem = certificate.pem();
        Ok(TenantCa {
            tenant_id,
            key_name,
            certificate,
            issuer,
            pem,
        })
    }

    /// The tenant.
    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }

    /// The name of the CA's key in the key store.
    pub fn key_name(&self) -> &KeyName {
        &self.key_name
    }

    /// The certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// DER of the certificate.
    pub fn der(&self) -> &[u8] {
        self.certificate.der()
    }

    /// PEM of the certificate.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Serial (lowercase hex).
    pub fn serial_hex(&self) -> String {
        self.certificate.serial_hex()
    }

    /// SHA-1 thumbprint, uppercase hex (display only).
    pub fn sha1_thumbprint(&self) -> String {
        self.certificate.sha1_thumbprint()
    }

    /// SHA-256 thumbprint, uppercase hex.
    pub fn sha256_thumbprint(&self) -> String {
        self.certificate.sha256_thumbprint()
    }

    /// notBefore.
    pub fn not_before(&self) -> OffsetDateTime {
        self.certificate.not_before
    }

    /// notAfter.
    pub fn not_after(&self) -> OffsetDateTime {
        self.certificate.not_after
    }

    /// The CA's signer, after checking that the store's key is the certificate's key.
    fn signer(&self, store: &dyn KeyStore) -> Result<crate::SharedSigner, CertError> {
        let signer = store.signer(&self.key_name)?;
        if signer.public_key().to_spki_der() != self.certificate.spki {
            return Err(CertError::CaKeyMismatch(self.key_name.clone()));
        }
        Ok(signer)
    }
}

/// The organisation name for a tenant CA: the tenant's name without control characters,
/// whitespace runs collapsed, at most 64 characters; `Ferrosphere tenant` if nothing is left.
pub fn sanitize_organization(name: &str) -> String {
    let cleaned: String = name
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_ORG_LEN)
        .collect();
    let cleaned = cleaned.trim().to_string();
    if cleaned.is_empty() {
        "Ferrosphere tenant".to_string()
    } else {
        cleaned
    }
}

/// Make a new tenant CA: a fresh key `tenants/<tenant>/ca/<serial>` in `store`, and a
/// self-signed certificate (2 years, CA pathLen 0, keyCertSign + cRLSign, subject
/// `CN=Ferrosphere tenant CA <tenant uuid>, O=<sanitised tenant name>`).
///
/// Self-signed on purpose (as Azure Sphere's tenant CAs are): a broker that trusts tenant A's CA
/// must never accept tenant B's devices, which a common root above both would allow.
pub fn create_tenant_ca(
    store: &dyn KeyStore,
    tenant_id: Uuid,
    tenant_name: &str,
    not_before: OffsetDateTime,
) -> Result<TenantCa, CertError> {
    let nb = x509_time(not_before)?;
    let na = end_of(nb, TENANT_CA_VALIDITY)?;
    let serial = random_serial();
    let key_name = KeyName::tenant_ca(tenant_id, &hex::encode(serial))?;
    let public = store.create(&key_name)?;
    let signer = store.signer(&key_name)?;
    let cn = format!("{TENANT_CA_CN_PREFIX}{}", tenant_id.hyphenated());
    let org = sanitize_organization(tenant_name);
    let mut p = params(
        dn(&[(DnType::CommonName, &cn), (DnType::OrganizationName, &org)]),
        &serial,
        nb,
        na,
        &public,
    );
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let certificate = sign(&p, &public, signer.as_ref(), None)?;
    let issuer = IssuerData::from_der(certificate.der())?;
    let pem = certificate.pem();
    Ok(TenantCa {
        tenant_id,
        key_name,
        certificate,
        issuer,
        pem,
    })
}

/// A device certificate: issued by the tenant CA, subject `CN=<device ID>, O=<tenant UUID>`,
/// clientAuth, keyUsage digitalSignature, CA:false, a fresh random serial, valid from
/// `not_before` for `validity` (normally [`DEVICE_CERT_VALIDITY`]) but never beyond the CA.
///
/// Refuses a device key whose SHA-512 is not `device_id`, a CA of another tenant, a CA not valid
/// at `not_before`, and a store key that is not the CA certificate's key.
pub fn issue_device_certificate(
    ca: &TenantCa,
    store: &dyn KeyStore,
    device_id: &DeviceId,
    tenant_id: Uuid,
    device_key: &PublicKey,
    not_before: OffsetDateTime,
    validity: Duration,
) -> Result<Certificate, CertError> {
    issue_device_certificate_checked(
        ca,
        store,
        device_id,
        tenant_id,
        device_key,
        not_before,
        validity,
        SelfCheck::Full,
    )
}

/// [`issue_device_certificate`] with the self-check of the result chosen by the caller
/// ([`SelfCheck::Structure`] saves the ECDSA verify of our own fresh signature).
#[allow(clippy::too_many_arguments)]
pub fn issue_device_certificate_checked(
    ca: &TenantCa,
    store: &dyn KeyStore,
    device_id: &DeviceId,
    tenant_id: Uuid,
    device_key: &PublicKey,
    not_before: OffsetDateTime,
    validity: Duration,
    check: SelfCheck,
) -> Result<Certificate, CertError> {
    if ca.tenant_id != tenant_id {
        return Err(CertError::TenantMismatch {
            ca_tenant: ca.tenant_id,
            requested: tenant_id,
        });
    }
    let computed = DeviceId::from_public_key(device_key);
    if !bool::from(computed.as_bytes().ct_eq(device_id.as_bytes())) {
        return Err(CertError::DeviceKeyMismatch(Box::new(*device_id)));
    }
    let (nb, na) = validity_under(&ca.certificate, not_before, validity)?;
    let signer = ca.signer(store)?;
    let device = device_id.to_string();
    let tenant = tenant_id.hyphenated().to_string();
    let mut p = params(
        dn(&[
            (DnType::CommonName, &device),
            (DnType::OrganizationName, &tenant),
        ]),
        &random_serial(),
        nb,
        na,
        device_key,
    );
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.use_authority_key_identifier_extension = true;
    sign_checked(&p, device_key, signer.as_ref(), Some(&ca.issuer), check)
}

/// Check a proof-of-possession verification code: 1 to 64 characters of `A-Z a-z 0-9 - _ .`.
pub fn validate_verification_code(code: &str) -> Result<(), CertError> {
    if code.is_empty() {
        return Err(CertError::InvalidVerificationCode("empty"));
    }
    if code.len() > MAX_VERIFICATION_CODE_LEN {
        return Err(CertError::InvalidVerificationCode(
            "longer than 64 characters",
        ));
    }
    if !code
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(CertError::InvalidVerificationCode(
            "only A-Z, a-z, 0-9, '-', '_' and '.' are allowed",
        ));
    }
    Ok(())
}

/// A proof-of-possession ("verification") certificate for registering the tenant CA with a cloud
/// broker (Azure IoT Hub, AWS IoT): subject `CN=<verification code>`, issued by the tenant CA,
/// keyUsage digitalSignature, CA:false, valid for [`PROOF_OF_POSSESSION_VALIDITY`] (clamped to
/// the CA). Its subject key is a throw-away key: only the CA's signature matters.
pub fn issue_proof_of_possession_certificate(
    ca: &TenantCa,
    store: &dyn KeyStore,
    verification_code: &str,
    not_before: OffsetDateTime,
) -> Result<Certificate, CertError> {
    validate_verification_code(verification_code)?;
    let (nb, na) = validity_under(&ca.certificate, not_before, PROOF_OF_POSSESSION_VALIDITY)?;
    let signer = ca.signer(store)?;
    let throwaway = SoftwareSigningKey::generate();
    let subject = throwaway.public_key().clone();
    drop(throwaway);
    let mut p = params(
        dn(&[(DnType::CommonName, verification_code)]),
        &random_serial(),
        nb,
        na,
        &subject,
    );
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.use_authority_key_identifier_extension = true;
    sign_checked(
        &p,
        &subject,
        signer.as_ref(),
        Some(&ca.issuer),
        SelfCheck::Full,
    )
}

/// Whether the tenant needs a new CA now: true when none of `cas` is valid at `now` with more
/// than [`TENANT_CA_ROTATION_MARGIN`] left (including when there is none). The service calls
/// this periodically and on CA listing, and creates the next CA with [`create_tenant_ca`].
pub fn tenant_ca_rotation_due(cas: &[TenantCa], now: OffsetDateTime) -> bool {
    !cas.iter().any(|ca| {
        ca.certificate.is_valid_at(now) && ca.not_after() - now > TENANT_CA_ROTATION_MARGIN
    })
}

/// The CA that issues device certificates at `now`: among the CAs valid at `now`, the oldest
/// (earliest notAfter) that still has more than [`TENANT_CA_CUTOVER_MARGIN`] left; if none has,
/// the one that lives longest. `None` if no CA is valid.
///
/// So after a rotation the old CA keeps issuing until 30 days before its expiry, giving
/// operators that window to register the new CA (from [`tenant_ca_chain_pem`]) with brokers.
pub fn current_tenant_ca(cas: &[TenantCa], now: OffsetDateTime) -> Option<&TenantCa> {
    let valid = || cas.iter().filter(move |ca| ca.certificate.is_valid_at(now));
    valid()
        .filter(|ca| ca.not_after() - now > TENANT_CA_CUTOVER_MARGIN)
        .min_by_key(|ca| (ca.not_after(), ca.certificate.serial()))
        .or_else(|| valid().max_by_key(|ca| (ca.not_after(), ca.certificate.serial())))
}

/// The CA certificates a broker should trust at `now` (`ferro ca-certificate download-chain`):
/// the current CA first, then every other CA of the tenant not yet expired, latest notAfter
/// first; as one PEM bundle. Empty if no CA is usable.
pub fn tenant_ca_chain_pem(cas: &[TenantCa], now: OffsetDateTime) -> String {
    let current = current_tenant_ca(cas, now);
    let mut others: Vec<&TenantCa> = cas
        .iter()
        .filter(|ca| now < ca.not_after())
        .filter(|ca| current.is_none_or(|c| c.certificate.serial() != ca.certificate.serial()))
        .collect();
    others.sort_by_key(|ca| std::cmp::Reverse((ca.not_after(), ca.certificate.serial())));
    others.dedup_by_key(|ca| ca.certificate.serial());
    current
        .into_iter()
        .chain(others)
        .map(TenantCa::pem)
        .collect()
}

/// The key ID of a certificate's subject key, if it is a P-256 key.
pub fn certificate_key_id(certificate: &Certificate) -> Option<KeyId> {
    PublicKey::from_spki_der(&certificate.spki)
        .ok()
        .map(|k| k.key_id())
}

/// What a device certificate names, read without checking its signature ([`DeviceCertificate::parse`]):
/// enough to find the tenant CA that must have issued it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceCertificate {
    /// The device (subject CN).
    pub device_id: DeviceId,
    /// The tenant (subject O).
    pub tenant_id: Uuid,
    /// The certified key (its SHA-512 is the device ID).
    pub public_key: PublicKey,
    /// Validity start.
    pub not_before: OffsetDateTime,
    /// Validity end.
    pub not_after: OffsetDateTime,
}

impl DeviceCertificate {
    /// Read the subject of a certificate shaped as [`issue_device_certificate`] makes them:
    /// `CN=<device ID>, O=<tenant UUID>`, not a CA, and a key whose SHA-512 is the device ID.
    /// Nothing here is trusted until [`verify_device_certificate`] checked the issuer.
    pub fn parse(der: &[u8]) -> Result<DeviceCertificate, CertError> {
        const WHAT: &str = "device";
        let bad = |reason| CertError::InvalidCertificate {
            expected: WHAT,
            reason,
        };
        let cert = parse(der, WHAT)?;
        let tbs = &cert.tbs_certificate;
        if let Ok(Some(bc)) = cert.basic_constraints()
            && bc.value.ca
        {
            return Err(bad("a CA certificate is not a device certificate"));
        }
        let cn =
            single_attribute(tbs.subject.iter_common_name()).ok_or(bad("not one common name"))?;
        let org =
            single_attribute(tbs.subject.iter_organization()).ok_or(bad("not one organization"))?;
        let device_id: DeviceId = cn
            .parse()
            .map_err(|_| bad("the common name is not a device ID"))?;
        let tenant_id =
            Uuid::try_parse(&org).map_err(|_| bad("the organization is not a tenant ID"))?;
        let public_key = PublicKey::from_spki_der(tbs.subject_pki.raw)
            .map_err(|_| bad("not an ECDSA P-256 key"))?;
        let computed = DeviceId::from_public_key(&public_key);
        if !bool::from(computed.as_bytes().ct_eq(device_id.as_bytes())) {
            return Err(CertError::DeviceKeyMismatch(Box::new(device_id)));
        }
        Ok(DeviceCertificate {
            device_id,
            tenant_id,
            public_key,
            not_before: tbs.validity.not_before.to_datetime(),
            not_after: tbs.validity.not_after.to_datetime(),
        })
    }
}

/// The value of the only attribute an iterator yields (`None` for zero, several or non-text).
fn single_attribute<'a>(
    mut it: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
) -> Option<String> {
    let first = it.next()?;
    if it.next().is_some() {
        return None;
    }
    first.as_str().ok().map(str::to_string)
}

/// A device certificate issued by one of its tenant's CAs and valid at the time it was checked.
/// Only [`verify_device_certificate`] makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedDeviceCertificate {
    cert: DeviceCertificate,
    ca_serial: String,
}

impl VerifiedDeviceCertificate {
    /// What it certifies.
    pub fn certificate(&self) -> &DeviceCertificate {
        &self.cert
    }
    /// The serial (hex) of the tenant CA that issued it.
    pub fn ca_serial(&self) -> &str {
        &self.ca_serial
    }
}

/// Verify a device certificate against its tenant's CAs: one of `cas` (all of the tenant the
/// certificate names, else refused) signed it, and it is valid at `now`. The TLS layer has
/// already checked that the peer holds the certified key.
pub fn verify_device_certificate(
    der: &[u8],
    cas: &[TenantCa],
    now: OffsetDateTime,
) -> Result<VerifiedDeviceCertificate, CertError> {
    let bad = |reason| CertError::InvalidCertificate {
        expected: "device",
        reason,
    };
    let cert = DeviceCertificate::parse(der)?;
    if now < cert.not_before || now > cert.not_after {
        return Err(bad("not valid now (expired or not yet valid)"));
    }
    let parsed = parse(der, "device")?;
    let issuer = parsed.tbs_certificate.issuer.as_raw();
    for ca in cas {
        if ca.tenant_id != cert.tenant_id {
            continue;
        }
        let ca_cert = parse(ca.der(), "tenant CA")?;
        if ca_cert.tbs_certificate.subject.as_raw() != issuer {
            continue;
        }
        let Ok(ca_key) = PublicKey::from_spki_der(ca.certificate.subject_public_key_info()) else {
            continue;
        };
        if signature_ok(&parsed, &ca_key) {
            if !ca.certificate.is_valid_at(now) {
                return Err(bad("the issuing tenant CA is not valid now"));
            }
            return Ok(VerifiedDeviceCertificate {
                cert,
                ca_serial: ca.serial_hex(),
            });
        }
    }
    Err(bad("not issued by a CA of the tenant it names"))
}
