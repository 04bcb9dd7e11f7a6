//! Signed telemetry batches on a real virtual device, end to end (docs/provenance.md): the real
//! `ferro-service`, `ferro`, `ferro-boot` and `ferro-device` (software root of trust). The
//! `batch-signer` guest, deployed from the cloud for the device's tenant, has batches signed by
//! the device key once the device attested, and sends them to a collector on loopback; the
//! verifier accepts them with the tenant CA the service hands out and the image ID it deployed,
//! and refuses a tampered copy; `ferro telemetry verify` agrees.
//!
//! Needs `cargo build --workspace` and the apps (`cargo build --manifest-path apps/Cargo.toml
//! --workspace --release --target wasm32-wasip2`) first; scripts/test.sh does both.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

mod common;

use common::{VirtualDevice, s};
use ferro_image::Version;
use ferro_provenance::{ExpectedProvenance, ProvenanceError, TenantAnchors, verify_batch};
use serde_json::Value;
use uuid::Uuid;

const GROUP: &str = "Appliance/Field Test OS Evaluation";
const COMPONENT: &str = "5b2c8e1d-4f3a-4e6b-9c7d-1a2b3c4d5e6f";

#[test]
fn a_cloud_app_s_batches_are_signed_by_the_device_and_verify_in_the_cloud() {
    let work = tempfile::tempdir().expect("tempdir");
    let work = work.path();
    let (service, admin) = common::service_with_tenant("Provenance Tenant", "Appliance");
    let tenant = admin.json(&["tenant", "show-selected"])["id"]
        .as_str()
        .expect("tenant id")
        .to_string();
    let factory = common::publish_factory_os(&admin, work, Version::new(1, 0, 0), 1);

    // The collector the app publishes to (a broker's stand-in), and the app, packed for this
    // tenant's DeviceAuthentication.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let app_dir = ferro_e2e::artifacts::app_dir("batch-signer");
    let mut manifest: Value =
        serde_json::from_slice(&fs::read(app_dir.join("app_manifest.json")).expect("manifest"))
            .expect("json");
    manifest["CmdArgs"] = serde_json::json!(["127.0.0.1", port.to_string(), "3"]);
    manifest["Capabilities"]["DeviceAuthentication"] = Value::String(tenant.clone());
    let pkg_dir = work.join("pkg-batch-signer");
    fs::create_dir_all(pkg_dir.join("bin")).expect("mkdir");
    fs::write(
        pkg_dir.join("app_manifest.json"),
        serde_json::to_vec(&manifest).expect("json"),
    )
    .expect("manifest");
    fs::copy(
        ferro_e2e::artifacts::wasm_app("batch-signer"),
        pkg_dir.join("bin/batch-signer"),
    )
    .expect("component");
    let package = work.join("batch-signer.imagepackage");
    admin.json(&[
        "image-package",
        "pack-application",
        "--package-directory",
        s(&pkg_dir),
        "--destination",
        s(&package),
        "--version",
        "1.0.0",
    ]);
    let image_id = admin.json(&["image", "add", "--image", s(&package)])["id"]
        .as_str()
        .expect("image id")
        .to_string();
    admin.json(&[
        "device-group",
        "deployment",
        "create",
        "--device-group",
        GROUP,
        "--images",
        &image_id,
    ]);
    let mut dev = VirtualDevice::provision_and_claim(&service, &admin, work, &factory.factory);
    admin.json(&[
        "device",
        "update",
        "--device",
        &dev.device_id,
        "--device-group",
        GROUP,
    ]);
    dev.boot(&[]);
    let ready = dev.wait_ready();
    assert_eq!(ready["attestation"], "Trusted", "{}", dev.log_tail());

    // Three batches arrive.
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let mut socket = loop {
        match listener.accept() {
            Ok((socket, _)) => break socket,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("the app never connected ({e}):\n{}", dev.log_tail()),
        }
    };
    socket.set_nonblocking(false).expect("blocking");
    socket
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let batches: Vec<Vec<u8>> = (0..3)
        .map(|n| {
            let mut len = [0u8; 4];
            socket
                .read_exact(&mut len)
                .unwrap_or_else(|e| panic!("batch {n}: {e}\n{}", dev.log_tail()));
            let mut batch = vec![0u8; u32::from_be_bytes(len) as usize];
            socket.read_exact(&mut batch).expect("batch");
            batch
        })
        .collect();

    // The cloud side: the tenant's CA chain from the service, the deployed image expected.
    let chain = work.join("tenant-ca-chain.pem");
    let downloaded = admin.run(&[
        "ca-certificate",
        "download-chain",
        "--destination",
        s(&chain),
    ]);
    assert!(downloaded.status.success(), "{downloaded:?}");
    let anchors =
        TenantAnchors::from_pem(&fs::read_to_string(&chain).expect("chain")).expect("anchors");
    let image: Uuid = image_id.parse().expect("uuid");
    let expected = ExpectedProvenance {
        image_ids: BTreeSet::from([image]),
        component_id: Some(COMPONENT.parse().expect("uuid")),
        device_ids: None,
        allow_development: false,
    };
    let now = time::OffsetDateTime::now_utc();
    let mut boot = None;
    for (n, batch) in batches.iter().enumerate() {
        let v = verify_batch(batch, &anchors, now, &expected)
            .unwrap_or_else(|e| panic!("batch {n} refused ({}): {e}", e.code()));
        assert_eq!(v.payload(), format!("{{\"batch\":{n}}}").as_bytes());
        assert_eq!(v.device_id().to_string(), dev.device_id);
        assert_eq!(v.tenant_id().to_string(), tenant);
        assert_eq!(v.image_id(), image);
        assert!(!v.development());
        assert!(*boot.get_or_insert(v.boot_id()) == v.boot_id());
        if n > 0 {
            assert!(v.sequence() > 0, "sequences grow within a boot");
        }
    }
    let mut tampered = batches[1].clone();
    let at = tampered
        .windows(9)
        .position(|w| w == b"{\"batch\":")
        .expect("payload");
    tampered[at + 9] = b'7';
    assert!(matches!(
        verify_batch(&tampered, &anchors, now, &expected),
        Err(ProvenanceError::BadSignature)
    ));

    // The CLI, as an operator runs it.
    let file = work.join("batch.cose");
    fs::write(&file, &batches[0]).expect("write");
    let shown = admin.json(&[
        "telemetry",
        "verify",
        "--tenant-ca",
        s(&chain),
        "--image-id",
        &image_id,
        s(&file),
    ]);
    assert_eq!(shown["verified"], true, "{shown}");
    assert_eq!(shown["deviceId"], dev.device_id.as_str());
    assert_eq!(shown["payload"], "{\"batch\":0}");
    dev.stop();
}
