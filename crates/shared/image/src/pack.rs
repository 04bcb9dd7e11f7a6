//! Packing: build the payload, sign the metadata, write the package atomically.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use ferro_signing::Sha256;
use ferro_signing::{Purpose, Signer, TrustedKeys, sign1};
use uuid::Uuid;

use crate::archive::{
    MANIFEST_PATH, MAX_ARCHIVE_ENTRIES, OS_DEVICE_BINARY, PackEntry, validate_tar_path,
    write_archive,
};
use crate::error::ImageError;
use crate::header::{FixedHeader, MAX_ENVELOPE_LEN};
use crate::metadata::{
    AppMetadata, BOARD_CONFIG_COMPONENT_ID, ImageMetadata, ImageType, MAX_BOARD_CONFIG_SIZE,
    OS_COMPONENT_ID, Version,
};
use crate::verify::{check_board_config, verify};

/// The resolved app manifest as the packer needs it (the CLI converts the manifest crate's
/// types into this, so this crate does not depend on them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppPackageManifest {
    /// `ComponentId`.
    pub component_id: Uuid,
    /// `Name`.
    pub name: String,
    /// `EntryPoint`, e.g. `/bin/app`.
    pub entry_point: String,
    /// The resolved `app_manifest.json` bytes, stored verbatim.
    pub json_bytes: Vec<u8>,
    /// `ApplicationType` is `RealTimeCapable` (an rt-app image).
    pub is_real_time: bool,
}

/// Versioning and identity of the image being packed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackOptions {
    /// Image version.
    pub version: Version,
    /// Anti-rollback security version.
    pub security_version: u32,
    /// Minimum OS runtime version.
    pub target_runtime_version: u32,
    /// Debug image.
    pub debug: bool,
    /// The image ID; `None` draws a random (v4) one, which is what production packing should do.
    /// Fix it only for reproducible test vectors.
    pub image_id: Option<Uuid>,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            version: Version::new(1, 0, 0),
            security_version: 0,
            target_runtime_version: 1,
            debug: false,
            image_id: None,
        }
    }
}

fn pack_io(path: &Path) -> impl FnOnce(io::Error) -> ImageError + '_ {
    move |source| ImageError::PackIo {
        path: path.to_path_buf(),
        source,
    }
}

/// A file found in a directory to pack.
struct FoundFile {
    rel: String,
    abs: PathBuf,
    executable: bool,
}

