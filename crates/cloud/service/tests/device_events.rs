//! Device event uploads (`POST /v1/device/events`, failure reporting), on SQLite and PostgreSQL,
//! over a real HTTPS listener with the device certificate in the TLS handshake: events reach the
//! tenant's error report CSV and no other tenant's, retried batches are stored once, every
//! malformed upload is refused with its code and stores nothing, the route needs a valid device
//! certificate, and the per-device cap stops a flooding device.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::TestApp;
use common::device_https::{Device, Server, certified, json_of, send};
use ferro_trust::RootOfTrust;
use serde_json::{Value, json};

both!(
    uploaded_events_reach_the_tenants_error_report,
    retried_batches_are_stored_once,
    malformed_uploads_are_refused_and_store_nothing,
    uploads_need_the_device_certificate_of_the_tenant,
    a_flooding_device_is_capped,
    failed_update_reports_respect_the_event_cap,
);

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// An event that ended `minutes_ago` minutes ago and lasted an hour.
fn event(event_type: &str, count: u32, description: &str, minutes_ago: i64) -> Value {
    let end = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
        - time::Duration::minutes(minutes_ago);
    json!({"eventType": event_type, "eventClass": "Errors",
        "eventCategory": "0190c1a8-3c7a-7c4e-9b1e-2f4d5a6b7c8d", "count": count,
        "description": description, "start": rfc3339(end - time::Duration::hours(1)),
        "end": rfc3339(end)})
}

fn batch(events: Vec<Value>) -> Value {
    json!({"batchId": uuid::Uuid::new_v4(), "events": events})
}

/// POST a JSON body to the upload route as `client`: (status, headers, JSON or Null).
async fn upload(
    s: &Server,
    client: &reqwest::Client,
    body: &Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let (status, headers, raw) = send(
        client
            .post(format!("{}/v1/device/events", s.url))
            .json(body),
    )
    .await;
    (status, headers, json_of(&raw))
}

/// POST raw bytes with a content type to the upload route as `d`.
async fn upload_raw(
    s: &Server,
    d: &Device,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let (status, _, raw) = send(
        d.http
            .post(format!("{}/v1/device/events", s.url))
            .header("content-type", content_type)
            .body(body),
    )
    .await;
    (status, json_of(&raw))
}

/// The tenant's error report CSV.
async fn report(t: &TestApp, tid: &str, token: &str) -> String {
    let r = t
        .get(&format!("/v1/tenants/{tid}/error-report"), token)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    String::from_utf8(r.raw).unwrap()
}

/// The report's rows for `device`.
fn rows<'a>(csv: &'a str, device: &str) -> Vec<&'a str> {
    csv.split("\r\n")
        .filter(|l| l.starts_with(device))
        .collect()
}

async fn stored(t: &TestApp, device: &str) -> i64 {
    t.count(&format!(
        "SELECT COUNT(*) FROM device_events WHERE device_id = '{device}'"
    ))
    .await
}

async fn batches(t: &TestApp, device: &str) -> i64 {
    t.count(&format!(
        "SELECT COUNT(*) FROM device_event_batches WHERE device_id = '{device}'"
    ))
    .await
}

