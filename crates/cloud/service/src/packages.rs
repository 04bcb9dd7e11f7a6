//! Image packages as the service handles them, for tenant images and OS releases alike:
//! streaming an upload to a staging file with a size limit ([`receive_package`]), verifying and
//! re-signing it ([`resign_package`]), storing it with its database rows
//! ([`commit_with_object`]) and serving it with HTTP Range support ([`serve_package`]).

use crate::datastore::images;
use crate::db::{self, Tx};
use crate::error::{ApiError, ApiResult};
use crate::object_store::{ObjectKey, ObjectStoreError, PutOutcome};
use crate::state::AppState;
use axum::body::Body;
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    ETAG, IF_NONE_MATCH, IF_RANGE, RANGE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ferro_image::{ImageError, ImageMetadata};
use ferro_pki::{KeyName, SharedSigner};
use ferro_signing::{TrustedKeys, VerifyError};
use ferro_wire::{ErrorCode, ImageType};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use std::io::{BufReader, Read};
use std::ops::Range;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;

/// Media type of image package bodies (uploads and downloads).
pub const PACKAGE_MEDIA_TYPE: &str = "application/octet-stream";

/// The OpenAPI schema of a binary image package body.
#[derive(Debug, utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct ImagePackage(Vec<u8>);

// ---------------------------------------------------------------------------------------------
// Receiving a package

/// An upload in a staging file (removed when dropped).
#[derive(Debug)]
pub(crate) struct Staged {
    pub path: tempfile::TempPath,
    pub sha256: [u8; 32],
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!(
            "the image package must be at most {limit} bytes; ask the operator to raise the \
             upload limit if your image needs more"
        ),
    )
}

fn internal_io(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("{what}: {e}"))
}

/// Stream the request body to a staging file of the object store, hashing it, refusing a body
/// that is not `application/octet-stream` (415) or larger than the configured limit (413, also
/// up front from `Content-Length`). Nothing is kept on failure.
pub(crate) async fn receive_package(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Staged> {
    let is_binary = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(PACKAGE_MEDIA_TYPE));
    if !is_binary {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the image package file itself as the body, with `Content-Type: \
             application/octet-stream`",
        ));
    }
    let limit = state.config.max_upload_bytes;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let tmp = tempfile::Builder::new()
        .prefix("upload-")
        .tempfile_in(state.objects.staging_dir())
        .map_err(|e| internal_io("creating a staging file", e))?;
    let (file, path) = tmp.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidImage,
                "the upload was interrupted before the end of the body; send the whole package again",
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        size = size.saturating_add(data.len() as u64);
        if size > limit {
            return Err(too_large(limit));
        }
        hasher.update(&data);
        file.write_all(&data)
            .await
            .map_err(|e| internal_io("writing a staging file", e))?;
    }
    file.flush()
        .await
        .map_err(|e| internal_io("writing a staging file", e))?;
    drop(file);
    if size == 0 {
        return Err(ApiError::new(
            ErrorCode::InvalidImage,
            "the body is empty; send the image package file as the body",
        ));
    }
    Ok(Staged {
        path,
        sha256: hasher.finalize().into(),
    })
}

// ---------------------------------------------------------------------------------------------
// Verifying and re-signing

/// Which kind of package a route takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// App, rt-app or board-config: a tenant image.
    TenantImage,
    /// An OS bundle: an OS release.
    OsRelease,
}

/// A verified, re-signed package in a staging file (removed when dropped).
#[derive(Debug)]
pub(crate) struct Resigned {
    pub metadata: ImageMetadata,
    pub uploaded_signer: String,
    pub signer: String,
    pub package: tempfile::TempPath,
    pub package_sha256: [u8; 32],
    pub package_size: u64,
    pub uploaded_sha256: [u8; 32],
}

fn wrong_type(expect: Expect) -> ApiError {
    match expect {
        Expect::TenantImage => ApiError::new(
            ErrorCode::WrongImageType,
            "this is an OS image: OS images are published by the platform operator as OS \
             releases (POST /v1/os-releases); upload app, real-time app or board configuration \
             packages here",
        ),
        Expect::OsRelease => ApiError::new(
            ErrorCode::WrongImageType,
            "this is not an OS image: publish OS bundles (`ferro image-package pack-os`) here; \
             upload app and board configuration packages to a tenant (POST \
             /v1/tenants/{tenantId}/images)",
        ),
    }
}

fn type_ok(expect: Expect, t: ferro_image::ImageType) -> bool {
    (t == ferro_image::ImageType::Os) == (expect == Expect::OsRelease)
}

