//! End-to-end tests of the `ferro` binary: what a developer types, what they see, and that bad
//! input is refused with an error that says what to do and leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

fn fixtures_dir() -> PathBuf {
    repo_root().join("test-vectors/azure-sphere")
}

/// A sandbox: its own configuration directory (so its own test-signing key) and work folder.
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config_dir(&self) -> PathBuf {
        self.path("config")
    }

    fn ferro(&self) -> Command {
        let mut command = Command::cargo_bin("ferro").expect("ferro binary");
        command
            .env("FERRO_CONFIG_DIR", self.config_dir())
            .env_remove("RUST_LOG")
            .current_dir(repo_root());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.ferro().args(args).output().expect("run ferro")
    }

    /// Runs and expects success; returns the parsed `--output json`.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        parse_success(self.run(&all))
    }

    /// Runs and expects failure; returns standard error.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            !output.status.success(),
            "ferro {} unexpectedly succeeded:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// `pack-application` of `app` into `destination` against the sample appliance, plus `extra` arguments.
    fn pack_app(&self, app: &Path, destination: &Path, extra: &[&str]) -> Output {
        let mut args = vec![
            "image-package",
            "pack-application",
            "--package-directory",
            s(app),
            "--destination",
            s(destination),
            "--hardware-definitions",
            "hardware/ferro_vboard",
            "--target-definition-filename",
            "sample_appliance.json",
        ];
        args.extend(extra);
        self.run(&args)
    }

    /// [`Sandbox::pack_app`] with `--output json`, expecting success.
    fn pack_app_json(&self, app: &Path, destination: &Path, extra: &[&str]) -> Value {
        let mut args = extra.to_vec();
        args.extend(["--output", "json"]);
        parse_success(self.pack_app(app, destination, &args))
    }

    /// An app folder: the given manifest and an entry point at bin/app.
    fn app_dir(&self, name: &str, manifest: &[u8]) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
        std::fs::write(dir.join("app_manifest.json"), manifest).expect("manifest");
        std::fs::write(dir.join("bin/app"), b"\0asm\x0d\0\x01\0 not really wasm").expect("entry");
        std::fs::write(dir.join("README.txt"), b"a read-only resource").expect("resource");
        dir
    }
}

/// The JSON a successful command printed.
fn parse_success(output: Output) -> Value {
    assert!(
        output.status.success(),
        "ferro failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

const HELLO_MANIFEST: &[u8] = br#"{
  "SchemaVersion": 1,
  "Name": "hello",
  "ComponentId": "5b9c0b9e-3f0a-4c43-9d8a-6a3c2f1e7d10",
  "EntryPoint": "/bin/app",
  "CmdArgs": [],
  "Capabilities": { "Gpio": [ "$SAMPLE_LED" ] },
  "ApplicationType": "Default"
}"#;

fn pack_hello(sandbox: &Sandbox) -> (PathBuf, Value) {
    let app = sandbox.app_dir("hello", HELLO_MANIFEST);
    let package = sandbox.path("hello.imagepackage");
    let packed = sandbox.pack_app_json(
        &app,
        &package,
        &["--version", "1.2.3", "--security-version", "4"],
    );
    (package, packed)
}

#[test]
fn pack_show_verify_round_trip() {
    let sandbox = Sandbox::new();
    let (package, packed) = pack_hello(&sandbox);
    assert_eq!(packed["name"], "hello");
    assert_eq!(packed["imageType"], "app");
    assert_eq!(packed["version"], "1.2.3");
    assert_eq!(packed["securityVersion"], 4);
    assert_eq!(packed["signature"], "signed");

    let shown = sandbox.json(&["image-package", "show", "--image-package", s(&package)]);
    assert!(
        shown["signature"]
            .as_str()
            .is_some_and(|v| v.starts_with("not checked"))
    );
    let verified = sandbox.json(&["image-package", "verify", "--image-package", s(&package)]);
    assert_eq!(verified["signature"], "verified");
    for field in ["imageId", "componentId", "payloadSha256", "signingKeyId"] {
        assert_eq!(packed[field], verified[field], "{field}");
        assert_eq!(packed[field], shown[field], "{field}");
    }

    // The table output names the same things for people.
    let table = sandbox
        .ferro()
        .args(["image-package", "verify", "--image-package", s(&package)])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("Component ID") && text.contains("verified"),
        "{text}"
    );
}

