//! Key identifiers, public keys and the software signing key.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use pem_rfc7468::LineEnding;
use ring::agreement;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair,
    KeyPair as _, UnparsedPublicKey,
};
use zeroize::Zeroizing;

use crate::digest::{Sha256, sha512};
use crate::error::{DeviceIdError, KeyError, SignError};
use crate::signer::{Signature, Signer};

/// A key identifier: the SHA-256 of the key's DER SubjectPublicKeyInfo. Displayed as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 32]);

impl KeyId {
    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key ID from a slice, if it is exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<KeyId> {
        <[u8; 32]>::try_from(bytes).ok().map(KeyId)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl std::str::FromStr for KeyId {
    type Err = hex::FromHexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)?;
        Ok(KeyId(out))
    }
}

/// A device identifier (docs/design.md §2): the SHA-512 of the device public key's DER
/// SubjectPublicKeyInfo, written as exactly 128 lowercase hexadecimal characters.
///
/// This is the one device ID type of the tree: the device, the signed documents, the service and
/// the wire (`ferro_wire::DeviceId` is this type; with feature `serde` it is a JSON string) all
/// use it, and [`FromStr`](std::str::FromStr) is its one parser. Parsing accepts either case and
/// the ID always prints in lower case, so every device has one textual ID (a database key, a
/// certificate CN, a path segment).
///
/// Device IDs are public; equality is an ordinary comparison. Code that compares a claimed ID with
/// one it computed from a key should still prefer [`DeviceId::from_public_key`] and compare the
/// values, never the strings.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId([u8; 64]);

impl DeviceId {
    /// The length of the textual form (128 hex characters).
    pub const TEXT_LEN: usize = 128;

    /// The device ID of `key`: SHA-512 of its DER SubjectPublicKeyInfo.
    pub fn from_public_key(key: &PublicKey) -> DeviceId {
        DeviceId(sha512(&key.to_spki_der()))
    }

    /// A device ID from its 64 raw bytes (e.g. from a CBOR document). Says nothing about which
    /// key it belongs to.
    pub const fn from_bytes(bytes: [u8; 64]) -> DeviceId {
        DeviceId(bytes)
    }

    /// A device ID from a slice, if it is exactly 64 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<DeviceId> {
        <[u8; 64]>::try_from(bytes).ok().map(DeviceId)
    }

    /// The 64 bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({self})")
    }
}

impl std::str::FromStr for DeviceId {
    type Err = DeviceIdError;

    /// Exactly 128 characters, each `0-9`, `a-f` or `A-F` (nothing around them).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != Self::TEXT_LEN {
            return Err(DeviceIdError::WrongLength(s.len()));
        }
        let mut out = [0u8; 64];
        // `hex` accepts exactly the ASCII hex digits of either case.
        hex::decode_to_slice(s, &mut out).map_err(|_| DeviceIdError::NotHex)?;
        Ok(DeviceId(out))
    }
}

/// A device ID is a JSON string of its 128 hex characters (lower case out, either case in).
#[cfg(feature = "serde")]
impl serde::Serialize for DeviceId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for DeviceId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DeviceId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a device ID (128 hexadecimal characters)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DeviceId, E> {
                // The value is not echoed: `expecting` says what a device ID is.
                v.parse()
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Other("a string"), &self))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// The DER SubjectPublicKeyInfo of every P-256 key up to its point (RFC 5480 section 2:
/// `SEQUENCE { SEQUENCE { OID id-ecPublicKey 1.2.840.10045.2.1, OID prime256v1
/// 1.2.840.10045.3.1.7 }, BIT STRING (no unused bits) <65-byte uncompressed point> }`). DER has
/// one encoding, so every such key is these 26 bytes and its point. Pinned by the device ID
/// known answer computed with `openssl` (`tests/device_id.rs`) and against RustCrypto's encoding
/// (`ferro-rfc6979`'s tests).
const SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The PEM label of a SubjectPublicKeyInfo (RFC 7468 section 13).
const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";
/// The PEM label of a PKCS#8 private key (RFC 7468 section 10).
const PRIVATE_KEY_LABEL: &str = "PRIVATE KEY";

