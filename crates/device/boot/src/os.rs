//! OS bundles: verification (signature under the key list's OS release keys, type, component,
//! anti-rollback floor), unpacking of the verified payload, and its measurement.

use std::fs;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use ferro_documents::{PlatformKeyRole, VerifiedKeyList};
use ferro_image::{ImageType, OS_COMPONENT_ID, OS_DEVICE_BINARY, VerifiedImage};
use ferro_trust::MeasurementEvent;
use serde::{Deserialize, Serialize};

use crate::BootError;
use crate::layout::{read_json, write_json};

/// Verify the OS package at `package` and, with `unpack_to`, replace that directory with its
/// payload. The payload is written to an unnamed temporary file while it is verified and
/// unpacked from that file only after verification succeeded (the bytes unpacked are the bytes
/// verified). Checks: signature by an OS release key of `key_list`, image type `os`, component
/// [`OS_COMPONENT_ID`], security version at least `floor`.
pub fn verify_os_package(
    package: &Path,
    key_list: &VerifiedKeyList,
    floor: u64,
    unpack_to: Option<&Path>,
) -> Result<VerifiedImage, BootError> {
    let trusted = key_list.trusted(PlatformKeyRole::OsRelease);
    let image_err = |source| BootError::Image {
        path: package.to_path_buf(),
        source,
    };
    let file = fs::File::open(package).map_err(BootError::io(package))?;
    let reader = std::io::BufReader::new(file);
    let (image, staged) = match unpack_to {
        None => (
            ferro_image::verify(reader, &trusted, &mut std::io::sink()).map_err(image_err)?,
            None,
        ),
        Some(dest) => {
            let parent = dest.parent().unwrap_or(Path::new("."));
            crate::layout::create_private_dir(parent)?;
            let tmp = tempfile::tempfile_in(parent).map_err(BootError::io(parent))?;
            let mut sink = BufWriter::new(tmp);
            let image = ferro_image::verify(reader, &trusted, &mut sink).map_err(image_err)?;
            sink.flush().map_err(BootError::io(parent))?;
            let tmp = sink
                .into_inner()
                .map_err(|e| BootError::io(parent)(e.into_error()))?;
            (image, Some(tmp))
        }
    };
    check_os_metadata(&image, floor)?;
    if let (Some(mut tmp), Some(dest)) = (staged, unpack_to) {
        tmp.seek(SeekFrom::Start(0)).map_err(BootError::io(dest))?;
        unpack(tmp, dest)?;
    }
    Ok(image)
}

/// The checks beyond the signature.
pub fn check_os_metadata(image: &VerifiedImage, floor: u64) -> Result<(), BootError> {
    let m = image.metadata();
    if m.image_type != ImageType::Os {
        return Err(BootError::BundleRefused(format!(
            "image type is {:?}, not an OS bundle",
            m.image_type
        )));
    }
    if m.component_id != OS_COMPONENT_ID {
        return Err(BootError::BundleRefused(format!(
            "component {} is not the OS component {OS_COMPONENT_ID}",
            m.component_id
        )));
    }
    if u64::from(m.security_version) < floor {
        return Err(BootError::BundleRefused(format!(
            "security version {} is below the anti-rollback floor {floor}",
            m.security_version
        )));
    }
    Ok(())
}

/// Unpack a verified ustar payload into a fresh directory and swap it in as `dest`.
fn unpack(payload: fs::File, dest: &Path) -> Result<(), BootError> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    let fresh = tempfile::Builder::new()
        .prefix(".root-new-")
        .tempdir_in(parent)
        .map_err(BootError::io(parent))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(payload));
    archive.set_preserve_permissions(false);
    archive.set_overwrite(false);
    archive
        .unpack(fresh.path())
        .map_err(BootError::io(fresh.path()))?;
    if fs::symlink_metadata(fresh.path().join(OS_DEVICE_BINARY)).is_err() {
        // verify() already required it; defensive.
        return Err(BootError::BundleRefused(format!("no {OS_DEVICE_BINARY}")));
    }
    // The archive's own entry for its top directory may have widened it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(fresh.path(), fs::Permissions::from_mode(0o700))
            .map_err(BootError::io(fresh.path()))?;
    }
    if fs::symlink_metadata(dest).is_ok() {
        fs::remove_dir_all(dest).map_err(BootError::io(dest))?;
    }
    let fresh = fresh.keep();
    fs::rename(&fresh, dest).map_err(BootError::io(dest))?;
    crate::layout::sync_dir(parent);
    Ok(())
}

/// The measurement of a verified image: component, image ID, version, payload digest.
pub fn image_measurement(image: &VerifiedImage) -> MeasurementEvent {
    let m = image.metadata();
    MeasurementEvent {
        component_id: m.component_id,
        image_id: m.image_id,
        version: m.version.to_string(),
        digest: image.payload_sha256(),
    }
}

/// One measured event as JSON (the boot measurement hand-off and `ready.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EventJson {
    /// Component ID.
    pub component_id: uuid::Uuid,
    /// Image ID.
    pub image_id: uuid::Uuid,
    /// Version text.
    pub version: String,
    /// SHA-256, hex.
    pub digest: String,
}

impl From<&MeasurementEvent> for EventJson {
    fn from(e: &MeasurementEvent) -> EventJson {
        EventJson {
            component_id: e.component_id,
            image_id: e.image_id,
            version: e.version.clone(),
            digest: hex::encode(e.digest),
        }
    }
}

impl EventJson {
    /// Back to an event (`None` if the digest is not 32 hex bytes).
    pub fn to_event(&self) -> Option<MeasurementEvent> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(&self.digest, &mut digest).ok()?;
        Some(MeasurementEvent {
            component_id: self.component_id,
            image_id: self.image_id,
            version: self.version.clone(),
            digest,
        })
    }
}

/// Write the boot measurement hand-off file.
pub fn write_events(path: &Path, events: &[MeasurementEvent]) -> Result<(), BootError> {
    let json: Vec<EventJson> = events.iter().map(EventJson::from).collect();
    write_json(path, &json)
}

/// Read a measurement hand-off file.
pub fn read_events(path: &Path) -> Result<Vec<MeasurementEvent>, BootError> {
    let json: Vec<EventJson> = read_json(path)?;
    json.iter()
        .map(|e| {
            e.to_event()
                .ok_or_else(|| BootError::malformed(path, "bad digest"))
        })
        .collect()
}