#[cfg(unix)]
#[test]
fn first_pack_creates_a_private_test_signing_key() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let key = sandbox.config_dir().join("test-signing-key.pem");
    assert!(!key.exists());
    let app = sandbox.app_dir("hello", HELLO_MANIFEST);
    let output = sandbox.pack_app(&app, &sandbox.path("a.imagepackage"), &[]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("Created your test-signing key"));
    let mode = std::fs::metadata(&key)
        .expect("key made")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The secret never reaches the terminal.
    let printed = [output.stdout, output.stderr].concat();
    assert!(!String::from_utf8_lossy(&printed).contains("PRIVATE KEY"));
}

/// A way of damaging a package's bytes.
type Damage = Box<dyn Fn(&mut Vec<u8>)>;

#[test]
fn tampered_package_is_refused_with_a_specific_reason() {
    let sandbox = Sandbox::new();
    let (package, _) = pack_hello(&sandbox);
    let bytes = std::fs::read(&package).expect("read");
    let last = bytes.len() - 1;
    // A flipped payload byte, a truncation and a trailing byte.
    let cases: [(&str, Damage, &str); 3] = [
        (
            "flipped",
            Box::new(move |b: &mut Vec<u8>| b[last - 700] ^= 0x01),
            "SHA-256",
        ),
        (
            "truncated",
            Box::new(|b: &mut Vec<u8>| b.truncate(b.len() - 1)),
            "truncated",
        ),
        (
            "trailing",
            Box::new(|b: &mut Vec<u8>| b.push(0)),
            "data follows the payload",
        ),
    ];
    for (name, damage, reason) in cases {
        let copy = sandbox.path(&format!("{name}.imagepackage"));
        let mut damaged = bytes.clone();
        damage(&mut damaged);
        std::fs::write(&copy, &damaged).expect("write");
        let stderr = sandbox.fails(&["image-package", "verify", "--image-package", s(&copy)]);
        assert!(stderr.contains("failed verification"), "{name}: {stderr}");
        assert!(
            stderr.contains(reason),
            "{name}: expected {reason:?} in {stderr}"
        );
    }
}

#[test]
fn verify_trusts_only_the_keys_it_is_given() {
    let sandbox = Sandbox::new();
    let (package, _) = pack_hello(&sandbox);
    let other = repo_root().join("test-vectors/keys/test-only-untrusted-key.pem");
    // A private key file is not a public key: say what is expected.
    let stderr = sandbox.fails(&[
        "image-package",
        "verify",
        "--image-package",
        s(&package),
        "--public-key",
        s(&other),
    ]);
    assert!(stderr.contains("SPKI PEM"), "{stderr}");

    // Another signer's public key: refused as an unknown key.
    let other_public = sandbox.path("other.pub.pem");
    let pem = std::fs::read_to_string(&other).expect("read key");
    let key = ferro_signing::SoftwareSigningKey::from_pkcs8_pem(&pem).expect("test key");
    std::fs::write(&other_public, key.public_key().to_pem()).expect("write");
    let stderr = sandbox.fails(&[
        "image-package",
        "verify",
        "--image-package",
        s(&package),
        "--public-key",
        s(&other_public),
    ]);
    assert!(stderr.contains("failed verification"), "{stderr}");
    assert!(stderr.to_lowercase().contains("key"), "{stderr}");

    // No key at all: a fresh sandbox has no test-signing key to fall back on.
    let fresh = Sandbox::new();
    let stderr = fresh.fails(&["image-package", "verify", "--image-package", s(&package)]);
    assert!(stderr.contains("--public-key"), "{stderr}");
}

