//! SHA-256 and SHA-512: the platform's one implementation of each (`ring`'s, the code that also
//! hashes every message this crate signs or verifies), so that no crate of the boot TCB links a
//! second hash library.

use ring::digest;

/// A streaming SHA-256.
#[derive(Clone)]
pub struct Sha256(digest::Context);

impl Sha256 {
    /// An empty hash.
    pub fn new() -> Sha256 {
        Sha256(digest::Context::new(&digest::SHA256))
    }

    /// Hash `data` next.
    pub fn update(&mut self, data: impl AsRef<[u8]>) {
        self.0.update(data.as_ref());
    }

    /// The digest of everything hashed.
    pub fn finalize(self) -> [u8; 32] {
        to_array(self.0.finish())
    }

    /// The SHA-256 of `data`.
    pub fn digest(data: impl AsRef<[u8]>) -> [u8; 32] {
        to_array(digest::digest(&digest::SHA256, data.as_ref()))
    }
}

impl Default for Sha256 {
    fn default() -> Sha256 {
        Sha256::new()
    }
}

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sha256")
    }
}

/// The SHA-512 of `data`.
pub(crate) fn sha512(data: &[u8]) -> [u8; 64] {
    to_array(digest::digest(&digest::SHA512, data))
}

/// A digest as an array of its algorithm's length (`N` is always that length here).
fn to_array<const N: usize>(d: digest::Digest) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS 180-2 known answers ("abc", and the empty string), one-shot and streamed in pieces.
    #[test]
    fn known_answers() {
        let abc256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let empty256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let abc512 = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                      2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";
        assert_eq!(hex::encode(Sha256::digest(b"abc")), abc256);
        assert_eq!(hex::encode(Sha256::new().finalize()), empty256);
        let mut h = Sha256::default();
        for piece in [&b"a"[..], b"", b"bc"] {
            h.update(piece);
        }
        assert_eq!(hex::encode(h.clone().finalize()), abc256);
        assert_eq!(hex::encode(sha512(b"abc")), abc512);
    }
}
