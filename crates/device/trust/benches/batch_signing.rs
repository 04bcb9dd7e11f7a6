//! `cargo bench -p ferro-trust --bench batch_signing [--features tpm]`: how many telemetry
//! batches a device signs a second (docs/provenance.md), against a bare ring P-256 signature of
//! the same bytes in the same run. Rows: the baseline (ring's `EcdsaKeyPair::sign`, nothing
//! else); `ferro_provenance::sign_batch` through the software root of trust's device key (what
//! `ferro-device` does for `deviceauth.sign-batch`: the protected header, the Sig_structure,
//! the COSE_Sign1 with the certificate chain, and the signature); with `--features tpm`, the
//! same through the TPM root of trust on a swtpm (started and stopped here; needs `swtpm`).
//! The payload is a guardian JSON batch of 10 points. Each figure is the best of five runs of
//! `ITERATIONS` calls (env, default 500; a tenth of it on the TPM).

use std::hint::black_box;
use std::time::{Duration, Instant};

use ferro_pki::time::{Duration as CertDuration, OffsetDateTime};
use ferro_pki::{FileKeyStore, create_tenant_ca, issue_device_certificate};
use ferro_provenance::{BatchClaims, BootSequence, sign_batch};
use ferro_signing::{DeviceId, Signer};
use ferro_trust::{RootOfTrust, SoftwareRootOfTrust};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use uuid::Uuid;

/// The best of five runs of `n` calls of `f`, per call.
fn per_call<T>(n: u32, mut f: impl FnMut() -> T) -> Duration {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                black_box(f());
            }
            t.elapsed() / n
        })
        .min()
        .unwrap_or_default()
}

/// A guardian JSON batch of `points` readings (docs/guardian.md, "JSON payload").
fn guardian_batch(points: usize) -> Vec<u8> {
    let readings: Vec<String> = (0..points)
        .map(|i| {
            format!(
                r#"{{"name":"point_{i}","value":{}.5,"unit":"degC","timestamp":1796630400{i:03},"quality":"good"}}"#,
                20 + i
            )
        })
        .collect();
    format!(
        r#"{{"device":"guardian-1","batch":41,"timestamp":1796630400123,"dropped":0,"points":[{}]}}"#,
        readings.join(",")
    )
    .into_bytes()
}

/// The device certificate of `key` from a fresh tenant CA, and that CA: the x5chain a device
/// puts in every batch.
fn chain(key: &dyn Signer, store_dir: &std::path::Path) -> Vec<Vec<u8>> {
    let now = OffsetDateTime::now_utc();
    let store = FileKeyStore::open(&store_dir.join("keys")).expect("key store");
    let tenant = Uuid::new_v4();
    let ca = create_tenant_ca(&store, tenant, "Bench tenant", now).expect("tenant CA");
    let device = issue_device_certificate(
        &ca,
        &store,
        &DeviceId::from_public_key(key.public_key()),
        tenant,
        key.public_key(),
        now,
        CertDuration::hours(24),
    )
    .expect("device certificate");
    vec![device.der().to_vec(), ca.der().to_vec()]
}

fn claims(batches: &BootSequence) -> BatchClaims {
    batches.next_claims(Uuid::from_u128(1), Uuid::from_u128(2), false)
}

fn row(what: &str, d: Duration, baseline: Duration) {
    println!(
        "{what:<52} {:>9.1} µs {:>9.0} /s {:>6.2}x",
        d.as_secs_f64() * 1e6,
        1.0 / d.as_secs_f64(),
        d.as_secs_f64() / baseline.as_secs_f64()
    );
}

fn main() {
    let n: u32 = std::env::var("ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let payload = guardian_batch(10);
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "payload: a guardian JSON batch of 10 points, {} bytes",
        payload.len()
    );

    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    let bare = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .expect("key");
    let baseline = per_call(n, || bare.sign(&rng, &payload).expect("sign"));

    let rot = SoftwareRootOfTrust::open(dir.path().join("rot")).expect("software root of trust");
    let key = rot.device_key();
    let software_chain = chain(key.as_ref(), dir.path());
    let batches = BootSequence::new(Uuid::new_v4());
    let sample =
        sign_batch(key.as_ref(), &software_chain, &claims(&batches), &payload).expect("sign_batch");
    let software = per_call(n, || {
        sign_batch(key.as_ref(), &software_chain, &claims(&batches), &payload).expect("sign")
    });
    println!("signed batch: {} bytes", sample.len());
    row("ring P-256 sign, bare (baseline)", baseline, baseline);
    row("sign_batch, software root of trust", software, baseline);

    #[cfg(feature = "tpm")]
    {
        use ferro_trust::{TpmConfig, TpmRootOfTrust};
        let swtpm = ferro_test_swtpm::Swtpm::start();
        let tpm = TpmRootOfTrust::open(&TpmConfig {
            tcti: swtpm.tcti(),
            log_path: None,
        })
        .expect("TPM root of trust on swtpm");
        let key = tpm.device_key();
        let tpm_chain = chain(key.as_ref(), &dir.path().join("tpm"));
        let tpm_time = per_call((n / 10).max(1), || {
            sign_batch(key.as_ref(), &tpm_chain, &claims(&batches), &payload).expect("sign")
        });
        row("sign_batch, TPM root of trust (swtpm)", tpm_time, baseline);
    }
}