#[test]
fn explicit_signing_key_is_used_and_verifiable_with_its_public_key() {
    let sandbox = Sandbox::new();
    let app = sandbox.app_dir("hello", HELLO_MANIFEST);
    let signing_key = sandbox.path("release.pem");
    let source = repo_root().join("test-vectors/keys/test-only-signing-key.pem");
    std::fs::copy(&source, &signing_key).expect("copy key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&signing_key, std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
    let package = sandbox.path("release.imagepackage");
    let packed = sandbox.pack_app_json(&app, &package, &["--signing-key", s(&signing_key)]);
    let key = ferro_signing::SoftwareSigningKey::load(&signing_key).expect("key");
    assert_eq!(packed["signingKeyId"], key.key_id().to_string());
    assert!(!sandbox.config_dir().join("test-signing-key.pem").exists());
    let public = sandbox.path("release.pub.pem");
    std::fs::write(&public, key.public_key().to_pem()).expect("write");
    let verified = sandbox.json(&[
        "image-package",
        "verify",
        "--image-package",
        s(&package),
        "--public-key",
        s(&public),
    ]);
    assert_eq!(verified["signature"], "verified");
}

#[test]
fn invalid_manifest_reports_every_error_and_writes_nothing() {
    let sandbox = Sandbox::new();
    let app = sandbox.app_dir(
        "bad",
        br#"{
  "SchemaVersion": 1,
  "Name": "bad",
  "ComponentId": "not-a-guid",
  "EntryPoint": "/bin/app",
  "ApplicationType": "Default",
  "Capabilities": { "AllowedTcpServerPorts": [0, 80, 80], "MutableStorage": { "SizeKB": 100000 }, "PowerControls": [] }
}"#,
    );
    let destination = sandbox.path("bad.imagepackage");
    let stderr = sandbox.fails(&[
        "image-package",
        "pack-application",
        "--package-directory",
        s(&app),
        "--destination",
        s(&destination),
    ]);
    for path in [
        "ComponentId",
        "AllowedTcpServerPorts[0]",
        "AllowedTcpServerPorts[2]",
        "SizeKB",
        "PowerControls",
    ] {
        assert!(stderr.contains(path), "expected {path} in:\n{stderr}");
    }
    assert!(!destination.exists());
    assert_eq!(
        std::fs::read_dir(sandbox.dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("imagepackage"))
            .count(),
        0,
        "no partial package may be left"
    );
}

#[test]
fn unresolved_peripheral_names_say_what_to_pass() {
    let sandbox = Sandbox::new();
    let app = sandbox.app_dir("hello", HELLO_MANIFEST);
    let stderr = sandbox.fails(&[
        "image-package",
        "pack-application",
        "--package-directory",
        s(&app),
        "--destination",
        s(&sandbox.path("x.imagepackage")),
    ]);
    assert!(stderr.contains("SAMPLE_LED"), "{stderr}");
    assert!(stderr.contains("--hardware-definitions"), "{stderr}");

    let stderr = sandbox.fails(&[
        "image-package",
        "pack-application",
        "--package-directory",
        s(&app),
        "--destination",
        s(&sandbox.path("x.imagepackage")),
        "--hardware-definitions",
        "hardware/ferro_vboard",
        "--target-definition-filename",
        "no_such_board.json",
    ]);
    assert!(stderr.contains("no_such_board.json"), "{stderr}");
}

#[test]
fn board_config_and_os_bundle_pack_and_verify() {
    let sandbox = Sandbox::new();
    let config = sandbox.path("board.json");
    std::fs::write(
        &config,
        br#"{"Name": "vboard-default", "HardwareDefinition": "ferro_vboard.json"}"#,
    )
    .expect("write");
    let board = sandbox.path("board.imagepackage");
    let packed = sandbox.json(&[
        "image-package",
        "pack-board-config",
        "--board-config-file",
        s(&config),
        "--destination",
        s(&board),
    ]);
    assert_eq!(packed["imageType"], "board-config");
    let verified = sandbox.json(&["image-package", "verify", "--image-package", s(&board)]);
    assert_eq!(verified["signature"], "verified");

    let os = sandbox.path("os");
    std::fs::create_dir_all(os.join("bin")).expect("mkdir");
    std::fs::write(
        os.join("bin/ferro-device"),
        b"\x7fELF stand-in device binary",
    )
    .expect("write");
    let os_package = sandbox.path("os.imagepackage");
    let packed = sandbox.json(&[
        "image-package",
        "pack-os",
        "--os-directory",
        s(&os),
        "--version",
        "2.0.1",
        "--destination",
        s(&os_package),
    ]);
    assert_eq!(packed["imageType"], "os");
    assert_eq!(packed["version"], "2.0.1");
    let verified = sandbox.json(&["image-package", "verify", "--image-package", s(&os_package)]);
    assert_eq!(verified["signature"], "verified");

    // Bad inputs: an OS folder without bin/ferro-device, a board config that is not JSON, a bad version.
    std::fs::remove_file(os.join("bin/ferro-device")).expect("rm");
    let stderr = sandbox.fails(&[
        "image-package",
        "pack-os",
        "--os-directory",
        s(&os),
        "--version",
        "2.0.2",
        "--destination",
        s(&sandbox.path("os2.imagepackage")),
    ]);
    assert!(stderr.contains("bin/ferro-device"), "{stderr}");
    std::fs::write(&config, b"not json").expect("write");
    sandbox.fails(&[
        "image-package",
        "pack-board-config",
        "--board-config-file",
        s(&config),
        "--destination",
        s(&sandbox.path("board2.imagepackage")),
    ]);
    let stderr = sandbox.fails(&[
        "image-package",
        "pack-os",
        "--os-directory",
        s(&os),
        "--version",
        "two",
        "--destination",
        s(&sandbox.path("os3.imagepackage")),
    ]);
    assert!(stderr.contains("--version"), "{stderr}");
    assert!(!sandbox.path("os2.imagepackage").exists());
    assert!(!sandbox.path("board2.imagepackage").exists());
}

