//! The S3-compatible backend of the object store (docs/service/storage.md, "S3"): image
//! packages in a bucket of AWS S3 or any S3-compatible server, through Apache Arrow's
//! `object_store` crate (why that crate: the workspace `Cargo.toml`).
//!
//! - **Puts never overwrite.** An object of at most one part is one `PUT` with
//!   `If-None-Match: *`. A larger one goes up in parts (a multipart upload, one part in memory
//!   at a time) to a staging key `tmp/<uuid>`, and is then copied server-side to its key by a
//!   multipart copy completed with `If-None-Match: *`; the staging key is deleted. So two
//!   replicas storing the same package at once: one creates it, the other finds it
//!   ([`PutOutcome::AlreadyExisted`]), and the write protocol's clean-up never deletes an object
//!   another request committed.
//! - **Gets come down by ranges.** A `HEAD` gives the length and the ETag; the bytes come in
//!   ranged `GET`s of at most one part each, every one with `If-Match` on that ETag, streamed
//!   (one network chunk in memory at a time).
//! - **What is read back is checked.** The key is the SHA-256 of the bytes
//!   ([`ObjectKey::content_sha256`]; this store holds no other keys). A whole-object read is
//!   hashed as it streams and its last chunk is held back until the hash matches: a corrupted
//!   object is never served complete, the reader fails with [`ObjectStoreError::Corrupt`]. A
//!   partial read (`Range`) is served only from an object version (ETag and Last-Modified) this
//!   process has hashed whole; the first partial read of a version hashes it first.
//! - **Credentials** come from the environment or a file, never from `ferro-service.toml`; they
//!   are never logged, and `Debug` of everything here shows no secret.

use super::{BoxFuture, ObjectKey, ObjectReader, ObjectStore, ObjectStoreError, PutOutcome};
use ::object_store::aws::{AmazonS3, AmazonS3Builder, S3CopyIfNotExists};
use ::object_store::path::Path as S3Path;
use ::object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectMeta, ObjectStore as _,
    ObjectStoreExt as _, PutMode, PutOptions, PutPayload, RetryConfig,
};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Default part size: of uploads, and of the ranged GETs of downloads.
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;
/// S3's smallest part (all but the last part of a multipart upload).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's largest single part, and so (one part copy) the largest object this store takes.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// Object versions whose whole-object hash this process remembers (for partial reads).
const VERIFIED_CAPACITY: usize = 4096;
/// Environment variables of the default credential source (the AWS tools' names).
pub const ENV_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// See [`ENV_ACCESS_KEY_ID`].
pub const ENV_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// See [`ENV_ACCESS_KEY_ID`] (optional: temporary credentials).
pub const ENV_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";

/// How requests name the bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Addressing {
    /// `https://endpoint/bucket/key` (MinIO, Ceph and most self-hosted servers).
    Path,
    /// `https://bucket.endpoint/key` (AWS S3's default).
    VirtualHosted,
}

/// The `[object_store]` table of `ferro-service.toml` when `kind = "s3"`. Holds no secret:
/// the credentials come from the environment or from `credentials_file`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Region (`us-east-1` when absent; most self-hosted servers ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `https://host:port` of an S3-compatible server; absent: AWS S3 of the region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `path` or `virtual_hosted`; absent: `path` with an `endpoint`, else `virtual_hosted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addressing: Option<Addressing>,
    /// Allow an `http://` endpoint (plain HTTP: requests are signed but not encrypted). Off by
    /// default: an `http://` endpoint is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_http: bool,
    /// A file holding the credentials (TOML: `access_key_id`, `secret_access_key`, optionally
    /// `session_token`), readable by its owner only; absent: the environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// Part size of uploads and downloads in bytes (default 8 MiB, 5 MiB to 5 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_size_bytes: Option<u64>,
    /// Longest one request to the store may take, in seconds (default 30), retries included
    /// (a few, within this time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

impl S3Config {
    /// A configuration for `bucket` with every default.
    pub fn new(bucket: &str) -> S3Config {
        S3Config {
            bucket: bucket.to_string(),
            region: None,
            endpoint: None,
            addressing: None,
            allow_http: false,
            credentials_file: None,
            part_size_bytes: None,
            timeout_secs: None,
        }
    }