/// An ECDSA P-256 public key: a point of the curve (validated when parsed), kept as its
/// uncompressed SEC1 encoding, with its key ID. Signatures are checked with `ring`.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    sec1: [u8; 65],
    kid: KeyId,
}

impl PublicKey {
    /// A key from an uncompressed SEC1 point `04 || x || y` (65 bytes), e.g. the coordinates a
    /// TPM returns. Refuses another length or form, coordinates not below the field prime, a
    /// point not on the curve, and the point at infinity.
    pub fn from_sec1_uncompressed(point: &[u8]) -> Result<PublicKey, KeyError> {
        let sec1 = <[u8; 65]>::try_from(point)
            .ok()
            .filter(|p| p[0] == 0x04)
            .ok_or(KeyError::InvalidPublicKey("not an uncompressed point"))?;
        if !is_curve_point(&sec1) {
            return Err(KeyError::InvalidPublicKey("not a point of P-256"));
        }
        Ok(Self::from_checked_point(sec1))
    }

    /// A key from a point already known to be on the curve (ring derived it from a private key).
    fn from_checked_point(sec1: [u8; 65]) -> PublicKey {
        let mut spki = [0u8; 91];
        spki[..26].copy_from_slice(&SPKI_PREFIX);
        spki[26..].copy_from_slice(&sec1);
        PublicKey {
            sec1,
            kid: KeyId(Sha256::digest(spki)),
        }
    }

    /// Parse a DER SubjectPublicKeyInfo (id-ecPublicKey, prime256v1, uncompressed point).
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        match der.strip_prefix(&SPKI_PREFIX[..]) {
            Some(point) if point.len() == 65 => Self::from_sec1_uncompressed(point),
            _ => Err(KeyError::InvalidPublicKey("bad DER SubjectPublicKeyInfo")),
        }
    }

    /// Parse a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn from_pem(pem: &str) -> Result<PublicKey, KeyError> {
        let bad = || KeyError::InvalidPublicKey("bad PEM SubjectPublicKeyInfo");
        match pem_rfc7468::decode_vec(pem.as_bytes()) {
            Ok((PUBLIC_KEY_LABEL, der)) => Self::from_spki_der(&der).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Vec<u8> {
        [&SPKI_PREFIX[..], &self.sec1].concat()
    }

    /// The PEM `PUBLIC KEY` (LF line endings).
    pub fn to_pem(&self) -> String {
        // Encoding 91 bytes cannot fail; an empty string would never parse as a key anyway.
        pem_rfc7468::encode_string(PUBLIC_KEY_LABEL, LineEnding::LF, &self.to_spki_der())
            .unwrap_or_default()
    }

    /// The uncompressed SEC1 point `04 || x || y` (65 bytes), e.g. for a COSE_Key.
    pub fn to_sec1_uncompressed(&self) -> Vec<u8> {
        self.sec1.to_vec()
    }

    /// The key identifier: SHA-256 of [`PublicKey::to_spki_der`].
    pub fn key_id(&self) -> KeyId {
        self.kid
    }

    /// Verify an ECDSA P-256 / SHA-256 signature in the fixed 64-byte `r || s` form (COSE's, and
    /// a TPM's once its `r` and `s` are padded to 32 bytes) over `message`. Refuses anything
    /// else: another length, `r` or `s` zero or not below the group order (`ring` checks the
    /// ranges; both `s` and `n - s` are accepted, as ECDSA defines).
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        signature.len() == 64
            && UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.sec1)
                .verify(message, signature)
                .is_ok()
    }

    /// Verify an ECDSA P-256 / SHA-256 signature in the ASN.1 DER `Ecdsa-Sig-Value` form (as
    /// X.509 certificates carry it) over `message`. Refuses a malformed encoding and `r` or `s`
    /// out of range.
    pub fn verify_der_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.sec1)
            .verify(message, signature)
            .is_ok()
    }
}

