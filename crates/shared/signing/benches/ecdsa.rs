//! `cargo bench -p ferro-signing --bench ecdsa`: the P-256 operations the platform's hot paths
//! repeat (the service verifies device signatures and parses device and CA keys per request;
//! devices and the service sign), each on its own, so that a change of backend shows in numbers.
//! Each figure is the best of five runs of `ITERATIONS` calls (env `ITERATIONS`, default 2000).

use std::hint::black_box;
use std::time::{Duration, Instant};

use ferro_signing::{
    PublicKey, Purpose, Signer as _, SoftwareSigningKey, TrustedKeys, sign1, verify1,
};

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

fn main() {
    let n: u32 = std::env::var("ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let key = SoftwareSigningKey::generate();
    let pem = key.to_pkcs8_pem().unwrap();
    let spki = key.public_key().to_spki_der();
    let message = [7u8; 256];
    let envelope = sign1(&key, Purpose::TargetSet, &message, &[]).unwrap();
    let trusted: TrustedKeys = [key.public_key().clone()].into_iter().collect();
    // Keys never parsed before, one per call (the first sight of a key validates its point).
    let mut fresh = (0..5 * n)
        .map(|_| SoftwareSigningKey::generate().public_key().to_spki_der())
        .collect::<Vec<_>>()
        .into_iter();

    let rows: [(&str, Duration); 6] = [
        ("generate a key", per_call(n, SoftwareSigningKey::generate)),
        (
            "parse a PKCS#8 PEM key",
            per_call(n, || SoftwareSigningKey::from_pkcs8_pem(&pem).unwrap()),
        ),
        (
            "parse a new DER SubjectPublicKeyInfo",
            per_call(n, || {
                PublicKey::from_spki_der(&fresh.next().unwrap()).unwrap()
            }),
        ),
        (
            "parse a DER SubjectPublicKeyInfo again",
            per_call(n, || PublicKey::from_spki_der(&spki).unwrap()),
        ),
        (
            "sign 256 bytes (hedged)",
            per_call(n, || key.sign(&message).unwrap()),
        ),
        (
            "verify1 a 256-byte COSE_Sign1",
            per_call(n, || {
                verify1(&envelope, Purpose::TargetSet, &trusted, &[]).unwrap()
            }),
        ),
    ];
    for (what, d) in rows {
        println!("{what:<40} {:>9.1} µs", d.as_secs_f64() * 1e6);
    }
}