    /// Check the settings a file may get wrong (the part size is checked for S3's limits
    /// here; code may choose smaller parts for a test server).
    pub fn validate(&self) -> Result<(), String> {
        if self.bucket.is_empty() {
            return Err("object_store.bucket must not be empty".into());
        }
        if let Some(p) = self.part_size_bytes
            && !(MIN_PART_SIZE..=MAX_OBJECT_SIZE).contains(&p)
        {
            return Err(format!(
                "object_store.part_size_bytes must be {MIN_PART_SIZE} to {MAX_OBJECT_SIZE} (S3's part limits)"
            ));
        }
        if self.timeout_secs == Some(0) {
            return Err("object_store.timeout_secs must be at least 1".into());
        }
        Ok(())
    }

    fn part_size(&self) -> u64 {
        self.part_size_bytes.unwrap_or(DEFAULT_PART_SIZE).max(1)
    }

    /// Where requests go, for messages (never carries credentials).
    pub fn describe(&self) -> String {
        format!(
            "bucket {} at {}",
            self.bucket,
            self.endpoint.as_deref().unwrap_or("AWS S3")
        )
    }
}

/// A secret string: no `Display`, `Debug` redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// S3 credentials (access key ID, secret access key, optional session token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Credentials {
    /// The access key ID (not secret: it names the key).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// A session token of temporary credentials.
    pub session_token: Option<Secret>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
}

impl S3Credentials {
    /// From `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and (optional) `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Result<S3Credentials, ObjectStoreError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (var(ENV_ACCESS_KEY_ID), var(ENV_SECRET_ACCESS_KEY)) {
            (Some(id), Some(secret)) => Ok(S3Credentials {
                access_key_id: id,
                secret_access_key: Secret(secret),
                session_token: var(ENV_SESSION_TOKEN).map(Secret),
            }),
            _ => Err(ObjectStoreError::Config(format!(
                "S3 credentials: set {ENV_ACCESS_KEY_ID} and {ENV_SECRET_ACCESS_KEY} in the \
                 service's environment, or name a credentials file (object_store.credentials_file)"
            ))),
        }
    }

    /// From a TOML file (`access_key_id`, `secret_access_key`, optional `session_token`) that
    /// only its owner may read. Errors name the file and the line, never its contents.
    pub fn from_file(path: &Path) -> Result<S3Credentials, ObjectStoreError> {
        let bad = |what: String| {
            ObjectStoreError::Config(format!("S3 credentials file {}: {what}", path.display()))
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| bad(e.to_string()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(bad(format!(
                    "is readable by others (mode {:o}); make it readable by its owner only \
                     (chmod 600)",
                    mode & 0o777
                )));
            }
        }
        let file: CredentialsFile = toml::from_str(&text).map_err(|e| {
            // toml's messages quote the offending text, which may be the secret: say where only.
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            bad(format!(
                "not a TOML table of access_key_id, secret_access_key and optionally \
                 session_token (strings){}",
                line.map(|l| format!(", see line {l}")).unwrap_or_default()
            ))
        })?;
        Ok(S3Credentials {
            access_key_id: file.access_key_id,
            secret_access_key: Secret(file.secret_access_key),
            session_token: file.session_token.map(Secret),
        })
    }

    /// What the configuration asks for: the file if named, else the environment.
    pub fn resolve(config: &S3Config) -> Result<S3Credentials, ObjectStoreError> {
        match &config.credentials_file {
            Some(path) => Self::from_file(path),
            None => Self::from_env(),
        }
    }
}

/// Counters of what the store held and did, so that tests assert what happened.
#[derive(Debug, Default)]
pub struct S3Stats {
    /// Largest buffer of an upload (one part).
    pub largest_upload_buffer: AtomicUsize,
    /// Largest chunk a download held (the network's chunks, at most one held back).
    pub largest_download_chunk: AtomicUsize,
    /// Parts uploaded.
    pub parts_uploaded: AtomicU64,
    /// Ranged GETs sent.
    pub ranged_gets: AtomicU64,
    /// Whole objects hashed to allow partial reads.
    pub verifications: AtomicU64,
}

fn record_max(counter: &AtomicUsize, value: usize) {
    counter.fetch_max(value, Ordering::Relaxed);
}

/// The same version of an object: same ETag and Last-Modified.
fn same_version(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    a.e_tag.is_some()
        && a.e_tag == b.e_tag
        && a.last_modified == b.last_modified
        && a.size == b.size
}

