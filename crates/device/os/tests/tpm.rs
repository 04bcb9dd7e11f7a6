//! Provisioning, manufacturing state and the loader's decisions with a TPM root of trust (a real
//! swtpm, as in crates/device/trust/tests/tpm.rs), in process with a test platform. Run with
//! `cargo test -p ferro-device --features tpm`.
#![cfg(feature = "tpm")]

mod platform;

use ferro_boot::plan_boot;
use ferro_device::ferro_trust::evidence::{DebugStatus, create_evidence, verify_evidence};
use ferro_device::provision::{ProvisionOptions, provision};
use ferro_device::{
    BootError, DataDir, DeviceConfig, DeviceContext, DeviceError, ManufacturingState,
};
use ferro_pki::verify_registration_record;
use ferro_signing::SoftwareSigningKey;
use ferro_test_swtpm::Swtpm;
use platform::Platform;

#[test]
fn tpm_provision_manufacturing_and_boot() {
    let tpm = Swtpm::start();
    let work = tempfile::tempdir().expect("tempdir");
    let root = SoftwareSigningKey::generate();
    let os_key = SoftwareSigningKey::generate();
    let platform = Platform::new(work.path(), &root, &os_key, 1);
    let key_list = platform.key_list.clone();
    let opts = platform.options(
        &work.path().join("device"),
        DeviceConfig::Tpm { tcti: tpm.tcti() },
    );
    let dd = opts.data_dir.clone();
    let kl = key_list.clone();
    let device_id = provision(&opts, move |_, _| Ok(kl)).expect("provision");
    assert!(!dd.rot_dir().exists(), "no software RoT files with a TPM");

    // The TPM holds the anchors now: a fresh directory on the same TPM is refused, naming the
    // TPM (not the new directory) as provisioned, and the directory is not left behind.
    let again = ProvisionOptions {
        data_dir: DataDir::new(work.path().join("device2")),
        ..opts.clone()
    };
    let kl = key_list.clone();
    let refused = provision(&again, move |_, _| Ok(kl)).expect_err("refused");
    assert!(
        matches!(refused, DeviceError::RootOfTrustAlreadyProvisioned { .. }),
        "{refused:?}"
    );
    let message = refused.to_string();
    assert!(message.contains(&tpm.tcti()), "{message}");
    assert!(message.contains("already holds trust anchors"), "{message}");
    assert!(
        !again.data_dir.root().exists(),
        "a failed provision leaves nothing"
    );

    let ctx = DeviceContext::open(&dd).expect("open");
    assert_eq!(ctx.device_id(), device_id);
    ctx.set_manufacturing_state(ManufacturingState::DeviceComplete)
        .expect("forward");
    assert!(matches!(
        ctx.set_manufacturing_state(ManufacturingState::Module1Complete),
        Err(DeviceError::ManufacturingStateBackwards { .. })
    ));
    drop(ctx);

    // The loader's measurement persists in the TPM log and replays for the next process.
    let plan = plan_boot(&dd, 3).expect("boot");
    drop(plan);
    let ctx = DeviceContext::open(&dd).expect("open");
    let m = ctx.rot.read_measurements().expect("measurements");
    assert_eq!(m.log.len(), 1);
    assert!(m.replays());
}

/// The registration record names the TPM's attestation key (record format version 2), and that
/// key is the one the TPM quotes with in every later process and after the TPM reboots, so the
/// registered key stays valid for the device's life.
/// Provision a device on `tpm` in `work/device` with a test platform.
fn provision_device(tpm: &Swtpm, work: &std::path::Path) -> DataDir {
    Platform::generate(work).provision(&work.join("device"), DeviceConfig::Tpm { tcti: tpm.tcti() })
}

/// Provision a device on `tpm` in `work/device` with the platform of `root` and `os_key`.
fn provision_device_with(
    tpm: &Swtpm,
    work: &std::path::Path,
    root: &SoftwareSigningKey,
    os_key: &SoftwareSigningKey,
) -> DataDir {
    Platform::new(work, root, os_key, 0)
        .provision(&work.join("device"), DeviceConfig::Tpm { tcti: tpm.tcti() })
}