/// Whether `point` (`04 || x || y`) is a point of P-256 other than the point at infinity.
///
/// `ring` exposes its public-key validation (coordinates below the prime, on the curve; the
/// check its ECDSA verification also makes) only through key agreement, so this runs one ECDH
/// with a fresh ephemeral key and keeps only whether the point was accepted (P-256 has prime
/// order, so for a valid point the shared point is never infinity). That costs about what a
/// signature does, and the service parses the same device and CA keys again on every
/// attestation and connection, so the points that passed are remembered ([`VALIDATED`]).
fn is_curve_point(point: &[u8; 65]) -> bool {
    if VALIDATED.lock().is_ok_and(|v| v.contains(point)) {
        return true;
    }
    let rng = SystemRandom::new();
    let valid = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng)
        .and_then(|ours| {
            agreement::agree_ephemeral(
                ours,
                &agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, point),
                |_| (),
            )
        })
        .is_ok();
    if valid && let Ok(mut v) = VALIDATED.lock() {
        if v.len() >= MAX_VALIDATED {
            v.clear();
        }
        v.insert(*point);
    }
    valid
}

/// The points [`is_curve_point`] accepted in this process: a memo of a pure function that holds
/// only points that passed, so it never changes an answer (a poisoned lock is a miss).
static VALIDATED: Mutex<BTreeSet<[u8; 65]>> = Mutex::new(BTreeSet::new());

/// At most this many points are remembered (about 400 KiB); when full, the memo starts over.
const MAX_VALIDATED: usize = 4096;

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(kid {})", self.kid)
    }
}

/// A P-256 private key held in process memory (for developer test keys, the service's key store
/// and the software root of trust). `Debug` shows only the key ID.
///
/// `ring` holds it and makes its signatures ([`Signer::sign`]) with a hedged nonce (derived from
/// the key, the message and fresh randomness, so neither a weak random generator nor a fault
/// injected into a repeated deterministic computation exposes the key). The PKCS#8 document it
/// was made from is kept, zeroized on drop, for [`SoftwareSigningKey::to_pkcs8_pem`]; `ring`
/// keeps its own copy of the scalar in its opaque type and does not promise to zeroize it.
/// Reproducible (RFC 6979) signatures are not made here: see `ferro-rfc6979`.
#[derive(Clone)]
pub struct SoftwareSigningKey {
    pkcs8: Arc<Zeroizing<Vec<u8>>>,
    public: PublicKey,
    pair: Arc<EcdsaKeyPair>,
}

impl fmt::Debug for SoftwareSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareSigningKey")
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

