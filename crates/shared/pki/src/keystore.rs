//! The key store (docs/design.md §4): named P-256 keys behind a trait. The default backend keeps
//! PKCS#8 PEM files; a KMS or HSM backend implements the same trait. Private keys never leave a
//! store through this API: callers get a [`Signer`], never key bytes.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use ferro_signing::{KeyError, PublicKey, Signer, SoftwareSigningKey};
use uuid::Uuid;

use crate::error::KeyStoreError;

/// The longest key name, in bytes.
pub const MAX_KEY_NAME_LEN: usize = 200;
/// The most `/`-separated segments a key name may have.
pub const MAX_KEY_NAME_SEGMENTS: usize = 8;
/// The longest segment of a key name, in bytes.
pub const MAX_KEY_NAME_SEGMENT_LEN: usize = 64;

/// The name of a key in a [`KeyStore`]: `/`-separated segments of `a-z`, `0-9`, `-` and `_`
/// (each 1 to 64 bytes, at most 8 segments, 200 bytes in all). No dots, no upper case, no empty
/// segment: so a name is always a relative path that stays inside the store's directory, has one
/// spelling on case-insensitive file systems, and never names a hidden or temporary file.
///
/// Well-known names: see the constructors ([`KeyName::platform_root`], [`KeyName::tenant_ca`],
/// ...).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyName(String);

impl KeyName {
    /// Validate and wrap a key name.
    pub fn new(name: &str) -> Result<KeyName, KeyStoreError> {
        let invalid = |reason| KeyStoreError::InvalidKeyName {
            // Only a bounded, sanitised prefix is echoed.
            name: name
                .chars()
                .take(64)
                .map(|c| if c.is_ascii_graphic() { c } else { '?' })
                .collect(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("empty"));
        }
        if name.len() > MAX_KEY_NAME_LEN {
            return Err(invalid("longer than 200 bytes"));
        }
        let mut segments = 0;
        for segment in name.split('/') {
            segments += 1;
            if segment.is_empty() {
                return Err(invalid("empty segment (leading, trailing or double '/')"));
            }
            if segment.len() > MAX_KEY_NAME_SEGMENT_LEN {
                return Err(invalid("a segment is longer than 64 bytes"));
            }
            if !segment
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
            {
                return Err(invalid("segments may contain only a-z, 0-9, '-' and '_'"));
            }
        }
        if segments > MAX_KEY_NAME_SEGMENTS {
            return Err(invalid("more than 8 segments"));
        }
        Ok(KeyName(name.to_string()))
    }

    /// `platform/root`: the platform root key (signs the key list, the root certificate, the
    /// service TLS certificate).
    pub fn platform_root() -> KeyName {
        KeyName("platform/root".into())
    }

    /// `platform/os-release`: signs OS bundles published to OS feeds.
    pub fn platform_os_release() -> KeyName {
        KeyName("platform/os-release".into())
    }

    /// `platform/capability`: signs device capability files.
    pub fn platform_capability() -> KeyName {
        KeyName("platform/capability".into())
    }

    /// `platform/service-tls`: the service's TLS server key.
    pub fn platform_service_tls() -> KeyName {
        KeyName("platform/service-tls".into())
    }

    /// `platform/tenant-endorsement`: signs device ownership documents.
    pub fn platform_tenant_endorsement() -> KeyName {
        KeyName("platform/tenant-endorsement".into())
    }

    /// `tenants/<uuid>/image`: the tenant image key (production signature of uploaded images).
    pub fn tenant_image(tenant: Uuid) -> KeyName {
        KeyName(format!("tenants/{}/image", tenant.hyphenated()))
    }

    /// `tenants/<uuid>/metadata`: the tenant metadata key (update target sets).
    pub fn tenant_metadata(tenant: Uuid) -> KeyName {
        KeyName(format!("tenants/{}/metadata", tenant.hyphenated()))
    }

