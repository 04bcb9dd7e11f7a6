//! Attestation challenge nonces that need no database row (docs/attestation.md, "Nonces").
//!
//! A nonce is 32 bytes: the issue time (Unix microseconds, 8 bytes big-endian), 8 random bytes,
//! and the first 16 bytes of HMAC-SHA256 over a domain string, the device ID and those 16 bytes,
//! under a service secret ([`NonceKey`], `keys/attestation-nonce.key`). The service recognises
//! its own nonces, for which device they were issued and when, without storing them; issuing
//! one writes nothing, so the unauthenticated challenge route cannot fill the database.
//!
//! Single use: a device's record keeps the issue time of the last nonce its key answered
//! (`devices.attestation_nonce_floor`); evidence is accepted only for a nonce issued after that,
//! and the floor moves in the same conditional `UPDATE` that records the verdict. So a nonce is
//! used at most once, and answering a newer challenge also retires the older ones still
//! outstanding. Replicas share the key (it lives in `keys/`, which replicas share already) and
//! need clocks in step (they do for certificates too).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The nonce length (docs/design.md §3.4).
pub const NONCE_LEN: usize = ferro_wire::ATTESTATION_NONCE_LEN;

/// How far in the future a nonce's issue time may be (another replica's clock running ahead).
pub const MAX_CLOCK_AHEAD: Duration = Duration::from_secs(5);

const DOMAIN: &[u8] = b"ferrosphere attestation nonce v1";
const MAC_LEN: usize = 16;
const SECRET_LEN: usize = 32;

/// The file of the nonce key in the service's key directory.
pub const KEY_FILE: &str = "attestation-nonce.key";

/// Why a nonce was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    /// Not made by this service for this device (wrong length, forged, another device's).
    #[error("this nonce was not issued for this device")]
    Unknown,
    /// Issued longer ago than the nonce lifetime.
    #[error("this nonce expired")]
    Expired,
    /// Issued in the future by more than [`MAX_CLOCK_AHEAD`] (service clocks out of step).
    #[error("this nonce was issued in the future; the service clocks are out of step")]
    FromTheFuture,
}

/// Errors loading or creating the key file.
#[derive(Debug, thiserror::Error)]
pub enum NonceKeyError {
    /// Reading or writing the file failed.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The file does not hold 64 hexadecimal characters.
    #[error("{0}: not a nonce key (64 hexadecimal characters expected)")]
    Malformed(PathBuf),
    /// Group or others may read the file.
    #[error("{0}: readable by group or others (mode {1:o}); run `chmod 600` on it")]
    InsecurePermissions(PathBuf, u32),
}

/// The service secret nonces are authenticated with. `Debug` shows nothing of it.
#[derive(Clone)]
pub struct NonceKey([u8; SECRET_LEN]);

impl fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceKey(..)")
    }
}

impl NonceKey {
    /// A key from its bytes (tests).
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> NonceKey {
        NonceKey(bytes)
    }

