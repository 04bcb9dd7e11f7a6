//! Developer keys, images, deployments and OS releases; each scenario on SQLite and PostgreSQL.

mod common;

use axum::http::{Method, StatusCode};
use common::packages::{app_package, app_package_with_id, dev_key, os_package};
use common::{Backend, TestApp, test_config};
use ferro_image::Version;
use ferro_pki::KeyName;
use ferro_signing::{PublicKey, TrustedKeys};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

both!(
    developer_keys,
    upload_verify_download,
    refused_uploads_store_nothing,
    other_tenants_images_are_missing_images,
    deployments,
    os_releases,
    failure_after_blob_leaves_no_blob,
    superseded_deployments_images_can_be_deleted,
    a_rollouts_base_keeps_its_images,
);

/// Run `async fn $name(t: &TestApp)` on both backends with a 64 KiB upload limit.
macro_rules! both_small_uploads {
    ($($name:ident),* $(,)?) => {
        $(
        mod $name {
            fn config() -> ferro_service::Config {
                ferro_service::Config { max_upload_bytes: 64 * 1024, ..$crate::test_config() }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let t = $crate::TestApp::with_config($crate::Backend::Sqlite, config()).await;
                super::$name(&t).await;
                t.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let t = $crate::TestApp::with_config($crate::Backend::Postgres, config()).await;
                super::$name(&t).await;
                t.finish().await;
            }
        }
        )*
    };
}

both_small_uploads!(oversized_uploads);

/// A tenant's image storage quota (`tenant_image_quota_bytes`), 10,000 bytes here.
mod image_quota {
    const QUOTA: u64 = 10_000;
    fn config() -> ferro_service::Config {
        ferro_service::Config {
            tenant_image_quota_bytes: QUOTA,
            ..crate::test_config()
        }
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let t = crate::TestApp::with_config(crate::Backend::Sqlite, config()).await;
        super::uploads_past_the_quota_are_refused(&t, QUOTA).await;
        super::deleting_an_image_frees_its_quota(&t).await;
        super::a_crash_before_the_object_is_deleted_leaves_no_drift(&t).await;
        t.finish().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let t = crate::TestApp::with_config(crate::Backend::Postgres, config()).await;
        super::uploads_past_the_quota_are_refused(&t, QUOTA).await;
        super::deleting_an_image_frees_its_quota(&t).await;
        super::a_crash_before_the_object_is_deleted_leaves_no_drift(&t).await;
        t.finish().await;
    }
}

/// Upload images of a fresh tenant until the quota refuses one; returns (tenant, admin, key,
/// the stored image IDs, the refused package).
async fn fill_quota(
    t: &TestApp,
) -> (
    String,
    String,
    ferro_signing::SoftwareSigningKey,
    Vec<String>,
    Vec<u8>,
) {
    let (tid, admin) = t.tenant().await;
    let k = t.developer_key(&tid, &admin).await;
    let mut ids = Vec::new();
    loop {
        let bytes = app_package(&k, Uuid::new_v4(), Version::new(1, 0, 0));
        let r = t.upload(&tid, &admin, bytes.clone()).await;
        match r.status {
            StatusCode::CREATED => ids.push(r.body["id"].as_str().unwrap().to_string()),
            _ => {
                assert_eq!(r.code(), "storage_quota_exceeded", "{:?}", r.body);
                return (tid, admin, k, ids, bytes);
            }
        }
        assert!(ids.len() < 50, "the quota stops uploads");
    }
}

fn used_sql(tid: &str) -> String {
    format!(
        "SELECT CAST(COALESCE(SUM(package_size), 0) AS BIGINT) FROM images WHERE tenant_id = '{tid}'"
    )
}

/// Deleting an image frees its bytes: at the quota an upload is refused, after the deletion the
/// same upload is stored. Its package leaves the object store; the deletion is audited. Another
/// tenant's administrator sees a missing image (404) and a Reader may not delete (403), both
/// changing nothing; an image a deployment lists is refused with `image_in_use`, naming the
/// deployment.
async fn deleting_an_image_frees_its_quota(t: &TestApp) {
    let (tid, admin, _k, ids, refused) = fill_quota(t).await;
    let path = |id: &str| format!("/v1/tenants/{tid}/images/{id}");
    let (objects, _) = t.object_files();
    let used = t.count(&used_sql(&tid)).await;

    let (other, other_admin) = t.tenant().await;
    let r = t.delete(&path(&ids[0]), &other_admin).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = t
        .delete(
            &format!("/v1/tenants/{other}/images/{}", ids[0]),
            &other_admin,
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let (_, reader, _) = t.user(Some((&tid, "Reader", &admin))).await;
    let r = t.delete(&path(&ids[0]), &reader).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(t.count(&used_sql(&tid)).await, used);
    assert_eq!(t.object_files().0, objects);

    // Referenced by a deployment: refused, naming it; nothing changes.
    let product = t.product(&tid, &admin, false).await;
    let group = t
        .get(
            &format!("/v1/tenants/{tid}/device-groups?product={product}"),
            &admin,
        )
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/device-groups/{group}/deployments"),
            &admin,
            json!({"imageIds": [ids[1]]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let deployment = r.body["id"].as_str().unwrap().to_string();
    let r = t.delete(&path(&ids[1]), &admin).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "image_in_use"));
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&deployment) && message.contains(&group),
        "{message}"
    );
    assert_eq!(t.get(&path(&ids[1]), &admin).await.status, StatusCode::OK);
    assert_eq!(t.count(&used_sql(&tid)).await, used);

    // Deleted: the bytes and the object are gone, the refused upload now fits.
    let r = t.delete(&path(&ids[0]), &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["id"], ids[0].as_str());
    let size = r.body["packageSize"].as_i64().unwrap();
    assert_eq!(t.count(&used_sql(&tid)).await, used - size);
    assert_eq!(t.object_files().0, objects - 1);
    assert_eq!(t.count("SELECT COUNT(*) FROM object_deletions").await, 0);
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'image.delete' AND object_id = '{}'",
            ids[0]
        ))
        .await,
        1
    );
    assert_eq!(
        t.get(&path(&ids[0]), &admin).await.status,
        StatusCode::NOT_FOUND
    );
    let r = t.delete(&path(&ids[0]), &admin).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    let r = t.upload(&tid, &admin, refused).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

