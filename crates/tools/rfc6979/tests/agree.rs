//! `ferro-signing` (ring) and RustCrypto's `p256` agree on every encoding and signature form the
//! platform uses: each implementation is checked against the other, so a change of either shows.

use ferro_rfc6979::Deterministic as _;
use ferro_signing::{PublicKey, Signature, Signer as _, SoftwareSigningKey};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::elliptic_curve::rand_core::OsRng;
use p256::pkcs8::{
    DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
    LineEnding,
};

const TEST_KEY: &str = include_str!("../../../../test-vectors/keys/test-only-signing-key.pem");

fn p256_verifying_key(key: &SoftwareSigningKey) -> VerifyingKey {
    VerifyingKey::from_public_key_der(&key.public_key().to_spki_der()).unwrap()
}

fn p256_signature(s: &Signature) -> p256::ecdsa::Signature {
    p256::ecdsa::Signature::from_slice(s.as_bytes()).unwrap()
}

/// ring's hedged signatures verify with `p256`, `p256`'s RFC 6979 signatures verify with ring,
/// RFC 6979 repeats itself, and each refuses the other's signature over another message.
#[test]
fn signatures_verify_across_implementations() {
    for key in [
        SoftwareSigningKey::generate(),
        SoftwareSigningKey::from_pkcs8_pem(TEST_KEY).unwrap(),
    ] {
        let vk = p256_verifying_key(&key);
        for msg in [&b""[..], b"a", &[7u8; 1000]] {
            let fast = key.sign(msg).unwrap();
            let det = key.deterministic().sign(msg).unwrap();
            assert!(vk.verify(msg, &p256_signature(&fast)).is_ok());
            assert!(vk.verify(b"other", &p256_signature(&fast)).is_err());
            assert!(key.public_key().verify_signature(msg, det.as_bytes()));
            assert!(!key.public_key().verify_signature(b"other", det.as_bytes()));
            assert_eq!(det, key.deterministic().sign(msg).unwrap());
            assert_ne!(fast, key.sign(msg).unwrap(), "hedged nonces are fresh");
        }
    }
}

/// The high-S twin `(r, n - s)` of a valid signature verifies too (ECDSA does not forbid it;
/// envelopes are bound by their content, not their signature bytes).
#[test]
fn the_high_s_twin_verifies() {
    let key = SoftwareSigningKey::generate();
    for _ in 0..8 {
        let sig = p256_signature(&key.sign(b"m").unwrap());
        let twin = match sig.normalize_s() {
            Some(low) => low,
            None => p256::ecdsa::Signature::from_scalars(sig.r(), -*sig.s()).unwrap(),
        };
        assert_ne!(twin, sig);
        for s in [sig, twin] {
            assert!(key.public_key().verify_signature(b"m", &s.to_bytes()));
        }
    }
}

/// DER signatures (X.509's form): ring accepts `p256`'s DER encoding of the same signature, and
/// refuses it over another message, with another key, in the fixed form, with a trailing byte,
/// truncated, or empty.
#[test]
fn der_signatures_verify_and_malformed_ones_are_refused() {
    let key = SoftwareSigningKey::generate();
    let other = SoftwareSigningKey::generate();
    let fixed = key.sign(b"tbs").unwrap();
    let der = p256_signature(&fixed).to_der().as_bytes().to_vec();
    let public = key.public_key();
    assert!(public.verify_der_signature(b"tbs", &der));
    assert!(!public.verify_der_signature(b"tbs!", &der));
    assert!(!other.public_key().verify_der_signature(b"tbs", &der));
    assert!(!public.verify_der_signature(b"tbs", fixed.as_bytes()));
    let trailing = [der.as_slice(), &[0]].concat();
    for bad in [&trailing[..], &der[..der.len() - 1], &[]] {
        assert!(!public.verify_der_signature(b"tbs", bad));
    }
}

/// Public keys: the same SubjectPublicKeyInfo DER and PEM bytes, each parsed by the other; the
/// compressed form `p256` also writes is refused (one encoding per key, as its key ID needs).
#[test]
fn public_key_encodings_agree() {
    for _ in 0..16 {
        let sk = SigningKey::random(&mut OsRng);
        let vk = sk.verifying_key();
        let der = vk.to_public_key_der().unwrap();
        let pem = vk.to_public_key_pem(LineEnding::LF).unwrap();
        let ours = PublicKey::from_spki_der(der.as_bytes()).unwrap();
        assert_eq!(ours.to_spki_der(), der.as_bytes());
        assert_eq!(ours.to_pem(), pem);
        assert_eq!(PublicKey::from_pem(&pem).unwrap(), ours);
        assert_eq!(
            ours.to_sec1_uncompressed(),
            vk.to_encoded_point(false).as_bytes()
        );
        assert_eq!(
            VerifyingKey::from_public_key_der(&ours.to_spki_der()).unwrap(),
            *vk
        );
        assert!(PublicKey::from_sec1_uncompressed(vk.to_encoded_point(true).as_bytes()).is_err());
    }
}

/// Private keys: `p256`'s PKCS#8 files (every key file written before ring held the keys) load
/// as the same key, and ring's PKCS#8 loads in `p256` as the same key, byte for byte the same
/// document.
#[test]
fn pkcs8_documents_agree() {
    for _ in 0..16 {
        let sk = SigningKey::random(&mut OsRng);
        let pem = sk.to_pkcs8_pem(LineEnding::LF).unwrap();
        let ours = SoftwareSigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(
            ours.public_key().to_sec1_uncompressed(),
            sk.verifying_key().to_encoded_point(false).as_bytes()
        );
        assert_eq!(ours.to_pkcs8_pem().unwrap().as_str(), pem.as_str());
        let generated = SoftwareSigningKey::generate();
        let back = SigningKey::from_pkcs8_pem(&generated.to_pkcs8_pem().unwrap()).unwrap();
        assert_eq!(
            back.to_pkcs8_pem(LineEnding::LF).unwrap().as_str(),
            generated.to_pkcs8_pem().unwrap().as_str()
        );
    }
}