struct Inner {
    s3: AmazonS3,
    where_: String,
    part_size: u64,
    /// Object versions hashed whole and found right, by key.
    verified: Mutex<HashMap<String, ObjectMeta>>,
    stats: S3Stats,
}

/// The S3-compatible object store. `Debug` shows the bucket and endpoint, never credentials.
#[derive(Clone)]
pub struct S3ObjectStore {
    inner: Arc<Inner>,
    staging: PathBuf,
}

impl fmt::Debug for S3ObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the AmazonS3 client: what its Debug shows is that crate's choice, not ours.
        f.debug_struct("S3ObjectStore")
            .field("store", &self.inner.where_)
            .field("part_size", &self.inner.part_size)
            .field("staging", &self.staging)
            .finish_non_exhaustive()
    }
}

fn s3_path(key: &ObjectKey) -> S3Path {
    S3Path::from(key.as_str())
}

/// An `object_store` error as ours. Messages name the operation, the key and what the server
/// or the network said; `object_store` never puts credentials in them.
fn unavailable(op: &'static str, key: &str, e: ::object_store::Error) -> ObjectStoreError {
    match e {
        ::object_store::Error::NotFound { .. } => ObjectStoreError::NotFound(key.to_string()),
        other => ObjectStoreError::Unavailable {
            op,
            key: key.to_string(),
            message: other.to_string(),
        },
    }
}

fn content_digest(key: &ObjectKey) -> Result<[u8; 32], ObjectStoreError> {
    key.content_sha256().ok_or_else(|| {
        ObjectStoreError::InvalidKey(format!(
            "{key}: the S3 store holds content-addressed objects only (images/<sha256>)"
        ))
    })
}

