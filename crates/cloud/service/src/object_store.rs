//! The object store for image payloads (docs/design.md §4): immutable, content-addressed blobs
//! behind a trait, so a second replica (or an S3-compatible store later) sees exactly what the
//! first wrote. The database says which objects exist for the API; the store only holds bytes.
//!
//! Keys are `/`-separated segments of `a-z 0-9 -` (validated [`ObjectKey`]); image packages are
//! stored under `images/<hex SHA-256 of the whole package file>` ([`ObjectKey::image`]), so the
//! same key always means the same bytes and a put of an existing key is a no-op.
//!
//! [`LocalObjectStore`] (the default) keeps `DATA_DIR/objects/<key>` files, written through
//! `DATA_DIR/objects/tmp/` (same file system): the caller writes a staging file there, the store
//! fsyncs it and links it into place without ever overwriting (`link` + `unlink`, then fsync of
//! the directory), so a reader sees either no object or the whole object.
//!
//! [`s3::S3ObjectStore`] keeps them in an S3-compatible bucket (multipart uploads, ranged
//! reads, every read checked against the key's SHA-256); [`ObjectStoreConfig`] (the
//! `[object_store]` table of `ferro-service.toml`) chooses, [`open`] opens and checks.
//!
//! Writers follow one protocol (see `docs/service/storage.md`): stage the bytes, write the
//! database rows, [`ObjectStore::put_from_file`] just before commit, and delete the object again
//! if the put created it and the commit then fails. A crash between put and commit leaves an
//! unreferenced object (harmless, never served: every read goes through a database row).

pub mod s3;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};

/// A boxed future, so the trait is object-safe (`Arc<dyn ObjectStore>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Directory of the local object store inside the data directory.
pub const OBJECTS_DIR: &str = "objects";
/// Staging directory inside the local store's root.
pub const STAGING_DIR: &str = "tmp";
/// Staging files older than this are removed when the store is opened (left by a crash).
pub const STALE_STAGING_AGE: Duration = Duration::from_secs(24 * 3600);

