//! Trust anchors: the platform root public key (or certificate) and the service URL.
//!
//! Encoded as the deterministic CBOR map `{1: platform_root (bstr), 2: service_url (tstr)}`.

use ferro_cbor::Value;

use crate::TrustError;
use ferro_cbor as cbor;

/// The longest encoded trust anchors (one TPM2_NV_Write of the TPM backend, after its 2-byte
/// length prefix, must hold them).
pub const MAX_ANCHORS_LEN: usize = 1000;

/// What provisioning writes once and the device trusts afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustAnchors {
    /// The platform root public key (DER SubjectPublicKeyInfo) or certificate (DER X.509).
    pub platform_root: Vec<u8>,
    /// The security service's base URL.
    pub service_url: String,
}

impl TrustAnchors {
    /// The deterministic CBOR encoding; refuses empty fields and encodings over
    /// [`MAX_ANCHORS_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, TrustError> {
        if self.platform_root.is_empty() {
            return Err(TrustError::InvalidAnchors("empty platform root"));
        }
        if self.service_url.is_empty() {
            return Err(TrustError::InvalidAnchors("empty service URL"));
        }
        let v = Value::Map(vec![
            (cbor::uint(1), Value::Bytes(self.platform_root.clone())),
            (cbor::uint(2), Value::Text(self.service_url.clone())),
        ]);
        let bytes = cbor::encode(&v).map_err(|e| TrustError::Encoding(e.to_string()))?;
        if bytes.len() > MAX_ANCHORS_LEN {
            return Err(TrustError::InvalidAnchors(
                "encoded anchors exceed 1000 bytes",
            ));
        }
        Ok(bytes)
    }

    /// Strict decoding (the inverse of [`TrustAnchors::encode`]; anything else is `None`).
    pub fn decode(bytes: &[u8]) -> Option<TrustAnchors> {
        if bytes.len() > MAX_ANCHORS_LEN {
            return None;
        }
        let v = cbor::decode(bytes).ok()?;
        let map = cbor::int_map(&v)?;
        if map.len() != 2 {
            return None;
        }
        let anchors = TrustAnchors {
            platform_root: cbor::get(&map, 1).and_then(cbor::as_bytes)?.to_vec(),
            service_url: cbor::get(&map, 2).and_then(cbor::as_text)?.to_string(),
        };
        (anchors.encode().ok()? == bytes).then_some(anchors)
    }
}
