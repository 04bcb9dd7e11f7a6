//! A test platform for provisioning devices in process, without a service: a platform root
//! certificate, a key list it signs (OS release and capability keys) and a factory OS bundle.

use std::path::{Path, PathBuf};

use ferro_device::provision::{ProvisionOptions, provision};
use ferro_device::{DataDir, DeviceConfig};
use ferro_image::{PackOptions, pack_os};
use ferro_pki::{KeyList, PlatformKeyRole, issue_platform_root_certificate};
use ferro_signing::SoftwareSigningKey;

/// What provisioning needs from the platform, as files and bytes under a work directory.
pub struct Platform {
    /// The platform root certificate, PEM.
    pub root_pem: PathBuf,
    /// The key list, signed by the root.
    pub key_list: Vec<u8>,
    /// The factory OS bundle, signed by `os_key`.
    pub os_image: PathBuf,
}

impl Platform {
    /// The platform of `root` and `os_key` in `work` (`root.pem`, `os/`, `os.imagepackage`),
    /// its OS bundle at `security_version`.
    pub fn new(
        work: &Path,
        root: &SoftwareSigningKey,
        os_key: &SoftwareSigningKey,
        security_version: u32,
    ) -> Platform {
        let now = ferro_pki::time::OffsetDateTime::now_utc();
        let cert = issue_platform_root_certificate(root, now).expect("root cert");
        let root_pem = work.join("root.pem");
        std::fs::write(&root_pem, cert.pem()).expect("write");
        let key_list = KeyList {
            version: 1,
            issued_at: now,
            keys: [PlatformKeyRole::OsRelease, PlatformKeyRole::Capability]
                .into_iter()
                .map(|role| (role, vec![os_key.public_key().clone()]))
                .collect(),
        }
        .sign(root)
        .expect("sign");
        let os_dir = work.join("os");
        std::fs::create_dir_all(os_dir.join("bin")).expect("mkdir");
        std::fs::write(os_dir.join("bin/ferro-device"), b"#!/bin/sh\n").expect("write");
        let os_image = work.join("os.imagepackage");
        let options = PackOptions {
            security_version,
            ..PackOptions::default()
        };
        pack_os(&os_dir, &options, os_key, &os_image).expect("pack");
        Platform {
            root_pem,
            key_list,
            os_image,
        }
    }

    /// A new platform (fresh keys) in `work`.
    pub fn generate(work: &Path) -> Platform {
        Platform::new(
            work,
            &SoftwareSigningKey::generate(),
            &SoftwareSigningKey::generate(),
            0,
        )
    }

    /// Provisioning options for a device in `dir` with `config`.
    pub fn options(&self, dir: &Path, config: DeviceConfig) -> ProvisionOptions {
        ProvisionOptions {
            data_dir: DataDir::new(dir),
            service_url: "https://ferro.invalid".to_string(),
            platform_root_pem: self.root_pem.clone(),
            os_image: self.os_image.clone(),
            config,
        }
    }

    /// Provision a device in `dir` with `config`.
    pub fn provision(&self, dir: &Path, config: DeviceConfig) -> DataDir {
        let opts = self.options(dir, config);
        let key_list = self.key_list.clone();
        provision(&opts, move |_, _| Ok(key_list)).expect("provision");
        opts.data_dir
    }
}
