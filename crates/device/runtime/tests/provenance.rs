//! Signed telemetry batches (`deviceauth.sign-batch`, `apps/test-guests/batch-signer`) through
//! the real runtime: the device services sign as `ferro-device` does (ferro-provenance over the
//! device key), the cloud side's verifier accepts what the app sent and refuses a tampered copy,
//! and the runtime bounds the size and the rate of an app's signatures.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use common::pki::{Pki, SigningServices, pki};
use common::{device_with, manifest_with, wasm};
use ferro_provenance::{ExpectedProvenance, ProvenanceError, TenantAnchors, verify_batch};
use ferro_runtime::{AppId, BatchOrigin, DeviceServices, InstallOptions};
use uuid::Uuid;

const IMAGE: Uuid = Uuid::from_u128(0x1a9e_0000_0000_4000_8000_0000_0000_00f1);
const BOOT: Uuid = Uuid::from_u128(0xb007_0000_0000_4000_8000_0000_0000_00f1);

/// Signs as `ferro_device::app_services` does (`common::pki::SigningServices`).
fn signing(pki: &Pki) -> Arc<SigningServices> {
    Arc::new(SigningServices::new(pki, BOOT))
}

/// Reads `count` length-prefixed batches from the app's one connection.
fn collect(listener: TcpListener, count: usize) -> std::thread::JoinHandle<Vec<Vec<u8>>> {
    std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("the app connects");
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        (0..count)
            .map(|_| {
                let mut len = [0u8; 4];
                socket.read_exact(&mut len).expect("length");
                let mut batch = vec![0u8; u32::from_be_bytes(len) as usize];
                socket.read_exact(&mut batch).expect("batch");
                batch
            })
            .collect()
    })
}

#[test]
fn batches_the_app_had_signed_verify_and_a_tampered_copy_does_not() {
    let pki = pki();
    let services = signing(&pki);
    let device = device_with(|runtime| runtime.services = services.clone());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let collector = collect(listener, 3);
    let manifest = manifest_with("batch-signer", |json| {
        json["CmdArgs"] = serde_json::json!(["127.0.0.1", port.to_string(), "3"]);
    });
    let component = manifest.component_id();
    let app = device
        .runtime
        .install(
            &wasm("batch-signer"),
            &manifest,
            InstallOptions {
                image_id: Some(IMAGE),
                ..InstallOptions::default()
            },
        )
        .expect("install");
    let batches = collector.join().expect("collector");

    let anchors = TenantAnchors::from_pem(&pki.tenant_ca_pem).expect("anchors");
    let expected = ExpectedProvenance {
        image_ids: BTreeSet::from([IMAGE]),
        component_id: Some(component),
        device_ids: None,
        allow_development: false,
    };
    let now = ferro_pki::time::OffsetDateTime::now_utc();
    for (n, batch) in batches.iter().enumerate() {
        let verified = verify_batch(batch, &anchors, now, &expected)
            .unwrap_or_else(|error| panic!("batch {n} refused: {error}"));
        assert_eq!(verified.payload(), format!("{{\"batch\":{n}}}").as_bytes());
        assert_eq!(verified.component_id(), component);
        assert_eq!(verified.image_id(), IMAGE);
        assert!(!verified.development());
        assert_eq!(verified.sequence(), n as u64);
        assert_eq!(verified.boot_id(), BOOT);
    }
    // The bytes the app published, one payload byte changed: refused.
    let mut tampered = batches[0].clone();
    let at = tampered
        .windows(9)
        .position(|w| w == b"{\"batch\":")
        .expect("payload");
    tampered[at + 9] = b'9';
    assert!(matches!(
        verify_batch(&tampered, &anchors, now, &expected),
        Err(ProvenanceError::BadSignature)
    ));

    // The limits: one byte over 256 KiB is refused without a signature; a burst is cut off
    // at the bucket's size (20, three of them already spent, refilling at 5 a second).
    let oversize = device.wait_for_log(app, "oversize:", Duration::from_secs(20));
    assert!(
        oversize.contains("limit exceeded") && oversize.contains("262144"),
        "{oversize}"
    );
    let limited = device.wait_for_log(app, "rate limited after", Duration::from_secs(20));
    let granted: u32 = limited
        .trim_start_matches("rate limited after ")
        .split(':')
        .next()
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("{limited}"));
    assert!((15..=20).contains(&granted), "{limited}");
    assert!(limited.contains("limited to 5 a second"), "{limited}");
    assert_eq!(
        services.batches.issued(),
        3 + u64::from(granted),
        "only the granted requests reach the root of trust"
    );
}

#[test]
fn an_app_without_an_image_gets_no_signed_batches() {
    let pki = pki();
    let services = signing(&pki);
    let device = device_with(|runtime| runtime.services = services.clone());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let manifest = manifest_with("batch-signer", |json| {
        json["CmdArgs"] = serde_json::json!(["127.0.0.1", port.to_string(), "1"]);
    });
    let app = device
        .runtime
        .install(&wasm("batch-signer"), &manifest, InstallOptions::default())
        .expect("install");
    let (_socket, _) = listener.accept().expect("the app connects");
    let line = device.wait_for_log(app, "sign 0:", Duration::from_secs(20));
    assert!(
        line.contains("does not run from a verified image"),
        "{line}"
    );
    assert_eq!(services.batches.issued(), 0);
}

#[test]
fn without_device_authentication_the_signing_app_does_not_install() {
    let manifest = manifest_with("batch-signer", |json| {
        json["Capabilities"]
            .as_object_mut()
            .expect("capabilities")
            .remove("DeviceAuthentication");
    });
    let device = device_with(|_| {});
    let error = device
        .runtime
        .install(
            &wasm("batch-signer"),
            &manifest,
            InstallOptions {
                image_id: Some(IMAGE),
                ..InstallOptions::default()
            },
        )
        .expect_err("refused");
    assert!(
        error.to_string().contains("ferrosphere:device/deviceauth"),
        "{error}"
    );
}

#[test]
fn a_device_without_the_service_refuses_with_the_message_the_app_sees() {
    let services = ferro_runtime::NoDeviceServices;
    let origin = BatchOrigin {
        tenant: Uuid::nil(),
        image_id: IMAGE,
        development: false,
    };
    assert_eq!(
        services
            .sign_batch(AppId::from(Uuid::nil()), &origin, b"{}")
            .map_err(|e| e.to_string()),
        Err("signed telemetry batches is not available on this device".to_owned())
    );
}