/// Map a verification failure to the client's error (or an internal one for our own I/O).
fn image_error(e: ImageError, expect: Expect) -> ApiError {
    match e {
        ImageError::Signature(VerifyError::UnknownKey(kid)) => ApiError::new(
            ErrorCode::UntrustedSigningKey,
            match expect {
                Expect::TenantImage => format!(
                    "the package is signed by key {kid}, which this tenant has not registered; \
                     register the developer's public key with `ferro developer-key add` (POST \
                     /v1/tenants/{{tenantId}}/developer-keys) and upload again"
                ),
                Expect::OsRelease => format!(
                    "the OS bundle is signed by key {kid}, which is not a registered OS release \
                     build key; register it with `ferro os-release-key add` (POST \
                     /v1/os-release-keys) and publish again"
                ),
            },
        ),
        ImageError::Io(_)
        | ImageError::Sink(_)
        | ImageError::PackIo { .. }
        | ImageError::PackInput(_)
        | ImageError::Sign(_)
        | ImageError::PackSelfCheck(_) => ApiError::Internal(format!("re-signing: {e}")),
        other => ApiError::new(
            ErrorCode::InvalidImage,
            format!(
                "the image package was refused ({}): {other}; upload the file exactly as `ferro \
                 image-package` packed it",
                other.code()
            ),
        ),
    }
}

fn hash_file(path: &std::path::Path) -> std::io::Result<([u8; 32], u64)> {
    let mut f = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    Ok((hasher.finalize().into(), size))
}

fn resign_blocking(
    staged: Staged,
    trusted: TrustedKeys,
    signer: SharedSigner,
    staging: PathBuf,
    expect: Expect,
) -> ApiResult<Resigned> {
    let open = || {
        std::fs::File::open(&staged.path)
            .map(|f| BufReader::with_capacity(1 << 20, f))
            .map_err(|e| internal_io("reading a staging file", e))
    };
    // Unverified look first: refuse the wrong type before the expensive part. The verified
    // metadata is checked again below.
    let claimed = ferro_image::inspect(open()?).map_err(|e| image_error(e, expect))?;
    if !type_ok(expect, claimed.claimed_metadata.image_type) {
        return Err(wrong_type(expect));
    }
    let dest = staging.join(format!("signed-{}.pkg", uuid::Uuid::new_v4().simple()));
    // Removed on every path unless handed over (resign itself leaves nothing on failure).
    let package = tempfile::TempPath::try_from_path(&dest)
        .map_err(|e| internal_io("naming the signed package", e))?;
    let metadata = ferro_image::resign(open()?, &trusted, &*signer, &dest)
        .map_err(|e| image_error(e, expect))?;
    // `resign` verified the envelope with the key named by this kid: it is the real signer.
    if metadata != claimed.claimed_metadata || !type_ok(expect, metadata.image_type) {
        return Err(ApiError::Internal(
            "verified metadata differs from the inspected one".into(),
        ));
    }
    if let Some(app) = &metadata.app {
        ferro_manifest::ResolvedManifest::parse(&app.manifest_json).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidImage,
                format!(
                    "the package's app manifest is refused: {e}; fix app_manifest.json and pack \
                     the app again"
                ),
            )
        })?;
    }
    let (package_sha256, package_size) =
        hash_file(&dest).map_err(|e| internal_io("hashing the signed package", e))?;
    Ok(Resigned {
        uploaded_signer: claimed.claimed_signer.to_string(),
        signer: signer.key_id().to_string(),
        metadata,
        package,
        package_sha256,
        package_size,
        uploaded_sha256: staged.sha256,
    })
}

/// Verify `staged` against `trusted` (the whole package: header, envelope, signature, metadata,
/// payload digest, archive rules; app manifests too), then re-sign it with `key` into a new
/// staging file. Runs on the blocking pool.
pub(crate) async fn resign_package(
    state: &AppState,
    staged: Staged,
    trusted: TrustedKeys,
    key: KeyName,
    expect: Expect,
) -> ApiResult<Resigned> {
    let keys = state.platform.keys.clone();
    let staging = state.objects.staging_dir().to_path_buf();
    tokio::task::spawn_blocking(move || {
        // A missing key is the operator's problem, never the client's: 500, key name in the log.
        let signer = keys
            .signer(&key)
            .map_err(|e| ApiError::Internal(format!("signing key {key}: {e}")))?;
        resign_blocking(staged, trusted, signer, staging, expect)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("re-signing task: {e}")))?
}

/// The audit row a write with an object appends.
#[derive(Debug)]
pub(crate) struct AuditRow<'a> {
    pub tenant: Option<&'a str>,
    pub actor: &'a str,
    pub action: &'a str,
    pub object_type: &'a str,
    pub object_id: &'a str,
    pub details: serde_json::Value,
}

