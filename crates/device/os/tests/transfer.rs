//! A running device transferred to another tenant (issue 16 item 3): the old tenant's
//! certificate is refused on the device routes at once, and the device, told so by its open
//! update-now long poll (which the service ends with 401 when the transfer is accepted), attests
//! again at once instead of waiting for its next update check or its certificate's half-life,
//! and is then its new tenant's, with a certificate under the new tenant's CA.
//!
//! Needs `cargo build --workspace` first (as crates/tools/e2e).

use std::time::{Duration, Instant};

mod common;

use common::VirtualDevice;
use ferro_image::Version;
use serde_json::Value;

fn shown(admin: &ferro_e2e::User, device: &str, tenant: &str) -> Value {
    admin.json(&["device", "show", "--device", device, "--tenant", tenant])
}

#[test]
fn a_transferred_running_device_attests_under_its_new_tenant() {
    let work = tempfile::tempdir().expect("tempdir");
    let work = work.path();
    let (service, admin) = common::service_with_tenant("Contoso", "Coffee Maker");
    let factory = common::publish_factory_os(&admin, work, Version::new(1, 0, 0), 1);
    let mut dev = VirtualDevice::provision_and_claim(&service, &admin, work, &factory.factory);
    let device = dev.device_id.clone();
    // The update check is the default 20 hours away: only the long poll can tell the device.
    dev.boot(&[]);
    let ready = dev.wait_ready();
    assert_eq!(ready["attestation"], "Trusted", "{ready}");
    let contoso = shown(&admin, &device, "Contoso")["tenantId"]
        .as_str()
        .expect("tenant")
        .to_string();

    // Fabrikam (another tenant; the operator administers both here) accepts Contoso's offer.
    let fabrikam = admin.json(&["tenant", "create", "--name", "Fabrikam"])["id"]
        .as_str()
        .expect("id")
        .to_string();
    admin.json(&[
        "device",
        "transfer",
        "create",
        "--device",
        &device,
        "--target-tenant",
        &fabrikam,
        "--tenant",
        "Contoso",
    ]);
    let listed = admin.json(&["device", "transfer", "list", "--tenant", "Fabrikam"]);
    let transfer = listed[0]["id"].as_str().expect("transfer id").to_string();
    let accepted_at = time::OffsetDateTime::now_utc();
    admin.json(&[
        "device",
        "transfer",
        "accept",
        "--transfer",
        &transfer,
        "--tenant",
        "Fabrikam",
    ]);

    // The device notices at once (its long poll ends with 401), attests again, and is
    // Fabrikam's within seconds; before, it waited for its next update check.
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        dev.supervise();
        let d = shown(&admin, &device, "Fabrikam");
        let attested = d["lastAttestedAt"]
            .as_str()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .is_some_and(|t| t >= accepted_at.replace_nanosecond(0).unwrap());
        if attested && d["lastAttestationResult"] == "Trusted" {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "the device did not attest under Fabrikam within 20 s: {d}\n{}",
            dev.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(after["tenantId"], fabrikam.as_str(), "{after}");
    let log = dev.log_tail();
    assert!(
        log.contains("update signal refused the certificate"),
        "{log}"
    );
    assert!(!log.contains("update check refused"), "{log}");
    // Its stored certificate is now under Fabrikam's CA (the tenant ID is the subject's O).
    let pem = std::fs::read_to_string(dev.dir.join("certs/device-cert.pem")).expect("certificate");
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-subject"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(pem.as_bytes())?;
            child.wait_with_output()
        })
        .expect("openssl");
    let subject = String::from_utf8_lossy(&out.stdout);
    assert!(subject.contains(&fabrikam), "{subject}");
    assert!(!subject.contains(&contoso), "{subject}");
    dev.stop();
}
