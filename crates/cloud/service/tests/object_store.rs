//! The object store: one suite on both backends (the local directory and S3 on a real
//! S3-compatible server, moto, started on loopback), the S3 backend's own defenses (corrupted
//! objects refused, credentials never shown, startup that says what is wrong), and image
//! uploads and downloads through the API on S3, with the S3 server stopped and back.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::packages::app_package_with_payload;
use common::{Backend, TestApp, test_config};
use ferro_e2e::s3::{Moto, TEST_MIN_PART_SIZE};
use ferro_image::Version;
use ferro_service::object_store::s3::{S3Config, S3Credentials, S3ObjectStore};
use ferro_service::object_store::{
    self, LocalObjectStore, ObjectKey, ObjectStore, ObjectStoreConfig, ObjectStoreError, PutOutcome,
};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tower::ServiceExt;

/// Part size of the S3 stores here: the test server's smallest.
const PART: u64 = TEST_MIN_PART_SIZE;
const BUCKET: &str = "ferro-objects";

/// `n` bytes that do not compress, different for each `seed`.
fn bytes(n: usize, seed: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 32);
    let mut block = Sha256::digest([seed]);
    while out.len() < n {
        out.extend_from_slice(&block);
        block = Sha256::digest(block);
    }
    out.truncate(n);
    out
}

fn key_of(content: &[u8]) -> ObjectKey {
    ObjectKey::image(&Sha256::digest(content).into())
}

/// A credentials file (mode 0600) with a secret no test could guess.
fn credentials_file(dir: &Path, secret: &str) -> PathBuf {
    let path = dir.join("s3-credentials.toml");
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .expect("credentials file");
    writeln!(
        f,
        "access_key_id = \"ferro-test-key\"\nsecret_access_key = \"{secret}\""
    )
    .expect("write");
    path
}

use std::os::unix::fs::OpenOptionsExt;

fn s3_config(moto: &Moto, credentials: &Path) -> S3Config {
    S3Config {
        endpoint: Some(moto.endpoint()),
        allow_http: true,
        credentials_file: Some(credentials.to_path_buf()),
        part_size_bytes: Some(PART),
        timeout_secs: Some(1),
        ..S3Config::new(BUCKET)
    }
}

/// A store of one backend, and what keeps it alive.
struct Fixture {
    store: Arc<dyn ObjectStore>,
    /// The S3 store itself (its counters), on S3.
    s3: Option<S3ObjectStore>,
    moto: Option<Moto>,
    dir: tempfile::TempDir,
    secret: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Local,
    S3,
}

async fn fixture(kind: Kind) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = format!("ferro-secret-{}", uuid::Uuid::new_v4().simple());
    match kind {
        Kind::Local => Fixture {
            store: Arc::new(LocalObjectStore::in_data_dir(dir.path()).expect("local store")),
            s3: None,
            moto: None,
            dir,
            secret,
        },
        Kind::S3 => {
            let mut moto = Moto::start();
            moto.bucket(BUCKET);
            let config = s3_config(&moto, &credentials_file(dir.path(), &secret));
            let credentials = S3Credentials::resolve(&config).expect("credentials");
            let s3 = S3ObjectStore::new(&config, credentials, &dir.path().join("objects/tmp"))
                .expect("S3 store");
            s3.check().await.expect("the bucket answers");
            Fixture {
                store: Arc::new(s3.clone()),
                s3: Some(s3),
                moto: Some(moto),
                dir,
                secret,
            }
        }
    }
}

impl Fixture {
    fn stage(&self, content: &[u8]) -> tempfile::TempPath {
        let mut f = tempfile::NamedTempFile::new_in(self.store.staging_dir()).expect("staging");
        f.write_all(content).expect("write");
        f.into_temp_path()
    }

    async fn put(&self, content: &[u8]) -> (ObjectKey, PutOutcome) {
        let key = key_of(content);
        let staged = self.stage(content);
        let outcome = self.store.put_from_file(&key, &staged).await.expect("put");
        (key, outcome)
    }

    /// Read through a small buffer, as a download does.
    async fn read(&self, key: &ObjectKey, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
        let mut r = self.store.get(key, range).await.expect("get");
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = r.reader.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }
}

/// Run `async fn $name(f: Fixture)` on the local directory and on S3.
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        $(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                super::$name(super::fixture(super::Kind::Local).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                super::$name(super::fixture(super::Kind::S3).await).await;
            }
        }
        )*
    };
}

both_stores!(
    put_get_range_exists_delete,
    large_objects_go_in_parts_and_come_back_whole,
    one_of_two_concurrent_puts_creates,
);

