//! Key identifiers, public keys and the software signing key.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::elliptic_curve::rand_core::OsRng;
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use sha2::{Digest, Sha256, Sha512};

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
        DeviceId(Sha512::digest(key.to_spki_der()).into())
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

/// An ECDSA P-256 public key.
///
/// Parsing and encoding are `p256`'s; signatures are checked with `ring` (the same P-256 code
/// rustls uses here, about five times faster than `p256`'s verification), on the uncompressed
/// point kept beside the parsed key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    sec1: [u8; 65],
    kid: KeyId,
}

impl PublicKey {
    fn from_verifying_key(key: VerifyingKey) -> Result<PublicKey, KeyError> {
        let der = key
            .to_public_key_der()
            .map_err(|_| KeyError::InvalidPublicKey("cannot encode"))?;
        let kid = KeyId(Sha256::digest(der.as_bytes()).into());
        let sec1 = <[u8; 65]>::try_from(key.to_encoded_point(false).as_bytes())
            .map_err(|_| KeyError::InvalidPublicKey("cannot encode"))?;
        Ok(PublicKey { key, sec1, kid })
    }

    /// Parse a DER SubjectPublicKeyInfo (id-ecPublicKey, prime256v1).
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let key = VerifyingKey::from_public_key_der(der)
            .map_err(|_| KeyError::InvalidPublicKey("bad DER SubjectPublicKeyInfo"))?;
        Self::from_verifying_key(key)
    }

    /// Parse a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn from_pem(pem: &str) -> Result<PublicKey, KeyError> {
        let key = VerifyingKey::from_public_key_pem(pem)
            .map_err(|_| KeyError::InvalidPublicKey("bad PEM SubjectPublicKeyInfo"))?;
        Self::from_verifying_key(key)
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Vec<u8> {
        // Encoding a valid key cannot fail; an empty vector would never match a kid anyway.
        self.key
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default()
    }

    /// The PEM `PUBLIC KEY` (LF line endings).
    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
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

    /// Verify an ECDSA P-256 / SHA-256 signature in the fixed 64-byte `r || s` form over
    /// `message`. Refuses anything else: another length, `r` or `s` zero or not below the group
    /// order (`ring` checks the ranges; both `s` and `n - s` are accepted, as ECDSA defines).
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        signature.len() == 64
            && ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                &self.sec1,
            )
            .verify(message, signature)
            .is_ok()
    }

    /// Verify an ECDSA P-256 / SHA-256 signature in the ASN.1 DER `Ecdsa-Sig-Value` form (as
    /// X.509 certificates carry it) over `message`. Refuses a malformed encoding and `r` or `s`
    /// out of range.
    pub fn verify_der_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &self.sec1,
        )
        .verify(message, signature)
        .is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(kid {})", self.kid)
    }
}

/// A P-256 private key held in process memory (for developer test keys, the service's key store
/// and the software root of trust). `Debug` shows only the key ID.
///
/// Two implementations hold the same scalar: `p256` (parsing, PKCS#8, and the deterministic
/// RFC 6979 signatures of [`SoftwareSigningKey::deterministic`]) and `ring`, which makes the
/// signatures of [`Signer::sign`]: about ten times faster, with a hedged nonce (derived from the
/// key, the message and fresh randomness, so neither a weak random generator nor a fault
/// injected into a repeated deterministic computation exposes the key). `p256` zeroizes its copy
/// on drop; `ring` keeps its copy in its own opaque type and does not promise to.
#[derive(Clone)]
pub struct SoftwareSigningKey {
    key: SigningKey,
    public: PublicKey,
    fast: Arc<EcdsaKeyPair>,
}

/// The `ring` key pair for `key` (the same scalar and point).
fn fast_key(key: &SigningKey, public: &PublicKey) -> Result<Arc<EcdsaKeyPair>, KeyError> {
    let scalar = Zeroizing::new(key.to_bytes());
    EcdsaKeyPair::from_private_key_and_public_key(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &scalar[..],
        &public.sec1,
        &SystemRandom::new(),
    )
    .map(Arc::new)
    .map_err(|_| KeyError::InvalidPrivateKey)
}

impl fmt::Debug for SoftwareSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareSigningKey")
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

impl SoftwareSigningKey {
    fn from_signing_key(key: SigningKey) -> Result<SoftwareSigningKey, KeyError> {
        let public = PublicKey::from_verifying_key(*key.verifying_key())?;
        let fast = fast_key(&key, &public)?;
        Ok(SoftwareSigningKey { key, public, fast })
    }

    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> SoftwareSigningKey {
        loop {
            // A freshly drawn valid scalar always converts; should it not, draw again.
            if let Ok(key) = Self::from_signing_key(SigningKey::random(&mut OsRng)) {
                return key;
            }
        }
    }