    /// Load `dir/attestation-nonce.key`, creating it (random, mode 0600, atomically: whoever
    /// creates it first wins and every caller gets that key) if there is none.
    pub fn load_or_create(dir: &Path) -> Result<NonceKey, NonceKeyError> {
        let path = dir.join(KEY_FILE);
        match Self::load(&path) {
            Err(NonceKeyError::Io(_, e)) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = [0u8; SECRET_LEN];
                getrandom::fill(&mut secret)
                    .map_err(|e| NonceKeyError::Io(path.clone(), std::io::Error::other(e)))?;
                match crate::setup::write_new_private(&path, hex::encode(secret).as_bytes()) {
                    Ok(()) => Ok(NonceKey(secret)),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(&path),
                    Err(e) => Err(NonceKeyError::Io(path, e)),
                }
            }
            other => other,
        }
    }

    fn load(path: &Path) -> Result<NonceKey, NonceKeyError> {
        let io = |e| NonceKeyError::Io(path.to_path_buf(), e);
        let file = std::fs::File::open(path).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = file.metadata().map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(NonceKeyError::InsecurePermissions(path.to_path_buf(), mode));
            }
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut &file, &mut text).map_err(io)?;
        let mut secret = [0u8; SECRET_LEN];
        hex::decode_to_slice(text.trim(), &mut secret)
            .map_err(|_| NonceKeyError::Malformed(path.to_path_buf()))?;
        Ok(NonceKey(secret))
    }

    fn mac(&self, device_id: &str, head: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(DOMAIN);
        mac.update(device_id.as_bytes());
        mac.update(head);
        mac
    }

    /// A fresh nonce for `device_id` (its normalised 128-hex form), issued at `now_us`.
    pub fn issue(&self, device_id: &str, now_us: u64) -> Result<[u8; NONCE_LEN], getrandom::Error> {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&now_us.to_be_bytes());
        getrandom::fill(&mut nonce[8..16])?;
        let tag = self.mac(device_id, &nonce[..16]).finalize().into_bytes();
        nonce[16..].copy_from_slice(&tag[..MAC_LEN]);
        Ok(nonce)
    }

    /// Check that `nonce` is one of ours for `device_id`, not older than `ttl` nor from the
    /// future at `now_us`; returns its issue time (Unix microseconds). The tag is compared in
    /// constant time.
    pub fn open(
        &self,
        nonce: &[u8],
        device_id: &str,
        now_us: u64,
        ttl: Duration,
    ) -> Result<u64, NonceError> {
        if nonce.len() != NONCE_LEN {
            return Err(NonceError::Unknown);
        }
        self.mac(device_id, &nonce[..16])
            .verify_truncated_left(&nonce[16..])
            .map_err(|_| NonceError::Unknown)?;
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&nonce[..8]);
        let issued = u64::from_be_bytes(issued);
        let ttl = u64::try_from(ttl.as_micros()).unwrap_or(u64::MAX);
        let ahead = u64::try_from(MAX_CLOCK_AHEAD.as_micros()).unwrap_or(u64::MAX);
        if issued > now_us.saturating_add(ahead) {
            return Err(NonceError::FromTheFuture);
        }
        if now_us.saturating_sub(issued) > ttl {
            return Err(NonceError::Expired);
        }
        Ok(issued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = "ab";
    const TTL: Duration = Duration::from_secs(60);
    const NOW: u64 = 1_800_000_000_000_000;

    fn key() -> NonceKey {
        NonceKey::from_bytes([3; 32])
    }

    #[test]
    fn a_nonce_opens_for_its_device_within_its_life() {
        let n = key().issue(DEV, NOW).unwrap();
        assert_eq!(key().open(&n, DEV, NOW, TTL), Ok(NOW));
        assert_eq!(key().open(&n, DEV, NOW + 60_000_000, TTL), Ok(NOW));
        // Two nonces issued at the same time still differ (8 random bytes).
        assert_ne!(n, key().issue(DEV, NOW).unwrap());
    }

    /// Attacks on the stateless nonce: each is refused with its reason.
    #[test]
    fn forged_foreign_stale_and_future_nonces_are_refused() {
        let n = key().issue(DEV, NOW).unwrap();
        // Another device's nonce.
        assert_eq!(key().open(&n, "cd", NOW, TTL), Err(NonceError::Unknown));
        // Another service's key.
        let other = NonceKey::from_bytes([4; 32]);
        assert_eq!(other.open(&n, DEV, NOW, TTL), Err(NonceError::Unknown));
        // Every single flipped bit, in the time, the random part or the tag.
        for i in 0..NONCE_LEN * 8 {
            let mut m = n;
            m[i / 8] ^= 1 << (i % 8);
            assert_eq!(
                key().open(&m, DEV, NOW, TTL),
                Err(NonceError::Unknown),
                "bit {i}"
            );
        }
        // Wrong lengths, including a truncated tag.
        for len in [0, 16, 31, 33] {
            let mut m = n.to_vec();
            m.resize(len, 0);
            assert_eq!(key().open(&m, DEV, NOW, TTL), Err(NonceError::Unknown));
        }
        // All zeros (the attacker's first guess).
        assert_eq!(
            key().open(&[0; 32], DEV, NOW, TTL),
            Err(NonceError::Unknown)
        );
        // Expired by one microsecond.
        assert_eq!(
            key().open(&n, DEV, NOW + 60_000_001, TTL),
            Err(NonceError::Expired)
        );
        // Issued too far in the future (a replica whose clock runs ahead).
        let future = key().issue(DEV, NOW + 5_000_001).unwrap();
        assert_eq!(
            key().open(&future, DEV, NOW, TTL),
            Err(NonceError::FromTheFuture)
        );
        let near = key().issue(DEV, NOW + 5_000_000).unwrap();
        assert_eq!(key().open(&near, DEV, NOW, TTL), Ok(NOW + 5_000_000));
    }

    #[test]
    fn the_key_file_is_created_once_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let a = NonceKey::load_or_create(dir.path()).unwrap();
        let b = NonceKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.0, b.0);
        let path = dir.path().join(KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                NonceKey::load_or_create(dir.path()),
                Err(NonceKeyError::InsecurePermissions(..))
            ));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::write(&path, "not hex").unwrap();
        let err = NonceKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, NonceKeyError::Malformed(_)));
        // The error names the file, never the secret.
        assert!(!format!("{err} {err:?} {a:?}").contains(&hex::encode(a.0)));
    }
}