impl S3ObjectStore {
    /// Connect to the bucket of `config` with `credentials` (nothing is sent yet: see
    /// [`S3ObjectStore::check`]). `staging` is the local directory for callers' staging files.
    pub fn new(
        config: &S3Config,
        credentials: S3Credentials,
        staging: &Path,
    ) -> Result<S3ObjectStore, ObjectStoreError> {
        // object_store's HTTP client is reqwest on rustls without a built-in crypto provider:
        // the process's provider is ring, as for every other TLS client here.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let timeout = Duration::from_secs(config.timeout_secs.unwrap_or(30).max(1));
        let client = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5).min(timeout))
            .with_timeout(timeout)
            .with_allow_http(config.allow_http);
        if config
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"))
            && !config.allow_http
        {
            return Err(ObjectStoreError::Config(format!(
                "object_store.endpoint {} is plain HTTP: use https, or set allow_http = true \
                 (requests are then signed but not encrypted)",
                config.endpoint.as_deref().unwrap_or_default()
            )));
        }
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: timeout,
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
        };
        let addressing = config.addressing.unwrap_or(if config.endpoint.is_some() {
            Addressing::Path
        } else {
            Addressing::VirtualHosted
        });
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(config.region.as_deref().unwrap_or("us-east-1"))
            .with_access_key_id(&credentials.access_key_id)
            .with_secret_access_key(&credentials.secret_access_key.0)
            .with_virtual_hosted_style_request(addressing == Addressing::VirtualHosted)
            .with_client_options(client)
            .with_retry(retry)
            // Large puts: a server-side multipart copy completed with If-None-Match.
            .with_copy_if_not_exists(S3CopyIfNotExists::Multipart);
        if let Some(token) = &credentials.session_token {
            b = b.with_token(&token.0);
        }
        if let Some(endpoint) = &config.endpoint {
            b = b.with_endpoint(endpoint);
        }
        let s3 = b.build().map_err(|e| {
            ObjectStoreError::Config(format!("S3 store {}: {e}", config.describe()))
        })?;
        super::open_staging_dir(staging)?;
        Ok(S3ObjectStore {
            inner: Arc::new(Inner {
                s3,
                where_: config.describe(),
                part_size: config.part_size(),
                verified: Mutex::new(HashMap::new()),
                stats: S3Stats::default(),
            }),
            staging: staging.to_path_buf(),
        })
    }

    /// What the store held and did (tests).
    pub fn stats(&self) -> &S3Stats {
        &self.inner.stats
    }

    /// The part size.
    pub fn part_size(&self) -> u64 {
        self.inner.part_size
    }

    /// Delete staging objects (`tmp/...`) older than `max_age`, left by a process that died
    /// between a multipart upload and its copy. Younger ones may belong to a live replica.
    pub async fn remove_stale_staging(&self, max_age: Duration) -> Result<usize, ObjectStoreError> {
        let prefix = S3Path::from(super::STAGING_DIR);
        let mut list = self.inner.s3.list(Some(&prefix));
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        while let Some(meta) = list.next().await {
            let meta = meta.map_err(|e| unavailable("list", super::STAGING_DIR, e))?;
            let modified = std::time::UNIX_EPOCH
                + Duration::from_secs(u64::try_from(meta.last_modified.timestamp()).unwrap_or(0));
            if now.duration_since(modified).is_ok_and(|age| age > max_age) {
                self.inner
                    .s3
                    .delete(&meta.location)
                    .await
                    .map_err(|e| unavailable("delete", meta.location.as_ref(), e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn put_large(
        &self,
        key: &ObjectKey,
        file: &mut tokio::fs::File,
        len: u64,
        digest: &[u8; 32],
    ) -> Result<PutOutcome, ObjectStoreError> {
        let inner = &self.inner;
        let staging = S3Path::from(format!(
            "{}/{}",
            super::STAGING_DIR,
            uuid::Uuid::new_v4().simple()
        ));
        let skey = staging.to_string();
        let mut upload = inner
            .s3
            .put_multipart(&staging)
            .await
            .map_err(|e| unavailable("multipart upload", &skey, e))?;
        let uploaded: Result<(), ObjectStoreError> = async {
            let mut hasher = Sha256::new();
            let mut left = len;
            while left > 0 {
                let n = left.min(inner.part_size);
                let mut buf = vec![0u8; usize::try_from(n).unwrap_or(usize::MAX)];
                file.read_exact(&mut buf)
                    .await
                    .map_err(|e| super::io_err(&self.staging)(e))?;
                record_max(&inner.stats.largest_upload_buffer, buf.len());
                hasher.update(&buf);
                upload
                    .put_part(PutPayload::from(Bytes::from(buf)))
                    .await
                    .map_err(|e| unavailable("upload part", &skey, e))?;
                inner.stats.parts_uploaded.fetch_add(1, Ordering::Relaxed);
                left -= n;
            }
            if hasher.finalize()[..] != digest[..] {
                return Err(ObjectStoreError::InvalidKey(format!(
                    "{key}: the staged file does not hash to its key"
                )));
            }
            upload
                .complete()
                .await
                .map_err(|e| unavailable("complete upload", &skey, e))?;
            Ok(())
        }
        .await;
        if let Err(e) = uploaded {
            let _ = upload.abort().await;
            return Err(e);
        }
        let copied = inner.s3.copy_if_not_exists(&staging, &s3_path(key)).await;
        if let Err(e) = inner.s3.delete(&staging).await {
            tracing::warn!(staging = %skey, error = %e, "staging object stays until the next start");
        }
        match copied {
            Ok(()) => Ok(PutOutcome::Created),
            Err(::object_store::Error::AlreadyExists { .. }) => Ok(PutOutcome::AlreadyExisted),
            Err(e) => Err(unavailable("copy", key.as_str(), e)),
        }
    }

    /// Hash the whole object (version `meta`) and remember it as right.
    async fn verify_whole(
        &self,
        key: &ObjectKey,
        meta: &ObjectMeta,
    ) -> Result<(), ObjectStoreError> {
        let digest = content_digest(key)?;
        self.inner
            .stats
            .verifications
            .fetch_add(1, Ordering::Relaxed);
        let mut stream = ranged_stream(
            self.inner.clone(),
            key.clone(),
            meta.clone(),
            0..meta.size,
            Some(digest),
        );
        while let Some(chunk) = stream.next().await {
            chunk?;
        }
        Ok(())
    }
}

/// The bytes `range` of version `meta` of `key`, as ranged GETs of at most one part each with
/// `If-Match` on the version's ETag. With `verify`, `range` is the whole object: it is hashed as
/// it streams, the last chunk is held back until the hash is right, and a right object's
/// version is remembered.
fn ranged_stream(
    inner: Arc<Inner>,
    key: ObjectKey,
    meta: ObjectMeta,
    range: Range<u64>,
    verify: Option<[u8; 32]>,
) -> BoxStream<'static, Result<Bytes, ObjectStoreError>> {
    struct St {
        inner: Arc<Inner>,
        key: ObjectKey,
        meta: ObjectMeta,
        next: u64,
        end: u64,
        cur: Option<BoxStream<'static, ::object_store::Result<Bytes>>>,
        hasher: Option<(Sha256, [u8; 32])>,
        held: Option<Bytes>,
        done: bool,
    }
    let st = St {
        inner,
        key,
        meta,
        next: range.start,
        end: range.end,
        cur: None,
        hasher: verify.map(|d| (Sha256::new(), d)),
        held: None,
        done: false,
    };
    futures_util::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            if let Some(cur) = st.cur.as_mut() {
                match cur.next().await {
                    Some(Ok(chunk)) => {
                        if chunk.is_empty() {
                            continue;
                        }
                        record_max(&st.inner.stats.largest_download_chunk, chunk.len());
                        match st.hasher.as_mut() {
                            Some((h, _)) => {
                                h.update(&chunk);
                                // Hold the newest chunk back; hand over the one before.
                                if let Some(prev) = st.held.replace(chunk) {
                                    return Some((Ok(prev), st));
                                }
                                continue;
                            }
                            None => return Some((Ok(chunk), st)),
                        }
                    }
                    Some(Err(e)) => {
                        st.done = true;
                        let e = unavailable("read", st.key.as_str(), e);
                        return Some((Err(e), st));
                    }
                    None => {
                        st.cur = None;
                        continue;
                    }
                }
            }
            if st.next < st.end {
                let part_end = st.end.min(st.next.saturating_add(st.inner.part_size));
                let opts = GetOptions {
                    range: Some(GetRange::Bounded(st.next..part_end)),
                    if_match: st.meta.e_tag.clone(),
                    if_unmodified_since: Some(st.meta.last_modified),
                    ..GetOptions::default()
                };
                st.inner.stats.ranged_gets.fetch_add(1, Ordering::Relaxed);
                match st.inner.s3.get_opts(&s3_path(&st.key), opts).await {
                    Ok(r) => {
                        if r.range != (st.next..part_end) || r.meta.size != st.meta.size {
                            st.done = true;
                            let e = ObjectStoreError::Unavailable {
                                op: "read",
                                key: st.key.to_string(),
                                message: format!(
                                    "asked for bytes {}..{part_end} of {}, got {:?} of {}",
                                    st.next, st.meta.size, r.range, r.meta.size
                                ),
                            };
                            return Some((Err(e), st));
                        }
                        st.cur = Some(r.into_stream());
                        st.next = part_end;
                        continue;
                    }
                    Err(::object_store::Error::Precondition { .. }) => {
                        st.done = true;
                        st.inner
                            .verified
                            .lock()
                            .map(|mut v| v.remove(st.key.as_str()))
                            .ok();
                        let e = ObjectStoreError::Unavailable {
                            op: "read",
                            key: st.key.to_string(),
                            message: "the object changed while it was read".into(),
                        };
                        return Some((Err(e), st));
                    }
                    Err(e) => {
                        st.done = true;
                        let e = unavailable("read", st.key.as_str(), e);
                        return Some((Err(e), st));
                    }
                }
            }
            // Everything read.
            st.done = true;
            if let Some((h, expected)) = st.hasher.take() {
                if h.finalize()[..] != expected[..] {
                    tracing::error!(object = %st.key, store = %st.inner.where_,
                        "object does not match its SHA-256: refused");
                    st.inner
                        .verified
                        .lock()
                        .map(|mut v| v.remove(st.key.as_str()))
                        .ok();
                    return Some((Err(ObjectStoreError::Corrupt(st.key.to_string())), st));
                }
                if let Ok(mut v) = st.inner.verified.lock() {
                    if v.len() >= VERIFIED_CAPACITY {
                        v.clear();
                    }
                    v.insert(st.key.to_string(), st.meta.clone());
                }
                return st.held.take().map(|b| (Ok(b), st));
            }
            return None;
        }
    })
    .boxed()
}

