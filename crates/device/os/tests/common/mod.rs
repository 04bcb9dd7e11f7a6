//! Shared by the device's end-to-end tests: an OS release of the real `ferro-device` binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferro_e2e::User;
use ferro_image::{PackOptions, Version, pack_os};
use ferro_signing::SoftwareSigningKey;

pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Copy a directory tree (a software-RoT device copies like a disk image).
#[allow(dead_code)]
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        let kind = entry.file_type().expect("type");
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_file() {
            fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The repository's hardware definitions, as an OS bundle ships them (`hardware/`): the
/// virtual board of the device comes from there.
pub fn add_hardware(os_dir: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../hardware");
    for board in ["ferro_vboard", "ferro_vchip"] {
        let to = os_dir.join("hardware").join(board);
        fs::create_dir_all(&to).expect("mkdir hardware");
        for entry in fs::read_dir(repo.join(board)).expect("read hardware") {
            let entry = entry.expect("entry");
            if entry.path().extension().is_some_and(|e| e == "json") {
                fs::copy(entry.path(), to.join(entry.file_name())).expect("copy definition");
            }
        }
    }
}

/// Packs version `version` (security version `sv`) of an app of `component` whose `bin/app` is
/// `body`, uploads it to the admin's tenant (signed with the admin's developer key) and returns
/// its image ID.
#[allow(dead_code)]
pub fn upload_app(
    admin: &User,
    work: &Path,
    component: &str,
    version: &str,
    sv: u32,
    body: &[u8],
) -> String {
    let manifest = serde_json::json!({
        "SchemaVersion": 1, "Name": "updater", "ComponentId": component, "EntryPoint": "/bin/app",
        "CmdArgs": [], "Capabilities": {}, "ApplicationType": "Default",
    });
    let package = pack_app(
        admin,
        work,
        &format!("app-{version}"),
        &manifest,
        body,
        version,
        sv,
    );
    upload(admin, &package)
}

/// Writes an app's package directory `work/<name>` (`manifest` as `app_manifest.json`, `entry`
/// as its `EntryPoint`), packs it as `version` (security version `sv`), test-signed by `user`,
/// and returns the package (`work/<name>.imagepackage`).
#[allow(dead_code)]
pub fn pack_app(
    user: &User,
    work: &Path,
    name: &str,
    manifest: &serde_json::Value,
    entry: &[u8],
    version: &str,
    sv: u32,
) -> PathBuf {
    let dir = work.join(name);
    let entry_point = manifest["EntryPoint"].as_str().expect("EntryPoint");
    let entry_path = dir.join(entry_point.trim_start_matches('/'));
    fs::create_dir_all(entry_path.parent().expect("parent")).expect("mkdir");
    fs::write(
        dir.join("app_manifest.json"),
        serde_json::to_vec(manifest).expect("json"),
    )
    .expect("manifest");
    fs::write(&entry_path, entry).expect("entry point");
    let package = work.join(format!("{name}.imagepackage"));
    user.json(&[
        "image-package",
        "pack-application",
        "--package-directory",
        s(&dir),
        "--destination",
        s(&package),
        "--version",
        version,
        "--security-version",
        &sv.to_string(),
    ]);
    package
}

/// Uploads `package` to the user's tenant; returns its image ID.
#[allow(dead_code)]
pub fn upload(user: &User, package: &Path) -> String {
    user.json(&["image", "add", "--image", s(package)])["id"]
        .as_str()
        .expect("image id")
        .to_string()
}

/// `ferro device ... --device-dir DIR`, as JSON.
#[allow(dead_code)]
pub fn attached(user: &User, dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--device-dir", s(dir)]);
    user.json(&all)
}

/// `ferro device ... --device-dir DIR`, which must fail: its error text.
#[allow(dead_code)]
pub fn attached_fails(user: &User, dir: &Path, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--device-dir", s(dir)]);
    user.fails(&all)
}

/// A running service with its administrator logged in, a tenant and a product (with its default
/// device groups) created, and the administrator's test-signing key registered as a developer key.
#[allow(dead_code)]
pub fn service_with_tenant(tenant: &str, product: &str) -> (ferro_e2e::Service, User) {
    let service = ferro_e2e::Service::start(&[]);
    let admin = User::new();
    admin.login_as_admin(&service, "a long enough passphrase");
    admin.json(&["tenant", "create", "--name", tenant]);
    admin.json(&["product", "create", "--name", product]);
    admin.json(&["developer-key", "add"]);
    (service, admin)
}

/// What [`publish_factory_os`] made.
// Each test binary compiles this module and reads a different subset of the fields.
#[allow(dead_code)]
pub struct FactoryOs {
    /// The downloaded release (signed by the platform OS release key): the factory OS image.
    pub factory: PathBuf,
    /// The package as the build key signed it (not trusted by devices).
    pub built: PathBuf,
    /// The packed ferro-device binary.
    pub bin: PathBuf,
    /// The release's image ID.
    pub release_id: String,
}

/// Packs the real ferro-device (stripped, to keep the tests fast) as an OS bundle under a fresh
/// build key, registers that key, publishes the bundle to Retail (so also RetailEval; the service
/// re-signs it with the platform OS release key) and downloads the release into `work`. Returns
/// the downloaded package, the factory OS image a device is provisioned with. Retail: devices in
/// no group, or in a Retail group, attest Trusted only on a Retail release.
pub fn publish_factory_os(
    admin: &User,
    work: &Path,
    version: Version,
    security_version: u32,
) -> FactoryOs {
    let os_dir = work.join("os");
    fs::create_dir_all(os_dir.join("bin")).expect("mkdir");
    let bin = os_dir.join("bin/ferro-device");
    fs::copy(env!("CARGO_BIN_EXE_ferro-device"), &bin).expect("copy binary");
    let _ = Command::new("strip").arg(&bin).status();
    add_hardware(&os_dir);
    let build_key = SoftwareSigningKey::generate();
    let build_pub = work.join("build.pub.pem");
    fs::write(&build_pub, build_key.public_key().to_pem()).expect("write");
    let built = work.join("os-built.imagepackage");
    let options = PackOptions {
        version,
        security_version,
        ..PackOptions::default()
    };
    pack_os(&os_dir, &options, &build_key, &built).expect("pack_os");
    admin.json(&["os-release", "key", "add", "--public-key", s(&build_pub)]);
    let release = admin.json(&[
        "os-release",
        "publish",
        "--image",
        s(&built),
        "--feed",
        "Retail",
    ]);
    let release_id = release["imageId"].as_str().expect("imageId").to_string();
    let factory = work.join("os-release.imagepackage");
    let out = admin.run(&[
        "os-release",
        "download",
        "--image",
        &release_id,
        "--destination",
        s(&factory),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    FactoryOs {
        factory,
        built,
        bin,
        release_id,
    }
}

/// Packs `bin/ferro-device` (the real one, stripped, or `script` in its place: a broken OS) as OS
/// `version`, publishes it to RetailEval under a fresh registered build key and returns the
/// release's image ID.
#[allow(dead_code)]
pub fn publish_os(
    admin: &User,
    work: &Path,
    name: &str,
    version: Version,
    security_version: u32,
    script: Option<&str>,
) -> String {
    let os_dir = work.join(name);
    fs::create_dir_all(os_dir.join("bin")).expect("mkdir");
    let bin = os_dir.join("bin/ferro-device");
    match script {
        Some(text) => {
            fs::write(&bin, text).expect("write script");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod");
            }
        }
        None => {
            fs::copy(env!("CARGO_BIN_EXE_ferro-device"), &bin).expect("copy binary");
            let _ = Command::new("strip").arg(&bin).status();
            add_hardware(&os_dir);
        }
    }
    let build_key = SoftwareSigningKey::generate();
    let build_pub = work.join(format!("{name}.pub.pem"));
    fs::write(&build_pub, build_key.public_key().to_pem()).expect("write");
    let built = work.join(format!("{name}.imagepackage"));
    let options = PackOptions {
        version,
        security_version,
        ..PackOptions::default()
    };
    pack_os(&os_dir, &options, &build_key, &built).expect("pack_os");
    admin.json(&["os-release", "key", "add", "--public-key", s(&build_pub)]);
    let release = admin.json(&[
        "os-release",
        "publish",
        "--image",
        s(&built),
        "--feed",
        "RetailEval",
    ]);
    release["imageId"].as_str().expect("imageId").to_string()
}

/// A provisioned, registered and claimed virtual device, booted by `ferro-boot` under a
/// watchdog: [`VirtualDevice::supervise`] restarts it when its process ends, as a hardware
/// watchdog or systemd would.
#[allow(dead_code)]
pub struct VirtualDevice {
    /// Its data directory.
    pub dir: PathBuf,
    /// Its device ID.
    pub device_id: String,
    /// How often the watchdog restarted it.
    pub restarts: u32,
    /// The running process, if any.
    pub child: Option<std::process::Child>,
    env: Vec<(String, String)>,
    log: PathBuf,
}

#[allow(dead_code)]
impl VirtualDevice {
    /// Provision a software-RoT device with `factory_os`, finish manufacturing, register it and
    /// claim it for the admin's current tenant.
    pub fn provision_and_claim(
        service: &ferro_e2e::Service,
        admin: &User,
        work: &Path,
        factory_os: &Path,
    ) -> VirtualDevice {
        Self::provision_and_claim_with(service, admin, work, factory_os, &[])
    }

    /// [`VirtualDevice::provision_and_claim`] with more `provision` arguments (e.g. `--rot tpm
    /// --tpm TCTI`).
    pub fn provision_and_claim_with(
        service: &ferro_e2e::Service,
        admin: &User,
        work: &Path,
        factory_os: &Path,
        provision_args: &[&str],
    ) -> VirtualDevice {
        let dir = work.join("device");
        let out = Command::new(env!("CARGO_BIN_EXE_ferro-device"))
            .args([
                "provision",
                "--data-dir",
                s(&dir),
                "--service",
                &service.url,
                "--platform-root",
                s(&service.platform_root_pem()),
                "--os-image",
                s(factory_os),
                "--output",
                "json",
            ])
            .args(provision_args)
            .output()
            .expect("provision");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let device_id = shown["deviceId"].as_str().expect("deviceId").to_string();
        let out = Command::new(env!("CARGO_BIN_EXE_ferro-device"))
            .args([
                "manufacturing-state",
                "update",
                "--data-dir",
                s(&dir),
                "--state",
                "DeviceComplete",
            ])
            .output()
            .expect("manufacturing-state");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let registered = admin.json(&[
            "manufacturing",
            "register",
            "--file",
            s(&dir.join("registration.cose")),
        ]);
        let code = registered[0]["claimCode"].as_str().expect("claim code");
        admin.json(&[
            "device",
            "claim",
            "--device",
            &device_id,
            "--claim-code",
            code,
        ]);
        let log = work.join("device.log");
        VirtualDevice {
            dir,
            device_id,
            restarts: 0,
            child: None,
            env: Vec::new(),
            log,
        }
    }

    /// The same device in another directory (`dir`, replaced), as a fresh process handle.
    pub fn clone_to(&self, dir: &Path, log: &Path) -> VirtualDevice {
        let _ = fs::remove_dir_all(dir);
        copy_dir(&self.dir, dir);
        VirtualDevice {
            dir: dir.to_path_buf(),
            device_id: self.device_id.clone(),
            restarts: 0,
            child: None,
            env: Vec::new(),
            log: log.to_path_buf(),
        }
    }

    /// Wait for the process to end by itself (a crash); false if it still runs after `limit`.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            match self.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(_))) | None => {
                    self.child = None;
                    return true;
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        false
    }

    /// Start `ferro-boot` with `env` (kept for watchdog restarts).
    pub fn boot(&mut self, env: &[(&str, &str)]) {
        self.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.spawn();
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("device log");
        let mut cmd = Command::new(ferro_e2e::binary("ferro-boot"));
        cmd.args(["--data-dir", s(&self.dir)])
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("run ferro-boot"));
    }

    /// Restart the device if its process ended (the watchdog); true if it did.
    pub fn supervise(&mut self) -> bool {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(_)) = child.try_wait()
        {
            self.restarts += 1;
            self.spawn();
            return true;
        }
        false
    }

    /// Wait (supervising) until run/ready.json exists; its content.
    pub fn wait_ready(&mut self) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            self.supervise();
            if let Ok(bytes) = fs::read(self.dir.join("run/ready.json"))
                && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
            {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "device not ready within 120 s:\n{}",
                self.log_tail()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Stop it with SIGTERM (and wait).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last 60 lines of the device's log.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for VirtualDevice {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