/// The registration record carries the EK certificate the TPM's manufacturer stored in NV (here
/// made by `swtpm_setup --create-ek-cert`), and none when the TPM has none.
#[test]
fn tpm_registration_carries_the_ek_certificate() {
    let tpm = Swtpm::start_with_ek_certificate();
    let work = tempfile::tempdir().expect("tempdir");
    let dd = provision_device(&tpm, work.path());
    let record = verify_registration_record(&std::fs::read(dd.registration()).expect("read"))
        .expect("registration record verifies");
    let ek = record
        .record()
        .tpm_ek_certificate
        .as_deref()
        .expect("the EK certificate");
    let ctx = DeviceContext::open(&dd).expect("open");
    assert_eq!(ctx.rot.ek_certificate().expect("read").as_deref(), Some(ek));
    assert!(record.record().tpm_attestation_key.is_some());
}

#[test]
fn tpm_registration_binds_the_attestation_key_across_restarts() {
    let tpm = Swtpm::start();
    let work = tempfile::tempdir().expect("tempdir");
    let dd = provision_device(&tpm, work.path());

    let record = verify_registration_record(&std::fs::read(dd.registration()).expect("read"))
        .expect("registration record verifies");
    assert_eq!(record.record().root_of_trust, ferro_pki::RootOfTrust::Tpm);
    assert_eq!(record.record().format_version(), 2);
    // swtpm without `swtpm_setup` has no EK certificate.
    assert_eq!(record.record().tpm_ek_certificate, None);
    let registered = record
        .record()
        .tpm_attestation_key
        .clone()
        .expect("a TPM record names its attestation key");
    assert_ne!(registered, record.record().device_key);

    let quote_key = |ctx: &DeviceContext| {
        let nonce = [7u8; 32];
        let ev = create_evidence(ctx.rot.as_ref(), &nonce, DebugStatus::Disabled).expect("ev");
        verify_evidence(&ev, &ctx.rot.public_key(), Some(&registered), &nonce)
            .expect("evidence verifies with the registered attestation key")
            .quote()
            .expect("quote")
            .attestation_key
            .clone()
    };
    // Another process (a new context on the same TPM).
    let ctx = DeviceContext::open(&dd).expect("open");
    assert_eq!(quote_key(&ctx), registered);
    // Re-signing the record (manufacturing state) keeps the key.
    ctx.set_manufacturing_state(ManufacturingState::DeviceComplete)
        .expect("forward");
    let again = verify_registration_record(&std::fs::read(dd.registration()).expect("read"))
        .expect("verifies");
    assert_eq!(
        again.record().tpm_attestation_key.as_ref(),
        Some(&registered)
    );
    drop(ctx);

    // The TPM reboots (same state, new swtpm process): same device and attestation key.
    let tpm = tpm.reboot();
    // (The swtpm came back on another port: point the device's configuration at it.)
    ferro_device::layout::write_json(&dd.config(), &DeviceConfig::Tpm { tcti: tpm.tcti() })
        .expect("config");
    let ctx = DeviceContext::open(&dd).expect("open after reboot");
    assert_eq!(ctx.rot.public_key(), record.record().device_key);
    assert_eq!(ctx.rot.attestation_key(), Some(registered.clone()));
    assert_eq!(quote_key(&ctx), registered);
}