/// The image's row and the intent to delete its object commit together; the object is deleted
/// after. A process that dies in between (played here: the committed state, written as the
/// deletion's transaction writes it, with the object still on disk) has already freed the quota
/// (the sum of the rows), and the next start deletes the object and the intent.
async fn a_crash_before_the_object_is_deleted_leaves_no_drift(t: &TestApp) {
    let (tid, admin, _k, ids, refused) = fill_quota(t).await;
    let (objects, _) = t.object_files();
    let sha = t
        .get(&format!("/v1/tenants/{tid}/images/{}", ids[0]), &admin)
        .await
        .body["packageSha256"]
        .as_str()
        .unwrap()
        .to_string();
    t.exec(&format!(
        "DELETE FROM images WHERE tenant_id = '{tid}' AND image_id = '{}'",
        ids[0]
    ))
    .await;
    t.exec(&format!(
        "INSERT INTO object_deletions (object_key, requested_at) VALUES ('images/{sha}', 1)"
    ))
    .await;
    // The process died here: the object is still stored, the quota already free.
    assert_eq!(t.object_files().0, objects);
    let r = t.upload(&tid, &admin, refused).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // The next start finishes the deletion.
    let data_dir = t.dir.path().join("data");
    let pg_url = (t.backend == Backend::Postgres).then_some(t.url.as_str());
    let (db, _) = ferro_service::setup::open(&data_dir, pg_url).await.unwrap();
    let restarted = ferro_service::setup::state(&data_dir, db, test_config())
        .await
        .unwrap();
    assert_eq!(t.object_files().0, objects, "one object gone, one added");
    assert!(
        !data_dir.join("objects/images").join(&sha).exists(),
        "the deleted image's object"
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM object_deletions").await, 0);
    restarted.db.close().await;
}

/// Uploads fill a tenant's quota; the one that would go over is refused with
/// `storage_quota_exceeded`, a message with the usage, the limit and what to do, and stores
/// nothing. Without the quota every upload was stored.
async fn uploads_past_the_quota_are_refused(t: &TestApp, quota: u64) {
    let (tid, admin) = t.tenant().await;
    let k = t.developer_key(&tid, &admin).await;
    let used = |tid: String| async move {
        t.count(&format!(
            "SELECT CAST(COALESCE(SUM(package_size), 0) AS BIGINT) FROM images WHERE tenant_id = '{tid}'"
        ))
        .await
    };
    let mut first = None;
    let mut refused = None;
    for _ in 0..50 {
        let bytes = app_package(&k, Uuid::new_v4(), Version::new(1, 0, 0));
        let r = t.upload(&tid, &admin, bytes.clone()).await;
        match r.status {
            StatusCode::CREATED => {
                first.get_or_insert(bytes);
            }
            StatusCode::CONFLICT => {
                refused = Some(r);
                break;
            }
            other => panic!("{other}: {:?}", r.body),
        }
    }
    let r = refused.expect("the quota stops uploads");
    let first = first.expect("uploads below the quota are stored");
    assert_eq!(r.code(), "storage_quota_exceeded", "{:?}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap();
    let used_now = used(tid.clone()).await;
    assert!(u64::try_from(used_now).unwrap() <= quota);
    for needle in [
        format!("{used_now} bytes used"),
        format!("quota of {quota} bytes"),
        "tenant_image_quota_bytes".to_string(),
    ] {
        assert!(message.contains(&needle), "{needle}: {message}");
    }
    // Nothing stored by the refusal: rows and objects as before, again on a second try.
    let image_rows = || {
        let sql = format!("SELECT COUNT(*) FROM images WHERE tenant_id = '{tid}'");
        async move { t.count(&sql).await }
    };
    let images = image_rows().await;
    let objects = t.object_files();
    let r = t
        .upload(
            &tid,
            &admin,
            app_package(&k, Uuid::new_v4(), Version::new(1, 0, 0)),
        )
        .await;
    assert_eq!(r.code(), "storage_quota_exceeded", "{:?}", r.body);
    assert_eq!(image_rows().await, images);
    assert_eq!(t.object_files(), objects);
    assert_eq!(used(tid.clone()).await, used_now);
    // Re-sending a stored package adds nothing and still answers 200.
    let r = t.upload(&tid, &admin, first).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // The quota is per tenant.
    let (other, admin_b) = t.tenant().await;
    let kb = t.developer_key(&other, &admin_b).await;
    let fresh = |k: &ferro_signing::SoftwareSigningKey| {
        app_package(k, Uuid::new_v4(), Version::new(1, 0, 0))
    };
    let r = t.upload(&other, &admin_b, fresh(&kb)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

fn verify_with(bytes: &[u8], key: &PublicKey) -> Result<ferro_image::VerifiedImage, String> {
    let mut trusted = TrustedKeys::new();
    trusted.insert(key.clone());
    ferro_image::verify(bytes, &trusted, &mut std::io::sink()).map_err(|e| e.code().to_string())
}

fn tenant_image_key(t: &TestApp, tid: &str) -> PublicKey {
    t.state
        .platform
        .keys
        .public_key(&KeyName::tenant_image(Uuid::parse_str(tid).unwrap()))
        .expect("tenant image key")
}

async fn developer_keys(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let (_, reader, _) = t.user(Some((&tid, "Reader", &admin))).await;
    let path = format!("/v1/tenants/{tid}/developer-keys");
    let (k, pem) = dev_key();
    let r = t
        .post(
            &path,
            &admin,
            json!({"publicKeyPem": pem, "name": "Alice laptop"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let kid = k.public_key().key_id().to_string();
    assert_eq!(r.body["keyId"], kid.as_str());
    assert_eq!(r.body["tenantId"], tid.as_str());
    // The same key again: 409.
    let r = t
        .post(&path, &admin, json!({"publicKeyPem": pem, "name": "Again"}))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    // Not a key, a private key, a bad name.
    for body in [
        json!({"publicKeyPem": "hello", "name": "X"}),
        json!({"publicKeyPem": k.to_pkcs8_pem().unwrap().as_str(), "name": "X"}),
        json!({"publicKeyPem": "A".repeat(5000), "name": "X"}),
    ] {
        let r = t.post(&path, &admin, body).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
        );
        assert!(
            !r.raw.windows(10).any(|w| w == b"PRIVATE KE"),
            "no echo of the body"
        );
    }
    let r = t
        .post(
            &path,
            &admin,
            json!({"publicKeyPem": dev_key().1, "name": "  "}),
        )
        .await;
    assert_eq!(r.code(), "invalid_name");
    // Readers list, cannot add or delete.
    let r = t.get(&path, &reader).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["items"][0]["publicKeyPem"], pem.as_str());
    let r = t
        .post(
            &path,
            &reader,
            json!({"publicKeyPem": dev_key().1, "name": "R"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = t
        .call(
            Method::DELETE,
            &format!("{path}/{kid}"),
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Bad and unknown key IDs.
    let r = t
        .call(Method::DELETE, &format!("{path}/xyz"), Some(&admin), None)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_id")
    );
    let r = t
        .call(
            Method::DELETE,
            &format!("{path}/{}", "0".repeat(64)),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Delete: then uploads signed by it are refused.
    let r = t
        .call(Method::DELETE, &format!("{path}/{kid}"), Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = t
        .upload(
            &tid,
            &admin,
            app_package(&k, Uuid::new_v4(), Version::new(1, 0, 0)),
        )
        .await;
    assert_eq!(r.code(), "untrusted_signing_key");
    let r = t.get(&format!("/v1/tenants/{tid}/audit-log"), &admin).await;
    let actions: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"developer_key.create"));
    assert!(actions.contains(&"developer_key.delete"));
}

async fn upload_verify_download(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let (_, contributor, _) = t.user(Some((&tid, "Contributor", &admin))).await;
    let (_, reader, _) = t.user(Some((&tid, "Reader", &admin))).await;
    let k = t.developer_key(&tid, &contributor).await;
    let component = Uuid::new_v4();
    let bytes = app_package(&k, component, Version::new(1, 2, 3));
    let r = t.upload(&tid, &contributor, bytes.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let image = r.body.clone();
    let iid = image["id"].as_str().unwrap().to_string();
    let tenant_key = tenant_image_key(t, &tid);
    assert_eq!(image["testSigned"], false);
    assert_eq!(image["imageType"], "App");
    assert_eq!(image["version"], "1.2.3");
    assert_eq!(image["componentId"], component.to_string().as_str());
    assert_eq!(
        image["uploadedSignerKeyId"],
        k.public_key().key_id().to_string().as_str()
    );
    assert_eq!(
        image["signerKeyId"],
        tenant_key.key_id().to_string().as_str()
    );
    assert_eq!(
        image["uploadedSha256"],
        hex::encode(Sha256::digest(&bytes)).as_str()
    );

    // The stored copy: production-signed by the tenant image key, not the developer key.
    let content = format!("/v1/tenants/{tid}/images/{iid}/content");
    let r = t.get(&content, &reader).await;
    assert_eq!(r.status, StatusCode::OK);
    let stored = r.raw.clone();
    assert_eq!(r.headers["content-type"], "application/octet-stream");
    assert_eq!(r.headers["accept-ranges"], "bytes");
    let sha = hex::encode(Sha256::digest(&stored));
    assert_eq!(image["packageSha256"], sha.as_str());
    assert_eq!(image["packageSize"], stored.len() as u64);
    assert_eq!(r.headers["etag"], format!("\"{sha}\"").as_str());
    let v = verify_with(&stored, &tenant_key).expect("verifies with the tenant image key");
    assert_eq!(v.metadata().image_id.to_string(), iid);
    assert_eq!(
        verify_with(&stored, k.public_key()).unwrap_err(),
        "unknown-key"
    );
    assert!(verify_with(&bytes, k.public_key()).is_ok());

    // Ranges.
    let len = stored.len();
    let r = t
        .get_with(&content, &reader, &[("range", "bytes=0-15")])
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.raw, stored[..16]);
    assert_eq!(
        r.headers["content-range"],
        format!("bytes 0-15/{len}").as_str()
    );
    assert_eq!(r.headers["content-length"], "16");
    let r = t
        .get_with(&content, &reader, &[("range", "bytes=-10")])
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.raw, stored[len - 10..]);
    let r = t
        .get_with(&content, &reader, &[("range", "bytes=100-")])
        .await;
    assert_eq!(r.raw, stored[100..]);
    let r = t
        .get_with(&content, &reader, &[("range", &format!("bytes={len}-"))])
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable")
    );
    assert_eq!(
        r.headers["content-range"],
        format!("bytes */{len}").as_str()
    );
    // If-Range with another ETag: the whole package. If-None-Match: 304.
    let r = t
        .get_with(
            &content,
            &reader,
            &[("range", "bytes=0-1"), ("if-range", "\"other\"")],
        )
        .await;
    assert_eq!((r.status, r.raw.len()), (StatusCode::OK, len));
    let etag = format!("\"{sha}\"");
    let r = t
        .get_with(&content, &reader, &[("if-none-match", &etag)])
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.raw.is_empty());

    // Metadata and lists.
    let r = t
        .get(&format!("/v1/tenants/{tid}/images/{iid}"), &reader)
        .await;
    assert_eq!(r.body, image);
    let other = t
        .upload(
            &tid,
            &contributor,
            app_package(&k, Uuid::new_v4(), Version::new(1, 0, 0)),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED);
    let r = t.get(&format!("/v1/tenants/{tid}/images"), &reader).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["items"][0]["id"], iid.as_str());
    let r = t
        .get(
            &format!("/v1/tenants/{tid}/images?componentId={component}&limit=1"),
            &reader,
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["continuationToken"], serde_json::Value::Null);
    let r = t
        .get(&format!("/v1/tenants/{tid}/images?limit=1"), &reader)
        .await;
    let tok = r.body["continuationToken"].as_str().unwrap().to_string();
    let r = t
        .get(
            &format!("/v1/tenants/{tid}/images?limit=1&continuation={tok}"),
            &reader,
        )
        .await;
    assert_eq!(r.body["items"][0]["id"], other.body["id"]);
    let r = t
        .get(&format!("/v1/tenants/{tid}/images?colour=1"), &reader)
        .await;
    assert_eq!(r.code(), "invalid_query");

    // Same bytes again: idempotent. Same image ID, other bytes: 409.
    let r = t.upload(&tid, &contributor, bytes.clone()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, image);
    let clash = app_package_with_id(
        &k,
        component,
        Version::new(9, 9, 9),
        Some(Uuid::parse_str(&iid).unwrap()),
    );
    let r = t.upload(&tid, &contributor, clash).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM images WHERE tenant_id = '{tid}'"
        ))
        .await,
        2
    );
    assert_eq!(t.object_files(), (2, 0));
    let n = t
        .count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = '{tid}' AND action = 'image.upload'"
        ))
        .await;
    assert_eq!(n, 2);
}

