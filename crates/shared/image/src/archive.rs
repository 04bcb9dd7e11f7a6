//! The deterministic ustar payload: writing it when packing and checking it, streamed, when
//! verifying.

use std::collections::BTreeSet;
use std::io::{Read, Write};

use tar::{EntryType, Header};

use crate::error::ArchiveError;

/// Most entries a payload archive may hold (bounds verifier memory: the set of seen paths).
pub const MAX_ARCHIVE_ENTRIES: usize = 4096;
/// Longest path (ustar `prefix` + `/` + `name`).
pub const MAX_TAR_PATH_LEN: usize = 255;
/// The file every OS payload must contain: the device OS binary.
pub const OS_DEVICE_BINARY: &str = "bin/ferro-device";
/// The manifest's path in app payloads.
pub(crate) const MANIFEST_PATH: &str = "app_manifest.json";

/// Check that `path` is relative and normalized: non-empty `/`-separated components, none of
/// them `.` or `..`, no leading or trailing `/`, no backslash, NUL or control characters.
pub(crate) fn validate_tar_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty");
    }
    if path.len() > MAX_TAR_PATH_LEN {
        return Err("longer than 255 bytes");
    }
    if path.starts_with('/') {
        return Err("absolute");
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err("contains a control character or backslash");
    }
    for part in path.split('/') {
        match part {
            "" => return Err("empty component"),
            "." | ".." => return Err("dot component"),
            _ => {}
        }
    }
    Ok(())
}

/// One regular file of a payload being packed.
pub(crate) struct PackEntry {
    pub path: String,
    pub executable: bool,
    pub size: u64,
    pub source: Box<dyn Read>,
}

/// Write `entries` (already sorted by path, validated) as a deterministic ustar archive.
pub(crate) fn write_archive<W: Write>(out: W, entries: Vec<PackEntry>) -> std::io::Result<W> {
    let mut builder = tar::Builder::new(out);
    for e in entries {
        let mut h = Header::new_ustar();
        h.set_path(&e.path)?;
        h.set_entry_type(EntryType::Regular);
        h.set_size(e.size);
        h.set_mode(if e.executable { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        let mut limited = e.source.take(e.size);
        builder.append(&h, &mut limited)?;
        // A file that shrank while packing would corrupt the archive; refuse it.
        if limited.limit() != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} changed size while packing", e.path),
            ));
        }
    }
    builder.into_inner()
}

/// What the verifier requires of an archive.
pub(crate) struct ArchiveRules<'a> {
    /// For app images: the signed manifest that `app_manifest.json` must equal.
    pub manifest: Option<&'a [u8]>,
    /// A regular file that must be present (entry point, or `bin/ferro-device`).
    pub required_file: &'a str,
}

fn nondet(path: &str, field: &'static str) -> ArchiveError {
    ArchiveError::NonDeterministicHeader {
        path: path.to_string(),
        field,
    }
}

/// Check one header against the determinism rules.
fn check_header(h: &Header, path: &str, is_dir: bool) -> Result<(), ArchiveError> {
    let mode = h.mode().map_err(|_| nondet(path, "mode"))?;
    let mode_ok = if is_dir {
        mode == 0o755
    } else {
        mode == 0o644 || mode == 0o755
    };
    if !mode_ok {
        return Err(nondet(path, "mode"));
    }
    if h.uid().ok() != Some(0) || h.gid().ok() != Some(0) {
        return Err(nondet(path, "owner"));
    }
    if h.mtime().ok() != Some(0) {
        return Err(nondet(path, "mtime"));
    }
    if h.username_bytes().is_some_and(|b| !b.is_empty())
        || h.groupname_bytes().is_some_and(|b| !b.is_empty())
    {
        return Err(nondet(path, "owner name"));
    }
    if h.link_name_bytes().is_some_and(|b| !b.is_empty()) {
        return Err(nondet(path, "link name"));
    }
    if is_dir && h.entry_size().ok() != Some(0) {
        return Err(nondet(path, "directory size"));
    }
    Ok(())
}

