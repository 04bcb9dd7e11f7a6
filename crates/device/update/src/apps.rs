//! The installed apps (and board configuration): immutable, content-addressed packages in
//! `apps/packages/<sha256>.imagepackage` and one manifest, `apps/installed.json`, naming the
//! package of each component. Installing a new set is staging its packages (they are new files
//! that nothing uses yet) and then one atomic rewrite of the manifest, so a reader (the device
//! at boot) sees the whole old set or the whole new one.

use std::fs;
use std::path::{Path, PathBuf};

use ferro_pki::{TargetImage, TargetKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::files::{create_private_dir, read_json_opt, write_json};
use crate::{CheckedPackage, UpdateError, crash};

/// One installed image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InstalledApp {
    /// Its component.
    pub component_id: Uuid,
    /// Its image ID.
    pub image_id: Uuid,
    /// `App`, `RtApp` or `BoardConfig`.
    pub kind: String,
    /// Version text.
    pub version: String,
    /// Security version.
    pub security_version: u32,
    /// SHA-256 of the package (its file name in `apps/packages/`), hex.
    pub package_sha256: String,
}

impl InstalledApp {
    /// The entry for a target image.
    pub fn from_target(t: &TargetImage) -> InstalledApp {
        InstalledApp {
            component_id: t.component_id,
            image_id: t.image_id,
            kind: t.kind.as_str().to_string(),
            version: t.version.clone(),
            security_version: t.security_version,
            package_sha256: hex::encode(t.package_sha256),
        }
    }

    /// Whether this is the image `t` names.
    pub fn is(&self, t: &TargetImage) -> bool {
        self.component_id == t.component_id
            && self.image_id == t.image_id
            && self.package_sha256 == hex::encode(t.package_sha256)
    }
}

/// `apps/installed.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InstalledApps {
    /// The target set version this set came from (0: none yet).
    pub target_version: u64,
    /// The images, sorted by component ID.
    pub apps: Vec<InstalledApp>,
}

impl InstalledApps {
    /// The non-OS images of a target set, as an installed set.
    pub fn from_targets(version: u64, images: &[TargetImage]) -> InstalledApps {
        let mut apps: Vec<InstalledApp> = images
            .iter()
            .filter(|i| i.kind != TargetKind::Os)
            .map(InstalledApp::from_target)
            .collect();
        apps.sort_by_key(|a| a.component_id);
        InstalledApps {
            target_version: version,
            apps,
        }
    }

    /// Whether the two name the same images (versions of the sets aside).
    pub fn same_images(&self, other: &InstalledApps) -> bool {
        self.apps == other.apps
    }
}

/// The device's `apps/` directory.
#[derive(Clone, Debug)]
pub struct AppStore {
    root: PathBuf,
}

impl AppStore {
    /// `dir` (normally `<data dir>/apps`), created if missing.
    pub fn open(dir: impl Into<PathBuf>) -> Result<AppStore, UpdateError> {
        let root = dir.into();
        create_private_dir(&root)?;
        create_private_dir(&root.join("packages"))?;
        Ok(AppStore { root })
    }

    fn manifest(&self) -> PathBuf {
        self.root.join("installed.json")
    }

    /// The package file of an installed image.
    pub fn package_path(&self, package_sha256_hex: &str) -> PathBuf {
        self.root
            .join("packages")
            .join(format!("{package_sha256_hex}.imagepackage"))
    }

    /// What is installed (empty if nothing).
    pub fn installed(&self) -> Result<InstalledApps, UpdateError> {
        Ok(read_json_opt(&self.manifest())?.unwrap_or_default())
    }

    /// Whether the package of `t` is already in the store.
    pub fn has_package(&self, t: &TargetImage) -> bool {
        fs::symlink_metadata(self.package_path(&hex::encode(t.package_sha256))).is_ok()
    }

    /// Move a checked package into the store (nothing uses it until [`AppStore::commit`]).
    pub fn stage(&self, package: CheckedPackage) -> Result<(), UpdateError> {
        let dest = self.package_path(&hex::encode(package.target().package_sha256));
        if fs::symlink_metadata(&dest).is_ok() {
            return Ok(());
        }
        crate::files::rename_durable(package.path(), &dest)?;
        crash::point("apps.staged");
        Ok(())
    }

    /// Switch to `next` with one atomic rewrite of the manifest. Every package it names must be
    /// in the store.
    pub fn commit(&self, next: &InstalledApps) -> Result<(), UpdateError> {
        for a in &next.apps {
            let p = self.package_path(&a.package_sha256);
            if fs::symlink_metadata(&p).is_err() {
                return Err(UpdateError::malformed(
                    &p,
                    "a package of the set to install is missing from the store",
                ));
            }
        }
        write_json(&self.manifest(), next)?;
        crash::point("apps.committed");
        Ok(())
    }

    /// Remove packages that neither the installed set nor `also_keep` names.
    pub fn prune(&self, also_keep: Option<&InstalledApps>) -> Result<(), UpdateError> {
        let installed = self.installed()?;
        let keep: Vec<&str> = installed
            .apps
            .iter()
            .chain(also_keep.into_iter().flat_map(|k| k.apps.iter()))
            .map(|a| a.package_sha256.as_str())
            .collect();
        let dir = self.root.join("packages");
        for entry in fs::read_dir(&dir).map_err(UpdateError::io(&dir))? {
            let entry = entry.map_err(UpdateError::io(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".imagepackage").unwrap_or(&name);
            if !keep.contains(&stem) {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}