async fn put_get_range_exists_delete(f: Fixture) {
    let content = bytes(1000, 1);
    let key = key_of(&content);
    assert!(!f.store.exists(&key).await.unwrap());
    assert!(matches!(
        f.store.get(&key, None).await,
        Err(ObjectStoreError::NotFound(_))
    ));
    assert_eq!(f.put(&content).await.1, PutOutcome::Created);
    // Never overwritten: a second put of the key changes nothing.
    assert_eq!(f.put(&content).await.1, PutOutcome::AlreadyExisted);
    assert!(f.store.exists(&key).await.unwrap());
    let r = f.store.get(&key, None).await.unwrap();
    assert_eq!((r.len, r.range.clone()), (1000, 0..1000));
    drop(r);
    assert_eq!(f.read(&key, None).await, content);
    assert_eq!(f.read(&key, Some(10..20)).await, content[10..20]);
    assert_eq!(f.read(&key, Some(990..1000)).await, content[990..]);
    assert!(matches!(
        f.store.get(&key, Some(10..1001)).await,
        Err(ObjectStoreError::BadRange { len: 1000, .. })
    ));
    f.store.check().await.expect("check");
    f.store.delete(&key).await.unwrap();
    f.store.delete(&key).await.unwrap();
    assert!(!f.store.exists(&key).await.unwrap());
    // Nothing left in staging.
    assert_eq!(std::fs::read_dir(f.store.staging_dir()).unwrap().count(), 0);
}

/// An object of several parts goes up in parts and comes down in ranges, never whole in
/// memory: the S3 store's largest buffer is one part, its largest download chunk at most one
/// part, for an object of 3.5 parts.
async fn large_objects_go_in_parts_and_come_back_whole(f: Fixture) {
    let len = PART * 7 / 2 + 123;
    let content = bytes(len as usize, 2);
    let (key, outcome) = f.put(&content).await;
    assert_eq!(outcome, PutOutcome::Created);
    assert_eq!(f.read(&key, None).await, content, "whole object");
    let span = PART - 100..PART * 2 + 100;
    assert_eq!(
        f.read(&key, Some(span.clone())).await,
        content[span.start as usize..span.end as usize],
        "a range across parts"
    );
    if let Some(s3) = &f.s3 {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = s3.stats();
        assert_eq!(stats.parts_uploaded.load(Relaxed), 4, "uploaded in 4 parts");
        let upload = stats.largest_upload_buffer.load(Relaxed) as u64;
        let download = stats.largest_download_chunk.load(Relaxed) as u64;
        assert!(upload <= PART && upload < len, "upload buffer {upload}");
        assert!(
            download <= PART && download < len,
            "download chunk {download}"
        );
        // Whole read: 4 ranged GETs; the range read (a part and 200 bytes): 2; no extra
        // verification (the whole read before it verified this version).
        assert_eq!(stats.ranged_gets.load(Relaxed), 4 + 2);
        assert_eq!(stats.verifications.load(Relaxed), 0);
    }
    // A second put of the same large object is a no-op, and leaves no staging object behind.
    assert_eq!(f.put(&content).await.1, PutOutcome::AlreadyExisted);
    assert_eq!(f.read(&key, None).await, content);
}

/// Two puts of one key at once (two replicas storing the same package): exactly one creates
/// it, so the write protocol's clean-up of a failed request never deletes the other's object.
async fn one_of_two_concurrent_puts_creates(f: Fixture) {
    for len in [500, (PART * 2 + 7) as usize] {
        let content = bytes(len, 3);
        let key = key_of(&content);
        let (a, b) = (f.stage(&content), f.stage(&content));
        let (ra, rb) = tokio::join!(
            f.store.put_from_file(&key, &a),
            f.store.put_from_file(&key, &b)
        );
        let mut outcomes = [ra.unwrap(), rb.unwrap()];
        outcomes.sort_by_key(|o| *o == PutOutcome::AlreadyExisted);
        assert_eq!(
            outcomes,
            [PutOutcome::Created, PutOutcome::AlreadyExisted],
            "{len} bytes"
        );
        assert_eq!(f.read(&key, None).await, content);
    }
}

// ---------------------------------------------------------------------------------------------
// The S3 backend's defenses

/// A client of the same bucket that writes what it likes: an attacker with write access to
/// the bucket, or a broken replica.
fn raw_client(f: &Fixture) -> ::object_store::aws::AmazonS3 {
    ::object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_endpoint(f.moto.as_ref().unwrap().endpoint())
        .with_allow_http(true)
        .with_access_key_id("someone-else")
        .with_secret_access_key("their-secret")
        .build()
        .unwrap()
}