/// Every regular file under `root`, with relative `/`-separated paths, sorted. Refuses
/// symlinks, devices, sockets, FIFOs and non-UTF-8 or non-normalizable names.
fn collect_files(root: &Path) -> Result<Vec<FoundFile>, ImageError> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(pack_io(&dir))? {
            let entry = entry.map_err(pack_io(&dir))?;
            let abs = entry.path();
            let name = entry.file_name().into_string().map_err(|_| {
                ImageError::PackInput(format!("{}: file name is not UTF-8", abs.display()))
            })?;
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let meta = std::fs::symlink_metadata(&abs).map_err(pack_io(&abs))?;
            let ft = meta.file_type();
            if ft.is_dir() {
                stack.push((abs, rel));
            } else if ft.is_file() {
                validate_tar_path(&rel).map_err(|reason| {
                    ImageError::PackInput(format!("{}: path {reason}", abs.display()))
                })?;
                out.push(FoundFile {
                    rel,
                    abs,
                    executable: is_executable(&meta),
                });
                if out.len() > MAX_ARCHIVE_ENTRIES {
                    return Err(ImageError::PackInput(format!(
                        "more than {MAX_ARCHIVE_ENTRIES} files"
                    )));
                }
            } else {
                return Err(ImageError::PackInput(format!(
                    "{}: only regular files and directories can be packed (no symlinks or \
                     special files)",
                    abs.display()
                )));
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

fn open_entry(f: &FoundFile, executable: bool) -> Result<PackEntry, ImageError> {
    let file = File::open(&f.abs).map_err(pack_io(&f.abs))?;
    let size = file.metadata().map_err(pack_io(&f.abs))?.len();
    Ok(PackEntry {
        path: f.rel.clone(),
        executable,
        size,
        source: Box::new(file),
    })
}

/// Counts and hashes what is written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let written = buf.get(..n).unwrap_or_default();
        self.hasher.update(written);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) fn destination_dir(destination: &Path) -> PathBuf {
    ferro_files::parent_dir(destination).to_path_buf()
}

/// Write the payload produced by `fill` into a temp file next to `destination`, then
/// sign and assemble the package into a second temp file, self-verify it, and rename it into
/// place. Returns the metadata.
fn assemble(
    destination: &Path,
    signer: &dyn Signer,
    mut make_metadata: impl FnMut(u64, [u8; 32]) -> ImageMetadata,
    fill: impl FnOnce(&mut HashingWriter<io::BufWriter<&mut File>>) -> io::Result<()>,
) -> Result<ImageMetadata, ImageError> {
    let dir = destination_dir(destination);
    let dest_err = pack_io(destination);
    let mut payload_tmp = tempfile::Builder::new()
        .prefix(".ferro-payload-")
        .tempfile_in(&dir)
        .map_err(dest_err)?;
    let (len, digest) = {
        let mut hw = HashingWriter {
            inner: io::BufWriter::with_capacity(1 << 20, payload_tmp.as_file_mut()),
            hasher: Sha256::new(),
            len: 0,
        };
        fill(&mut hw).map_err(pack_io(destination))?;
        hw.flush().map_err(pack_io(destination))?;
        (hw.len, hw.hasher.finalize())
    };
    let metadata = make_metadata(len, digest);
    write_signed_package(destination, signer, &metadata, payload_tmp)?;
    Ok(metadata)
}

/// Sign `metadata` with `signer` and write header + envelope + the payload held in
/// `payload_tmp` (a temp file beside `destination`, any position) to an atomic file
/// (`ferro_files::AtomicFile`, mode 0644); self-verify it with the signer's public key, then
/// commit it (fsync, rename over `destination`, fsync of the directory). On any failure nothing
/// is left behind (both temp files are removed when dropped).
pub(crate) fn write_signed_package(
    destination: &Path,
    signer: &dyn Signer,
    metadata: &ImageMetadata,
    mut payload_tmp: tempfile::NamedTempFile,
) -> Result<(), ImageError> {
    let cbor = metadata.to_cbor()?;
    // Header with a placeholder length: the AAD does not cover the length.
    let aad = FixedHeader::new(0).external_aad();
    let envelope = sign1(signer, Purpose::ImagePackage, &cbor, &aad)?;
    let envelope_len = u32::try_from(envelope.len())
        .ok()
        .filter(|l| *l <= MAX_ENVELOPE_LEN)
        .ok_or_else(|| ImageError::PackInput("signed metadata exceeds 256 KiB".into()))?;

    let mut out = ferro_files::AtomicFile::create(destination, ferro_files::Mode::PUBLIC)
        .map_err(pack_io(destination))?;
    {
        let mut w = io::BufWriter::with_capacity(1 << 20, out.file_mut());
        w.write_all(&FixedHeader::new(envelope_len).encode())
            .map_err(pack_io(destination))?;
        w.write_all(&envelope).map_err(pack_io(destination))?;
        let payload_file = payload_tmp.as_file_mut();
        payload_file.rewind().map_err(pack_io(destination))?;
        io::copy(payload_file, &mut w).map_err(pack_io(destination))?;
        w.flush().map_err(pack_io(destination))?;
    }
    drop(payload_tmp);

    // Never emit a package that does not verify with the signer's own key.
    let trusted: TrustedKeys = [signer.public_key().clone()].into_iter().collect();
    out.file_mut().rewind().map_err(pack_io(destination))?;
    let reader = io::BufReader::with_capacity(1 << 20, out.file_mut());
    verify(reader, &trusted, &mut io::sink())
        .map_err(|e| ImageError::PackSelfCheck(Box::new(e)))?;

    out.commit().map_err(pack_io(destination))
}

/// Pack an application (app or rt-app, per `manifest.is_real_time`) from `package_dir`.
///
/// The payload is a deterministic ustar archive holding `app_manifest.json` (the resolved
/// manifest, `manifest.json_bytes`; a top-level `app_manifest.json` in `package_dir` is
/// replaced by it) and every regular file under `package_dir` (the entry point must be one).
/// Files keep mode 0755 if executable (or the entry point), else 0644.
pub fn pack_application(
    package_dir: &Path,
    manifest: &AppPackageManifest,
    options: &PackOptions,
    signer: &dyn Signer,
    destination: &Path,
) -> Result<ImageMetadata, ImageError> {
    let app = AppMetadata {
        entry_point: manifest.entry_point.clone(),
        manifest_json: manifest.json_bytes.clone(),
    };
    let image_type = if manifest.is_real_time {
        ImageType::RtApp
    } else {
        ImageType::App
    };
    let image_id = options.image_id.unwrap_or_else(Uuid::new_v4);
    let template = |payload_size, payload_sha256| ImageMetadata {
        image_type,
        component_id: manifest.component_id,
        image_id,
        name: manifest.name.clone(),
        version: options.version,
        security_version: options.security_version,
        target_runtime_version: options.target_runtime_version,
        debug: options.debug,
        payload_size,
        payload_sha256,
        app: Some(app.clone()),
    };
    // Validate everything but the payload before reading any file.
    template(0, [0; 32]).validate()?;
    let entry_tar_path = app.entry_point_tar_path().to_string();
    let files: Vec<FoundFile> = collect_files(package_dir)?
        .into_iter()
        .filter(|f| f.rel != MANIFEST_PATH)
        .collect();
    if !files.iter().any(|f| f.rel == entry_tar_path) {
        return Err(ImageError::PackInput(format!(
            "entry point {} is not a regular file in {}",
            manifest.entry_point,
            package_dir.display()
        )));
    }
    let mut entries = Vec::with_capacity(files.len() + 1);
    entries.push(PackEntry {
        path: MANIFEST_PATH.to_string(),
        executable: false,
        size: manifest.json_bytes.len() as u64,
        source: Box::new(io::Cursor::new(manifest.json_bytes.clone())),
    });
    for f in &files {
        entries.push(open_entry(f, f.executable || f.rel == entry_tar_path)?);
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    assemble(destination, signer, template, |w| {
        write_archive(w, entries).map(|_| ())
    })
}

/// Pack the OS bundle from `os_dir`, which must contain `bin/ferro-device` (the device OS
/// binary). The payload is a deterministic ustar archive of every regular file in `os_dir`.
/// Component ID: [`OS_COMPONENT_ID`]; name: `ferrosphere-os`.
pub fn pack_os(
    os_dir: &Path,
    options: &PackOptions,
    signer: &dyn Signer,
    destination: &Path,
) -> Result<ImageMetadata, ImageError> {
    let files = collect_files(os_dir)?;
    if !files.iter().any(|f| f.rel == OS_DEVICE_BINARY) {
        return Err(ImageError::PackInput(format!(
            "{} has no {OS_DEVICE_BINARY}",
            os_dir.display()
        )));
    }
    let mut entries = Vec::with_capacity(files.len());
    for f in &files {
        entries.push(open_entry(f, f.executable || f.rel == OS_DEVICE_BINARY)?);
    }
    let image_id = options.image_id.unwrap_or_else(Uuid::new_v4);
    assemble(
        destination,
        signer,
        |payload_size, payload_sha256| ImageMetadata {
            image_type: ImageType::Os,
            component_id: OS_COMPONENT_ID,
            image_id,
            name: "ferrosphere-os".to_string(),
            version: options.version,
            security_version: options.security_version,
            target_runtime_version: options.target_runtime_version,
            debug: options.debug,
            payload_size,
            payload_sha256,
            app: None,
        },
        |w| write_archive(w, entries).map(|_| ()),
    )
}

/// Pack a board configuration file (a JSON object with `Name` and `HardwareDefinition`
/// strings, at most 64 KiB). The payload is the file's bytes; the image name is its `Name`.
/// Component ID: [`BOARD_CONFIG_COMPONENT_ID`].
pub fn pack_board_config(
    config_file: &Path,
    options: &PackOptions,
    signer: &dyn Signer,
    destination: &Path,
) -> Result<ImageMetadata, ImageError> {
    let file = File::open(config_file).map_err(pack_io(config_file))?;
    let mut bytes = Vec::new();
    file.take(MAX_BOARD_CONFIG_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(pack_io(config_file))?;
    if bytes.len() as u64 > MAX_BOARD_CONFIG_SIZE {
        return Err(ImageError::PackInput(format!(
            "{} is larger than {MAX_BOARD_CONFIG_SIZE} bytes",
            config_file.display()
        )));
    }
    check_board_config(&bytes)?;
    let name = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("Name").and_then(|n| n.as_str()).map(str::to_string))
        .unwrap_or_default();
    let image_id = options.image_id.unwrap_or_else(Uuid::new_v4);
    assemble(
        destination,
        signer,
        |payload_size, payload_sha256| ImageMetadata {
            image_type: ImageType::BoardConfig,
            component_id: BOARD_CONFIG_COMPONENT_ID,
            image_id,
            name: name.clone(),
            version: options.version,
            security_version: options.security_version,
            target_runtime_version: options.target_runtime_version,
            debug: options.debug,
            payload_size,
            payload_sha256,
            app: None,
        },
        |w| w.write_all(&bytes),
    )
}
