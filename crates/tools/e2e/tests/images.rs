//! From a developer's package to a device group's deployment, and an operator's OS release,
//! through the real CLI and service: the service accepts only packages signed by a registered
//! developer key, stores them re-signed by the tenant's image key, and refuses tampered ones.

use std::path::{Path, PathBuf};

use ferro_e2e::{Service, User};

const PASSWORD: &str = "correct horse battery staple";

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// An app folder with the hello manifest and a stand-in entry point.
fn app_dir(root: &Path) -> PathBuf {
    let dir = root.join("approot");
    std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
    std::fs::copy(
        repo_root().join("apps/samples/hello/app_manifest.json"),
        dir.join("app_manifest.json"),
    )
    .expect("manifest");
    std::fs::write(dir.join("bin/app"), b"\0asm\x0d\0\x01\0 stand-in component").expect("entry");
    dir
}

#[test]
fn package_upload_deploy_and_os_release() {
    let service = Service::start(&[]);
    let admin = User::new();
    admin.login_as_admin(&service, PASSWORD);
    admin.json(&["tenant", "create", "--name", "Contoso"]);
    admin.json(&["product", "create", "--name", "Coffee Maker"]);
    let work = tempfile::tempdir().expect("temp dir");

    // Pack with the developer's test key (made on first use).
    let package = work.path().join("hello.imagepackage");
    let hardware = repo_root().join("hardware/ferro_vboard");
    let packed = admin.json(&[
        "image-package",
        "pack-application",
        "--package-directory",
        s(&app_dir(work.path())),
        "--destination",
        s(&package),
        "--hardware-definitions",
        s(&hardware),
        "--target-definition-filename",
        "sample_appliance.json",
    ]);
    let developer_kid = packed["signingKeyId"].as_str().expect("kid").to_string();

    // Until the tenant trusts that key, the upload is refused and says what to do.
    let stderr = admin.fails(&["image", "add", "--image", s(&package)]);
    assert!(stderr.contains("untrusted_signing_key"), "{stderr}");
    assert_eq!(
        admin.json(&["image", "list"]).as_array().map(Vec::len),
        Some(0)
    );

    let key = admin.json(&["developer-key", "add"]);
    assert_eq!(key["keyId"], developer_kid.as_str());

    let image = admin.json(&["image", "add", "--image", s(&package)]);
    let image_id = image["id"].as_str().expect("image id").to_string();
    assert_eq!(image["uploadedSignerKeyId"], developer_kid.as_str());
    assert_ne!(
        image["signerKeyId"],
        developer_kid.as_str(),
        "stored copy is re-signed"
    );
    assert_eq!(image["payloadSha256"], packed["payloadSha256"]);

    // The production copy verifies only with the tenant's image key, not the developer's.
    let downloaded = work.path().join("production.imagepackage");
    let output = admin.run(&[
        "image",
        "download",
        "--image",
        &image_id,
        "--destination",
        s(&downloaded),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = admin.fails(&["image-package", "verify", "--image-package", s(&downloaded)]);
    assert!(stderr.contains("failed verification"), "{stderr}");
    let shown = admin.json(&["image-package", "show", "--image-package", s(&downloaded)]);
    assert_eq!(shown["signingKeyId"], image["signerKeyId"]);
    assert_eq!(shown["imageId"], image_id.as_str());

    // A tampered package is refused and nothing is stored.
    let mut bytes = std::fs::read(&package).expect("read");
    let last = bytes.len() - 100;
    bytes[last] ^= 0x40;
    let tampered = work.path().join("tampered.imagepackage");
    std::fs::write(&tampered, &bytes).expect("write");
    let stderr = admin.fails(&["image", "add", "--image", s(&tampered)]);
    assert!(stderr.contains("invalid_image"), "{stderr}");
    assert_eq!(
        admin.json(&["image", "list"]).as_array().map(Vec::len),
        Some(1)
    );

    // Deploy it to a group named the azsphere way.
    let deployment = admin.json(&[
        "device-group",
        "deployment",
        "create",
        "--device-group",
        "Coffee Maker/Field Test",
        "--images",
        &image_id,
    ]);
    assert!(deployment["images"].to_string().contains(&image_id));
    let history = admin.json(&[
        "device-group",
        "deployment",
        "list",
        "--device-group",
        "Coffee Maker/Field Test",
    ]);
    assert_eq!(history.as_array().map(Vec::len), Some(1));
    // The group's current deployment keeps its image: `image delete` is refused, saying why.
    let stderr = admin.fails(&["image", "delete", "--image", &image_id]);
    assert!(
        stderr.contains("image_in_use")
            && stderr.contains("the current deployment of device group"),
        "{stderr}"
    );
    assert_eq!(
        admin.json(&["image", "list"]).as_array().map(Vec::len),
        Some(1)
    );

    // The operator publishes an OS release built with a registered build key.
    let os_dir = work.path().join("os");
    std::fs::create_dir_all(os_dir.join("bin")).expect("mkdir");
    std::fs::write(os_dir.join("bin/ferro-device"), b"\x7fELF stand-in").expect("write");
    let os_package = work.path().join("os.imagepackage");
    admin.json(&[
        "image-package",
        "pack-os",
        "--os-directory",
        s(&os_dir),
        "--version",
        "1.4.0",
        "--destination",
        s(&os_package),
    ]);
    let stderr = admin.fails(&[
        "os-release",
        "publish",
        "--image",
        s(&os_package),
        "--feed",
        "RetailEval",
    ]);
    assert!(stderr.contains("untrusted_signing_key"), "{stderr}");
    admin.json(&["os-release", "key", "add"]);
    let release = admin.json(&[
        "os-release",
        "publish",
        "--image",
        s(&os_package),
        "--feed",
        "RetailEval",
    ]);
    assert_eq!(release["version"], "1.4.0");
    let release_id = release["imageId"].as_str().expect("release id").to_string();
    let listed = admin.json(&["os-release", "list", "--feed", "RetailEval"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    let promoted = admin.json(&["os-release", "promote", "--image", &release_id]);
    assert!(promoted["retailAt"].is_string(), "{promoted}");
    // Feed minimums: none set; one no release meets is refused with what to do.
    let feeds = admin.json(&["os-release", "show-feeds"]);
    assert_eq!(feeds[0]["feed"], "Retail", "{feeds}");
    assert_eq!(feeds[0]["minimumSecurityVersion"], 0, "{feeds}");
    let stderr = admin.fails(&[
        "os-release",
        "set-minimum-security-version",
        "--feed",
        "Retail",
        "--security-version",
        "1",
    ]);
    assert!(stderr.contains("publish"), "{stderr}");
    let set = admin.json(&[
        "os-release",
        "set-minimum-security-version",
        "--feed",
        "Retail",
        "--security-version",
        "0",
    ]);
    assert_eq!(set["minimumSecurityVersion"], 0, "{set}");
    let os_download = work.path().join("os-release.imagepackage");
    let output = admin.run(&[
        "os-release",
        "download",
        "--image",
        &release_id,
        "--destination",
        s(&os_download),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shown = admin.json(&["image-package", "show", "--image-package", s(&os_download)]);
    assert_eq!(shown["imageType"], "os");
    assert_ne!(
        shown["signingKeyId"],
        developer_kid.as_str(),
        "signed by the platform OS key"
    );

    // Any user may download releases; only platform operators publish.
    let created = admin.json(&[
        "user",
        "create",
        "--login",
        "rita@example.com",
        "--display-name",
        "Rita",
    ]);
    let reader = User::new();
    let otp = created["oneTimePassword"]
        .as_str()
        .expect("otp")
        .to_string();
    assert!(
        reader
            .login(
                &service,
                "rita@example.com",
                &[&otp, "another long passphrase"]
            )
            .status
            .success()
    );
    assert_eq!(
        reader
            .json(&["os-release", "list"])
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let stderr = reader.fails(&[
        "os-release",
        "publish",
        "--image",
        s(&os_package),
        "--feed",
        "Retail",
    ]);
    assert!(stderr.contains("403"), "{stderr}");
    // Nor revoke; the operator can, for good.
    let stderr = reader.fails(&["os-release", "revoke", "--image", &release_id]);
    assert!(stderr.contains("403"), "{stderr}");
    let revoked = admin.json(&["os-release", "revoke", "--image", &release_id]);
    assert!(revoked["revokedAt"].is_string(), "{revoked}");
    let listed = reader.json(&["os-release", "list"]);
    assert_eq!(listed[0]["revokedAt"], revoked["revokedAt"], "{listed}");
}
