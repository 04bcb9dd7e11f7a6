//! `/v1/platform`: the platform's public trust material, for devices and clients (no
//! authentication: both are public and self-verifying).

use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The platform root certificate (PEM). Compare its SHA-256 fingerprint with the one
/// `ferro-service init` printed before trusting it.
#[utoipa::path(get, path = "/v1/platform/root-certificate", tag = "platform",
    responses((status = 200, description = "PEM certificate", content_type = "application/x-pem-file", body = String)),
    security(()))]
pub async fn root_certificate(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        state.platform.root.pem(),
    )
        .into_response()
}

/// The platform key list: COSE_Sign1 bytes signed by the platform root
/// (`docs/identity-documents.md`), listing the OS release, capability and service TLS keys.
#[utoipa::path(get, path = "/v1/platform/key-list", tag = "platform",
    responses((status = 200, description = "COSE_Sign1 bytes", content_type = "application/cose", body = Vec<u8>)),
    security(()))]
pub async fn key_list(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/cose")],
        state.platform.key_list.as_ref().clone(),
    )
        .into_response()
}
