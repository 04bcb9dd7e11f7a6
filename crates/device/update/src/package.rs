//! Checking a downloaded package against its target entry: the signature (OS bundles under the
//! key list's OS release keys, everything else under the owning tenant's image keys), then every
//! field the target set names, then the component's anti-rollback floor. Only a
//! [`CheckedPackage`] is installed.

use std::path::{Path, PathBuf};

use ferro_image::{ImageType, VerifiedImage};
use ferro_pki::{PlatformKeyRole, TargetImage, TargetKind, VerifiedKeyList};
use ferro_trust::RootOfTrust;
use uuid::Uuid;

use crate::{AcceptedTargetSet, DownloadedPackage, UpdateError};

/// The OS anti-rollback counter (shared with `ferro-boot`, which enforces it at every boot).
pub const OS_FLOOR_COUNTER: &str = "os-security-version";

/// The root-of-trust counter holding a component's anti-rollback floor: the OS counter for the
/// OS, else the component ID (32 hex digits).
pub fn component_floor_counter(component_id: Uuid, kind: TargetKind) -> String {
    if kind == TargetKind::Os {
        OS_FLOOR_COUNTER.to_string()
    } else {
        component_id.simple().to_string()
    }
}

/// A downloaded package that verified and is exactly what its target entry names.
#[derive(Debug)]
pub struct CheckedPackage {
    path: PathBuf,
    image: VerifiedImage,
    target: TargetImage,
}

impl CheckedPackage {
    /// The package file (in `downloads/`).
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The verified image.
    pub fn image(&self) -> &VerifiedImage {
        &self.image
    }
    /// Its target entry.
    pub fn target(&self) -> &TargetImage {
        &self.target
    }
}

fn kind_matches(kind: TargetKind, t: ImageType) -> bool {
    matches!(
        (kind, t),
        (TargetKind::Os, ImageType::Os)
            | (TargetKind::App, ImageType::App)
            | (TargetKind::RtApp, ImageType::RtApp)
            | (TargetKind::BoardConfig, ImageType::BoardConfig)
    )
}

/// Verify `downloaded` as the target entry `target` of `accepted`.
pub fn check_package(
    downloaded: &DownloadedPackage,
    target: &TargetImage,
    accepted: &AcceptedTargetSet,
    key_list: &VerifiedKeyList,
    rot: &dyn RootOfTrust,
) -> Result<CheckedPackage, UpdateError> {
    let trusted = if target.kind == TargetKind::Os {
        key_list.trusted(PlatformKeyRole::OsRelease)
    } else {
        accepted.ownership().image_keys()
    };
    let image = ferro_image::verify_file(downloaded.path(), &trusted, &mut std::io::sink())
        .map_err(|source| UpdateError::Package {
            image_id: target.image_id,
            source,
        })?;
    let m = image.metadata();
    let differs = |reason: &str| UpdateError::NotTheTarget {
        image_id: target.image_id,
        reason: reason.to_string(),
    };
    if m.image_id != target.image_id {
        return Err(differs("image ID"));
    }
    if m.component_id != target.component_id {
        return Err(differs("component ID"));
    }
    if !kind_matches(target.kind, m.image_type) {
        return Err(differs("image type"));
    }
    if m.security_version != target.security_version {
        return Err(differs("security version"));
    }
    if image.payload_sha256() != target.payload_sha256 {
        return Err(differs("payload digest"));
    }
    if m.version.to_string() != target.version {
        return Err(differs("version"));
    }
    let floor = rot.counter(&component_floor_counter(target.component_id, target.kind))?;
    if u64::from(m.security_version) < floor {
        return Err(UpdateError::BelowFloor {
            image_id: target.image_id,
            component_id: target.component_id,
            security_version: m.security_version,
            floor,
        });
    }
    Ok(CheckedPackage {
        path: downloaded.path().to_path_buf(),
        image,
        target: target.clone(),
    })
}