async fn refused_uploads_store_nothing(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let k = t.developer_key(&tid, &admin).await;
    let good = app_package(&k, Uuid::new_v4(), Version::new(1, 0, 0));
    let status_code = |r: &common::Resp| (r.status, r.code().to_string());
    let unprocessable = |c: &str| (StatusCode::UNPROCESSABLE_ENTITY, c.to_string());

    // A key the tenant never registered.
    let (stranger, _) = dev_key();
    let r = t
        .upload(
            &tid,
            &admin,
            app_package(&stranger, Uuid::new_v4(), Version::new(1, 0, 0)),
        )
        .await;
    assert_eq!(status_code(&r), unprocessable("untrusted_signing_key"));
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("ferro developer-key add"), "{msg}");
    assert!(
        msg.contains(&stranger.public_key().key_id().to_string()),
        "{msg}"
    );

    // Tampered payload (last byte of the archive's end), tampered signature, truncated,
    // trailing byte, not a package at all.
    let mut tampered = good.clone();
    let last = tampered.len() - 700;
    tampered[last] ^= 1;
    let r = t.upload(&tid, &admin, tampered).await;
    assert_eq!(status_code(&r), unprocessable("invalid_image"));
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("payload-digest-mismatch")
    );
    let mut bad_sig = good.clone();
    let envelope_len = u32::from_be_bytes(bad_sig[12..16].try_into().unwrap()) as usize;
    bad_sig[16 + envelope_len - 5] ^= 0x40;
    let r = t.upload(&tid, &admin, bad_sig).await;
    assert_eq!(status_code(&r), unprocessable("invalid_image"));
    let r = t
        .upload(&tid, &admin, good[..good.len() - 100].to_vec())
        .await;
    assert_eq!(status_code(&r), unprocessable("invalid_image"));
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("truncated")
    );
    let mut trailing = good.clone();
    trailing.push(0);
    let r = t.upload(&tid, &admin, trailing).await;
    assert_eq!(status_code(&r), unprocessable("invalid_image"));
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("trailing-data")
    );
    let r = t.upload(&tid, &admin, b"hello world".to_vec()).await;
    assert_eq!(status_code(&r), unprocessable("invalid_image"));
    let r = t.upload(&tid, &admin, Vec::new()).await;
    assert_eq!(status_code(&r), unprocessable("invalid_image"));

    // An OS image, even signed by a registered key.
    let r = t
        .upload(&tid, &admin, os_package(&k, Version::new(1, 0, 0)))
        .await;
    assert_eq!(status_code(&r), unprocessable("wrong_image_type"));
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/os-releases")
    );

    // Wrong content type; declared length over the limit.
    for ct in ["application/json", "text/plain", ""] {
        let r = t
            .post_bytes(
                &format!("/v1/tenants/{tid}/images"),
                Some(&admin),
                ct,
                good.clone(),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        );
    }
    let req = axum::http::Request::builder()
        .method(Method::POST)
        .uri(format!("/v1/tenants/{tid}/images"))
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/octet-stream")
        .header("content-length", (600u64 << 20).to_string())
        .body(axum::body::Body::from(good.clone()))
        .unwrap();
    let r = t.send(req).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );

    // Roles: a Reader is refused, a stranger sees no tenant.
    let (_, reader, _) = t.user(Some((&tid, "Reader", &admin))).await;
    let r = t.upload(&tid, &reader, good.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let (_, stranger_admin) = t.tenant().await;
    let r = t.upload(&tid, &stranger_admin, good.clone()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    assert_eq!(t.count("SELECT COUNT(*) FROM images").await, 0);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'image.upload'")
            .await,
        0
    );
    assert_eq!(t.object_files(), (0, 0), "no blob, no staging file left");
    // And the good one still works.
    let r = t.upload(&tid, &admin, good).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(t.object_files(), (1, 0));
}

