//! Manufacturing to a working fleet, through the real CLI and service: registration records made
//! by device keys are uploaded, devices are claimed once and for good, grouped, given capability
//! files bound to them, and the tenant's CA chain verifies what the tenant CA signs.

use std::path::Path;
use std::process::Command;

use ferro_e2e::{Service, User};
use ferro_pki::time::OffsetDateTime;
use ferro_pki::{
    ManufacturingState, PlatformKeyRole, RegistrationRecord, RootOfTrust, verify_capability,
    verify_key_list,
};
use ferro_signing::{DeviceId, PublicKey, SoftwareSigningKey};

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// A device's registration record, signed by its own key, written to `dir`.
fn registration(dir: &Path, name: &str, key: &SoftwareSigningKey) -> std::path::PathBuf {
    let record = RegistrationRecord {
        device_key: key.public_key().clone(),
        root_of_trust: RootOfTrust::Software,
        tpm_ek_certificate: None,
        manufacturing_state: ManufacturingState::DeviceComplete,
        created_at: OffsetDateTime::now_utc(),
        tpm_attestation_key: None,
    };
    let path = dir.join(format!("{name}.registration"));
    std::fs::write(&path, record.sign(key).expect("sign")).expect("write");
    path
}

fn device_id(key: &SoftwareSigningKey) -> String {
    DeviceId::from_public_key(key.public_key()).to_string()
}

