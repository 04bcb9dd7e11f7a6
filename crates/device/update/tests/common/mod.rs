//! Shared helpers for the `ferro-update` tests: a platform (root, OS release, capability and
//! tenant endorsement keys, signed key list), tenants (image and metadata keys), a device (a real
//! `SoftwareRootOfTrust` and an `UpdateDir` in a temporary directory), builders for ownership
//! documents and target sets, real signed packages, and a snapshot of everything on disk that a
//! refusal must leave unchanged.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferro_image::{
    AppPackageManifest, ImageMetadata, ImageType, PackOptions, Version, pack_application, pack_os,
};
use ferro_pki::{
    DeviceOwnership, KeyList, PlatformKeyRole, TargetImage, TargetKind, TargetSet, VerifiedKeyList,
    verify_key_list,
};
use ferro_signing::{DeviceId, Signer, SoftwareSigningKey};
use ferro_trust::{RootOfTrust, SoftwareRootOfTrust};
use ferro_update::accept::TARGET_SET_COUNTER;
use ferro_update::{
    AcceptedTargetSet, DownloadedPackage, PartialDownload, UpdateDir, UpdateError,
    accept_target_set,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

/// A fixed reference time (2027-01-15), whole seconds as the documents carry.
pub const T0: i64 = 1_800_000_000;
pub const HOUR: i64 = 3600;
pub const DAY: i64 = 24 * HOUR;

/// `T0 + secs`.
pub fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(T0 + secs).unwrap()
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The platform: its root and the keys its key list names.
pub struct Platform {
    pub root: SoftwareSigningKey,
    pub os_release: SoftwareSigningKey,
    pub capability: SoftwareSigningKey,
    pub endorsement: SoftwareSigningKey,
    pub key_list: VerifiedKeyList,
}

/// Sign and verify a key list with the given roles.
pub fn key_list(
    root: &SoftwareSigningKey,
    version: u64,
    roles: &[(PlatformKeyRole, &[&SoftwareSigningKey])],
) -> VerifiedKeyList {
    let keys: BTreeMap<PlatformKeyRole, Vec<_>> = roles
        .iter()
        .map(|(role, ks)| (*role, ks.iter().map(|k| k.public_key().clone()).collect()))
        .collect();
    let list = KeyList {
        version,
        issued_at: at(-30 * DAY),
        keys,
    };
    let bytes = list.sign(root).unwrap();
    verify_key_list(&bytes, root.public_key()).unwrap()
}

impl Platform {
    pub fn new() -> Platform {
        let root = SoftwareSigningKey::generate();
        let os_release = SoftwareSigningKey::generate();
        let capability = SoftwareSigningKey::generate();
        let endorsement = SoftwareSigningKey::generate();
        let key_list = key_list(
            &root,
            1,
            &[
                (PlatformKeyRole::OsRelease, &[&os_release]),
                (PlatformKeyRole::Capability, &[&capability]),
                (PlatformKeyRole::TenantEndorsement, &[&endorsement]),
            ],
        );
        Platform {
            root,
            os_release,
            capability,
            endorsement,
            key_list,
        }
    }

    /// A key list of this platform with the same OS release and capability keys but the given
    /// endorsement keys (none: the role is absent).
    pub fn key_list_with_endorsement(
        &self,
        version: u64,
        endorsement: &[&SoftwareSigningKey],
    ) -> VerifiedKeyList {
        let mut roles: Vec<(PlatformKeyRole, &[&SoftwareSigningKey])> = Vec::new();
        let os = [&self.os_release];
        let cap = [&self.capability];
        roles.push((PlatformKeyRole::OsRelease, &os));
        roles.push((PlatformKeyRole::Capability, &cap));
        if !endorsement.is_empty() {
            roles.push((PlatformKeyRole::TenantEndorsement, endorsement));
        }
        key_list(&self.root, version, &roles)
    }
}

/// A tenant and its keys.
pub struct Tenant {
    pub id: Uuid,
    pub image_key: SoftwareSigningKey,
    pub metadata_key: SoftwareSigningKey,
}

impl Tenant {
    pub fn new() -> Tenant {
        Tenant {
            id: Uuid::new_v4(),
            image_key: SoftwareSigningKey::generate(),
            metadata_key: SoftwareSigningKey::generate(),
        }
    }
}

/// An ownership document's content for `tenant` and `device`.
pub fn ownership_doc(
    tenant: &Tenant,
    device: DeviceId,
    issued_at: OffsetDateTime,
) -> DeviceOwnership {
    DeviceOwnership {
        device_id: device,
        tenant_id: tenant.id,
        issued_at,
        image_keys: vec![tenant.image_key.public_key().clone()],
        metadata_keys: vec![tenant.metadata_key.public_key().clone()],
        ownership_epoch: 0,
    }
}

/// A target set's content (no images, group set, one week of validity from `issued_at`).
pub fn target_set(
    tenant: &Tenant,
    device: DeviceId,
    version: u64,
    issued_at: OffsetDateTime,
) -> TargetSet {
    TargetSet {
        device_id: device,
        tenant_id: tenant.id,
        device_group_id: Some(Uuid::from_u128(0x6709)),
        version,
        issued_at,
        expires_at: issued_at + time::Duration::days(7),
        manage_apps: true,
        images: Vec::new(),
    }
}

/// A device: a software root of trust and an update directory in a temporary directory.
pub struct Device {
    pub tmp: tempfile::TempDir,
    pub rot: SoftwareRootOfTrust,
    pub dir: UpdateDir,
    pub id: DeviceId,
}

impl Device {
    pub fn new() -> Device {
        let tmp = tempfile::tempdir().unwrap();
        let rot = SoftwareRootOfTrust::open(tmp.path().join("rot")).unwrap();
        let dir = UpdateDir::open(tmp.path().join("update")).unwrap();
        let id = rot.device_id();
        Device { tmp, rot, dir, id }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn counter(&self) -> u64 {
        self.rot.counter(TARGET_SET_COUNTER).unwrap()
    }

    /// Everything a refusal must leave as it was: every file of `update/` (downloads aside)
    /// and of the root of trust, and the target set counter.
    pub fn snapshot(&self) -> Snapshot {
        let mut files = BTreeMap::new();
        for dir in [self.dir.root().to_path_buf(), self.rot.dir().to_path_buf()] {
            collect(&dir, &mut files);
        }
        files.retain(|p, _| !p.starts_with(self.dir.downloads()));
        Snapshot {
            files,
            counter: self.counter(),
        }
    }
}

/// The files of a directory tree and the target set counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    pub counter: u64,
}

fn collect(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
}

/// The platform, two tenants (A owns the device, B is another tenant) and the device.
pub struct World {
    pub platform: Platform,
    pub a: Tenant,
    pub b: Tenant,
    pub device: Device,
}

impl World {
    pub fn new() -> World {
        World {
            platform: Platform::new(),
            a: Tenant::new(),
            b: Tenant::new(),
            device: Device::new(),
        }
    }

    /// Tenant A's ownership document for the device, issued at `T0 - 10 days`.
    pub fn ownership_a(&self) -> Vec<u8> {
        ownership_doc(&self.a, self.device.id, at(-10 * DAY))
            .sign(&self.platform.endorsement)
            .unwrap()
    }

    /// Tenant A's target set `version` issued at `issued_at`.
    pub fn set_a(&self, version: u64, issued_at: OffsetDateTime) -> TargetSet {
        target_set(&self.a, self.device.id, version, issued_at)
    }

    pub fn sign_a(&self, set: &TargetSet) -> Vec<u8> {
        set.sign(&self.a.metadata_key).unwrap()
    }

    /// Accept `set` (signed by A) with A's ownership document.
    pub fn accept(&self, set: &TargetSet) -> Result<AcceptedTargetSet, UpdateError> {
        self.accept_bytes(&self.sign_a(set), &self.ownership_a(), None)
    }

    pub fn accept_bytes(
        &self,
        target: &[u8],
        ownership: &[u8],
        hint: Option<OffsetDateTime>,
    ) -> Result<AcceptedTargetSet, UpdateError> {
        accept_target_set(
            &self.device.dir,
            &self.device.rot,
            &self.platform.key_list,
            target,
            ownership,
            hint,
        )
    }
}

// ---- packages ----

pub fn app_manifest_json(name: &str, component: Uuid, entry: &str, rt: bool) -> Vec<u8> {
    format!(
        "{{\n  \"SchemaVersion\": 1,\n  \"Name\": \"{name}\",\n  \"ComponentId\": \"{component}\",\n  \
         \"EntryPoint\": \"{entry}\",\n  \"CmdArgs\": [],\n  \"Capabilities\": {{ \"Gpio\": [8] }},\n  \
         \"ApplicationType\": \"{}\"\n}}\n",
        if rt { "RealTimeCapable" } else { "Default" }
    )
    .into_bytes()
}

/// A packed, signed package and its verified metadata.
pub struct Package {
    pub bytes: Vec<u8>,
    pub metadata: ImageMetadata,
}

impl Package {
    /// The target entry naming exactly this package.
    pub fn target(&self) -> TargetImage {
        let m = &self.metadata;
        TargetImage {
            component_id: m.component_id,
            image_id: m.image_id,
            kind: match m.image_type {
                ImageType::App => TargetKind::App,
                ImageType::RtApp => TargetKind::RtApp,
                ImageType::Os => TargetKind::Os,
                ImageType::BoardConfig => TargetKind::BoardConfig,
            },
            version: m.version.to_string(),
            security_version: m.security_version,
            package_sha256: sha256(&self.bytes),
            package_size: self.bytes.len() as u64,
            payload_sha256: m.payload_sha256,
        }
    }
}

fn write_file(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
}

fn options(version: Version, security_version: u32) -> PackOptions {
    PackOptions {
        version,
        security_version,
        ..PackOptions::default()
    }
}

/// A high-level app of `component`, signed by `signer`.
pub fn pack_app(
    signer: &dyn Signer,
    component: Uuid,
    version: Version,
    security_version: u32,
) -> Package {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_file(
        &src,
        "bin/app",
        format!("app {component} {version}").as_bytes(),
    );
    write_file(&src, "data/config.txt", b"hello\n");
    let manifest = AppPackageManifest {
        component_id: component,
        name: "HelloWorld".into(),
        entry_point: "/bin/app".into(),
        json_bytes: app_manifest_json("HelloWorld", component, "/bin/app", false),
        is_real_time: false,
    };
    let dest = dir.path().join("app.imagepackage");
    let metadata = pack_application(
        &src,
        &manifest,
        &options(version, security_version),
        signer,
        &dest,
    )
    .unwrap();
    Package {
        bytes: std::fs::read(dest).unwrap(),
        metadata,
    }
}

/// An OS bundle signed by `signer`.
pub fn pack_os_bundle(signer: &dyn Signer, version: Version, security_version: u32) -> Package {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("os");
    write_file(&src, "bin/ferro-device", format!("os {version}").as_bytes());
    write_file(&src, "etc/os-release", b"NAME=Ferrosphere\n");
    let dest = dir.path().join("os.imagepackage");
    let metadata = pack_os(&src, &options(version, security_version), signer, &dest).unwrap();
    Package {
        bytes: std::fs::read(dest).unwrap(),
        metadata,
    }
}

/// Download `bytes` as the package `sha256`/`expected` in `dir` in one go.
pub fn download(
    dir: &Path,
    sha256: [u8; 32],
    expected: u64,
    bytes: &[u8],
) -> Result<DownloadedPackage, UpdateError> {
    let mut d = PartialDownload::open(dir, sha256, expected)?;
    d.append(bytes)?;
    d.finish()
}

/// Sort target images by component ID (the format requires it).
pub fn sorted(mut images: Vec<TargetImage>) -> Vec<TargetImage> {
    images.sort_by_key(|i| i.component_id);
    images
}

/// Accept a set of tenant A naming `images` (sorted here) as version `version`.
pub fn accept_images(w: &World, version: u64, images: Vec<TargetImage>) -> AcceptedTargetSet {
    let mut set = w.set_a(version, at(version as i64 * HOUR));
    set.images = sorted(images);
    w.accept(&set).unwrap()
}

/// Download `pkg` into the device's `downloads/` as `target` names it and check it.
pub fn download_and_check(
    w: &World,
    accepted: &AcceptedTargetSet,
    target: &TargetImage,
    pkg: &Package,
) -> Result<ferro_update::CheckedPackage, UpdateError> {
    let downloaded = download(
        &w.device.dir.downloads(),
        target.package_sha256,
        target.package_size,
        &pkg.bytes,
    )?;
    ferro_update::check_package(
        &downloaded,
        target,
        accepted,
        &w.platform.key_list,
        &w.device.rot,
    )
}
