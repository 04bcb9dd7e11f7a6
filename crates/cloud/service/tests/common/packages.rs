//! Test image packages and helpers for images, deployments and OS releases.
#![allow(dead_code)]

use super::{Resp, TestApp, uniq};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use ferro_image::{AppPackageManifest, PackOptions, Version};
use ferro_signing::SoftwareSigningKey;
use serde_json::json;
use uuid::Uuid;

/// A fresh key's PEM public key and the key.
pub fn dev_key() -> (SoftwareSigningKey, String) {
    let k = SoftwareSigningKey::generate();
    let pem = k.public_key().to_pem();
    (k, pem)
}

/// An app package (high-level app) of `component`, signed by `key`, with `version`.
pub fn app_package(key: &SoftwareSigningKey, component: Uuid, version: Version) -> Vec<u8> {
    app_package_with_id(key, component, version, None)
}

/// [`app_package`] with a fixed image ID.
pub fn app_package_with_id(
    key: &SoftwareSigningKey,
    component: Uuid,
    version: Version,
    image_id: Option<Uuid>,
) -> Vec<u8> {
    app_package_with_payload(
        key,
        component,
        version,
        image_id,
        format!("app {}", uniq()).as_bytes(),
    )
}

/// An app package whose `bin/app` is `payload` (a large image: a large payload).
pub fn app_package_with_payload(
    key: &SoftwareSigningKey,
    component: Uuid,
    version: Version,
    image_id: Option<Uuid>,
    payload: &[u8],
) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("bin")).expect("mkdir");
    std::fs::write(src.join("bin/app"), payload).expect("write");
    let name = format!("App{}", uniq());
    let manifest = json!({
        "SchemaVersion": 1, "Name": name, "ComponentId": component.to_string(),
        "EntryPoint": "/bin/app", "CmdArgs": [], "Capabilities": {},
        "ApplicationType": "Default",
    });
    let pkg = AppPackageManifest {
        component_id: component,
        name,
        entry_point: "/bin/app".into(),
        json_bytes: serde_json::to_vec_pretty(&manifest).expect("json"),
        is_real_time: false,
    };
    let dest = dir.path().join("app.fsimg");
    ferro_image::pack_application(
        &src,
        &pkg,
        &PackOptions {
            version,
            image_id,
            ..PackOptions::default()
        },
        key,
        &dest,
    )
    .expect("pack app");
    std::fs::read(&dest).expect("read package")
}

/// An OS bundle package signed by `key`.
pub fn os_package(key: &SoftwareSigningKey, version: Version) -> Vec<u8> {
    os_package_with(key, version, PackOptions::default().security_version)
}

/// [`os_package`] with a security version.
pub fn os_package_with(
    key: &SoftwareSigningKey,
    version: Version,
    security_version: u32,
) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("os");
    std::fs::create_dir_all(src.join("bin")).expect("mkdir");
    std::fs::write(src.join("bin/ferro-device"), format!("os {}", uniq())).expect("write");
    let dest = dir.path().join("os.fsimg");
    ferro_image::pack_os(
        &src,
        &PackOptions {
            version,
            security_version,
            ..PackOptions::default()
        },
        key,
        &dest,
    )
    .expect("pack os");
    std::fs::read(&dest).expect("read package")
}

impl TestApp {
    /// POST raw bytes with a content type.
    pub async fn post_bytes(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Resp {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("content-type", content_type);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        self.send(req.body(Body::from(bytes)).expect("request"))
            .await
    }

    /// GET with extra headers.
    pub async fn get_with(&self, path: &str, token: &str, headers: &[(&str, &str)]) -> Resp {
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(Body::empty()).expect("request")).await
    }

    /// Register a developer key in `tenant`; returns the key.
    pub async fn developer_key(&self, tenant: &str, token: &str) -> SoftwareSigningKey {
        let (k, pem) = dev_key();
        let r = self
            .post(
                &format!("/v1/tenants/{tenant}/developer-keys"),
                token,
                json!({"publicKeyPem": pem, "name": format!("Dev {}", uniq())}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        k
    }

    /// Upload a package to `tenant`.
    pub async fn upload(&self, tenant: &str, token: &str, bytes: Vec<u8>) -> Resp {
        self.post_bytes(
            &format!("/v1/tenants/{tenant}/images"),
            Some(token),
            "application/octet-stream",
            bytes,
        )
        .await
    }

    /// A fresh app image in `tenant` (registering a developer key). Returns its image ID.
    pub async fn image(&self, tenant: &str, token: &str) -> String {
        let k = self.developer_key(tenant, token).await;
        let r = self
            .upload(
                tenant,
                token,
                app_package(&k, Uuid::new_v4(), Version::new(1, 0, 0)),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().expect("id").to_string()
    }

    /// Register an OS release build key (as the operator); returns the key.
    pub async fn os_release_key(&self) -> SoftwareSigningKey {
        let (k, pem) = dev_key();
        let r = self
            .post(
                "/v1/os-release-keys",
                &self.operator,
                json!({"publicKeyPem": pem, "name": format!("Build {}", uniq())}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        k
    }

    /// Publish an OS release (as the operator) with a version above every earlier one in this
    /// process. Returns its image ID.
    pub async fn os_release(&self, feed: &str) -> String {
        self.os_release_with(feed, PackOptions::default().security_version)
            .await
    }

    /// [`TestApp::os_release`] with a security version.
    pub async fn os_release_with(&self, feed: &str, security_version: u32) -> String {
        let k = self.os_release_key().await;
        let v = Version::new(1, 0, u32::try_from(1000 + uniq()).expect("small"));
        let r = self
            .post_bytes(
                &format!("/v1/os-releases?feed={feed}"),
                Some(&self.operator),
                "application/octet-stream",
                os_package_with(&k, v, security_version),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["imageId"].as_str().expect("id").to_string()
    }

    /// Files in the object store (`images/`) and its staging directory.
    pub fn object_files(&self) -> (usize, usize) {
        let root = self.dir.path().join("data/objects");
        let count = |d: std::path::PathBuf| std::fs::read_dir(d).map_or(0, |r| r.count());
        (count(root.join("images")), count(root.join("tmp")))
    }
}