/// Seconds a client is asked to wait when the object store cannot be reached.
pub const OBJECT_STORE_RETRY_AFTER_SECS: u64 = 10;

/// An object store failure at the edge: the store out of reach is `503
/// object_store_unavailable` with `Retry-After` (the detail in the log, not the answer);
/// anything else (a corrupt object, a local I/O error) is a 500.
pub(crate) fn object_store_error(what: &str, key: &ObjectKey, e: ObjectStoreError) -> ApiError {
    if e.is_unavailable() {
        tracing::warn!(object = %key, error = %e, "object store unavailable");
        ApiError::Client {
            code: ErrorCode::ObjectStoreUnavailable,
            message: "the image store cannot be reached right now; nothing was stored or \
                      served. Retry later; if it lasts, tell the operator"
                .into(),
            retry_after: Some(OBJECT_STORE_RETRY_AFTER_SECS),
        }
    } else {
        ApiError::Internal(format!("{what} {key}: {e}"))
    }
}

/// Store `package` under `key`, then append `audit` and commit `tx`. The object is put after
/// the caller wrote its rows (so unique constraints have already spoken) and removed again if
/// this put created it and anything after it fails: no committed row without its object, no
/// object left by a failed request.
pub(crate) async fn commit_with_object(
    state: &AppState,
    mut tx: Tx,
    key: &ObjectKey,
    package: &std::path::Path,
    audit: AuditRow<'_>,
) -> ApiResult<()> {
    let put = state
        .objects
        .put_from_file(key, package)
        .await
        .map_err(|e| object_store_error("storing", key, e))?;
    let finished: ApiResult<()> = async {
        db::audit(
            &mut tx,
            audit.tenant,
            Some(audit.actor),
            audit.action,
            audit.object_type,
            audit.object_id,
            audit.details,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
    .await;
    if let Err(e) = finished {
        if put == PutOutcome::Created
            && let Err(de) = state.objects.delete(key).await
        {
            tracing::error!(object = %key, error = %de, "could not remove the object of a failed write");
        }
        return Err(e);
    }
    Ok(())
}

/// Finish the object deletions whose rows were deleted and committed (`object_deletions`,
/// written with the row by `datastore::images::delete_in`): delete each object unless a row
/// stores its package again, then forget the intent. Run after every image deletion and when
/// the service starts, so a process that died between commit and object deletion leaves no
/// object behind for good (and the quota, the sum of the rows, never counted it). Returns how
/// many intents it finished; an object it cannot delete stays pending for the next run.
pub async fn finish_object_deletions(state: &AppState) -> ApiResult<usize> {
    let mut finished = 0;
    loop {
        let pending = images::pending_object_deletions(&state.db, 100).await?;
        if pending.is_empty() {
            return Ok(finished);
        }
        let mut progressed = false;
        for key in pending {
            let object = ObjectKey::new(&key)
                .map_err(|e| ApiError::Internal(format!("pending deletion {key:?}: {e}")))?;
            let referenced = match key.strip_prefix("images/") {
                Some(sha) => images::package_referenced(&state.db, sha).await?,
                None => false,
            };
            if !referenced && let Err(e) = state.objects.delete(&object).await {
                tracing::warn!(object = %key, error = %e, "object deletion stays pending");
                continue;
            }
            images::finish_object_deletion(&state.db, &key).await?;
            finished += 1;
            progressed = true;
        }
        if !progressed {
            return Ok(finished);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Serving a package

/// A resolved `Range` header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeReq {
    /// No (usable) range: the whole object.
    Full,
    /// One satisfiable range.
    Part(Range<u64>),
    /// A range outside the object.
    Unsatisfiable,
}

/// Interpret a `Range` header for an object of `len` bytes (RFC 9110 section 14). Only single
/// `bytes` ranges are honoured; anything else is ignored (the whole object is sent), as the RFC
/// allows.
pub(crate) fn parse_range(value: &str, len: u64) -> RangeReq {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeReq::Full;
    };
    if spec.contains(',') {
        return RangeReq::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Full;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.is_empty(), b.is_empty()) {
        (false, _) => {
            let Some(start) = num(a) else {
                return RangeReq::Full;
            };
            let end = if b.is_empty() {
                len
            } else {
                match num(b) {
                    Some(last) if last >= start => last.saturating_add(1).min(len),
                    _ => return RangeReq::Full,
                }
            };
            if start >= len {
                RangeReq::Unsatisfiable
            } else {
                RangeReq::Part(start..end)
            }
        }
        (true, false) => match num(b) {
            Some(0) => RangeReq::Unsatisfiable,
            Some(n) if len == 0 => {
                let _ = n;
                RangeReq::Unsatisfiable
            }
            Some(n) => RangeReq::Part(len.saturating_sub(n)..len),
            None => RangeReq::Full,
        },
        (true, true) => RangeReq::Full,
    }
}

fn header(v: &str) -> HeaderValue {
    HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Serve the stored package `sha256_hex` (`len` bytes) with `ETag`, conditional GET
/// (`If-None-Match`) and single-range requests (`Range`, `If-Range`).
pub(crate) async fn serve_package(
    state: &AppState,
    headers: &HeaderMap,
    sha256_hex: &str,
    len: u64,
    filename: &str,
) -> ApiResult<Response> {
    let mut digest = [0u8; 32];
    hex::decode_to_slice(sha256_hex, &mut digest)
        .map_err(|_| ApiError::Internal("malformed package digest in database".into()))?;
    let key = ObjectKey::image(&digest);
    let etag = format!("\"{sha256_hex}\"");
    let get = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if get(IF_NONE_MATCH).is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        resp.headers_mut().insert(ETAG, header(&etag));
        return Ok(resp);
    }
    let range = match get(RANGE) {
        Some(r) if get(IF_RANGE).is_none_or(|v| v.trim() == etag) => parse_range(r, len),
        _ => RangeReq::Full,
    };
    let wanted = match range {
        RangeReq::Full => None,
        RangeReq::Part(r) => Some(r),
        RangeReq::Unsatisfiable => {
            let mut resp = ApiError::new(
                ErrorCode::RangeNotSatisfiable,
                format!(
                    "the range is outside the package of {len} bytes; ask for bytes 0 to {}",
                    len.saturating_sub(1)
                ),
            )
            .into_response();
            resp.headers_mut()
                .insert(CONTENT_RANGE, header(&format!("bytes */{len}")));
            return Ok(resp);
        }
    };
    let obj = state
        .objects
        .get(&key, wanted.clone())
        .await
        .map_err(|e| match e {
            ObjectStoreError::NotFound(_) => {
                ApiError::Internal(format!("object {key} of a stored row is missing"))
            }
            other => object_store_error("reading", &key, other),
        })?;
    if obj.len != len {
        return Err(ApiError::Internal(format!(
            "object {key} is {} bytes, its row says {len}",
            obj.len
        )));
    }
    let part_len = obj.range.end - obj.range.start;
    let stream = futures_util::stream::unfold(obj.reader, |mut r| async move {
        use tokio::io::AsyncReadExt;
        // Large reads: each one is a hop to the blocking pool (tokio::fs), which dominates the
        // cost at 64 KiB (docs/updates.md, benchmark).
        let mut buf = vec![0u8; 512 * 1024];
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), r))
            }
            Err(e) => Some((Err(e), r)),
        }
    });
    let status = if wanted.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut resp = (status, Body::from_stream(stream)).into_response();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(PACKAGE_MEDIA_TYPE));
    h.insert(CONTENT_LENGTH, header(&part_len.to_string()));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(ETAG, header(&etag));
    // The bytes behind this URL never change (immutable, content-addressed), but they are not
    // public: only private caches.
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400, immutable"),
    );
    h.insert(
        CONTENT_DISPOSITION,
        header(&format!("attachment; filename=\"{filename}\"")),
    );
    if let Some(r) = wanted {
        h.insert(
            CONTENT_RANGE,
            header(&format!("bytes {}-{}/{len}", r.start, r.end - 1)),
        );
    }
    Ok(resp)
}