impl SoftwareSigningKey {
    /// The key of a DER PKCS#8 document (v1, id-ecPublicKey on prime256v1, its `ECPrivateKey`
    /// carrying the public key, which `ring` checks against the private key).
    fn from_pkcs8_der(der: Zeroizing<Vec<u8>>) -> Result<SoftwareSigningKey, KeyError> {
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
                .map_err(|_| KeyError::InvalidPrivateKey)?;
        let point = <[u8; 65]>::try_from(pair.public_key().as_ref())
            .map_err(|_| KeyError::InvalidPrivateKey)?;
        Ok(SoftwareSigningKey {
            pkcs8: Arc::new(der),
            public: PublicKey::from_checked_point(point),
            pair: Arc::new(pair),
        })
    }

    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> SoftwareSigningKey {
        let rng = SystemRandom::new();
        loop {
            // Fails only if the random generator does, or (never) on a document ring cannot
            // read back; draw again.
            if let Ok(key) = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| KeyError::InvalidPrivateKey)
                .and_then(|doc| Self::from_pkcs8_der(Zeroizing::new(doc.as_ref().to_vec())))
            {
                return key;
            }
        }
    }

    /// Parse a PKCS#8 PEM (`PRIVATE KEY`) P-256 key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<SoftwareSigningKey, KeyError> {
        match pem_rfc7468::decode_vec(pem.as_bytes()) {
            Ok((label, der)) => {
                let der = Zeroizing::new(der);
                if label != PRIVATE_KEY_LABEL {
                    return Err(KeyError::InvalidPrivateKey);
                }
                Self::from_pkcs8_der(der)
            }
            Err(_) => Err(KeyError::InvalidPrivateKey),
        }
    }

    /// The PKCS#8 PEM encoding (zeroized when dropped).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        pem_rfc7468::encode_string(PRIVATE_KEY_LABEL, LineEnding::LF, &self.pkcs8)
            .map(Zeroizing::new)
            .map_err(|_| KeyError::InvalidPrivateKey)
    }
    /// Load a PKCS#8 PEM key file. On unix, refuses a file accessible by group or others.
    pub fn load(path: &Path) -> Result<SoftwareSigningKey, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        check_private_permissions(path, &file)?;
        let mut pem = Zeroizing::new(String::new());
        std::io::Read::read_to_string(&mut &file, &mut pem).map_err(io)?;
        Self::from_pkcs8_pem(&pem)
    }

    /// Write the key to a new file at `path` (mode 0600, atomically: temp file, fsync, then a
    /// no-clobber rename; `ferro_files::create_new`). Fails if `path` already exists. Creates
    /// missing parent directories.
    pub fn save_new(&self, path: &Path) -> Result<(), KeyError> {
        let pem = self.to_pkcs8_pem()?;
        ferro_files::create_new(path, pem.as_bytes(), ferro_files::Mode::SECRET).map_err(|source| {
            KeyError::Io {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    /// Load the key at `path`, or create one there if no file exists (see
    /// [`SoftwareSigningKey::save_new`]). If another process creates it concurrently, the key
    /// that won the race is loaded, so every caller ends up with the same key.
    pub fn load_or_create(path: &Path) -> Result<SoftwareSigningKey, KeyError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => Self::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                match key.save_new(path) {
                    Ok(()) => Ok(key),
                    Err(KeyError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        Self::load(path)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(source) => Err(KeyError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The key identifier of the public key.
    pub fn key_id(&self) -> KeyId {
        self.public.key_id()
    }
}

impl Signer for SoftwareSigningKey {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, SignError> {
        let sig = self
            .pair
            .sign(&SystemRandom::new(), message)
            .map_err(|_| SignError::Signer("ECDSA signing failed".into()))?;
        let bytes = <[u8; 64]>::try_from(sig.as_ref())
            .map_err(|_| SignError::Signer("ECDSA signature of unexpected length".into()))?;
        Ok(Signature(bytes))
    }

    /// No: `ring` draws every nonce from the key, the message and fresh randomness, so a
    /// corrupted computation yields a signature that does not verify (refused by its verifier)
    /// rather than one of a key-revealing pair; and the key is this process's, not a device's.
    fn needs_self_check(&self) -> bool {
        false
    }
}

#[cfg(unix)]
fn check_private_permissions(path: &Path, file: &std::fs::File) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file
        .metadata()
        .map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private_permissions(_path: &Path, _file: &std::fs::File) -> Result<(), KeyError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The group order n of P-256, big-endian.
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];

    /// The field prime p of P-256, big-endian.
    const P: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff,
    ];

    /// Malformed signatures are refused, never accepted or panicking: wrong lengths, r or s zero
    /// or not below the group order. (The high-S twin and DER forms are checked against
    /// RustCrypto's `p256` in `ferro-rfc6979`'s tests.)
    #[test]
    fn out_of_range_signatures_are_refused() {
        let key = SoftwareSigningKey::generate();
        let good = key.sign(b"m").unwrap().0;
        assert!(key.public.verify_signature(b"m", &good));
        for len in [0, 63, 65, 72] {
            let mut s = good.to_vec();
            s.resize(len, 1);
            assert!(!key.public.verify_signature(b"m", &s), "length {len}");
        }
        let with = |r: [u8; 32], s: [u8; 32]| [r, s].concat();
        let (r, s) = (
            <[u8; 32]>::try_from(&good[..32]).unwrap(),
            <[u8; 32]>::try_from(&good[32..]).unwrap(),
        );
        for bad in [
            with([0; 32], s),
            with(r, [0; 32]),
            with(N, s),
            with(r, N),
            with([0xff; 32], s),
        ] {
            assert!(!key.public.verify_signature(b"m", &bad));
        }
    }

    /// Points that are not a P-256 public key are refused when parsed, each form of them: the
    /// wrong length or form byte, the compressed form, a coordinate not below p, a point off the
    /// curve, the point at infinity; and the SubjectPublicKeyInfo around a point must be exactly
    /// the one DER encoding.
    #[test]
    fn invalid_points_and_encodings_are_refused() {
        let key = SoftwareSigningKey::generate();
        let good = key.public.sec1;
        let edited = |i: usize, f: fn(u8) -> u8| {
            let mut p = good;
            p[i] = f(p[i]);
            p.to_vec()
        };
        let mut x_is_p = good;
        x_is_p[1..33].copy_from_slice(&P);
        let mut infinity = vec![0u8; 65];
        infinity[0] = 4;
        let points: [(&str, Vec<u8>); 8] = [
            ("empty", vec![]),
            ("64 bytes", good[..64].to_vec()),
            ("66 bytes", [&good[..], &[0]].concat()),
            ("form byte 05", edited(0, |_| 5)),
            (
                "compressed",
                [&[2 + (good[64] & 1)][..], &good[1..33]].concat(),
            ),
            ("x = p", x_is_p.to_vec()),
            ("off the curve", edited(64, |b| b ^ 1)),
            ("infinity as zeros", infinity),
        ];
        for (what, point) in points {
            assert!(PublicKey::from_sec1_uncompressed(&point).is_err(), "{what}");
            let spki = [&SPKI_PREFIX[..], &point].concat();
            assert!(PublicKey::from_spki_der(&spki).is_err(), "{what}");
        }
        let spki = key.public.to_spki_der();
        assert_eq!(PublicKey::from_spki_der(&spki).unwrap(), key.public);
        let mut other_curve = spki.clone();
        other_curve[22] ^= 1;
        for (what, der) in [
            ("trailing byte", [&spki[..], &[0]].concat()),
            ("truncated", spki[..90].to_vec()),
            ("another curve OID", other_curve),
            ("no SubjectPublicKeyInfo", good.to_vec()),
        ] {
            assert!(PublicKey::from_spki_der(&der).is_err(), "{what}");
        }
    }

    /// The memo of validated points answers as the validation does: a valid point twice (the
    /// second time remembered), an invalid one refused every time, also after a full memo
    /// starts over.
    #[test]
    fn remembered_points_answer_as_the_validation_does() {
        let good = SoftwareSigningKey::generate().public.sec1;
        let mut off_curve = good;
        off_curve[64] ^= 1;
        for _ in 0..2 {
            assert!(is_curve_point(&good));
            assert!(!is_curve_point(&off_curve));
        }
        assert!(VALIDATED.lock().unwrap().contains(&good));
        assert!(!VALIDATED.lock().unwrap().contains(&off_curve));
        VALIDATED
            .lock()
            .unwrap()
            .extend((0..MAX_VALIDATED).map(|i| {
                let mut p = [0u8; 65];
                p[..8].copy_from_slice(&(i as u64).to_be_bytes());
                p
            }));
        let fresh = SoftwareSigningKey::generate().public.sec1;
        assert!(is_curve_point(&fresh));
        {
            let v = VALIDATED.lock().unwrap();
            assert!(v.len() <= MAX_VALIDATED && v.contains(&fresh));
        }
        assert!(is_curve_point(&good));
        assert!(!is_curve_point(&off_curve));
    }

    /// PEM: each label only where it belongs, and a round trip of each.
    #[test]
    fn pem_labels_and_round_trips() {
        let key = SoftwareSigningKey::generate();
        let public_pem = key.public.to_pem();
        let private_pem = key.to_pkcs8_pem().unwrap();
        assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert_eq!(PublicKey::from_pem(&public_pem).unwrap(), key.public);
        let again = SoftwareSigningKey::from_pkcs8_pem(&private_pem).unwrap();
        assert_eq!(again.public, key.public);
        assert_eq!(*again.to_pkcs8_pem().unwrap(), *private_pem);
        assert!(PublicKey::from_pem(&private_pem).is_err());
        assert!(SoftwareSigningKey::from_pkcs8_pem(&public_pem).is_err());
        let relabelled = private_pem.replace("PRIVATE KEY", "EC PRIVATE KEY");
        assert!(SoftwareSigningKey::from_pkcs8_pem(&relabelled).is_err());
    }
}