async fn oversized_uploads(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let k = t.developer_key(&tid, &admin).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    // Incompressible-ish content over the 64 KiB test limit.
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(src.join("bin/app"), &big).unwrap();
    let component = Uuid::new_v4();
    let manifest = json!({"SchemaVersion": 1, "Name": "Big", "ComponentId": component.to_string(),
        "EntryPoint": "/bin/app", "CmdArgs": [], "Capabilities": {}, "ApplicationType": "Default"});
    let dest = dir.path().join("big.fsimg");
    ferro_image::pack_application(
        &src,
        &ferro_image::AppPackageManifest {
            component_id: component,
            name: "Big".into(),
            entry_point: "/bin/app".into(),
            json_bytes: serde_json::to_vec(&manifest).unwrap(),
            is_real_time: false,
        },
        &ferro_image::PackOptions::default(),
        &k,
        &dest,
    )
    .unwrap();
    let bytes = std::fs::read(&dest).unwrap();
    assert!(bytes.len() > 64 * 1024);
    // Streamed (no Content-Length in an in-process request body from a stream).
    let stream = futures_util::stream::iter(
        bytes
            .chunks(8192)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let req = axum::http::Request::builder()
        .method(Method::POST)
        .uri(format!("/v1/tenants/{tid}/images"))
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/octet-stream")
        .body(axum::body::Body::from_stream(stream))
        .unwrap();
    let r = t.send(req).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    // With a Content-Length: refused before reading.
    let r = t.upload(&tid, &admin, bytes).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(t.count("SELECT COUNT(*) FROM images").await, 0);
    assert_eq!(t.object_files(), (0, 0));
    // Small ones still fit.
    let r = t
        .upload(
            &tid,
            &admin,
            app_package(&k, Uuid::new_v4(), Version::new(1, 0, 0)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

async fn other_tenants_images_are_missing_images(t: &TestApp) {
    let (a, admin_a) = t.tenant().await;
    let (b, admin_b) = t.tenant().await;
    let image_a = t.image(&a, &admin_a).await;
    let missing = Uuid::new_v4().to_string();
    // B asks for A's image through A's tenant: the tenant is missing to B.
    for suffix in ["", "/content"] {
        let r1 = t
            .get(
                &format!("/v1/tenants/{a}/images/{image_a}{suffix}"),
                &admin_b,
            )
            .await;
        let r2 = t
            .get(
                &format!("/v1/tenants/{a}/images/{missing}{suffix}"),
                &admin_b,
            )
            .await;
        assert_eq!(r1.status, StatusCode::NOT_FOUND);
        assert_eq!((r1.status, &r1.raw), (r2.status, &r2.raw));
        // Through B's own tenant: the image is missing, byte for byte as a missing one.
        let r1 = t
            .get(
                &format!("/v1/tenants/{b}/images/{image_a}{suffix}"),
                &admin_b,
            )
            .await;
        let r2 = t
            .get(
                &format!("/v1/tenants/{b}/images/{missing}{suffix}"),
                &admin_b,
            )
            .await;
        assert_eq!(r1.status, StatusCode::NOT_FOUND);
        assert_eq!((r1.status, &r1.raw), (r2.status, &r2.raw));
    }
    // B cannot deploy A's image: the same answer as an unknown image.
    let product = t.product(&b, &admin_b, false).await;
    let group = t
        .get(
            &format!("/v1/tenants/{b}/device-groups?product={product}"),
            &admin_b,
        )
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/tenants/{b}/device-groups/{group}/deployments");
    let r1 = t
        .post(&path, &admin_b, json!({"imageIds": [image_a]}))
        .await;
    let r2 = t
        .post(&path, &admin_b, json!({"imageIds": [missing]}))
        .await;
    assert_eq!(r1.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!((r1.status, &r1.raw), (r2.status, &r2.raw));
    // B's list does not show A's image.
    let r = t.get(&format!("/v1/tenants/{b}/images"), &admin_b).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 0);
    // A developer key of A does not let B's uploads in.
    let k_a = t.developer_key(&a, &admin_a).await;
    let r = t
        .upload(
            &b,
            &admin_b,
            app_package(&k_a, Uuid::new_v4(), Version::new(1, 0, 0)),
        )
        .await;
    assert_eq!(r.code(), "untrusted_signing_key");
}

async fn deployments(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let (_, reader, _) = t.user(Some((&tid, "Reader", &admin))).await;
    let k = t.developer_key(&tid, &admin).await;
    let (c1, c2) = (Uuid::new_v4(), Uuid::new_v4());
    let mut ids = Vec::new();
    for (c, v) in [(c1, 1), (c2, 1), (c1, 2)] {
        let r = t
            .upload(&tid, &admin, app_package(&k, c, Version::new(v, 0, 0)))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    let product = t.product(&tid, &admin, false).await;
    let group = t
        .get(
            &format!("/v1/tenants/{tid}/device-groups?product={product}"),
            &admin,
        )
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/tenants/{tid}/device-groups/{group}/deployments");
    let audit_before = t.count("SELECT COUNT(*) FROM audit_log").await;

    // Two images of one component; a duplicate; an unknown image; not a list: nothing written.
    let r = t
        .post(&path, &admin, json!({"imageIds": [ids[0], ids[1], ids[2]]}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
    );
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("one image per component"), "{msg}");
    assert!(
        msg.contains("`imageIds[0]`") && msg.contains("`imageIds[2]`"),
        "{msg}"
    );
    let r = t
        .post(&path, &admin, json!({"imageIds": [ids[0], ids[0]]}))
        .await;
    assert_eq!(r.code(), "invalid_body");
    let r = t
        .post(&path, &admin, json!({"imageIds": [Uuid::new_v4()]}))
        .await;
    assert_eq!(r.code(), "invalid_body");
    let r = t.post(&path, &admin, json!({"imageIds": "x"})).await;
    assert_eq!(r.code(), "invalid_body");
    let r = t.post(&path, &admin, json!({"imageIds": [], "x": 1})).await;
    assert_eq!(r.code(), "unknown_field");
    assert_eq!(t.count("SELECT COUNT(*) FROM deployments").await, 0);
    assert_eq!(t.count("SELECT COUNT(*) FROM deployment_images").await, 0);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log").await,
        audit_before
    );

    // A Reader may not deploy; a missing group is 404.
    let r = t.post(&path, &reader, json!({"imageIds": [ids[0]]})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = t
        .post(
            &format!(
                "/v1/tenants/{tid}/device-groups/{}/deployments",
                Uuid::now_v7()
            ),
            &admin,
            json!({"imageIds": [ids[0]]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Three deployments; newest first; each immutable.
    let d1 = t.post(&path, &admin, json!({"imageIds": [ids[0]]})).await;
    assert_eq!(d1.status, StatusCode::CREATED, "{:?}", d1.body);
    assert_eq!(d1.body["images"][0]["imageId"], ids[0].as_str());
    assert_eq!(d1.body["images"][0]["version"], "1.0.0");
    let d2 = t
        .post(&path, &admin, json!({"imageIds": [ids[2], ids[1]]}))
        .await;
    assert_eq!(d2.status, StatusCode::CREATED);
    assert_eq!(d2.body["images"].as_array().unwrap().len(), 2);
    let d3 = t.post(&path, &admin, json!({"imageIds": []})).await;
    assert_eq!(d3.status, StatusCode::CREATED);
    let r = t.get(&path, &reader).await;
    assert_eq!(r.status, StatusCode::OK);
    let got: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        [
            d3.body["id"].as_str().unwrap(),
            d2.body["id"].as_str().unwrap(),
            d1.body["id"].as_str().unwrap()
        ]
    );
    assert_eq!(r.body["items"][1], d2.body);
    // Paging newest first.
    let r = t.get(&format!("{path}?limit=2"), &reader).await;
    let tok = r.body["continuationToken"].as_str().unwrap().to_string();
    let r = t
        .get(&format!("{path}?limit=2&continuation={tok}"), &reader)
        .await;
    assert_eq!(r.body["items"][0]["id"], d1.body["id"]);
    assert_eq!(r.body["continuationToken"], serde_json::Value::Null);
    let one = format!("{path}/{}", d2.body["id"].as_str().unwrap());
    let r = t.get(&one, &reader).await;
    assert_eq!(r.body, d2.body);
    for m in [Method::DELETE, Method::PATCH, Method::PUT] {
        let r = t.call(m, &one, Some(&admin), None).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    }
    let r = t.get(&format!("{path}/{}", Uuid::now_v7()), &reader).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'deployment.create'")
            .await,
        3
    );
    // A group with deployments can still be deleted (its history goes with it).
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/tenants/{tid}/device-groups/{group}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(t.count("SELECT COUNT(*) FROM deployments").await, 0);
}

async fn os_releases(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let (_, reader, _) = t.user(Some((&tid, "Reader", &admin))).await;
    let op = t.operator.clone();
    let publish = async |token: &str, feed: &str, bytes: Vec<u8>| {
        t.post_bytes(
            &format!("/v1/os-releases?feed={feed}"),
            Some(token),
            "application/octet-stream",
            bytes,
        )
        .await
    };
    // Only the operator manages build keys and publishes.
    let (build, pem) = dev_key();
    let r = t
        .post(
            "/v1/os-release-keys",
            &admin,
            json!({"publicKeyPem": pem, "name": "Build"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = publish(
        &admin,
        "RetailEval",
        os_package(&build, Version::new(1, 0, 0)),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Not yet registered: untrusted.
    let r = publish(&op, "RetailEval", os_package(&build, Version::new(1, 0, 0))).await;
    assert_eq!(r.code(), "untrusted_signing_key");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ferro os-release-key add")
    );
    let r = t
        .post(
            "/v1/os-release-keys",
            &op,
            json!({"publicKeyPem": pem, "name": "Build"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = t.get("/v1/os-release-keys", &op).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        t.get("/v1/os-release-keys", &admin).await.status,
        StatusCode::FORBIDDEN
    );

    // Wrong type; missing or bad feed.
    let r = publish(
        &op,
        "RetailEval",
        app_package(&build, Uuid::new_v4(), Version::new(1, 0, 0)),
    )
    .await;
    assert_eq!(r.code(), "wrong_image_type");
    let r = t
        .post_bytes(
            "/v1/os-releases",
            Some(&op),
            "application/octet-stream",
            os_package(&build, Version::new(1, 0, 0)),
        )
        .await;
    assert_eq!(r.code(), "invalid_query");
    let r = publish(&op, "Beta", os_package(&build, Version::new(1, 0, 0))).await;
    assert_eq!(r.code(), "invalid_query");
    assert_eq!(t.count("SELECT COUNT(*) FROM os_releases").await, 0);
    assert_eq!(t.object_files(), (0, 0));

    // v1 to RetailEval.
    let v1_bytes = os_package(&build, Version::new(1, 0, 0));
    let v1 = publish(&op, "RetailEval", v1_bytes.clone()).await;
    assert_eq!(v1.status, StatusCode::CREATED, "{:?}", v1.body);
    assert_eq!(v1.body["feed"], "RetailEval");
    assert_eq!(v1.body["version"], "1.0.0");
    assert!(v1.body.get("retailAt").is_none());
    let v1_id = v1.body["imageId"].as_str().unwrap().to_string();
    // Same bytes again: idempotent.
    let r = publish(&op, "RetailEval", v1_bytes).await;
    assert_eq!((r.status, &r.body), (StatusCode::OK, &v1.body));
    // Anyone authenticated downloads it; it verifies with the OS release key only.
    let r = t
        .get(&format!("/v1/os-releases/{v1_id}/content"), &reader)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let os_key = t
        .state
        .platform
        .keys
        .public_key(&KeyName::platform_os_release())
        .unwrap();
    assert!(verify_with(&r.raw, &os_key).is_ok());
    assert_eq!(
        verify_with(&r.raw, build.public_key()).unwrap_err(),
        "unknown-key"
    );
    assert_eq!(v1.body["signerKeyId"], os_key.key_id().to_string().as_str());
    let r = t
        .get_with(
            &format!("/v1/os-releases/{v1_id}/content"),
            &reader,
            &[("range", "bytes=1-3")],
        )
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.raw, b"FSI");
    let r = t
        .call(
            Method::GET,
            &format!("/v1/os-releases/{v1_id}/content"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Versions must grow.
    for v in [Version::new(1, 0, 0), Version::new(0, 9, 9)] {
        let r = publish(&op, "Retail", os_package(&build, v)).await;
        assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    }
    // v2 straight to Retail; v1 can no longer be promoted; v3 to RetailEval, then promoted.
    let v2 = publish(&op, "Retail", os_package(&build, Version::new(2, 0, 0))).await;
    assert_eq!(v2.status, StatusCode::CREATED);
    assert_eq!(v2.body["feed"], "Retail");
    let r = t
        .call(
            Method::POST,
            &format!("/v1/os-releases/{v1_id}/promote"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    let v3 = publish(&op, "RetailEval", os_package(&build, Version::new(3, 0, 0))).await;
    let v3_id = v3.body["imageId"].as_str().unwrap().to_string();
    let list = async |q: &str| -> Vec<String> {
        t.get(&format!("/v1/os-releases{q}"), &reader).await.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["version"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(list("?feed=Retail").await, ["2.0.0"]);
    assert_eq!(list("?feed=RetailEval").await, ["3.0.0", "2.0.0", "1.0.0"]);
    assert_eq!(list("").await, ["3.0.0", "2.0.0", "1.0.0"]);
    let r = t
        .call(
            Method::POST,
            &format!("/v1/os-releases/{v3_id}/promote"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = t
        .call(
            Method::POST,
            &format!("/v1/os-releases/{v3_id}/promote"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["feed"], "Retail");
    assert!(r.body["retailAt"].is_string());
    assert_eq!(list("?feed=Retail").await, ["3.0.0", "2.0.0"]);
    let r = t.get(&format!("/v1/os-releases/{v3_id}"), &reader).await;
    assert_eq!(r.body["feed"], "Retail");
    let r = t.get("/v1/os-releases?limit=1", &reader).await;
    let tok = r.body["continuationToken"].as_str().unwrap().to_string();
    let r = t
        .get(
            &format!("/v1/os-releases?limit=2&continuation={tok}"),
            &reader,
        )
        .await;
    assert_eq!(r.body["items"][0]["version"], "2.0.0");
    let r = t
        .call(
            Method::POST,
            &format!("/v1/os-releases/{}/promote", Uuid::new_v4()),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(t.object_files(), (3, 0));
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action LIKE 'os_release%'")
            .await,
        5
    );
    // Removing the build key refuses new uploads signed by it.
    let kid = build.public_key().key_id().to_string();
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/os-release-keys/{kid}"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = publish(&op, "RetailEval", os_package(&build, Version::new(4, 0, 0))).await;
    assert_eq!(r.code(), "untrusted_signing_key");
}

async fn failure_after_blob_leaves_no_blob(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let k = t.developer_key(&tid, &admin).await;
    // Fail the audit row of an upload: after the blob is in place, before the commit.
    match t.backend {
        Backend::Sqlite => {
            t.exec(
                "CREATE TRIGGER fail_upload BEFORE INSERT ON audit_log \
                 WHEN NEW.action = 'image.upload' BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
            )
            .await
        }
        Backend::Postgres => {
            t.exec(
                "CREATE FUNCTION fail_upload() RETURNS trigger AS $$ BEGIN \
                 IF NEW.action = 'image.upload' THEN RAISE EXCEPTION 'injected failure'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql",
            )
            .await;
            t.exec("CREATE TRIGGER fail_upload BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION fail_upload()").await;
        }
    }
    let bytes = app_package(&k, Uuid::new_v4(), Version::new(1, 0, 0));
    let r = t.upload(&tid, &admin, bytes.clone()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::INTERNAL_SERVER_ERROR, "internal")
    );
    assert!(!r.raw.windows(8).any(|w| w == b"injected"));
    assert_eq!(t.count("SELECT COUNT(*) FROM images").await, 0);
    assert_eq!(t.object_files(), (0, 0), "the blob was removed");
    // Once the fault is gone, the same upload works.
    match t.backend {
        Backend::Sqlite => t.exec("DROP TRIGGER fail_upload").await,
        Backend::Postgres => t.exec("DROP TRIGGER fail_upload ON audit_log").await,
    }
    let r = t.upload(&tid, &admin, bytes).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(t.object_files(), (1, 0));
}

/// A deployment of `images` to `group`; its ID.
async fn deploy(
    t: &TestApp,
    tid: &str,
    admin: &str,
    group: &str,
    body: serde_json::Value,
) -> String {
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/device-groups/{group}/deployments"),
            admin,
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

/// A device group of a new product of the tenant (Retail, UpdateAll).
async fn new_group(t: &TestApp, tid: &str, admin: &str) -> String {
    let product = t.product(tid, admin, true).await;
    let r = t
        .post(
            &format!("/v1/tenants/{tid}/device-groups"),
            admin,
            json!({"productId": product, "name": format!("Group {}", common::uniq()),
                "osFeed": "Retail", "updatePolicy": "UpdateAll"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

/// An image listed only by superseded deployments can be deleted; until then each blocking
/// reason is named, and only those: the image is in its group's current deployment; a device
/// holds an unexpired target set from a deployment listing it (it may still fetch it); a device
/// last reported it installed. Once deleted, its bytes leave the quota and the object store, the
/// deployment history still lists it (ID, name, version, `deletedAt`), and a device resuming its
/// download is told plainly that the package is no longer in its target set.
async fn superseded_deployments_images_can_be_deleted(t: &TestApp) {
    use common::device_https::{Server, certified, json_of, send};
    let (tid, admin) = t.tenant().await;
    t.os_release("Retail").await;
    let g = new_group(t, &tid, &admin).await;
    let k = t.developer_key(&tid, &admin).await;
    let component = Uuid::new_v4();
    let mut ids = Vec::new();
    for minor in [1, 2] {
        let r = t
            .upload(
                &tid,
                &admin,
                app_package(&k, component, Version::new(1, minor, 0)),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    let (old, new) = (ids[0].clone(), ids[1].clone());
    let image = t
        .get(&format!("/v1/tenants/{tid}/images/{old}"), &admin)
        .await
        .body;
    let (sha, size) = (
        image["packageSha256"].as_str().unwrap().to_string(),
        image["packageSize"].as_u64().unwrap(),
    );
    let path = format!("/v1/tenants/{tid}/images/{old}");
    let s = Server::start(t).await;
    let d = certified(t, &s, &tid, &admin).await;
    let r = t
        .patch(
            &format!("/v1/tenants/{tid}/devices/{}", d.id()),
            &admin,
            json!({ "deviceGroupId": g }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let refused = |r: &common::Resp| -> String {
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::CONFLICT, "image_in_use"),
            "{:?}",
            r.body
        );
        r.body["error"]["message"].as_str().unwrap().to_string()
    };
    let unchanged = || async {
        assert_eq!(t.get(&path, &admin).await.status, StatusCode::OK);
        assert_eq!(
            t.count(&format!(
                "SELECT COUNT(*) FROM images WHERE image_id = '{old}'"
            ))
            .await,
            1
        );
    };

    // In the group's current deployment: refused, naming it.
    let d1 = deploy(t, &tid, &admin, &g, json!({"imageIds": [old]})).await;
    let m = refused(&t.delete(&path, &admin).await);
    assert!(
        m.contains(&format!("{d1}, the current deployment of device group {g}")),
        "{m}"
    );
    unchanged().await;

    // The device starts downloading it (its target set, stored now, names it).
    let url = format!("{}/v1/device/images/{sha}", s.url);
    let third = size / 3;
    let (status, _, first) = send(
        d.http
            .get(&url)
            .header("range", format!("bytes=0-{}", third - 1)),
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(first.len() as u64, third);

    // Superseded, but the device's unexpired set from it may still be fetched: refused, for
    // that reason only.
    let d2 = deploy(t, &tid, &admin, &g, json!({"imageIds": [new]})).await;
    let m = refused(&t.delete(&path, &admin).await);
    assert!(
        m.contains(&format!(
            "1 device(s) hold a target set from deployment {d1}"
        )),
        "{m}"
    );
    assert!(!m.contains("current deployment"), "{m}");
    unchanged().await;

    // The device reports it installed: also named.
    let (status, _, raw) = send(
        d.http
            .post(format!("{}/v1/device/update-status", s.url))
            .json(
                &json!({"state": "Installed", "installed": [{"componentId": component,
            "imageId": old, "kind": "App", "version": "1.1.0"}]}),
            ),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{}", json_of(&raw));
    let m = refused(&t.delete(&path, &admin).await);
    assert!(
        m.contains(&format!("device(s) {} last reported it installed", d.id())),
        "{m}"
    );
    // The set expires (a device checking again gets one from the current deployment): only
    // the installed image is left as a reason.
    t.state
        .clock
        .advance(std::time::Duration::from_secs(8 * 24 * 3600));
    let m = refused(&t.delete(&path, &admin).await);
    assert!(
        m.contains("last reported it installed") && !m.contains("target set"),
        "{m}"
    );
    unchanged().await;
    let (status, _, _) = send(
        d.http
            .post(format!("{}/v1/device/update-status", s.url))
            .json(
                &json!({"state": "Installed", "installed": [{"componentId": component,
            "imageId": new, "kind": "App", "version": "1.2.0"}]}),
            ),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Deleted: the quota and the object store are freed.
    let used = t.count(&used_sql(&tid)).await;
    let (objects, _) = t.object_files();
    let r = t.delete(&path, &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(t.count(&used_sql(&tid)).await, used - size as i64);
    assert_eq!(t.object_files().0, objects - 1);
    assert_eq!(t.get(&path, &admin).await.status, StatusCode::NOT_FOUND);

    // The device resuming its download is told the package left its target set.
    let (status, _, raw) = send(d.http.get(&url).header("range", format!("bytes={third}-"))).await;
    let body = json_of(&raw);
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let m = body["error"]["message"].as_str().unwrap();
    assert!(
        m.contains(&sha)
            && m.contains("not in this device's target set")
            && m.contains("Fetch the target set again"),
        "{m}"
    );
    // Its target set (from the current deployment) is served as before.
    let (status, _, raw) = send(d.http.get(format!("{}/v1/device/target-set", s.url))).await;
    assert_eq!(status, StatusCode::OK, "{}", json_of(&raw));

    // The history still reads: the superseded deployment lists the image as it was, deleted.
    let r = t
        .get(
            &format!("/v1/tenants/{tid}/device-groups/{g}/deployments"),
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], d2.as_str());
    assert!(
        items[0]["images"][0].get("deletedAt").is_none(),
        "{}",
        items[0]
    );
    assert_eq!(items[1]["id"], d1.as_str());
    let listed = &items[1]["images"][0];
    assert_eq!(listed["imageId"], old.as_str());
    assert_eq!(listed["componentId"], component.to_string());
    assert_eq!(listed["version"], "1.1.0");
    assert_eq!(listed["name"], image["name"]);
    assert!(listed["deletedAt"].is_string(), "{listed}");
    let r = t
        .get(
            &format!("/v1/tenants/{tid}/device-groups/{g}/deployments/{d1}"),
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(&r.body["images"][0], listed);
    // The same package may be uploaded again (its image ID is free), counted again.
    let r = t
        .upload(
            &tid,
            &admin,
            app_package(&k, component, Version::new(1, 1, 0)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    s.stop().await;
}

/// The base of the rollout of a group's current deployment is given to the devices outside its
/// waves: its images stay until the next deployment. A deployment older than the base, listed by
/// nothing current, goes.
async fn a_rollouts_base_keeps_its_images(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let g = new_group(t, &tid, &admin).await;
    let (a, b, c) = (
        t.image(&tid, &admin).await,
        t.image(&tid, &admin).await,
        t.image(&tid, &admin).await,
    );
    let older = deploy(t, &tid, &admin, &g, json!({"imageIds": [a]})).await;
    let base = deploy(t, &tid, &admin, &g, json!({"imageIds": [b]})).await;
    let current = deploy(
        t,
        &tid,
        &admin,
        &g,
        json!({"imageIds": [c], "rollout":
            {"waves": [10, 100], "waveWaitSeconds": 3600, "maxFailurePercent": 5}}),
    )
    .await;
    let r = t
        .delete(&format!("/v1/tenants/{tid}/images/{b}"), &admin)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "image_in_use"),
        "{:?}",
        r.body
    );
    let m = r.body["error"]["message"].as_str().unwrap();
    assert!(
        m.contains(&format!(
            "{base}, the base of the rollout of device group {g}"
        )),
        "{m}"
    );
    let r = t
        .delete(&format!("/v1/tenants/{tid}/images/{c}"), &admin)
        .await;
    let m = r.body["error"]["message"].as_str().unwrap();
    assert!(
        m.contains(&format!("{current}, the current deployment")),
        "{m}"
    );
    let r = t
        .delete(&format!("/v1/tenants/{tid}/images/{a}"), &admin)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?} ({older})", r.body);
}