pub(crate) fn wire_image_type(t: ferro_image::ImageType) -> ImageType {
    match t {
        ferro_image::ImageType::App => ImageType::App,
        ferro_image::ImageType::RtApp => ImageType::RtApp,
        ferro_image::ImageType::Os => ImageType::Os,
        ferro_image::ImageType::BoardConfig => ImageType::BoardConfig,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeReq::*;
        assert_eq!(parse_range("bytes=0-0", 10), Part(0..1));
        assert_eq!(parse_range("bytes=2-4", 10), Part(2..5));
        assert_eq!(parse_range("bytes=2-", 10), Part(2..10));
        assert_eq!(parse_range("bytes=5-100", 10), Part(5..10));
        assert_eq!(parse_range("bytes=-3", 10), Part(7..10));
        assert_eq!(parse_range("bytes=-30", 10), Part(0..10));
        assert_eq!(parse_range("bytes=10-", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=10-12", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), Unsatisfiable);
        // Ignored (whole object): other units, several ranges, nonsense, reversed.
        assert_eq!(parse_range("items=0-1", 10), Full);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), Full);
        assert_eq!(parse_range("bytes=x-1", 10), Full);
        assert_eq!(parse_range("bytes=5-2", 10), Full);
        assert_eq!(parse_range("bytes=-", 10), Full);
        assert_eq!(parse_range("bytes=+1-2", 10), Full);
    }
}