    /// Parse a PKCS#8 PEM (`PRIVATE KEY`) P-256 key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<SoftwareSigningKey, KeyError> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|_| KeyError::InvalidPrivateKey)?;
        Self::from_signing_key(key)
    }

    /// The PKCS#8 PEM encoding (zeroized when dropped).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
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
            .fast
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

/// A [`SoftwareSigningKey`] that signs deterministically (RFC 6979 nonce, `p256`): the same key
/// and message always give the same signature, so signed artifacts are reproducible byte for
/// byte (golden test vectors, `ferro image-package pack-*`). About ten times slower than
/// [`Signer::sign`] of the key itself; for documents, not for request paths.
#[derive(Clone, Copy, Debug)]
pub struct DeterministicSigner<'a>(&'a SoftwareSigningKey);

impl SoftwareSigningKey {
    /// This key, signing deterministically (see [`DeterministicSigner`]).
    pub fn deterministic(&self) -> DeterministicSigner<'_> {
        DeterministicSigner(self)
    }
}

impl Signer for DeterministicSigner<'_> {
    fn public_key(&self) -> &PublicKey {
        &self.0.public
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, SignError> {
        // RFC 6979 deterministic nonce, SHA-256 message digest.
        let sig: p256::ecdsa::Signature = self
            .0
            .key
            .try_sign(message)
            .map_err(|_| SignError::Signer("ECDSA signing failed".into()))?;
        let bytes: [u8; 64] = sig.to_bytes().into();
        Ok(Signature(bytes))
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
    use p256::ecdsa::signature::Verifier as _;

    /// The group order n of P-256, big-endian.
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];

    /// The two implementations agree: `ring`'s signatures verify with `p256`, `p256`'s RFC 6979
    /// signatures verify with `ring`, and each refuses the other's signature over another message.
    #[test]
    fn both_implementations_agree() {
        let key = SoftwareSigningKey::generate();
        let vk = key.key.verifying_key();
        for msg in [&b""[..], b"a", &[7u8; 1000]] {
            let fast = key.sign(msg).unwrap();
            let det = key.deterministic().sign(msg).unwrap();
            let p256_sig = |s: &Signature| p256::ecdsa::Signature::from_slice(&s.0).unwrap();
            assert!(vk.verify(msg, &p256_sig(&fast)).is_ok());
            assert!(key.public.verify(msg, &det.0));
            assert!(key.public.verify(msg, &fast.0));
            assert!(vk.verify(b"other", &p256_sig(&fast)).is_err());
            assert!(!key.public.verify(b"other", &det.0));
            assert_eq!(det, key.deterministic().sign(msg).unwrap());
        }
    }

    /// Malformed signatures are refused, never accepted or panicking: wrong lengths, r or s zero
    /// or not below the group order, and the high-S twin of a valid signature is accepted (ECDSA
    /// itself does not forbid it; envelopes are bound by their content, not their signature bytes).
    #[test]
    fn out_of_range_signatures_are_refused() {
        let key = SoftwareSigningKey::generate();
        let good = key.sign(b"m").unwrap().0;
        for len in [0, 63, 65, 72] {
            let mut s = good.to_vec();
            s.resize(len, 1);
            assert!(!key.public.verify(b"m", &s), "length {len}");
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
            assert!(!key.public.verify(b"m", &bad));
        }
        let high_s = p256::ecdsa::Signature::from_slice(&good).unwrap();
        let flipped = match high_s.normalize_s() {
            Some(low) => low,
            None => {
                // `good` was low-S: make its high-S twin (n - s).
                let s = -*high_s.s();
                p256::ecdsa::Signature::from_scalars(high_s.r(), s).unwrap()
            }
        };
        assert!(key.public.verify(b"m", &flipped.to_bytes()));
    }

    /// DER signatures (X.509's form): `ring` accepts `p256`'s DER encoding of the same
    /// signature, and refuses it over another message, with another key, in the fixed form, with
    /// a trailing byte, truncated, or empty.
    #[test]
    fn der_signatures_verify_and_malformed_ones_are_refused() {
        let key = SoftwareSigningKey::generate();
        let other = SoftwareSigningKey::generate();
        let fixed = key.sign(b"tbs").unwrap().0;
        let sig = p256::ecdsa::Signature::from_slice(&fixed).unwrap();
        let der = sig.to_der().as_bytes().to_vec();
        assert!(key.public.verify_der_signature(b"tbs", &der));
        assert!(!key.public.verify_der_signature(b"tbs!", &der));
        assert!(!other.public.verify_der_signature(b"tbs", &der));
        assert!(!key.public.verify_der_signature(b"tbs", &fixed));
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(!key.public.verify_der_signature(b"tbs", &trailing));
        assert!(
            !key.public
                .verify_der_signature(b"tbs", &der[..der.len() - 1])
        );
        assert!(!key.public.verify_der_signature(b"tbs", &[]));
    }
}
