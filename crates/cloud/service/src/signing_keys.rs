//! Signing keys a package may be uploaded with: tenants' developer keys and the platform's OS
//! release keys. Parsing a registration, a stored key on the wire, and the trusted set built
//! from stored keys.

use crate::authz::TenantScope;
use crate::datastore::developer_keys;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use ferro_signing::{PublicKey, TrustedKeys};
use ferro_wire::{ErrorCode, MAX_PUBLIC_KEY_PEM_LEN, RegisterSigningKeyRequest};

/// Validate a registration request: a name in the usual pattern and a PEM P-256 public key.
pub(crate) fn parse_key_request(req: &RegisterSigningKeyRequest) -> ApiResult<PublicKey> {
    if !ferro_wire::is_valid_name(&req.name) {
        return Err(ApiError::invalid_name("name"));
    }
    let bad = || {
        ApiError::invalid_body(
            "`publicKeyPem` must be the PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of an ECDSA P-256 \
             key, at most 4096 bytes, such as the `.pub.pem` file `ferro key create` writes",
        )
    };
    if req.public_key_pem.len() > MAX_PUBLIC_KEY_PEM_LEN {
        return Err(bad());
    }
    PublicKey::from_pem(req.public_key_pem.trim()).map_err(|_| bad())
}

/// Parse a `{keyId}` path segment (64 lowercase hex).
pub(crate) fn path_key_id(raw: &str) -> ApiResult<String> {
    if ferro_wire::is_valid_key_id(raw) {
        Ok(raw.to_string())
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidId,
            "`keyId` must be a key ID: 64 lowercase hex characters (the SHA-256 of the key's DER \
             SubjectPublicKeyInfo)",
        ))
    }
}

/// The trusted set built from stored PEM keys.
pub(crate) fn trusted_from_pems(pems: &[String]) -> ApiResult<TrustedKeys> {
    let mut trusted = TrustedKeys::new();
    for pem in pems {
        let key = PublicKey::from_pem(pem)
            .map_err(|_| ApiError::Internal("unparsable public key in database".into()))?;
        trusted.insert(key);
    }
    Ok(trusted)
}

/// The developer keys the scope's tenant accepts.
pub(crate) async fn trusted_developer_keys(
    state: &AppState,
    scope: &TenantScope,
) -> ApiResult<TrustedKeys> {
    trusted_from_pems(&developer_keys::public_keys(&state.db, scope).await?)
}