/// Errors of the object store. Messages carry keys and local paths, never object contents.
#[derive(Debug, thiserror::Error)]
pub enum ObjectStoreError {
    /// No object under this key.
    #[error("object {0} not found")]
    NotFound(String),
    /// A key outside the allowed syntax.
    #[error("invalid object key: {0}")]
    InvalidKey(String),
    /// The requested byte range is not inside the object.
    #[error("range {start}..{end} is outside object {key} of {len} bytes")]
    BadRange {
        /// Key.
        key: String,
        /// First byte asked for.
        start: u64,
        /// One past the last byte asked for.
        end: u64,
        /// The object's length.
        len: u64,
    },
    /// The store cannot be reached or refused the request (S3: network, timeouts, 5xx,
    /// credentials); retrying later may work. Messages never carry credentials.
    #[error("object store unavailable ({op} {key}): {message}")]
    Unavailable {
        /// What was being done.
        op: &'static str,
        /// Key (or the store, for a check).
        key: String,
        /// What the server or the network said.
        message: String,
    },
    /// An object whose bytes do not hash to its key: refused, never served.
    #[error("object {0} does not match its SHA-256: refused")]
    Corrupt(String),
    /// The store's configuration or credentials are unusable.
    #[error("{0}")]
    Config(String),
    /// Local file system failure.
    #[error("object store I/O on {path}: {source}")]
    Io {
        /// What was being accessed.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl ObjectStoreError {
    /// Whether the store could not be reached (answered as `503 object_store_unavailable`).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ObjectStoreError::Unavailable { .. })
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ObjectStoreError + '_ {
    move |source| ObjectStoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The key of an object: 1 to 8 `/`-separated segments of `a-z 0-9 -`, each 1 to 64 bytes. No
/// dots, so a key never leaves the store's directory and never names a staging file.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Validate a key.
    pub fn new(key: &str) -> Result<ObjectKey, ObjectStoreError> {
        let segments: Vec<&str> = key.split('/').collect();
        let ok = (1..=8).contains(&segments.len())
            && segments.iter().all(|s| {
                (1..=64).contains(&s.len())
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
            && segments.first() != Some(&STAGING_DIR);
        if ok {
            Ok(ObjectKey(key.to_string()))
        } else {
            Err(ObjectStoreError::InvalidKey(
                key.chars().take(80).collect::<String>(),
            ))
        }
    }

    /// `images/<sha256 hex>`: an image package, addressed by the SHA-256 of its bytes.
    pub fn image(package_sha256: &[u8; 32]) -> ObjectKey {
        ObjectKey(format!("images/{}", hex::encode(package_sha256)))
    }

    /// The SHA-256 a content-addressed key (`images/<64 hex digits>`) names.
    pub fn content_sha256(&self) -> Option<[u8; 32]> {
        let hex = self.0.strip_prefix("images/")?;
        let mut d = [0u8; 32];
        (hex.len() == 64 && hex::decode_to_slice(hex, &mut d).is_ok()).then_some(d)
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectKey({})", self.0)
    }
}

/// What a put did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object is new: delete it again if the transaction that refers to it fails.
    Created,
    /// An object with this key (so these bytes) was already there; nothing changed.
    AlreadyExisted,
}

/// An object being read: its total length and a reader of the requested bytes.
pub struct ObjectReader {
    /// Total length of the object.
    pub len: u64,
    /// The bytes asked for (the range, or the whole object).
    pub range: Range<u64>,
    /// Reads exactly `range.end - range.start` bytes.
    pub reader: Pin<Box<dyn AsyncRead + Send>>,
}

impl fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectReader")
            .field("len", &self.len)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// An object store. Objects are immutable: a key, once written, always holds the same bytes.
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// `local` or `s3` (logs, `/readyz`).
    fn kind(&self) -> &'static str;

    /// Whether the store answers (S3: the bucket exists and the credentials may list it).
    fn check(&self) -> BoxFuture<'_, Result<(), ObjectStoreError>>;

    /// A local directory where callers create the staging files they then hand to
    /// [`ObjectStore::put_from_file`] (for the local store: on the same file system as the
    /// objects, so the put is a link, not a copy).
    fn staging_dir(&self) -> &Path;

    /// Store the complete file at `path` under `key`, atomically: readers see no object or the
    /// whole one. Never overwrites: if `key` exists, nothing changes
    /// ([`PutOutcome::AlreadyExisted`]). The caller still owns (and removes) `path`.
    fn put_from_file<'a>(
        &'a self,
        key: &'a ObjectKey,
        path: &'a Path,
    ) -> BoxFuture<'a, Result<PutOutcome, ObjectStoreError>>;

    /// Read `range` of the object (the whole object if `None`).
    fn get<'a>(
        &'a self,
        key: &'a ObjectKey,
        range: Option<Range<u64>>,
    ) -> BoxFuture<'a, Result<ObjectReader, ObjectStoreError>>;

    /// Whether the object exists.
    fn exists<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<bool, ObjectStoreError>>;

    /// Delete the object (no error if it is absent).
    fn delete<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<(), ObjectStoreError>>;
}

/// The `[object_store]` table of `ferro-service.toml`: `kind = "local"` (the default) or
/// `kind = "s3"` with the settings of [`s3::S3Config`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObjectStoreConfig {
    /// `DATA_DIR/objects`.
    #[default]
    Local,
    /// An S3-compatible bucket.
    S3(s3::S3Config),
}