async fn uploaded_events_reach_the_tenants_error_report(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let (tb, admin_b) = t.tenant().await;
    let (_, reader, _) = t.user(Some((&tid, "Reader", &admin))).await;
    let s = Server::start(t).await;
    let d = certified(t, &s, &tid, &admin).await;
    let b = certified(t, &s, &tb, &admin_b).await;

    // Yesterday, written with a +02:00 offset and a fraction of a second: the report shows UTC
    // whole seconds.
    let yesterday = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
        - time::Duration::days(1);
    let local = yesterday.to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
    let end_local = rfc3339(local + time::Duration::minutes(90));
    let crash = json!({"eventType": "AppCrash", "eventClass": "Errors",
        "eventCategory": "0190c1a8-3c7a-7c4e-9b1e-2f4d5a6b7c8d", "count": 3,
        "description": "=HYPERLINK(\"x\"), exit \u{7}139\nline two",
        "start": rfc3339(local),
        "end": format!("{}.5+02:00", end_local.trim_end_matches("+02:00"))});
    let exit = event("AppExit", 1, "", 5);
    let (status, _, body) = upload(&s, &d.http, &batch(vec![crash, exit])).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let csv = report(t, &tid, &reader).await;
    let mine = rows(&csv, d.id());
    assert_eq!(mine.len(), 2, "{csv}");
    let expected_start = rfc3339(yesterday);
    let expected_end = rfc3339(yesterday + time::Duration::minutes(90));
    // Control characters other than line feed dropped, CSV injection guarded, quotes doubled,
    // times in UTC whole seconds.
    let crash_row = format!(
        "{},AppCrash,Errors,0190c1a8-3c7a-7c4e-9b1e-2f4d5a6b7c8d,3,\"'=HYPERLINK(\"\"x\"\"), exit 139\nline two\",{expected_start},{expected_end}",
        d.id()
    );
    assert!(csv.contains(&crash_row), "{crash_row}\nnot in\n{csv}");
    assert!(
        mine.iter()
            .any(|l| l.contains(",AppExit,Errors,") && l.contains(",1,,")),
        "{csv}"
    );
    // Tenant B's report has none of them; B's device's events are in B's only.
    let (status, _, body) = upload(&s, &b.http, &batch(vec![event("AppCrash", 1, "b", 1)])).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let csv_b = report(t, &tb, &admin_b).await;
    assert!(rows(&csv_b, d.id()).is_empty(), "{csv_b}");
    assert_eq!(rows(&csv_b, b.id()).len(), 1, "{csv_b}");
    let csv = report(t, &tid, &admin).await;
    assert!(rows(&csv, b.id()).is_empty(), "{csv}");
    assert_eq!(rows(&csv, d.id()).len(), 2);
    // Stored under the certificate's tenant.
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM device_events WHERE device_id = '{}' AND tenant_id = '{tid}'",
            d.id()
        ))
        .await,
        2
    );

    // A full batch of 500 events, with the longest texts allowed, in one request.
    let long = |n: usize| "x".repeat(n);
    let mut full = Vec::new();
    for i in 0..ferro_wire::MAX_EVENTS_PER_UPLOAD {
        let mut e = event(&format!("Type{i}"), 1, &long(1024), 2);
        e["eventClass"] = json!(long(128));
        full.push(e);
    }
    let (status, _, body) = upload(&s, &d.http, &batch(full)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(stored(t, d.id()).await, 502);
    assert_eq!(rows(&report(t, &tid, &admin).await, d.id()).len(), 502);
    s.stop().await;
}