#[test]
fn manufacturing_claim_group_capability_and_ca() {
    let service = Service::start(&[]);
    let admin = User::new();
    admin.login_as_admin(&service, "correct horse battery staple");
    admin.json(&["tenant", "create", "--name", "Contoso"]);
    admin.json(&["product", "create", "--name", "Coffee Maker"]);
    let work = tempfile::tempdir().expect("temp dir");

    // Manufacturing: three devices register.
    let keys: Vec<SoftwareSigningKey> = (0..3).map(|_| SoftwareSigningKey::generate()).collect();
    let files: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| registration(work.path(), &format!("device{i}"), key))
        .collect();
    // A record with one byte changed no longer verifies: the whole upload is refused.
    let tampered = work.path().join("tampered.registration");
    let mut bytes = std::fs::read(registration(
        work.path(),
        "other",
        &SoftwareSigningKey::generate(),
    ))
    .expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&tampered, bytes).expect("write");
    let stderr = admin.fails(&[
        "manufacturing",
        "register",
        "--file",
        s(&files[0]),
        "--file",
        s(&tampered),
    ]);
    assert!(stderr.contains("invalid_registration_record"), "{stderr}");
    let codes_file = work.path().join("claim-codes.csv");
    let registered = admin.json(&[
        "manufacturing",
        "register",
        "--file",
        s(&files[0]),
        "--file",
        s(&files[1]),
        "--file",
        s(&files[2]),
        "--claim-codes-file",
        s(&codes_file),
    ]);
    assert_eq!(registered.as_array().map(Vec::len), Some(3), "{registered}");
    let code_of = |id: &str| {
        registered
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["deviceId"] == id)
            .and_then(|d| d["claimCode"].as_str())
            .expect("claim code")
            .to_string()
    };

    // Claim: only with the claim code; once, for good; again by us is idempotent, by another
    // tenant (even with the used code) refused as an unknown device.
    let (a, b) = (device_id(&keys[0]), device_id(&keys[1]));
    let stderr = admin.fails(&["device", "claim", "--device", &a]);
    assert!(stderr.contains("--claim-code"), "{stderr}");
    let (code_a, code_b) = (code_of(&a), code_of(&b));
    let claimed = admin.json(&[
        "device",
        "claim",
        "--device",
        &a,
        "--claim-code",
        &code_a,
        "--device",
        &b,
        "--claim-code",
        &code_b,
    ]);
    assert_eq!(claimed["claimed"], 2);
    let again = admin.json(&["device", "claim", "--device", &a, "--claim-code", &code_a]);
    assert_eq!(again["alreadyOwned"], 1);
    admin.json(&["tenant", "create", "--name", "Fabrikam"]);
    let stderr = admin.fails(&[
        "device",
        "claim",
        "--device",
        &a,
        "--claim-code",
        &code_a,
        "--tenant",
        "Fabrikam",
    ]);
    assert!(stderr.contains("device_not_registered"), "{stderr}");
    let stderr = admin.fails(&[
        "device",
        "claim",
        "--device",
        &"0".repeat(128),
        "--claim-code",
        &code_a,
    ]);
    assert!(stderr.contains("device_not_registered"), "{stderr}");
    // The claim codes file (mode 0600) claims the third device in bulk for Fabrikam.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&codes_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // All or nothing: the file also names Contoso's two devices, so nothing is claimed ...
    let stderr = admin.fails(&[
        "device",
        "claim",
        "--device-file",
        s(&codes_file),
        "--tenant",
        "Fabrikam",
    ]);
    assert!(stderr.contains("device_not_registered"), "{stderr}");
    // ... and the third device's line alone claims it.
    let c = device_id(&keys[2]);
    let third = work.path().join("third.csv");
    let line = std::fs::read_to_string(&codes_file)
        .unwrap()
        .lines()
        .find(|l| l.starts_with(&c))
        .expect("the third device's line")
        .to_string();
    std::fs::write(&third, format!("{line}\n")).unwrap();
    let bulk = admin.json(&[
        "device",
        "claim",
        "--device-file",
        s(&third),
        "--tenant",
        "Fabrikam",
    ]);
    assert_eq!(bulk["claimed"], 1, "{bulk}");

    // Devices: listed, counted, grouped; a group holding devices cannot be deleted.
    assert_eq!(
        admin.json(&["device", "list"]).as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(admin.json(&["device", "show-count"])["count"], 2);
    let moved = admin.json(&[
        "device",
        "update",
        "--device",
        &a,
        "--device-group",
        "Coffee Maker/Development",
    ]);
    assert!(moved["deviceGroupId"].is_string());
    assert_eq!(moved["blocked"], false);
    // Blocking (Administrator) keeps the group; unblocking; neither flag is a usage error.
    let blocked = admin.json(&["device", "update", "--device", &a, "--blocked", "true"]);
    assert_eq!(blocked["blocked"], true);
    assert_eq!(blocked["deviceGroupId"], moved["deviceGroupId"]);
    assert_eq!(
        admin.json(&["device", "show", "--device", &a])["blocked"],
        true
    );
    let unblocked = admin.json(&["device", "update", "--device", &a, "--blocked", "false"]);
    assert_eq!(unblocked["blocked"], false);
    let stderr = admin.fails(&["device", "update", "--device", &a]);
    assert!(stderr.contains("--device-group"), "{stderr}");
    let in_group = admin.json(&[
        "device-group",
        "device",
        "list",
        "--device-group",
        "Coffee Maker/Development",
    ]);
    assert_eq!(in_group.as_array().map(Vec::len), Some(1));
    let stderr = admin.fails(&[
        "device-group",
        "delete",
        "--device-group",
        "Coffee Maker/Development",
    ]);
    assert!(
        stderr.contains("not_empty") || stderr.contains("409"),
        "{stderr}"
    );

    // An appDevelopment capability bound to device A, naming the tenant's developer key.
    let developer = admin.json(&["developer-key", "add"]);
    let capability_file = work.path().join("a.capability");
    let output = admin.run(&[
        "device",
        "capability",
        "download",
        "--type",
        "appDevelopment",
        "--device",
        &a,
        "--destination",
        s(&capability_file),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pki = service.data_dir.path().join("data/pki");
    let root_pem =
        pem::parse(std::fs::read(pki.join("platform-root.pem")).expect("root")).expect("PEM");
    let root = ferro_pki::Certificate::from_der(root_pem.contents()).expect("root certificate");
    let root_key = PublicKey::from_spki_der(root.subject_public_key_info()).expect("root key");
    let key_list = verify_key_list(
        &std::fs::read(pki.join("key-list.cose")).expect("key list"),
        &root_key,
    )
    .expect("key list verifies under the platform root");
    let capability_keys = key_list.trusted(PlatformKeyRole::Capability);
    let bytes = std::fs::read(&capability_file).expect("capability");
    let verified = verify_capability(&bytes, &capability_keys, &a.parse().expect("device id"))
        .expect("the capability verifies for device A");
    let kid: ferro_signing::KeyId = developer["keyId"]
        .as_str()
        .expect("kid")
        .parse()
        .expect("kid");
    assert!(verified.allows_test_key(&kid));
    assert!(verify_capability(&bytes, &capability_keys, &b.parse().expect("device id")).is_err());
    // Revoked at the service (attestation stops honouring it; tests/attestation.rs): one file.
    let revoked = admin.json(&[
        "device",
        "capability",
        "revoke",
        "--type",
        "appDevelopment",
        "--device",
        &a,
    ]);
    assert_eq!(revoked["revoked"], 1, "{revoked}");
    assert_eq!(revoked["type"], "AppDevelopment", "{revoked}");

    // The tenant CA: listed, downloaded; its chain verifies a proof-of-possession certificate.
    let cas = admin.json(&["ca-certificate", "list", "--tenant", "Contoso"]);
    assert_eq!(cas[0]["status"], "Current", "{cas}");
    let chain = work.path().join("chain.pem");
    let proof = work.path().join("proof.pem");
    let ca = work.path().join("ca.pem");
    for args in [
        vec![
            "ca-certificate",
            "download",
            "--destination",
            s(&ca),
            "--tenant",
            "Contoso",
        ],
        vec![
            "ca-certificate",
            "download-chain",
            "--destination",
            s(&chain),
            "--tenant",
            "Contoso",
        ],
        vec![
            "ca-certificate",
            "download-proof",
            "--verification-code",
            "3F2A9C11B7",
            "--destination",
            s(&proof),
            "--tenant",
            "Contoso",
        ],
    ] {
        let output = admin.run(&args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile", s(&chain), s(&proof)])
        .output()
        .expect("openssl");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let subject = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in", s(&proof)])
        .output()
        .expect("openssl");
    assert!(String::from_utf8_lossy(&subject.stdout).contains("3F2A9C11B7"));
    // Fabrikam's chain does not vouch for Contoso's certificates.
    let other_chain = work.path().join("fabrikam.pem");
    admin.run(&[
        "ca-certificate",
        "download-chain",
        "--destination",
        s(&other_chain),
        "--tenant",
        "Fabrikam",
    ]);
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile", s(&other_chain), s(&proof)])
        .output()
        .expect("openssl");
    assert!(!verify.status.success());

    // The error report: Azure Sphere's columns.
    let report = work.path().join("report.csv");
    let output = admin.run(&[
        "tenant",
        "download-error-report",
        "--destination",
        s(&report),
        "--tenant",
        "Contoso",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let csv = std::fs::read_to_string(&report).expect("csv");
    assert!(csv.starts_with("Device ID,Event Type,Event Class,Event Category,Event Count,Description,Start Time,End Time"));
}

/// Ownership after the claim, through the CLI: the manufacturer assigns devices without codes, a
/// tenant offers a device to another, whose Administrator accepts it, and a platform operator
/// unclaims a disputed device with a reason (a new claim code, shown once).
#[test]
fn assign_transfer_and_unclaim() {
    let service = Service::start(&[]);
    let admin = User::new();
    admin.login_as_admin(&service, "correct horse battery staple");
    let contoso = admin.json(&["tenant", "create", "--name", "Contoso"])["id"]
        .as_str()
        .expect("id")
        .to_string();
    let fabrikam = admin.json(&["tenant", "create", "--name", "Fabrikam"])["id"]
        .as_str()
        .expect("id")
        .to_string();
    let work = tempfile::tempdir().expect("temp dir");
    let key = SoftwareSigningKey::generate();
    let file = registration(work.path(), "device", &key);
    admin.json(&["manufacturing", "register", "--file", s(&file)]);
    let id = device_id(&key);

    // The manufacturer's flow: assigned to Contoso, no code needed.
    let assigned = admin.json(&[
        "manufacturing",
        "assign",
        "--to-tenant",
        "Contoso",
        "--device",
        &id,
    ]);
    assert_eq!(assigned["claimed"], 1, "{assigned}");

    // Contoso offers it to Fabrikam (by ID); Fabrikam accepts.
    let stderr = admin.fails(&[
        "device",
        "transfer",
        "create",
        "--device",
        &id,
        "--target-tenant",
        "Fabrikam",
        "--tenant",
        "Contoso",
    ]);
    assert!(stderr.contains("--target-tenant"), "{stderr}");
    let offer = admin.json(&[
        "device",
        "transfer",
        "create",
        "--device",
        &id,
        "--target-tenant",
        &fabrikam,
        "--tenant",
        "Contoso",
    ]);
    assert_eq!(offer["state"], "Pending", "{offer}");
    assert_eq!(offer["fromTenantId"], contoso.as_str());
    let listed = admin.json(&["device", "transfer", "list", "--tenant", "Fabrikam"]);
    let transfer = listed[0]["id"].as_str().expect("transfer id").to_string();
    let stderr = admin.fails(&[
        "device",
        "transfer",
        "accept",
        "--transfer",
        &transfer,
        "--tenant",
        "Contoso",
    ]);
    assert!(stderr.contains("not_found"), "{stderr}");
    let accepted = admin.json(&[
        "device",
        "transfer",
        "accept",
        "--transfer",
        &transfer,
        "--tenant",
        "Fabrikam",
    ]);
    assert_eq!(accepted["state"], "Accepted", "{accepted}");
    let shown = admin.json(&["device", "show", "--device", &id, "--tenant", "Fabrikam"]);
    assert_eq!(shown["tenantId"], fabrikam.as_str());
    let stderr = admin.fails(&["device", "show", "--device", &id, "--tenant", "Contoso"]);
    assert!(stderr.contains("not_found"), "{stderr}");

    // A dispute: the operator unclaims it, with a reason; the new code claims it for Contoso.
    let stderr = admin.fails(&["device", "unclaim", "--device", &id, "--reason", " "]);
    assert!(stderr.contains("invalid_body"), "{stderr}");
    let unclaimed = admin.json(&[
        "device",
        "unclaim",
        "--device",
        &id,
        "--reason",
        "returned to the reseller",
    ]);
    let code = unclaimed["claimCode"].as_str().expect("new claim code");
    let claimed = admin.json(&[
        "device",
        "claim",
        "--device",
        &id,
        "--claim-code",
        code,
        "--tenant",
        "Contoso",
    ]);
    assert_eq!(claimed["claimed"], 1, "{claimed}");
    let reassigned = admin.json(&[
        "device",
        "reassign",
        "--device",
        &id,
        "--to-tenant",
        "Fabrikam",
        "--reason",
        "court order 12",
    ]);
    assert_eq!(reassigned["toTenantId"], fabrikam.as_str(), "{reassigned}");
}