/// Issue 16: a data directory booted on a TPM other than its own (both provisioned for the
/// same platform, so anchors and key list agree) used to take that TPM's device ID while keeping
/// its registration record and certificate. It is refused, naming both devices; on its own TPM
/// it opens again.
#[test]
fn tpm_a_data_directory_on_another_tpm_is_refused() {
    let root = SoftwareSigningKey::generate();
    let os_key = SoftwareSigningKey::generate();
    let (tpm_a, tpm_b) = (Swtpm::start(), Swtpm::start());
    let (work_a, work_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let dd_a = provision_device_with(&tpm_a, work_a.path(), &root, &os_key);
    let dd_b = provision_device_with(&tpm_b, work_b.path(), &root, &os_key);
    let id_a = DeviceContext::open(&dd_a).expect("open a").device_id();
    let id_b = DeviceContext::open(&dd_b).expect("open b").device_id();
    assert_ne!(id_a, id_b);

    // Device a's data directory, now on TPM b.
    ferro_device::layout::write_json(&dd_a.config(), &DeviceConfig::Tpm { tcti: tpm_b.tcti() })
        .expect("config");
    match DeviceContext::open(&dd_a) {
        Err(DeviceError::Boot(BootError::IdentityMismatch {
            registered,
            root_of_trust,
        })) => {
            assert_eq!(*registered, id_a);
            assert_eq!(*root_of_trust, id_b);
        }
        other => panic!("expected IdentityMismatch, got {other:?}"),
    }
    assert!(plan_boot(&dd_a, 3).is_err(), "the loader refuses it too");

    // Back on its own TPM.
    ferro_device::layout::write_json(&dd_a.config(), &DeviceConfig::Tpm { tcti: tpm_a.tcti() })
        .expect("config");
    assert_eq!(DeviceContext::open(&dd_a).expect("open").device_id(), id_a);
}

/// A data directory pointed at a TPM that holds no anchors (a fresh or cleared TPM) is told that
/// its TPM does not hold its key, naming the TPM, not that it is "not provisioned".
#[test]
fn tpm_a_data_directory_on_a_fresh_tpm_is_told_its_tpm_lacks_its_key() {
    let (tpm, fresh) = (Swtpm::start(), Swtpm::start());
    let work = tempfile::tempdir().expect("tempdir");
    let dd = provision_device(&tpm, work.path());
    ferro_device::layout::write_json(&dd.config(), &DeviceConfig::Tpm { tcti: fresh.tcti() })
        .expect("config");
    let refused = DeviceContext::open(&dd).expect_err("refused");
    assert!(
        matches!(
            refused,
            DeviceError::Boot(BootError::RootOfTrustNotProvisioned { .. })
        ),
        "{refused:?}"
    );
    let message = refused.to_string();
    for expected in [
        fresh.tcti().as_str(),
        "holds no trust anchors",
        "does not hold this device's key",
        "point device.json at",
    ] {
        assert!(message.contains(expected), "{expected:?} not in {message}");
    }
    assert!(!message.contains("not a provisioned"), "{message}");
    let boot = plan_boot(&dd, 3).expect_err("the loader refuses it too");
    assert!(
        matches!(boot, BootError::RootOfTrustNotProvisioned { .. }),
        "{boot:?}"
    );
}

/// An unreachable TPM is named with its TCTI and the failed connection, and the failed
/// provisioning leaves nothing behind (it used to leave `run/`).
#[test]
fn tpm_unreachable_is_named_and_a_failed_provision_leaves_nothing() {
    let tcti = {
        let gone = Swtpm::start();
        gone.tcti()
    }; // stopped: nothing listens there any more
    let work = tempfile::tempdir().expect("tempdir");
    let root = SoftwareSigningKey::generate();
    let os_key = SoftwareSigningKey::generate();
    let platform = Platform::new(work.path(), &root, &os_key, 1);
    let kl = platform.key_list.clone();
    let opts = platform.options(
        &work.path().join("device"),
        DeviceConfig::Tpm { tcti: tcti.clone() },
    );
    let refused = provision(&opts, move |_, _| Ok(kl)).expect_err("unreachable");
    let message = refused.to_string();
    assert!(
        matches!(
            refused,
            DeviceError::Boot(BootError::Trust(
                ferro_device::ferro_trust::TrustError::TpmUnreachable { .. }
            ))
        ),
        "{refused:?}"
    );
    assert!(message.contains(&tcti), "{message}");
    assert!(message.contains("cannot reach the TPM"), "{message}");
    assert!(message.contains("connecting to 127.0.0.1:"), "{message}");
    assert!(!message.contains("response code"), "{message}");
    assert!(
        !opts.data_dir.root().exists(),
        "a failed provision leaves nothing"
    );

    // Into an existing (empty) directory: it is left empty.
    std::fs::create_dir(opts.data_dir.root()).expect("mkdir");
    let kl = platform.key_list.clone();
    provision(&opts, move |_, _| Ok(kl)).expect_err("unreachable");
    let left: Vec<_> = std::fs::read_dir(opts.data_dir.root())
        .expect("read_dir")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // Through the command line, as a new user meets it: one clear error, none of the TSS's
    // response codes or raw TCTI log lines.
    let dd = work.path().join("cli-device");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferro-device"))
        .arg("provision")
        .arg("--data-dir")
        .arg(&dd)
        .args(["--service", "https://127.0.0.1:9"])
        .arg("--platform-root")
        .arg(&opts.platform_root_pem)
        .arg("--os-image")
        .arg(&opts.os_image)
        .args(["--rot", "tpm", "--tpm", &tcti])
        .env_remove("RUST_LOG")
        .output()
        .expect("run ferro-device");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&tcti), "{stderr}");
    assert_eq!(
        stderr.matches("cannot reach the TPM").count(),
        1,
        "{stderr}"
    );
    assert!(!stderr.contains("response code"), "{stderr}");
    assert!(!stderr.contains(":tcti:"), "raw TCTI log lines: {stderr}");
    assert!(!dd.exists(), "a failed provision leaves nothing");
}
