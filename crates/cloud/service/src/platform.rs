//! The platform's keys and certificates in the data directory (docs/design.md §2, docs/pki.md):
//! the key store, the platform root certificate, the service TLS certificate (renewed at start
//! when it nears expiry) and the root-signed key list.
//!
//! Layout (`DIR` = the data directory, mode 0700):
//!
//! ```text
//! DIR/keys/                      FileKeyStore (0700 dirs, 0600 PKCS#8 files)
//!   platform/{root,os-release,capability,service-tls}.pem
//!   tenants/<uuid>/{image,metadata}.pem, tenants/<uuid>/ca/<serial>.pem
//! DIR/pki/platform-root.pem      platform root certificate (public)
//! DIR/pki/service-tls.pem        service TLS certificate, leaf only (public; renewed in place)
//! DIR/pki/key-list.cose          root-signed key list, COSE_Sign1 bytes (public)
//! ```
//!
//! Certificates live in files next to the keys rather than in the database because they are
//! made from, and only useful with, the keys of this key store: a replica needs both or neither.

use ferro_pki::{
    Certificate, FileKeyStore, KeyList, KeyName, KeyStore, PlatformKeyRole, SharedSigner,
};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// Directory of the key store inside the data directory.
pub const KEYS_DIR: &str = "keys";
/// Directory of the platform's public certificates and key list.
pub const PKI_DIR: &str = "pki";
/// The platform root certificate file (PEM).
pub const ROOT_CERT_FILE: &str = "platform-root.pem";
/// The service TLS certificate file (PEM, leaf only).
pub const SERVICE_CERT_FILE: &str = "service-tls.pem";
/// The key list file (COSE_Sign1 bytes).
pub const KEY_LIST_FILE: &str = "key-list.cose";
/// The service TLS certificate is renewed at start when it expires within this.
pub const SERVICE_CERT_RENEWAL_MARGIN: Duration = Duration::days(30);
/// Names of the service TLS certificate when none are configured.
pub const DEFAULT_SERVICE_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// Errors making or loading the platform's keys and certificates.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The key store failed.
    #[error(transparent)]
    KeyStore(#[from] ferro_pki::KeyStoreError),
    /// Issuing or reading a certificate failed.
    #[error(transparent)]
    Cert(#[from] ferro_pki::CertError),
    /// Making the key list failed.
    #[error("key list: {0}")]
    KeyList(#[from] ferro_pki::DocumentError),
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// A file holds something else than expected.
    #[error("{0}: {1}")]
    Invalid(PathBuf, &'static str),
    /// The attestation nonce key.
    #[error(transparent)]
    NonceKey(#[from] crate::nonce::NonceKeyError),
    /// Leftovers of an earlier, failed `init`.
    #[error(
        "{0} already holds platform keys; this data directory was partly initialised. Remove \
         {0} and the `pki` directory next to it, then run init again"
    )]
    KeysExist(PathBuf),
}

/// The key store as shared state (any [`KeyStore`] backend).
#[derive(Clone)]
pub struct Keys(pub Arc<dyn KeyStore>);

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl std::ops::Deref for Keys {
    type Target = dyn KeyStore;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

/// The platform's keys and public documents, loaded once at start.
#[derive(Clone, Debug)]
pub struct Platform {
    /// The key store.
    pub keys: Keys,
    /// The platform root certificate.
    pub root: Certificate,
    /// The root-signed key list (COSE bytes).
    pub key_list: Arc<Vec<u8>>,
    /// The secret attestation nonces are authenticated with (`crate::nonce`).
    pub nonce_key: crate::nonce::NonceKey,
}

/// SHA-256 fingerprint of a DER certificate as `openssl x509 -fingerprint -sha256` prints it
/// (uppercase hex pairs joined by colons).
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn pki_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(PKI_DIR)
}

/// Certificates and the key list are public: mode 0644.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PlatformError> {
    ferro_files::write_atomic(path, bytes, ferro_files::Mode::PUBLIC)
        .map_err(|e| PlatformError::Io(path.to_path_buf(), e))
}

fn read_pem_certificate(path: &Path) -> Result<Certificate, PlatformError> {
    let text = std::fs::read_to_string(path).map_err(|e| PlatformError::Io(path.into(), e))?;
    let der = pem_body(&text).ok_or(PlatformError::Invalid(
        path.into(),
        "not a PEM CERTIFICATE block",
    ))?;
    Ok(Certificate::from_der(&der)?)
}

/// The DER of the first `CERTIFICATE` block of PEM text.
pub fn pem_body(text: &str) -> Option<Vec<u8>> {
    use base64ct::{Base64, Encoding};
    let start = text.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = start + text[start..].find("-----END CERTIFICATE-----")?;
    let b64: String = text[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    Base64::decode_vec(&b64).ok()
}

fn open_store(data_dir: &Path) -> Result<FileKeyStore, PlatformError> {
    Ok(FileKeyStore::open(&data_dir.join(KEYS_DIR))?)
}

/// What [`init`] made.
#[derive(Debug)]
pub struct PlatformInit {
    /// The platform root certificate.
    pub root: Certificate,
    /// The service TLS certificate.
    pub service: Certificate,
}

/// Create the platform keys, the root certificate, the service TLS certificate for `names` and
/// the key list (version 1) in `data_dir`. Refuses a key store that already holds platform keys.
pub fn init(data_dir: &Path, names: &[String]) -> Result<PlatformInit, PlatformError> {
    let store = open_store(data_dir)?;
    if store.exists(&KeyName::platform_root())? {
        return Err(PlatformError::KeysExist(data_dir.join(KEYS_DIR)));
    }
    let now = OffsetDateTime::now_utc();
    store.create(&KeyName::platform_root())?;
    let os = store.create(&KeyName::platform_os_release())?;
    let capability = store.create(&KeyName::platform_capability())?;
    let tls = store.create(&KeyName::platform_service_tls())?;
    let endorsement = store.create(&KeyName::platform_tenant_endorsement())?;
    let root_signer = store.signer(&KeyName::platform_root())?;
    let root = ferro_pki::issue_platform_root_certificate(root_signer.as_ref(), now)?;
    let service = issue_service(&root_signer, &root, &tls, names, now)?;
    let key_list = KeyList {
        version: 1,
        issued_at: now,
        keys: BTreeMap::from([
            (PlatformKeyRole::OsRelease, vec![os]),
            (PlatformKeyRole::Capability, vec![capability]),
            (PlatformKeyRole::ServiceTls, vec![tls]),
            (PlatformKeyRole::TenantEndorsement, vec![endorsement]),
        ]),
    }
    .sign(root_signer.as_ref())?;
    let dir = pki_dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(|e| PlatformError::Io(dir.clone(), e))?;
    write_atomic(&dir.join(ROOT_CERT_FILE), root.pem().as_bytes())?;
    write_atomic(&dir.join(SERVICE_CERT_FILE), service.pem().as_bytes())?;
    write_atomic(&dir.join(KEY_LIST_FILE), &key_list)?;
    Ok(PlatformInit { root, service })
}

fn issue_service(
    root_signer: &SharedSigner,
    root: &Certificate,
    tls: &ferro_signing::PublicKey,
    names: &[String],
    now: OffsetDateTime,
) -> Result<Certificate, PlatformError> {
    let names: Vec<&str> = if names.is_empty() {
        DEFAULT_SERVICE_NAMES.to_vec()
    } else {
        names.iter().map(String::as_str).collect()
    };
    Ok(ferro_pki::issue_service_tls_certificate(
        root_signer.as_ref(),
        root,
        tls,
        &names,
        now,
        ferro_pki::SERVICE_TLS_VALIDITY,
    )?)
}

/// Load the platform of an initialised data directory.
pub fn load(data_dir: &Path) -> Result<Platform, PlatformError> {
    let store = open_store(data_dir)?;
    let dir = pki_dir(data_dir);
    let root_path = dir.join(ROOT_CERT_FILE);
    let root = read_pem_certificate(&root_path)?;
    let root_key = store.public_key(&KeyName::platform_root())?;
    if root_key.to_spki_der() != root.subject_public_key_info() {
        return Err(PlatformError::Invalid(
            root_path,
            "is not the certificate of the key store's platform root key",
        ));
    }
    let kl_path = dir.join(KEY_LIST_FILE);
    let key_list = std::fs::read(&kl_path).map_err(|e| PlatformError::Io(kl_path.clone(), e))?;
    ferro_pki::verify_key_list(&key_list, &root_key)
        .map_err(|_| PlatformError::Invalid(kl_path, "does not verify with the platform root"))?;
    // Made here rather than by `init` alone, so data directories from before it get one.
    let nonce_key = crate::nonce::NonceKey::load_or_create(&data_dir.join(KEYS_DIR))?;
    Ok(Platform {
        keys: Keys(Arc::new(store)),
        root,
        key_list: Arc::new(key_list),
        nonce_key,
    })
}

/// The service's TLS chain `[leaf, platform root]` and signer. Renews the leaf (same key, same
/// names, or `names` if given) when it expires within [`SERVICE_CERT_RENEWAL_MARGIN`] or is not
/// for the key store's service TLS key.
pub fn service_tls(
    data_dir: &Path,
    platform: &Platform,
    names: &[String],
) -> Result<(Vec<Certificate>, SharedSigner), PlatformError> {
    let path = pki_dir(data_dir).join(SERVICE_CERT_FILE);
    let signer = platform.keys.signer(&KeyName::platform_service_tls())?;
    let now = OffsetDateTime::now_utc();
    let current = read_pem_certificate(&path).ok();
    let usable = current.as_ref().is_some_and(|c| {
        c.subject_public_key_info() == signer.public_key().to_spki_der()
            && c.is_valid_at(now)
            && c.not_after() - now > SERVICE_CERT_RENEWAL_MARGIN
            && ferro_pki::verify_certificate_signature(
                c.der(),
                &platform
                    .keys
                    .public_key(&KeyName::platform_root())
                    .unwrap_or_else(|_| signer.public_key().clone()),
            )
            .is_ok()
    });
    let leaf = match current {
        Some(c) if usable => c,
        _ => {
            let root_signer = platform.keys.signer(&KeyName::platform_root())?;
            let leaf = issue_service(
                &root_signer,
                &platform.root,
                signer.public_key(),
                names,
                now,
            )?;
            write_atomic(&path, leaf.pem().as_bytes())?;
            tracing::info!(not_after = %leaf.not_after(), "renewed the service TLS certificate");
            leaf
        }
    };
    Ok((vec![leaf, platform.root.clone()], signer))
}