impl ObjectStore for S3ObjectStore {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    fn put_from_file<'a>(
        &'a self,
        key: &'a ObjectKey,
        path: &'a Path,
    ) -> BoxFuture<'a, Result<PutOutcome, ObjectStoreError>> {
        Box::pin(async move {
            let digest = content_digest(key)?;
            let mut file = tokio::fs::File::open(path)
                .await
                .map_err(super::io_err(path))?;
            let len = file.metadata().await.map_err(super::io_err(path))?.len();
            if len > MAX_OBJECT_SIZE {
                return Err(ObjectStoreError::Config(format!(
                    "{key} is {len} bytes; the S3 store takes objects of at most {MAX_OBJECT_SIZE}"
                )));
            }
            if len > self.inner.part_size {
                return self.put_large(key, &mut file, len, &digest).await;
            }
            let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            file.read_to_end(&mut buf)
                .await
                .map_err(super::io_err(path))?;
            record_max(&self.inner.stats.largest_upload_buffer, buf.len());
            if Sha256::digest(&buf)[..] != digest[..] {
                return Err(ObjectStoreError::InvalidKey(format!(
                    "{key}: the staged file does not hash to its key"
                )));
            }
            let opts = PutOptions::from(PutMode::Create);
            match self
                .inner
                .s3
                .put_opts(&s3_path(key), PutPayload::from(Bytes::from(buf)), opts)
                .await
            {
                Ok(_) => Ok(PutOutcome::Created),
                Err(::object_store::Error::AlreadyExists { .. }) => Ok(PutOutcome::AlreadyExisted),
                Err(e) => Err(unavailable("put", key.as_str(), e)),
            }
        })
    }

    fn get<'a>(
        &'a self,
        key: &'a ObjectKey,
        range: Option<Range<u64>>,
    ) -> BoxFuture<'a, Result<ObjectReader, ObjectStoreError>> {
        Box::pin(async move {
            let digest = content_digest(key)?;
            let meta = self
                .inner
                .s3
                .head(&s3_path(key))
                .await
                .map_err(|e| unavailable("head", key.as_str(), e))?;
            let len = meta.size;
            let stream = match range {
                None => ranged_stream(self.inner.clone(), key.clone(), meta, 0..len, Some(digest)),
                Some(r) => {
                    if r.start > r.end || r.end > len {
                        return Err(ObjectStoreError::BadRange {
                            key: key.to_string(),
                            start: r.start,
                            end: r.end,
                            len,
                        });
                    }
                    let known = self
                        .inner
                        .verified
                        .lock()
                        .ok()
                        .and_then(|v| v.get(key.as_str()).cloned())
                        .is_some_and(|v| same_version(&v, &meta));
                    if !known {
                        self.verify_whole(key, &meta).await?;
                    }
                    let r2 = r.clone();
                    let s = ranged_stream(self.inner.clone(), key.clone(), meta, r2, None);
                    return Ok(ObjectReader {
                        len,
                        range: r,
                        reader: Box::pin(reader_of(s)),
                    });
                }
            };
            Ok(ObjectReader {
                len,
                range: 0..len,
                reader: Box::pin(reader_of(stream)),
            })
        })
    }

    fn exists<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<bool, ObjectStoreError>> {
        Box::pin(async move {
            match self.inner.s3.head(&s3_path(key)).await {
                Ok(_) => Ok(true),
                Err(::object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(unavailable("head", key.as_str(), e)),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<(), ObjectStoreError>> {
        Box::pin(async move {
            if let Ok(mut v) = self.inner.verified.lock() {
                v.remove(key.as_str());
            }
            match self.inner.s3.delete(&s3_path(key)).await {
                Ok(()) | Err(::object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(unavailable("delete", key.as_str(), e)),
            }
        })
    }

    fn check(&self) -> BoxFuture<'_, Result<(), ObjectStoreError>> {
        Box::pin(async move {
            // A listing names the bucket's problems (NoSuchBucket, AccessDenied) where a HEAD
            // of a missing key would only say 404.
            let prefix = S3Path::from("ferro-readiness-probe");
            self.inner
                .s3
                .list_with_delimiter(Some(&prefix))
                .await
                .map(|_| ())
                .map_err(|e| ObjectStoreError::Unavailable {
                    op: "list",
                    key: self.inner.where_.clone(),
                    message: e.to_string(),
                })
        })
    }
}

fn reader_of(
    stream: BoxStream<'static, Result<Bytes, ObjectStoreError>>,
) -> impl tokio::io::AsyncRead + Send {
    let stream = stream.map(|r| {
        r.map_err(|e| {
            let kind = match e {
                ObjectStoreError::Corrupt(_) => std::io::ErrorKind::InvalidData,
                _ => std::io::ErrorKind::Other,
            };
            std::io::Error::new(kind, e)
        })
    });
    tokio_util::io::StreamReader::new(stream)
}
