//! Shared by the benches (`#[path]`-included): publish an OS release to Retail and return the
//! measurement `ferro-boot` makes when it boots it, which the appraisal wants first in a log.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// POST `body` as JSON with the bearer `token`; the answer's status.
async fn post_json(app: &axum::Router, path: &str, token: &str, body: Value) -> StatusCode {
    let req = Request::post(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    app.clone().oneshot(req).await.unwrap().status()
}

/// Register a fresh build key and publish an OS bundle whose `bin/ferro-device` is `payload`
/// (packed under `dir`) to Retail, as the platform operator `op`.
pub async fn publish_retail_os(
    app: &axum::Router,
    op: &str,
    payload: &[u8],
    dir: &std::path::Path,
) -> ferro_trust::MeasurementEvent {
    let build = ferro_signing::SoftwareSigningKey::generate();
    let key = json!({"publicKeyPem": build.public_key().to_pem(), "name": "bench build"});
    assert_eq!(
        post_json(app, "/v1/os-release-keys", op, key).await,
        StatusCode::CREATED
    );
    let os_dir = dir.join("os");
    std::fs::create_dir_all(os_dir.join("bin")).unwrap();
    std::fs::write(os_dir.join("bin/ferro-device"), payload).unwrap();
    let package = dir.join("os.fsimg");
    ferro_image::pack_os(
        &os_dir,
        &ferro_image::PackOptions::default(),
        &build,
        &package,
    )
    .unwrap();
    let resp = app
        .clone()
        .oneshot(
            Request::post("/v1/os-releases?feed=Retail")
                .header("authorization", format!("Bearer {op}"))
                .header("content-type", "application/octet-stream")
                .body(Body::from(std::fs::read(&package).unwrap()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let release: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    ferro_trust::MeasurementEvent {
        component_id: ferro_image::OS_COMPONENT_ID,
        image_id: release["imageId"].as_str().unwrap().parse().unwrap(),
        version: release["version"].as_str().unwrap().to_string(),
        digest: hex::decode(release["payloadSha256"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
    }
}