#[test]
fn generate_header_then_test_header_detects_drift() {
    let sandbox = Sandbox::new();
    let definition = repo_root().join("hardware/ferro_vboard/sample_appliance.json");
    let header = sandbox.path("sample_appliance.rs");
    let generated = sandbox.json(&[
        "hardware-definition",
        "generate-header",
        "--hardware-definition-file",
        s(&definition),
        "--destination",
        s(&header),
    ]);
    assert_eq!(generated["upToDate"], true);
    let text = std::fs::read_to_string(&header).expect("header written");
    assert!(text.contains("pub const SAMPLE_LED: u32"), "{text}");

    let checked = sandbox.json(&[
        "hardware-definition",
        "test-header",
        "--hardware-definition-file",
        s(&definition),
        "--destination",
        s(&header),
    ]);
    assert_eq!(checked["upToDate"], true);

    std::fs::write(&header, text.replace("SAMPLE_LED", "SAMPLE_LAMP")).expect("edit");
    let stderr = sandbox.fails(&[
        "hardware-definition",
        "test-header",
        "--hardware-definition-file",
        s(&definition),
        "--destination",
        s(&header),
    ]);
    assert!(
        stderr.contains("out of date") && stderr.contains("generate-header"),
        "{stderr}"
    );
}

#[test]
fn every_azure_sphere_definition_generates_constants() {
    let sandbox = Sandbox::new();
    let hardware = fixtures_dir().join("Hardware");
    let mut count = 0;
    for board in std::fs::read_dir(&hardware).expect("fixtures") {
        let board = board.expect("entry").path();
        for file in std::fs::read_dir(&board).expect("board dir") {
            let file = file.expect("entry").path();
            if file.extension().is_some_and(|e| e == "json") {
                let out = sandbox.path(&format!("{count}.rs"));
                sandbox.json(&[
                    "hardware-definition",
                    "generate-header",
                    "--hardware-definition-file",
                    s(&file),
                    "--destination",
                    s(&out),
                ]);
                count += 1;
            }
        }
    }
    assert_eq!(count, 6, "the fixtures hold six hardware definitions");
}

/// Azure Sphere users bring their manifests and boards: each fixture manifest, resolved against
/// each board's sample hardware abstraction (and Ferrosphere's own), packs and verifies.
#[test]
fn every_azure_sphere_manifest_packs_and_verifies_for_every_board() {
    let sandbox = Sandbox::new();
    let boards = [
        (
            fixtures_dir().join("Hardware/mt3620_rdb"),
            "sample_hardware.json",
        ),
        (
            fixtures_dir().join("Hardware/avnet_mt3620_sk"),
            "sample_hardware.json",
        ),
        (
            repo_root().join("hardware/ferro_vboard"),
            "sample_appliance.json",
        ),
    ];
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(fixtures_dir().join("manifests"))
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    manifests.sort();
    assert!(manifests.len() >= 20);
    let mut packed_count = 0;
    for manifest in &manifests {
        let stem = manifest
            .file_stem()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let bytes = complete_fragment(&std::fs::read(manifest).expect("read"));
        let app = sandbox.app_dir(&stem, &bytes);
        for (index, (dir, target)) in boards.iter().enumerate() {
            let package = sandbox.path(&format!("{stem}.{index}.imagepackage"));
            let packed = sandbox.json(&[
                "image-package",
                "pack-application",
                "--package-directory",
                s(&app),
                "--destination",
                s(&package),
                "--hardware-definitions",
                s(dir),
                "--target-definition-filename",
                target,
            ]);
            let verified =
                sandbox.json(&["image-package", "verify", "--image-package", s(&package)]);
            assert_eq!(
                verified["signature"],
                "verified",
                "{stem} on {}",
                dir.display()
            );
            assert_eq!(verified["payloadSha256"], packed["payloadSha256"]);
            packed_count += 1;
        }
    }
    assert_eq!(packed_count, manifests.len() * boards.len());
}