async fn overwrite(f: &Fixture, key: &ObjectKey, content: Vec<u8>) {
    use ::object_store::ObjectStoreExt;
    raw_client(f)
        .put(
            &::object_store::path::Path::from(key.as_str()),
            content.into(),
        )
        .await
        .unwrap();
}

/// Attack: the object in the bucket is replaced by other bytes of the same length (one byte
/// flipped). A whole read fails before its last chunk (never served complete), a range read is
/// refused outright, also of a version read (and verified) before the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_objects_are_refused() {
    let f = fixture(Kind::S3).await;
    for len in [300usize, (PART * 2 + 50) as usize] {
        let content = bytes(len, 4);
        let (key, _) = f.put(&content).await;
        // Read (and so verified) before the attack.
        assert_eq!(f.read(&key, Some(0..10)).await, content[..10]);
        let mut bad = content.clone();
        bad[len / 2] ^= 1;
        overwrite(&f, &key, bad).await;

        let mut r = f.store.get(&key, None).await.expect("head");
        let mut got = Vec::new();
        let err = loop {
            let mut buf = [0u8; 4096];
            match r.reader.read(&mut buf).await {
                Ok(0) => panic!("a corrupted object of {len} bytes was read to its end"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
        assert!(
            err.to_string().contains("does not match its SHA-256"),
            "{err}"
        );
        assert!(got.len() < len, "{} of {len} bytes handed over", got.len());

        match f.store.get(&key, Some(0..10)).await {
            Err(ObjectStoreError::Corrupt(k)) => assert_eq!(k, key.to_string()),
            other => panic!("a range of a corrupted object: {other:?}"),
        }
    }
    // A staged file that does not hash to its key is not stored.
    let content = bytes(100, 5);
    let key = key_of(b"something else");
    let staged = f.stage(&content);
    assert!(matches!(
        f.store.put_from_file(&key, &staged).await,
        Err(ObjectStoreError::InvalidKey(m)) if m.contains("does not hash to its key")
    ));
    assert!(!f.store.exists(&key).await.unwrap());
    // Only content addresses.
    let staged = f.stage(&content);
    let plain = ObjectKey::new("images/not-a-digest").unwrap();
    assert!(matches!(
        f.store.put_from_file(&plain, &staged).await,
        Err(ObjectStoreError::InvalidKey(_))
    ));
}

/// A writer the test reads back: everything logged at TRACE while it is the default.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The secret access key appears in no log line (TRACE, object_store's and the HTTP client's
/// included), no error, no `Debug` of the store or its credentials, no startup message.
#[tokio::test(flavor = "current_thread")]
async fn the_secret_is_never_shown() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // The global default (the only test here that sets one): a thread-local default misses
    // callsites other tests' threads registered first.
    tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");

    let mut f = fixture(Kind::S3).await;
    let secret = f.secret.clone();
    let mut seen = Vec::new();
    let (key, _) = f.put(&bytes(PART as usize * 2, 6)).await;
    let _ = f.read(&key, None).await;
    let _ = f.read(&key, Some(1..2)).await;
    seen.push(format!("{:?}", f.store));
    let config = s3_config(
        f.moto.as_ref().unwrap(),
        &f.dir.path().join("s3-credentials.toml"),
    );
    let credentials = S3Credentials::resolve(&config).unwrap();
    seen.push(format!("{credentials:?}"));
    // The secret is the one in use (the test looks for the right string).
    assert!(
        std::fs::read_to_string(f.dir.path().join("s3-credentials.toml"))
            .unwrap()
            .contains(&secret)
    );
    // Failures: a missing bucket at startup, a store that stopped answering.
    let data = f.dir.path().join("data");
    let wrong = S3Config {
        bucket: "no-such-bucket".into(),
        ..config.clone()
    };
    let e = object_store::open(&ObjectStoreConfig::S3(wrong), &data)
        .await
        .unwrap_err();
    seen.push(format!("{e} {e:?}"));
    f.moto.as_mut().unwrap().pause();
    for r in [
        f.store.get(&key, None).await.map(|_| ()),
        f.store.check().await,
        f.store
            .put_from_file(&key_of(&bytes(10, 7)), &f.stage(&bytes(10, 7)))
            .await
            .map(|_| ()),
    ] {
        if let Err(e) = r {
            seen.push(format!("{e} {e:?}"));
        }
    }
    f.moto.as_ref().unwrap().resume();
    let logged = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    assert!(
        !logged.is_empty(),
        "nothing was logged: the test sees nothing"
    );
    // The S3 client's own logs and the HTTP client's are in what was searched.
    assert!(
        logged.contains("object_store") && logged.contains("hyper"),
        "{logged}"
    );
    for text in seen.iter().chain(std::iter::once(&logged)) {
        assert!(!text.contains(&secret), "the secret shows in: {text}");
    }
}

/// Startup says what is wrong, naming the setting, and never starts on a store it cannot use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_says_what_is_wrong() {
    let mut moto = Moto::start();
    moto.bucket(BUCKET);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let secret = "ferro-secret-startup";
    let creds = credentials_file(dir.path(), secret);
    let good = s3_config(&moto, &creds);
    let open = |c: S3Config| {
        let data = data.clone();
        async move {
            object_store::open(&ObjectStoreConfig::S3(c), &data)
                .await
                .map(|_| ())
                .unwrap_err()
                .to_string()
        }
    };
    // Works as configured.
    object_store::open(&ObjectStoreConfig::S3(good.clone()), &data)
        .await
        .expect("opens");
    let e = open(S3Config {
        bucket: "missing-bucket".into(),
        ..good.clone()
    })
    .await;
    assert!(
        e.contains("missing-bucket") && e.contains("NoSuchBucket"),
        "{e}"
    );
    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let e = open(S3Config {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        ..good.clone()
    })
    .await;
    assert!(
        e.contains(&format!("127.0.0.1:{port}")) && e.contains("not usable"),
        "{e}"
    );
    let e = open(S3Config {
        allow_http: false,
        ..good.clone()
    })
    .await;
    assert!(e.contains("allow_http"), "{e}");
    // A credentials file others may read is refused.
    let loose = dir.path().join("loose.toml");
    std::fs::write(&loose, std::fs::read(&creds).unwrap()).unwrap();
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let e = open(S3Config {
        credentials_file: Some(loose.clone()),
        ..good.clone()
    })
    .await;
    assert!(e.contains("chmod 600") && e.contains("loose.toml"), "{e}");
    // A malformed credentials file: the error says where, never what.
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        format!("access_key_id = \"k\"\nsecret_access_key = {secret}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let e = open(S3Config {
        credentials_file: Some(broken),
        ..good.clone()
    })
    .await;
    assert!(e.contains("line 2") && !e.contains(secret), "{e}");

    // ferro-service.toml: the table parses, S3's part limits hold, and a secret in the file
    // itself is refused (the credentials live in the environment or their own file).
    let parse = |text: &str| -> Result<ferro_service::Config, String> {
        let file: ferro_service::setup::FileConfig =
            toml::from_str(text).map_err(|e| e.to_string())?;
        file.config(Path::new("ferro-service.toml"))
            .map_err(|e| e.to_string())
    };
    let c = parse(
        "[object_store]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"https://s3.example\"\n\
         addressing = \"path\"\ncredentials_file = \"/etc/ferro/s3.toml\"\n",
    )
    .unwrap();
    match c.object_store {
        ObjectStoreConfig::S3(s) => {
            assert_eq!(s.bucket, "b");
            assert_eq!(
                s.credentials_file,
                Some(PathBuf::from("/etc/ferro/s3.toml"))
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(parse("").unwrap().object_store, ObjectStoreConfig::Local);
    let e = parse("[object_store]\nkind = \"s3\"\nbucket = \"b\"\nsecret_access_key = \"x\"\n")
        .unwrap_err();
    assert!(e.contains("secret_access_key"), "{e}");
    let e = parse("[object_store]\nkind = \"s3\"\nbucket = \"b\"\npart_size_bytes = 1024\n")
        .unwrap_err();
    assert!(e.contains("part_size_bytes"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Images through the API on S3

/// A service on `backend` whose object store is a fresh moto bucket.
async fn s3_app(backend: Backend) -> (TestApp, Moto, tempfile::TempDir) {
    let mut moto = Moto::start();
    moto.bucket(BUCKET);
    let dir = tempfile::tempdir().unwrap();
    let creds = credentials_file(dir.path(), "ferro-secret-app");
    let config = ferro_service::Config {
        object_store: ObjectStoreConfig::S3(s3_config(&moto, &creds)),
        ..test_config()
    };
    let t = TestApp::with_config(backend, config).await;
    assert_eq!(t.state.objects.kind(), "s3");
    (t, moto, dir)
}

/// Run `async fn $name(t: &TestApp, moto: &Moto)` on S3 with both database engines.
macro_rules! on_s3 {
    ($($name:ident),* $(,)?) => {
        $(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (t, moto, _dir) = super::s3_app(super::Backend::Sqlite).await;
                super::$name(&t, &moto).await;
                t.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let (t, moto, _dir) = super::s3_app(super::Backend::Postgres).await;
                super::$name(&t, &moto).await;
                t.finish().await;
            }
        }
        )*
    };
}

on_s3!(images_through_the_api, s3_outage);

/// A tenant with a Contributor and a developer key; uploads one image of `payload` bytes.
/// Returns (tenant, contributor token, image ID, stored package).
async fn image_of(t: &TestApp, payload: usize) -> (String, String, String, Vec<u8>) {
    let (tid, admin) = t.tenant().await;
    let k = t.developer_key(&tid, &admin).await;
    let package = app_package_with_payload(
        &k,
        uuid::Uuid::new_v4(),
        Version::new(1, 0, 0),
        None,
        &bytes(payload, 8),
    );
    let r = t.upload(&tid, &admin, package).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let iid = r.body["id"].as_str().unwrap().to_string();
    let r = t
        .get(&format!("/v1/tenants/{tid}/images/{iid}/content"), &admin)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body.get("packageSha256"),
        None,
        "the body is the package itself"
    );
    (tid, admin, iid, r.raw)
}

/// An image goes up through the API into the bucket (not the data directory) and comes back
/// whole and by ranges; deleting it removes the object from the bucket.
async fn images_through_the_api(t: &TestApp, _moto: &Moto) {
    let (tid, admin, iid, stored) = image_of(t, (PART * 3) as usize).await;
    let sha: [u8; 32] = Sha256::digest(&stored).into();
    let key = ObjectKey::image(&sha);
    assert!(t.state.objects.exists(&key).await.unwrap(), "in the bucket");
    assert!(
        !t.dir.path().join("data/objects/images").exists(),
        "nothing in the data directory"
    );
    let content = format!("/v1/tenants/{tid}/images/{iid}/content");
    let len = stored.len();
    let r = t
        .get_with(&content, &admin, &[("range", "bytes=100-20000")])
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.raw, stored[100..20001]);
    assert_eq!(
        r.headers["content-range"],
        format!("bytes 100-20000/{len}").as_str()
    );
    let r = t
        .delete(&format!("/v1/tenants/{tid}/images/{iid}"), &admin)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(
        !t.state.objects.exists(&key).await.unwrap(),
        "gone from the bucket"
    );
}

/// The S3 server stops answering: an upload is `503 object_store_unavailable` with
/// `Retry-After` and leaves no row; `/readyz` stays ready and says the store is unavailable;
/// a download fails cleanly, also in the middle of its body, and resumes by `Range` once the
/// server answers again.
async fn s3_outage(t: &TestApp, moto: &Moto) {
    let (tid, admin, iid, stored) = image_of(t, (PART * 5) as usize).await;
    let content = format!("/v1/tenants/{tid}/images/{iid}/content");
    let k = t.developer_key(&tid, &admin).await;
    let second = app_package_with_payload(
        &k,
        uuid::Uuid::new_v4(),
        Version::new(2, 0, 0),
        None,
        b"second",
    );
    let counts = || async {
        (
            t.count("SELECT COUNT(*) FROM images").await,
            t.count("SELECT COUNT(*) FROM audit_log").await,
        )
    };
    let before = counts().await;

    moto.pause();
    let r = t.upload(&tid, &admin, second.clone()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "object_store_unavailable"),
        "{:?}",
        r.body
    );
    assert_eq!(r.headers["retry-after"], "10");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("image store cannot be reached"),
        "{message}"
    );
    assert_eq!(counts().await, before, "nothing written");
    let r = t.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "ok; object store unavailable");
    let r = t.get(&content, &admin).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "object_store_unavailable")
    );
    moto.resume();
    let r = t.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.body["status"], "ok");

    // A download cut in the middle by the outage, resumed from where it stopped.
    let req = Request::builder()
        .method(Method::GET)
        .uri(&content)
        .header("authorization", format!("Bearer {admin}"))
        .body(Body::empty())
        .unwrap();
    let resp = t.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while (got.len() as u64) < PART {
        let frame = body.frame().await.expect("a frame").expect("bytes");
        got.extend_from_slice(&frame.into_data().unwrap());
    }
    moto.pause();
    let cut = loop {
        match body.frame().await {
            Some(Ok(frame)) => got.extend_from_slice(&frame.into_data().unwrap()),
            Some(Err(e)) => break e.to_string(),
            None => panic!("the download finished while the store was stopped"),
        }
    };
    assert!(got.len() < stored.len(), "{cut}");
    moto.resume();
    let r = t
        .get_with(
            &content,
            &admin,
            &[("range", &format!("bytes={}-", got.len()))],
        )
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    got.extend_from_slice(&r.raw);
    assert_eq!(got, stored, "resumed download");

    let r = t.upload(&tid, &admin, second).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}