/// Stream-check a payload archive read from `r`, using `buf` for file contents. Reads up to
/// and including the first end-of-archive block; the caller drains and checks what follows.
/// Memory: `buf` plus the set of seen paths (at most [`MAX_ARCHIVE_ENTRIES`] x 255 bytes).
pub(crate) fn check_archive<R: Read>(
    r: R,
    rules: &ArchiveRules<'_>,
    buf: &mut [u8],
) -> Result<(), ArchiveError> {
    let malformed = |e: std::io::Error| ArchiveError::Malformed(e.to_string());
    let mut archive = tar::Archive::new(r);
    let mut entries = archive.entries().map_err(malformed)?;
    // Raw: no GNU long-name or PAX processing; such entries are refused by type below.
    entries = entries.raw(true);
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut files: BTreeSet<String> = BTreeSet::new();
    let mut last: Option<String> = None;
    let mut manifest_found = false;
    let mut required_found = false;
    for entry in entries {
        let mut entry = entry.map_err(malformed)?;
        if seen.len() >= MAX_ARCHIVE_ENTRIES {
            return Err(ArchiveError::TooManyEntries(MAX_ARCHIVE_ENTRIES));
        }
        let header = entry.header().clone();
        let raw_path = header.path_bytes();
        let lossy = String::from_utf8_lossy(&raw_path).into_owned();
        let path_str = std::str::from_utf8(&raw_path).map_err(|_| ArchiveError::InvalidPath {
            path: lossy.clone(),
            reason: "not UTF-8",
        })?;
        if header.as_ustar().is_none() {
            return Err(ArchiveError::NotUstar(lossy));
        }
        let kind = header.entry_type();
        let (path, is_dir) = match kind {
            EntryType::Regular => (path_str, false),
            EntryType::Directory => (path_str.strip_suffix('/').unwrap_or(path_str), true),
            other => {
                return Err(ArchiveError::DisallowedEntryType {
                    path: lossy,
                    kind: other.as_byte(),
                });
            }
        };
        validate_tar_path(path).map_err(|reason| ArchiveError::InvalidPath {
            path: lossy.clone(),
            reason,
        })?;
        if let Some(prev) = &last {
            if prev.as_str() == path {
                return Err(ArchiveError::DuplicateEntry(lossy));
            }
            if prev.as_str() > path {
                return Err(ArchiveError::UnsortedEntries(lossy));
            }
        }
        if seen.contains(path) {
            return Err(ArchiveError::DuplicateEntry(lossy));
        }
        // No ancestor of this path may be a regular file.
        let mut idx = 0;
        while let Some(pos) = path.get(idx..).and_then(|rest| rest.find('/')) {
            let ancestor = path.get(..idx + pos).unwrap_or("");
            if files.contains(ancestor) {
                return Err(ArchiveError::InvalidPath {
                    path: lossy,
                    reason: "a parent is a regular file",
                });
            }
            idx += pos + 1;
        }
        check_header(&header, path, is_dir)?;

        if !is_dir && path == MANIFEST_PATH && rules.manifest.is_some() {
            let expected = rules.manifest.unwrap_or_default();
            if entry.size() != expected.len() as u64 {
                return Err(ArchiveError::ManifestMismatch);
            }
            let mut offset = 0usize;
            loop {
                let n = entry.read(buf).map_err(malformed)?;
                if n == 0 {
                    break;
                }
                let got = buf.get(..n).unwrap_or_default();
                if expected.get(offset..offset + n) != Some(got) {
                    return Err(ArchiveError::ManifestMismatch);
                }
                offset += n;
            }
            if offset != expected.len() {
                return Err(ArchiveError::Malformed("manifest entry cut short".into()));
            }
            manifest_found = true;
        } else {
            let mut total = 0u64;
            loop {
                let n = entry.read(buf).map_err(malformed)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            if total != entry.size() {
                return Err(ArchiveError::Malformed("entry cut short".into()));
            }
        }
        if path == rules.required_file && !is_dir {
            required_found = true;
        }
        if !is_dir {
            files.insert(path.to_string());
        }
        seen.insert(path.to_string());
        last = Some(path.to_string());
    }
    if rules.manifest.is_some() && !manifest_found {
        return Err(ArchiveError::ManifestMissing);
    }
    if !required_found {
        return Err(ArchiveError::RequiredFileMissing(
            rules.required_file.to_string(),
        ));
    }
    Ok(())
}