/// `CodeSnippets__*` fixtures are fragments holding only `Capabilities`: complete them with the
/// fields every manifest needs (their own keys win).
fn complete_fragment(bytes: &[u8]) -> Vec<u8> {
    let mut document: Value = serde_json::from_slice(bytes).expect("fixture is JSON");
    if document.get("SchemaVersion").is_some() {
        return bytes.to_vec();
    }
    let mut base = serde_json::json!({
        "SchemaVersion": 1,
        "Name": "CodeSnippet",
        "ComponentId": "0d1c2b3a-4f5e-4a6b-8c7d-9e0f1a2b3c4d",
        "EntryPoint": "/bin/app",
        "CmdArgs": [],
        "ApplicationType": "Default"
    });
    if let (Some(base), Some(fragment)) = (base.as_object_mut(), document.as_object_mut()) {
        base.append(fragment);
    }
    serde_json::to_vec_pretty(&base).expect("serialise")
}

/// A guardian's package directory: its manifest (the sample appliance's UART, one host) and
/// `register_map.json`.
fn guardian_dir(sandbox: &Sandbox, map: &[u8]) -> PathBuf {
    let manifest = std::fs::read(repo_root().join("apps/guardian/app_manifest.json"))
        .expect("the guardian's manifest");
    let dir = sandbox.app_dir("guardian", &manifest);
    std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
    std::fs::rename(dir.join("bin/app"), dir.join("bin/guardian")).expect("entry point");
    std::fs::write(dir.join("register_map.json"), map).expect("map");
    dir
}

#[test]
fn pack_application_refuses_a_register_map_with_errors_naming_each() {
    let sandbox = Sandbox::new();
    let map = std::fs::read(
        repo_root().join("test-vectors/register-maps/invalid/multiple_errors_at_once.json"),
    )
    .expect("vector");
    let dir = guardian_dir(&sandbox, &map);
    let package = sandbox.path("guardian.imagepackage");
    let output = sandbox.pack_app(&dir, &package, &[]);
    assert!(!output.status.success(), "packed a map with errors");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = std::fs::read_to_string(
        repo_root().join("test-vectors/register-maps/invalid/multiple_errors_at_once.expected.txt"),
    )
    .expect("expected issues");
    // Every issue, by path (the transport has an error of its own, so no grant is checked).
    for issue in expected.lines() {
        assert!(stderr.contains(issue), "{issue:?} missing from:\n{stderr}");
    }
    assert!(stderr.contains("has 9 error(s)"), "{stderr}");
    assert!(!package.exists(), "a package was written");

    // A host the manifest does not grant (it grants 127.0.0.1 only).
    let map =
        std::fs::read(repo_root().join("test-vectors/register-maps/invalid/not_granted.json"))
            .expect("vector");
    let other = Sandbox::new();
    let dir = guardian_dir(&other, &map);
    let stderr =
        String::from_utf8_lossy(&sandbox.pack_app(&dir, &package, &[]).stderr).into_owned();
    assert!(
        stderr.contains(
            "transport.host: 10.9.9.9 is not a host the app's manifest lets it connect to"
        ),
        "{stderr}"
    );
    assert!(!package.exists(), "a package was written");

    // A good map over a granted transport packs, and travels in the payload.
    let good =
        br#"{"schemaVersion": 1, "transport": {"type": "rtu", "uart": "ISU0", "baudRate": 9600},
        "unitId": 1, "points": [{"name": "x", "object": "coil", "address": 0}]}"#;
    let good_sandbox = Sandbox::new();
    let dir = guardian_dir(&good_sandbox, good);
    sandbox.pack_app_json(&dir, &package, &[]);
    assert!(package.exists());
}
