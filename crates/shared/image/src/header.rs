//! The 16-byte fixed header.

use crate::error::ImageError;

/// File magic: PNG-style, so text-mode conversion (CR/LF, 8th bit) is detected.
pub const MAGIC: [u8; 8] = *b"\x89FSIMG\r\n";
/// The only format version this crate reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 16;
/// The first `AAD_LEN` header bytes (magic, version, flags) are the COSE external AAD.
pub const AAD_LEN: usize = 12;
/// Upper bound on the COSE_Sign1 length (256 KiB).
pub const MAX_ENVELOPE_LEN: u32 = 256 * 1024;

/// The fixed header: `magic[8] | version u16 BE | flags u16 BE | envelope_len u32 BE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedHeader {
    /// Format version (must be [`FORMAT_VERSION`]).
    pub format_version: u16,
    /// Flags (must be 0).
    pub flags: u16,
    /// Length of the COSE_Sign1 that follows.
    pub envelope_len: u32,
}

impl FixedHeader {
    /// A version-1 header with no flags.
    pub fn new(envelope_len: u32) -> FixedHeader {
        FixedHeader {
            format_version: FORMAT_VERSION,
            flags: 0,
            envelope_len,
        }
    }

    /// The 16 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let parts: [&[u8]; 4] = [
            &MAGIC,
            &self.format_version.to_be_bytes(),
            &self.flags.to_be_bytes(),
            &self.envelope_len.to_be_bytes(),
        ];
        let mut i = 0;
        for p in parts {
            for b in p {
                if let Some(slot) = out.get_mut(i) {
                    *slot = *b;
                }
                i += 1;
            }
        }
        out
    }

    /// The COSE external AAD: the first [`AAD_LEN`] header bytes.
    pub fn external_aad(&self) -> [u8; AAD_LEN] {
        let full = self.encode();
        let mut aad = [0u8; AAD_LEN];
        aad.iter_mut().zip(full.iter()).for_each(|(a, f)| *a = *f);
        aad
    }

    /// Parse and check the header: magic, version, flags, envelope length bound.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<FixedHeader, ImageError> {
        let [
            m0,
            m1,
            m2,
            m3,
            m4,
            m5,
            m6,
            m7,
            v0,
            v1,
            f0,
            f1,
            l0,
            l1,
            l2,
            l3,
        ] = *bytes;
        if [m0, m1, m2, m3, m4, m5, m6, m7] != MAGIC {
            return Err(ImageError::BadMagic);
        }
        let h = FixedHeader {
            format_version: u16::from_be_bytes([v0, v1]),
            flags: u16::from_be_bytes([f0, f1]),
            envelope_len: u32::from_be_bytes([l0, l1, l2, l3]),
        };
        if h.format_version != FORMAT_VERSION {
            return Err(ImageError::UnsupportedVersion(h.format_version));
        }
        if h.flags != 0 {
            return Err(ImageError::NonZeroFlags(h.flags));
        }
        if h.envelope_len > MAX_ENVELOPE_LEN {
            return Err(ImageError::EnvelopeTooLarge {
                len: h.envelope_len,
                max: MAX_ENVELOPE_LEN,
            });
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_parse_round_trip() {
        let h = FixedHeader::new(1234);
        let b = h.encode();
        assert_eq!(&b[..8], &MAGIC);
        assert_eq!(&b[8..], &[0, 1, 0, 0, 0, 0, 4, 0xd2]);
        assert_eq!(FixedHeader::parse(&b).unwrap(), h);
        assert_eq!(&h.external_aad()[..], &b[..12]);
    }
}
