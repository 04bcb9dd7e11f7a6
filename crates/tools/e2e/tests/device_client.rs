//! The device's client of the service (`ferro_client::DeviceClient`, feature `device`) against a
//! real `ferro-service` over HTTPS anchored on the platform root, as a device reaches it before
//! it has a certificate: the key list (and its size bound), an attestation challenge, the device
//! routes refusing a connection without a device certificate as `Unauthorized` (the device's
//! cue to attest again), and the per-address limit on attestation as `RateLimited` with the
//! service's `Retry-After`. The routes with a device certificate run in ferro-device's tests
//! (`updates.rs`, `lifecycle.rs`, `transfer.rs`), which drive a whole device through this client.
//!
//! Needs the service binary: `cargo build -p ferro-service` first (the harness says so).

use std::time::Duration;

use ferro_client::{Client, DeviceClient, DeviceClientError, ServiceTrust};
use ferro_e2e::Service;
use ferro_wire::{AttestationChallengeRequest, DeviceEventsUpload};

/// A device's view of the service: HTTPS trusting only the platform root, no client certificate.
fn device_client(service: &Service) -> DeviceClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem_text = std::fs::read(service.platform_root_pem()).expect("platform root");
    let mut roots = rustls::RootCertStore::empty();
    for block in pem::parse_many(&pem_text).expect("PEM") {
        roots
            .add(rustls::pki_types::CertificateDer::from(
                block.into_contents(),
            ))
            .expect("root");
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .expect("https client");
    DeviceClient::new(&service.url, http).expect("device client")
}

fn refused<T>(result: &Result<T, DeviceClientError>) -> bool {
    matches!(result, Err(DeviceClientError::Unauthorized { .. }))
}

#[test]
fn the_device_client_against_a_running_service() {
    let service = Service::start(&[]);
    assert!(service.url.starts_with("https://"), "{}", service.url);
    let device = device_client(&service);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The operator's (blocking) client, outside the device's runtime.
    let pem_text = std::fs::read(service.platform_root_pem()).expect("platform root");
    let trust = ServiceTrust::from_pem(&pem_text).expect("trust");
    let operator = Client::new(&service.url, Some(&trust), None).expect("client");
    let operator_key_list = operator.key_list().expect("key list");
    runtime.block_on(async {
        // The key list, byte for byte what the operator's client gets; and its bound.
        let key_list = device.key_list(64 * 1024).await.expect("key list");
        assert_eq!(key_list, operator_key_list);
        match device.key_list(8).await {
            Err(DeviceClientError::Decode { reason, .. }) => {
                assert!(reason.contains("larger than 8 bytes"), "{reason}");
            }
            other => panic!("a key list over the bound: {other:?}"),
        }

        // A challenge needs no certificate.
        let device_id: ferro_wire::DeviceId = "ab".repeat(64).parse().expect("a device ID");
        let challenge = device
            .attestation_challenge(&AttestationChallengeRequest { device_id })
            .await
            .expect("challenge");
        assert!(!challenge.nonce.is_empty());

        // The device routes refuse a connection without a device certificate: 401, which the
        // device answers by attesting again.
        let set = device.target_set(None).await;
        assert!(refused(&set), "{set:?}");
        let image = device.image(&"00".repeat(32), 0).await.map(|i| i.start());
        assert!(refused(&image), "{image:?}");
        let signal = device.update_signal(None, Duration::from_secs(1)).await;
        assert!(refused(&signal), "{signal:?}");
        let events = device
            .events(&DeviceEventsUpload {
                batch_id: uuid::Uuid::new_v4(),
                events: Vec::new(),
            })
            .await;
        assert!(refused(&events), "{events:?}");

        // Attestation is limited per address (20 a second, bursts of 120 by default): past the
        // burst, the service's Retry-After (whole seconds, rounded up) arrives typed. Waves of
        // concurrent challenges empty the bucket however slow one request is.
        let mut limited = None;
        for _ in 0..40 {
            let mut wave = tokio::task::JoinSet::new();
            for _ in 0..50 {
                let device = device.clone();
                let request = AttestationChallengeRequest { device_id };
                wave.spawn(async move { device.attestation_challenge(&request).await });
            }
            while let Some(answer) = wave.join_next().await {
                match answer.expect("task") {
                    Ok(_) => {}
                    Err(DeviceClientError::RateLimited { retry_after }) => {
                        limited = Some(retry_after);
                    }
                    Err(other) => panic!("challenge: {other}"),
                }
            }
            if limited.is_some() {
                break;
            }
        }
        assert_eq!(limited, Some(Duration::from_secs(1)), "never limited");
    });
}