/// Open the store `config` asks for (staging files under `DATA_DIR/objects/tmp` either way)
/// and check that it answers: an S3 store that cannot be reached, a missing bucket or refused
/// credentials stop the start with a message that says which.
pub async fn open(
    config: &ObjectStoreConfig,
    data_dir: &Path,
) -> Result<std::sync::Arc<dyn ObjectStore>, ObjectStoreError> {
    match config {
        ObjectStoreConfig::Local => {
            let dir = data_dir.to_path_buf();
            let store = blocking(move || LocalObjectStore::in_data_dir(&dir)).await?;
            Ok(std::sync::Arc::new(store))
        }
        ObjectStoreConfig::S3(c) => {
            if c.bucket.is_empty() {
                return Err(ObjectStoreError::Config(
                    "object_store.bucket must not be empty".into(),
                ));
            }
            let credentials = s3::S3Credentials::resolve(c)?;
            let objects = data_dir.join(OBJECTS_DIR);
            let staging = objects.join(STAGING_DIR);
            blocking(move || create_private_dir(&objects)).await?;
            let store = s3::S3ObjectStore::new(c, credentials, &staging)?;
            store.check().await.map_err(|e| {
                let detail = match &e {
                    ObjectStoreError::Unavailable { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                ObjectStoreError::Config(format!(
                    "the S3 object store ({}) is not usable: {detail}. Check object_store.endpoint, \
                     bucket, region and addressing in ferro-service.toml, and the credentials",
                    c.describe()
                ))
            })?;
            match store.remove_stale_staging(STALE_STAGING_AGE).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(objects = n, "removed stale S3 staging objects"),
                Err(e) => tracing::warn!(error = %e, "stale S3 staging objects stay"),
            }
            tracing::info!(store = %c.describe(), part_size = store.part_size(), "S3 object store");
            Ok(std::sync::Arc::new(store))
        }
    }
}

/// The default object store: files under a local directory (`DATA_DIR/objects`).
#[derive(Debug, Clone)]
pub struct LocalObjectStore {
    root: PathBuf,
    staging: PathBuf,
}

fn create_private_dir(dir: &Path) -> Result<(), ObjectStoreError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(io_err(dir))
}

fn sync_dir(dir: &Path) -> Result<(), ObjectStoreError> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ObjectStoreError> + Send + 'static,
) -> Result<T, ObjectStoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ObjectStoreError::Io {
            path: PathBuf::new(),
            source: io::Error::other(format!("object store task: {e}")),
        })?
}