async fn retried_batches_are_stored_once(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let s = Server::start(t).await;
    let d = certified(t, &s, &tid, &admin).await;
    let e = certified(t, &s, &tid, &admin).await;

    let first = batch(vec![
        event("AppCrash", 2, "one", 10),
        event("AppExit", 1, "two", 9),
    ]);
    for _ in 0..3 {
        let (status, _, body) = upload(&s, &d.http, &first).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    assert_eq!(stored(t, d.id()).await, 2);
    assert_eq!(batches(t, d.id()).await, 1);
    // The same batch ID with other content: the first one stays, nothing more is stored.
    let mut changed = first.clone();
    changed["events"] = json!([event("UpdateFailed", 1, "other", 1)]);
    let (status, _, _) = upload(&s, &d.http, &changed).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(stored(t, d.id()).await, 2);
    let csv = report(t, &tid, &admin).await;
    assert!(!csv.contains("UpdateFailed"), "{csv}");
    // Batch IDs are the device's own: another device may use the same one.
    let (status, _, _) = upload(&s, &e.http, &first).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(stored(t, e.id()).await, 2);
    // A new batch ID is a new batch.
    let (status, _, _) = upload(&s, &d.http, &batch(vec![event("AppCrash", 1, "", 1)])).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(stored(t, d.id()).await, 3);
    // A refused batch does not use up its ID: once valid, it is stored.
    let mut bad = batch(vec![event("AppCrash", 0, "", 1)]);
    let (status, _, body) = upload(&s, &d.http, &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    bad["events"][0]["count"] = json!(4);
    let (status, _, _) = upload(&s, &d.http, &bad).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(stored(t, d.id()).await, 4);

    // The same batch sent eight times at once (new connections, so the uploads overlap):
    // stored once.
    let racing = batch(
        (0..20)
            .map(|i| event(&format!("Race{i}"), 1, "", 1))
            .collect(),
    );
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = s.client(Some((d.cert.clone(), d.dev.rot.device_key())));
        let url = format!("{}/v1/device/events", s.url);
        let body = racing.clone();
        tasks.push(tokio::spawn(async move {
            send(client.post(url).json(&body)).await.0
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::NO_CONTENT);
    }
    assert_eq!(stored(t, d.id()).await, 24);
    assert_eq!(batches(t, d.id()).await, 4);

    // Batch IDs are forgotten after the report's reach (14 days) plus the clock skew
    // allowance: an upload removes the device's older ones, and only those.
    t.exec(&format!(
        "UPDATE device_event_batches SET received_at = received_at - {} WHERE device_id = '{}' \
         AND batch_id = '{}'",
        16 * 24 * 3600,
        d.id(),
        first["batchId"].as_str().unwrap()
    ))
    .await;
    let (status, _, _) = upload(&s, &d.http, &batch(vec![event("AppExit", 1, "", 1)])).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(batches(t, d.id()).await, 4);
    assert_eq!(batches(t, e.id()).await, 1);
    s.stop().await;
}

async fn malformed_uploads_are_refused_and_store_nothing(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let s = Server::start(t).await;
    let d = certified(t, &s, &tid, &admin).await;
    let ok = || event("AppCrash", 1, "fine", 5);
    let with = |field: &str, value: Value| {
        let mut e = ok();
        e[field] = value;
        batch(vec![ok(), e, ok()])
    };
    let in_two_days = rfc3339(time::OffsetDateTime::now_utc() + time::Duration::days(2));
    // (what, body, status, code, the refused event's code in `details` at index 1)
    let cases: Vec<(&str, Value, u16, &str, Option<&str>)> = vec![
        (
            "count 0",
            with("count", json!(0)),
            422,
            "invalid_body",
            Some("invalid_count"),
        ),
        (
            "end before start",
            with("end", json!("2020-01-01T00:00:00Z")),
            422,
            "invalid_body",
            Some("end_before_start"),
        ),
        (
            "not a time",
            with("start", json!("yesterday")),
            422,
            "invalid_body",
            Some("invalid_time"),
        ),
        (
            "month 13",
            with("end", json!("2026-13-01T00:00:00Z")),
            422,
            "invalid_body",
            Some("invalid_time"),
        ),
        (
            "no offset",
            with("start", json!("2026-01-01T00:00:00")),
            422,
            "invalid_body",
            Some("invalid_time"),
        ),
        (
            "empty time",
            with("end", json!("")),
            422,
            "invalid_body",
            Some("invalid_time"),
        ),
        (
            "end in two days",
            with("end", json!(in_two_days)),
            422,
            "invalid_body",
            Some("end_in_future"),
        ),
        (
            "empty type",
            with("eventType", json!("")),
            422,
            "invalid_body",
            Some("empty_text"),
        ),
        (
            "long class",
            with("eventClass", json!("c".repeat(129))),
            422,
            "invalid_body",
            Some("text_too_long"),
        ),
        (
            "long description",
            with("description", json!("d".repeat(1025))),
            422,
            "invalid_body",
            Some("text_too_long"),
        ),
        (
            "control character",
            with("eventCategory", json!("a\u{1b}[2Jb")),
            422,
            "invalid_body",
            Some("control_character"),
        ),
        (
            "newline in type",
            with("eventType", json!("App\nCrash")),
            422,
            "invalid_body",
            Some("control_character"),
        ),
        // Wrong types and shapes (serde), named by path.
        (
            "count as text",
            with("count", json!("3")),
            422,
            "invalid_body",
            None,
        ),
        (
            "negative count",
            with("count", json!(-1)),
            422,
            "invalid_body",
            None,
        ),
        (
            "count too big",
            with("count", json!(4_294_967_296_u64)),
            422,
            "invalid_body",
            None,
        ),
        (
            "time as number",
            with("start", json!(1_700_000_000)),
            422,
            "invalid_body",
            None,
        ),
        (
            "null description",
            with("description", Value::Null),
            422,
            "invalid_body",
            None,
        ),
        (
            "unknown event field",
            with("deviceId", json!("ab")),
            400,
            "unknown_field",
            None,
        ),
        (
            "missing field",
            json!({"batchId": uuid::Uuid::new_v4(), "events": [{"eventType": "AppCrash"}]}),
            422,
            "invalid_body",
            None,
        ),
        (
            "unknown field (tenant)",
            json!({"batchId": uuid::Uuid::new_v4(), "events": [ok()], "tenantId": tid}),
            400,
            "unknown_field",
            None,
        ),
        ("empty list", batch(vec![]), 422, "invalid_body", None),
        (
            "501 events",
            batch((0..501).map(|_| ok()).collect()),
            422,
            "invalid_body",
            None,
        ),
        (
            "events not a list",
            json!({"batchId": uuid::Uuid::new_v4(), "events": ok()}),
            422,
            "invalid_body",
            None,
        ),
        (
            "batch ID not a UUID",
            json!({"batchId": "batch-1", "events": [ok()]}),
            422,
            "invalid_body",
            None,
        ),
        (
            "nil batch ID",
            json!({"batchId": uuid::Uuid::nil(), "events": [ok()]}),
            422,
            "invalid_body",
            None,
        ),
        (
            "no batch ID",
            json!({"events": [ok()]}),
            422,
            "invalid_body",
            None,
        ),
        ("an array", json!([ok()]), 422, "invalid_body", None),
    ];
    for (what, body, status, code, item) in cases {
        let (got, _, answer) = upload(&s, &d.http, &body).await;
        assert_eq!(got.as_u16(), status, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{what}: {answer}");
        match item {
            Some(item) => {
                // Only the bad event (index 1) is listed.
                assert_eq!(
                    answer["error"]["details"],
                    json!([{"index": 1, "code": item,
                        "message": answer["error"]["details"][0]["message"]}]),
                    "{what}"
                );
            }
            None => assert!(answer["error"].get("details").is_none(), "{what}: {answer}"),
        }
        // Never echoes what was sent.
        assert!(
            !answer.to_string().contains("yesterday"),
            "{what}: {answer}"
        );
    }
    // Several bad events: each listed by index.
    let mut zero = ok();
    zero["count"] = json!(0);
    let mut backwards = ok();
    backwards["start"] = json!("2099-01-01T00:00:00Z");
    let (status, _, answer) = upload(&s, &d.http, &batch(vec![zero, ok(), backwards])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let details = answer["error"]["details"].as_array().unwrap();
    let listed: Vec<(u64, &str)> = details
        .iter()
        .map(|d| (d["index"].as_u64().unwrap(), d["code"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, vec![(0, "invalid_count"), (2, "end_before_start")]);
    // Not JSON, not JSON-typed, too large.
    let (status, answer) = upload_raw(&s, &d, "application/json", b"{\"batchId\": ".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "malformed_json");
    let valid = serde_json::to_vec(&batch(vec![ok()])).unwrap();
    let (status, answer) = upload_raw(&s, &d, "text/plain", valid.clone()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{answer}");
    assert_eq!(answer["error"]["code"], "unsupported_media_type");
    // Over the 1 MiB body limit, with and without a declared length. In process, on a
    // connection that presented the device certificate: over TLS the service answers before it
    // reads such a body, and the client may see a broken pipe instead of the answer.
    let mut huge = batch(vec![ok()]);
    huge["events"][0]["description"] = json!("z".repeat(1024 * 1024));
    let huge = serde_json::to_vec(&huge).unwrap();
    for declared in [true, false] {
        let conn = ferro_service::server::ConnInfo::new(
            "127.0.0.1:9".parse().unwrap(),
            Some(d.cert.clone().into()),
        );
        let mut req = axum::http::Request::post("/v1/device/events")
            .header("content-type", "application/json");
        if declared {
            req = req.header("content-length", huge.len());
        }
        let mut req = req.body(axum::body::Body::from(huge.clone())).unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(conn));
        let r = t.send(req).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", r.body);
        assert_eq!(r.code(), "payload_too_large");
    }
    // Nothing of any of them was stored.
    assert_eq!(stored(t, d.id()).await, 0);
    assert_eq!(batches(t, d.id()).await, 0);
    assert!(rows(&report(t, &tid, &admin).await, d.id()).is_empty());
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM devices WHERE id = '{}' AND events_uploaded_at IS NOT NULL",
            d.id()
        ))
        .await,
        0
    );
    // And the device still uploads.
    let (status, _, _) = upload(&s, &d.http, &batch(vec![ok()])).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(stored(t, d.id()).await, 1);
    s.stop().await;
}

async fn uploads_need_the_device_certificate_of_the_tenant(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let (tb, admin_b) = t.tenant().await;
    let s = Server::start(t).await;
    let a = certified(t, &s, &tid, &admin).await;
    let body = batch(vec![event("AppCrash", 1, "forged", 1)]);
    let url = format!("{}/v1/device/events", s.url);
    let refused = |what: &'static str, client: reqwest::Client| {
        let rb = client.post(&url).json(&body);
        async move {
            let (status, _, raw) = send(rb).await;
            let answer = json_of(&raw);
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {answer}");
            assert_eq!(answer["error"]["code"], "unauthenticated", "{what}");
        }
    };
    // No client certificate.
    refused("no certificate", s.client(None)).await;
    // A tenant Administrator's bearer token is not a device identity.
    let (status, _, _) = send(
        s.client(None)
            .post(format!("{}/v1/device/events", s.url))
            .bearer_auth(&admin)
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Tenant B's CA certifying A's device as B's (B does not own it): nothing lands in B.
    let keys = t.state.platform.keys.0.as_ref();
    let cas = ferro_service::datastore::tenant_cas::active(&t.db, tb.parse().unwrap())
        .await
        .unwrap();
    let ca_b = ferro_pki::current_tenant_ca(&cas, time::OffsetDateTime::now_utc())
        .unwrap()
        .clone();
    let issue = |ca: &ferro_pki::TenantCa, tenant: &str, validity| {
        ferro_pki::issue_device_certificate(
            ca,
            keys,
            &a.dev.rot.device_id(),
            tenant.parse().unwrap(),
            &a.dev.rot.public_key(),
            time::OffsetDateTime::now_utc(),
            validity,
        )
        .unwrap()
        .der()
        .to_vec()
    };
    let as_b = issue(&ca_b, &tb, ferro_pki::DEVICE_CERT_VALIDITY);
    refused(
        "another tenant's certificate",
        s.client(Some((as_b, a.dev.rot.device_key()))),
    )
    .await;
    // Expired (the tenant's genuine CA, one second of life).
    let cas = ferro_service::datastore::tenant_cas::active(&t.db, tid.parse().unwrap())
        .await
        .unwrap();
    let ca_a = ferro_pki::current_tenant_ca(&cas, time::OffsetDateTime::now_utc())
        .unwrap()
        .clone();
    let short = issue(&ca_a, &tid, ferro_pki::time::Duration::seconds(1));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    refused("expired", s.client(Some((short, a.dev.rot.device_key())))).await;
    // Nothing was stored anywhere.
    assert_eq!(t.count("SELECT COUNT(*) FROM device_events").await, 0);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM device_event_batches").await,
        0
    );

    // The genuine certificate stores into A's report; the body cannot name another device or
    // tenant (unknown fields), so B's report stays empty.
    let (status, _, answer) = upload(&s, &a.http, &body).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    let mut aimed = batch(vec![event("AppCrash", 1, "aimed", 1)]);
    aimed["tenantId"] = json!(tb);
    let (status, _, _) = upload(&s, &a.http, &aimed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let csv_b = report(t, &tb, &admin_b).await;
    assert_eq!(
        csv_b.split("\r\n").filter(|l| !l.is_empty()).count(),
        1,
        "{csv_b}"
    );
    assert_eq!(rows(&report(t, &tid, &admin).await, a.id()).len(), 1);
    // B's Administrator cannot see A's report.
    let r = t
        .get(&format!("/v1/tenants/{tid}/error-report"), &admin_b)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Blocked by its tenant: refused at the next request on the same connection, with a valid
    // certificate; nothing stored. Unblocked: accepted again.
    let device_path = format!("/v1/tenants/{tid}/devices/{}", a.id());
    let set_blocked = |blocked: bool| t.patch(&device_path, &admin, json!({ "blocked": blocked }));
    assert_eq!(set_blocked(true).await.status, StatusCode::OK);
    let stored_before = stored(t, a.id()).await;
    let (status, _, answer) = upload(&s, &a.http, &batch(vec![event("AppCrash", 1, "x", 1)])).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["error"]["code"], "forbidden", "{answer}");
    assert_eq!(stored(t, a.id()).await, stored_before);
    assert_eq!(set_blocked(false).await.status, StatusCode::OK);
    let (status, _, answer) = upload(&s, &a.http, &batch(vec![event("AppCrash", 1, "y", 1)])).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    s.stop().await;
}

async fn a_flooding_device_is_capped(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let s = Server::start(t).await;
    let d = certified(t, &s, &tid, &admin).await;
    let other = certified(t, &s, &tid, &admin).await;
    let full = || {
        batch(
            (0..ferro_wire::MAX_EVENTS_PER_UPLOAD)
                .map(|i| event(&format!("Flood{i}"), 1, "", 1))
                .collect(),
        )
    };
    // Eight full batches at once on separate connections: exactly four fit the 2,000 cap.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = s.client(Some((d.cert.clone(), d.dev.rot.device_key())));
        let url = format!("{}/v1/device/events", s.url);
        let body = full();
        tasks.push(tokio::spawn(async move {
            let (status, headers, raw) = send(client.post(url).json(&body)).await;
            (status, headers, json_of(&raw), body)
        }));
    }
    let mut accepted = Vec::new();
    let mut limited = 0;
    for task in tasks {
        let (status, headers, answer, body) = task.await.unwrap();
        match status {
            StatusCode::NO_CONTENT => accepted.push(body),
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(answer["error"]["code"], "rate_limited", "{answer}");
                let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=86_400).contains(&retry), "{retry}");
                limited += 1;
            }
            other => panic!("{other}: {answer}"),
        }
    }
    assert_eq!((accepted.len(), limited), (4, 4));
    assert_eq!(stored(t, d.id()).await, 2000);
    // One more event: refused, nothing stored.
    let one = batch(vec![event("AppCrash", 1, "", 1)]);
    let (status, headers, answer) = upload(&s, &d.http, &one).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(stored(t, d.id()).await, 2000);
    // A retry of a stored batch still answers 204 (the device may drop it).
    let (status, _, _) = upload(&s, &d.http, &accepted[0]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(stored(t, d.id()).await, 2000);
    // Other devices are not affected.
    let (status, _, _) = upload(&s, &other.http, &full()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // A day later the window has room again, and the refused batch goes through.
    t.exec(&format!(
        "UPDATE device_event_batches SET received_at = received_at - 86401 WHERE device_id = '{}'",
        d.id()
    ))
    .await;
    let (status, _, answer) = upload(&s, &d.http, &one).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    assert_eq!(stored(t, d.id()).await, 2001);
    s.stop().await;
}

/// A Failed update status report is an event of the error report: it counts against the
/// device's 24-hour event cap and stores no event past it (the report itself is still recorded).
/// Before the cap, every Failed report added an event row however many the device had sent.
async fn failed_update_reports_respect_the_event_cap(t: &TestApp) {
    let (tid, admin) = t.tenant().await;
    let s = Server::start(t).await;
    let full = || {
        batch(
            (0..ferro_wire::MAX_EVENTS_PER_UPLOAD)
                .map(|i| event(&format!("Flood{i}"), 1, "", 1))
                .collect(),
        )
    };
    let failed = |d: &Device, version: u64| {
        let req = d
            .http
            .post(format!("{}/v1/device/update-status", s.url))
            .json(
                &json!({"state": "Failed", "targetVersion": version, "detail": "install failed"}),
            );
        async move {
            let (status, _, raw) = send(req).await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{}", json_of(&raw));
        }
    };
    // A device at its cap: Failed reports are recorded on the device, no event is stored.
    let d = certified(t, &s, &tid, &admin).await;
    for _ in 0..4 {
        let (status, _, answer) = upload(&s, &d.http, &full()).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    }
    assert_eq!(stored(t, d.id()).await, 2000);
    for v in 1..=3 {
        failed(&d, v).await;
    }
    assert_eq!(stored(t, d.id()).await, 2000);
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM devices WHERE id = '{}' AND update_state = 'Failed' \
             AND update_target_version = 3",
            d.id()
        ))
        .await,
        1
    );
    // Below the cap a Failed report stores its event, which counts: after it only three more
    // full batches fit.
    let e = certified(t, &s, &tid, &admin).await;
    failed(&e, 1).await;
    assert_eq!(stored(t, e.id()).await, 1);
    for _ in 0..3 {
        let (status, _, answer) = upload(&s, &e.http, &full()).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    }
    let (status, _, answer) = upload(&s, &e.http, &full()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(stored(t, e.id()).await, 1501);
    s.stop().await;
}