    /// `tenants/<uuid>/ca/<serial>`: the key of one tenant CA generation (serial in lowercase
    /// hex, as [`crate::TenantCa::serial_hex`]).
    pub fn tenant_ca(tenant: Uuid, serial_hex: &str) -> Result<KeyName, KeyStoreError> {
        KeyName::new(&format!("tenants/{}/ca/{serial_hex}", tenant.hyphenated()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl FromStr for KeyName {
    type Err = KeyStoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyName::new(s)
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyName({})", self.0)
    }
}

/// A signer handed out by a [`KeyStore`].
pub type SharedSigner = Arc<dyn Signer + Send + Sync>;

/// A store of named ECDSA P-256 keys. Implementations: [`FileKeyStore`]; a KMS or HSM later.
///
/// Contract: a key, once created, never changes (so callers may cache signers and public keys);
/// [`KeyStore::create`] never overwrites; no method returns private key material.
pub trait KeyStore: Send + Sync {
    /// Generate a new key under `name` and return its public key. Fails with
    /// [`KeyStoreError::AlreadyExists`] if the name is taken (also when two callers race).
    fn create(&self, name: &KeyName) -> Result<PublicKey, KeyStoreError>;

    /// A signer for the key `name` ([`KeyStoreError::NotFound`] if there is none).
    fn signer(&self, name: &KeyName) -> Result<SharedSigner, KeyStoreError>;

    /// The public key of `name`.
    fn public_key(&self, name: &KeyName) -> Result<PublicKey, KeyStoreError> {
        Ok(self.signer(name)?.public_key().clone())
    }

    /// Whether a key named `name` exists.
    fn exists(&self, name: &KeyName) -> Result<bool, KeyStoreError>;
}

/// The default key store: one PKCS#8 PEM file per key, `<dir>/<name>.pem`, mode 0600, in
/// directories of mode 0700. Files are created atomically and never overwritten
/// ([`SoftwareSigningKey::save_new`]). Loaded keys are cached in memory (keys never change).
///
/// `Debug` shows the directory only.
pub struct FileKeyStore {
    dir: PathBuf,
    cache: RwLock<HashMap<KeyName, Arc<SoftwareSigningKey>>>,
}

impl fmt::Debug for FileKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileKeyStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl FileKeyStore {
    /// Open (creating it with mode 0700 if missing) the key store in `dir`. On unix, refuses a
    /// directory that group or others may access, or that is not a directory.
    pub fn open(dir: &Path) -> Result<FileKeyStore, KeyStoreError> {
        create_private_dirs(dir)?;
        let meta = std::fs::symlink_metadata(dir).map_err(|source| KeyStoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(KeyStoreError::NotADirectory(dir.to_path_buf()));
        }
        check_private_dir(dir, &meta)?;
        Ok(FileKeyStore {
            dir: dir.to_path_buf(),
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, name: &KeyName) -> PathBuf {
        // KeyName guarantees relative, dot-free segments: the path stays under `dir`.
        let mut p = self.dir.clone();
        let mut segments = name.segments().peekable();
        while let Some(s) = segments.next() {
            if segments.peek().is_some() {
                p.push(s);
            } else {
                p.push(format!("{s}.pem"));
            }
        }
        p
    }

    fn cached(&self, name: &KeyName) -> Option<Arc<SoftwareSigningKey>> {
        self.cache
            .read()
            .ok()
            .and_then(|c| c.get(name).map(Arc::clone))
    }

    fn remember(&self, name: &KeyName, key: Arc<SoftwareSigningKey>) {
        if let Ok(mut c) = self.cache.write() {
            c.insert(name.clone(), key);
        }
    }

    fn load(&self, name: &KeyName) -> Result<Arc<SoftwareSigningKey>, KeyStoreError> {
        if let Some(k) = self.cached(name) {
            return Ok(k);
        }
        let path = self.path_of(name);
        let key = SoftwareSigningKey::load(&path).map_err(|e| match e {
            KeyError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                KeyStoreError::NotFound(name.clone())
            }
            other => KeyStoreError::Key {
                name: name.clone(),
                source: other,
            },
        })?;
        let key = Arc::new(key);
        self.remember(name, Arc::clone(&key));
        Ok(key)
    }
}

impl KeyStore for FileKeyStore {
    fn create(&self, name: &KeyName) -> Result<PublicKey, KeyStoreError> {
        let path = self.path_of(name);
        if let Some(parent) = path.parent() {
            create_private_dirs(parent)?;
        }
        let key = SoftwareSigningKey::generate();
        match key.save_new(&path) {
            Ok(()) => {}
            Err(KeyError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                return Err(KeyStoreError::AlreadyExists(name.clone()));
            }
            Err(source) => {
                return Err(KeyStoreError::Key {
                    name: name.clone(),
                    source,
                });
            }
        }
        let public = key.public_key().clone();
        self.remember(name, Arc::new(key));
        Ok(public)
    }

    fn signer(&self, name: &KeyName) -> Result<SharedSigner, KeyStoreError> {
        let key: SharedSigner = self.load(name)?;
        Ok(key)
    }

    fn public_key(&self, name: &KeyName) -> Result<PublicKey, KeyStoreError> {
        Ok(self.load(name)?.public_key().clone())
    }

    fn exists(&self, name: &KeyName) -> Result<bool, KeyStoreError> {
        if self.cached(name).is_some() {
            return Ok(true);
        }
        let path = self.path_of(name);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(KeyStoreError::Io { path, source }),
        }
    }
}

fn create_private_dirs(dir: &Path) -> Result<(), KeyStoreError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| KeyStoreError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

#[cfg(unix)]
fn check_private_dir(dir: &Path, meta: &std::fs::Metadata) -> Result<(), KeyStoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyStoreError::InsecureDirectory {
            path: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private_dir(_dir: &Path, _meta: &std::fs::Metadata) -> Result<(), KeyStoreError> {
    Ok(())
}