/// Create (mode 0700) a local staging directory and remove files in it older than
/// [`STALE_STAGING_AGE`] (left by a crash; younger ones may belong to a live replica that
/// shares the directory).
fn open_staging_dir(staging: &Path) -> Result<(), ObjectStoreError> {
    create_private_dir(staging)?;
    if let Ok(entries) = std::fs::read_dir(staging) {
        let now = SystemTime::now();
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > STALE_STAGING_AGE);
            if old {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

impl LocalObjectStore {
    /// Open (creating, mode 0700) the store in `root`, and remove staging files older than
    /// [`STALE_STAGING_AGE`] (left by a crash; younger ones may belong to a live replica that
    /// shares the directory).
    pub fn open(root: &Path) -> Result<LocalObjectStore, ObjectStoreError> {
        let staging = root.join(STAGING_DIR);
        create_private_dir(root)?;
        open_staging_dir(&staging)?;
        Ok(LocalObjectStore {
            root: root.to_path_buf(),
            staging,
        })
    }

    /// The store of a data directory: `DATA_DIR/objects`.
    pub fn in_data_dir(data_dir: &Path) -> Result<LocalObjectStore, ObjectStoreError> {
        Self::open(&data_dir.join(OBJECTS_DIR))
    }

    /// The file of `key`.
    pub fn path_of(&self, key: &ObjectKey) -> PathBuf {
        // ObjectKey guarantees relative, dot-free segments: the path stays under `root`.
        let mut p = self.root.clone();
        for s in key.as_str().split('/') {
            p.push(s);
        }
        p
    }
}

impl ObjectStore for LocalObjectStore {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), ObjectStoreError>> {
        let root = self.root.clone();
        Box::pin(async move {
            tokio::fs::metadata(&root)
                .await
                .map(|_| ())
                .map_err(io_err(&root))
        })
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    fn put_from_file<'a>(
        &'a self,
        key: &'a ObjectKey,
        path: &'a Path,
    ) -> BoxFuture<'a, Result<PutOutcome, ObjectStoreError>> {
        let dest = self.path_of(key);
        let src = path.to_path_buf();
        Box::pin(blocking(move || {
            // The bytes reach the disk before the name does.
            std::fs::File::open(&src)
                .and_then(|f| f.sync_all())
                .map_err(io_err(&src))?;
            let parent = dest.parent().map(Path::to_path_buf).unwrap_or_default();
            create_private_dir(&parent)?;
            // link() never replaces an existing name: a concurrent put of the same key (same
            // bytes) wins or loses cleanly.
            match std::fs::hard_link(&src, &dest) {
                Ok(()) => {
                    sync_dir(&parent)?;
                    Ok(PutOutcome::Created)
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    Ok(PutOutcome::AlreadyExisted)
                }
                Err(e) => Err(io_err(&dest)(e)),
            }
        }))
    }

    fn get<'a>(
        &'a self,
        key: &'a ObjectKey,
        range: Option<Range<u64>>,
    ) -> BoxFuture<'a, Result<ObjectReader, ObjectStoreError>> {
        let path = self.path_of(key);
        Box::pin(async move {
            let mut file = tokio::fs::File::open(&path).await.map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    ObjectStoreError::NotFound(key.to_string())
                } else {
                    io_err(&path)(e)
                }
            })?;
            let len = file.metadata().await.map_err(io_err(&path))?.len();
            let range = range.unwrap_or(0..len);
            if range.start > range.end || range.end > len {
                return Err(ObjectStoreError::BadRange {
                    key: key.to_string(),
                    start: range.start,
                    end: range.end,
                    len,
                });
            }
            if range.start > 0 {
                file.seek(io::SeekFrom::Start(range.start))
                    .await
                    .map_err(io_err(&path))?;
            }
            let reader = Box::pin(file.take(range.end - range.start));
            Ok(ObjectReader { len, range, reader })
        })
    }

    fn exists<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<bool, ObjectStoreError>> {
        let path = self.path_of(key);
        Box::pin(async move {
            match tokio::fs::symlink_metadata(&path).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(io_err(&path)(e)),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<(), ObjectStoreError>> {
        let path = self.path_of(key);
        Box::pin(blocking(move || {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_err(&path)(e)),
            }
            if let Some(parent) = path.parent() {
                sync_dir(parent)?;
            }
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn staged(store: &LocalObjectStore, bytes: &[u8]) -> tempfile::TempPath {
        let mut f = tempfile::NamedTempFile::new_in(store.staging_dir()).unwrap();
        f.write_all(bytes).unwrap();
        f.into_temp_path()
    }

    #[test]
    fn keys_are_validated() {
        assert!(ObjectKey::new("images/abc-1").is_ok());
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "../x",
            "a/.b",
            "A",
            "tmp/x",
            "a b",
            "a/b/c/d/e/f/g/h/i",
        ] {
            assert!(ObjectKey::new(bad).is_err(), "{bad}");
        }
        assert_eq!(
            ObjectKey::image(&[0xab; 32]).as_str(),
            format!("images/{}", "ab".repeat(32))
        );
    }

    #[tokio::test]
    async fn put_get_range_exists_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalObjectStore::in_data_dir(dir.path()).unwrap();
        let key = ObjectKey::new("images/k").unwrap();
        assert!(!store.exists(&key).await.unwrap());
        assert!(matches!(
            store.get(&key, None).await,
            Err(ObjectStoreError::NotFound(_))
        ));
        let src = staged(&store, b"hello world");
        assert_eq!(
            store.put_from_file(&key, &src).await.unwrap(),
            PutOutcome::Created
        );
        // Never overwritten.
        let other = staged(&store, b"different");
        assert_eq!(
            store.put_from_file(&key, &other).await.unwrap(),
            PutOutcome::AlreadyExisted
        );
        drop((src, other));
        let mut r = store.get(&key, None).await.unwrap();
        let mut all = Vec::new();
        r.reader.read_to_end(&mut all).await.unwrap();
        assert_eq!((r.len, all.as_slice()), (11, &b"hello world"[..]));
        let mut r = store.get(&key, Some(6..9)).await.unwrap();
        let mut part = Vec::new();
        r.reader.read_to_end(&mut part).await.unwrap();
        assert_eq!(part, b"wor");
        assert!(matches!(
            store.get(&key, Some(5..12)).await,
            Err(ObjectStoreError::BadRange { len: 11, .. })
        ));
        assert!(store.exists(&key).await.unwrap());
        store.delete(&key).await.unwrap();
        store.delete(&key).await.unwrap();
        assert!(!store.exists(&key).await.unwrap());
        // Nothing left in staging.
        assert_eq!(std::fs::read_dir(store.staging_dir()).unwrap().count(), 0);
    }
}
