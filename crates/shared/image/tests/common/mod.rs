//! Shared test helpers: fixed TEST-ONLY keys, fixture trees, package crafting and the
//! deterministic test-vector generator.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use coset::{CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana};
use ferro_cbor::Value;
use ferro_image::{
    AppPackageManifest, FixedHeader, ImageMetadata, PackOptions, Version, pack_application,
    pack_board_config, pack_os,
};
use ferro_rfc6979::Deterministic as _;
use ferro_signing::{Purpose, Signer, SoftwareSigningKey, TrustedKeys, sign1};
use uuid::Uuid;

pub const TEST_KEY_PEM: &str =
    include_str!("../../../../../test-vectors/keys/test-only-signing-key.pem");
pub const UNTRUSTED_KEY_PEM: &str =
    include_str!("../../../../../test-vectors/keys/test-only-untrusted-key.pem");

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

pub fn key() -> SoftwareSigningKey {
    SoftwareSigningKey::from_pkcs8_pem(TEST_KEY_PEM).unwrap()
}

pub fn untrusted_key() -> SoftwareSigningKey {
    SoftwareSigningKey::from_pkcs8_pem(UNTRUSTED_KEY_PEM).unwrap()
}

pub fn trusted() -> TrustedKeys {
    [key().public_key().clone()].into_iter().collect()
}

pub const APP_COMPONENT: &str = "1689d8b2-c835-2e27-27ad-e894d6d15fa9";
pub const RT_COMPONENT: &str = "005180bc-402f-4cb3-a662-72937dbcde47";

pub fn app_manifest_json(name: &str, component: &str, entry: &str, rt: bool) -> Vec<u8> {
    format!(
        "{{\n  \"SchemaVersion\": 1,\n  \"Name\": \"{name}\",\n  \"ComponentId\": \"{component}\",\n  \
         \"EntryPoint\": \"{entry}\",\n  \"CmdArgs\": [],\n  \"Capabilities\": {{ \"Gpio\": [8] }},\n  \
         \"ApplicationType\": \"{}\"\n}}\n",
        if rt { "RealTimeCapable" } else { "Default" }
    )
    .into_bytes()
}

pub fn app_manifest(rt: bool) -> AppPackageManifest {
    let (name, comp, entry) = if rt {
        ("BlinkRt", RT_COMPONENT, "/bin/blink.elf")
    } else {
        ("HelloWorld", APP_COMPONENT, "/bin/app")
    };
    AppPackageManifest {
        component_id: Uuid::parse_str(comp).unwrap(),
        name: name.into(),
        entry_point: entry.into(),
        json_bytes: app_manifest_json(name, comp, entry, rt),
        is_real_time: rt,
    }
}

pub fn write_file(root: &Path, rel: &str, data: &[u8], mode: u32) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let _ = mode;
}

pub fn app_dir(root: &Path, rt: bool) {
    if rt {
        write_file(root, "bin/blink.elf", b"\x7fELF test-only rt image", 0o755);
    } else {
        write_file(
            root,
            "bin/app",
            b"\0asm\x01\0\0\0 test-only component",
            0o644,
        );
        write_file(root, "data/config.txt", b"hello\n", 0o644);
        // The on-disk (unresolved) manifest is replaced by the resolved one.
        write_file(root, "app_manifest.json", b"{\"unresolved\": true}", 0o644);
    }
}

pub fn options(n: u128) -> PackOptions {
    PackOptions {
        version: Version::new(1, 2, 3),
        security_version: 4,
        target_runtime_version: 5,
        debug: false,
        image_id: Some(Uuid::from_u128(
            0x7e57_0000_0000_4000_8000_0000_0000_0000 + n,
        )),
    }
}

pub fn pack_app_bytes(rt: bool, signer: &dyn Signer) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    app_dir(&src, rt);
    let dest = dir.path().join("out.fsimg");
    pack_application(
        &src,
        &app_manifest(rt),
        &options(u128::from(rt)),
        signer,
        &dest,
    )
    .unwrap();
    std::fs::read(dest).unwrap()
}

pub fn pack_os_bytes(device_binary: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("os");
    write_file(&src, "bin/ferro-device", device_binary, 0o755);
    write_file(&src, "etc/os-release", b"NAME=Ferrosphere\n", 0o644);
    let dest = dir.path().join("os.fsimg");
    pack_os(&src, &options(2), &key().deterministic(), &dest).unwrap();
    std::fs::read(dest).unwrap()
}

pub const BOARD_CONFIG: &[u8] =
    b"{\"Name\": \"virtual-board\", \"HardwareDefinition\": \"virtual/virtual_board.json\"}\n";

pub fn pack_board_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("board.json");
    std::fs::write(&src, BOARD_CONFIG).unwrap();
    let dest = dir.path().join("board.fsimg");
    pack_board_config(&src, &options(3), &key().deterministic(), &dest).unwrap();
    std::fs::read(dest).unwrap()
}

/// Offsets of a package's sections: (envelope start, payload start).
pub fn sections(pkg: &[u8]) -> (usize, usize) {
    let len = u32::from_be_bytes(pkg[12..16].try_into().unwrap()) as usize;
    (16, 16 + len)
}

/// Assemble a package from arbitrary metadata CBOR and payload, signed for `purpose`.
pub fn craft(
    signer: &dyn Signer,
    purpose: Purpose,
    metadata_cbor: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let aad = FixedHeader::new(0).external_aad();
    let env = sign1(signer, purpose, metadata_cbor, &aad).unwrap();
    craft_with_envelope(&env, payload)
}

pub fn craft_with_envelope(env: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = FixedHeader::new(env.len() as u32).encode().to_vec();
    out.extend_from_slice(env);
    out.extend_from_slice(payload);
    out
}

/// The metadata map as CBOR key/value pairs (same layout as the crate's encoder), so tests can
/// add, reorder or tamper with fields the encoder would refuse.
pub fn metadata_pairs(md: &ImageMetadata) -> Vec<(Value, Value)> {
    let u = |v: u64| Value::Integer(v.into());
    let mut m = vec![
        (u(1), u(md.image_type.code())),
        (u(2), Value::Bytes(md.component_id.as_bytes().to_vec())),
        (u(3), Value::Bytes(md.image_id.as_bytes().to_vec())),
        (u(4), Value::Text(md.name.clone())),
        (
            u(5),
            Value::Array(vec![
                u(md.version.major.into()),
                u(md.version.minor.into()),
                u(md.version.patch.into()),
            ]),
        ),
        (u(6), u(md.security_version.into())),
        (u(7), u(md.target_runtime_version.into())),
        (u(8), Value::Bool(md.debug)),
        (u(9), u(md.payload_size)),
        (u(10), Value::Bytes(md.payload_sha256.to_vec())),
    ];
    if let Some(app) = &md.app {
        m.push((u(11), Value::Text(app.entry_point.clone())));
        m.push((u(12), Value::Bytes(app.manifest_json.clone())));
    }
    m
}

pub fn cbor(v: &Value) -> Vec<u8> {
    ferro_cbor::encode(v).unwrap()
}

/// The app metadata of `pkg` (parsed without trust).
pub fn metadata_of(pkg: &[u8]) -> ImageMetadata {
    ferro_image::inspect(pkg).unwrap().claimed_metadata
}

pub fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

/// A raw tar entry for crafting payloads the packer would never produce.
pub struct RawEntry<'a> {
    pub path: &'a [u8],
    pub kind: u8,
    pub mode: u32,
    pub mtime: u64,
    pub data: &'a [u8],
}

impl<'a> RawEntry<'a> {
    pub fn file(path: &'a str, data: &'a [u8]) -> RawEntry<'a> {
        RawEntry {
            path: path.as_bytes(),
            kind: b'0',
            mode: 0o644,
            mtime: 0,
            data,
        }
    }
}

pub fn raw_tar(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..e.path.len()].copy_from_slice(e.path);
        h.set_entry_type(tar::EntryType::new(e.kind));
        h.set_size(e.data.len() as u64);
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(e.mtime);
        if e.kind == b'2' {
            h.set_link_name("bin/app").unwrap();
        }
        h.set_cksum();
        b.append(&h, e.data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Build a signed app package around an arbitrary payload: the metadata is that of the valid
/// app vector with the payload's size and digest.
pub fn app_with_payload(payload: &[u8]) -> Vec<u8> {
    let mut md = metadata_of(&pack_app_bytes(false, &key().deterministic()));
    md.payload_size = payload.len() as u64;
    md.payload_sha256 = sha256(payload);
    craft(
        &key().deterministic(),
        Purpose::ImagePackage,
        &md.to_cbor().unwrap(),
        payload,
    )
}

pub fn valid_app_entries(manifest: &[u8]) -> Vec<RawEntry<'_>> {
    vec![
        RawEntry::file("app_manifest.json", manifest),
        RawEntry {
            mode: 0o755,
            ..RawEntry::file("bin/app", b"\0asm\x01\0\0\0 test-only component")
        },
        RawEntry::file("data/config.txt", b"hello\n"),
    ]
}

pub struct Vector {
    pub name: &'static str,
    pub description: &'static str,
    pub bytes: Vec<u8>,
    /// None = valid; Some(code) = expected ImageError::code().
    pub expected: Option<&'static str>,
}

fn flip(mut b: Vec<u8>, at: usize) -> Vec<u8> {
    b[at] ^= 0x01;
    b
}

/// Generate every test vector deterministically.
pub fn generate_vectors() -> Vec<Vector> {
    // RFC 6979 signatures: the vectors are byte-stable.
    let key = key();
    let k = key.deterministic();
    let app = pack_app_bytes(false, &k);
    let (env_start, payload_start) = sections(&app);
    let md = metadata_of(&app);
    let manifest = md.app.as_ref().unwrap().manifest_json.clone();
    let mut v = Vec::new();
    let mut add = |name, description, bytes, expected| {
        v.push(Vector {
            name,
            description,
            bytes,
            expected,
        })
    };
    add(
        "valid-app.fsimg",
        "A valid app image (HelloWorld, /bin/app) signed by the test-only key.",
        app.clone(),
        None,
    );
    add(
        "valid-rt-app.fsimg",
        "A valid rt-app image (BlinkRt, /bin/blink.elf).",
        pack_app_bytes(true, &k),
        None,
    );
    add(
        "valid-os.fsimg",
        "A valid OS image with bin/ferro-device and etc/os-release.",
        pack_os_bytes(b"\x7fELF test-only device binary"),
        None,
    );
    add(
        "valid-board-config.fsimg",
        "A valid board-config image (virtual-board).",
        pack_board_bytes(),
        None,
    );

    add(
        "bad-magic.fsimg",
        "valid-app with magic byte 1 changed.",
        flip(app.clone(), 1),
        Some("bad-magic"),
    );
    let mut b = app.clone();
    b[9] = 2;
    add(
        "unsupported-version.fsimg",
        "valid-app with format version 2.",
        b,
        Some("unsupported-version"),
    );
    let mut b = app.clone();
    b[11] = 1;
    add(
        "nonzero-flags.fsimg",
        "valid-app with flags = 1.",
        b,
        Some("nonzero-flags"),
    );
    let mut b = app.clone();
    b[12..16].copy_from_slice(&(256 * 1024 + 1u32).to_be_bytes());
    add(
        "envelope-too-large.fsimg",
        "valid-app declaring a 256 KiB + 1 COSE_Sign1.",
        b,
        Some("envelope-too-large"),
    );
    add(
        "truncated-header.fsimg",
        "First 10 bytes of valid-app.",
        app[..10].to_vec(),
        Some("truncated"),
    );
    add(
        "truncated-envelope.fsimg",
        "valid-app cut in the middle of the COSE_Sign1.",
        app[..env_start + 40].to_vec(),
        Some("truncated"),
    );
    add(
        "truncated-payload.fsimg",
        "valid-app without its last byte.",
        app[..app.len() - 1].to_vec(),
        Some("truncated"),
    );
    let mut b = app.clone();
    b.push(0);
    add(
        "trailing-byte.fsimg",
        "valid-app with one zero byte appended.",
        b,
        Some("trailing-data"),
    );
    add(
        "bad-signature.fsimg",
        "valid-app with the last signature byte flipped.",
        flip(app.clone(), payload_start - 1),
        Some("bad-signature"),
    );
    let name_at = env_start
        + app[env_start..payload_start]
            .windows(10)
            .position(|w| w == b"HelloWorld")
            .unwrap();
    add(
        "tampered-metadata.fsimg",
        "valid-app with one byte of the signed name changed.",
        flip(app.clone(), name_at),
        Some("bad-signature"),
    );
    add(
        "unknown-key.fsimg",
        "valid-app's content signed by the test-only untrusted key.",
        pack_app_bytes(false, &untrusted_key().deterministic()),
        Some("unknown-key"),
    );
    add(
        "wrong-purpose.fsimg",
        "valid-app's metadata signed for the target-set purpose.",
        craft(
            &k,
            Purpose::TargetSet,
            &md.to_cbor().unwrap(),
            &app[payload_start..],
        ),
        Some("wrong-purpose"),
    );
    let unprotected_env = CoseSign1Builder::new()
        .protected(
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::ES256)
                .content_type(Purpose::ImagePackage.content_type().into())
                .key_id(k.key_id().0.to_vec())
                .build(),
        )
        .unprotected(HeaderBuilder::new().key_id(k.key_id().0.to_vec()).build())
        .payload(md.to_cbor().unwrap())
        .create_signature(&FixedHeader::new(0).external_aad(), |t| {
            k.sign(t).unwrap().0.to_vec()
        })
        .build()
        .to_tagged_vec()
        .unwrap();
    add(
        "unprotected-header.fsimg",
        "valid-app with the kid repeated in the unprotected header.",
        craft_with_envelope(&unprotected_env, &app[payload_start..]),
        Some("unprotected-header-not-empty"),
    );
    let env = &app[env_start..payload_start];
    let mut nc = env[..env.len() - 66].to_vec();
    nc.extend_from_slice(&[0x59, 0x00, 0x40]);
    nc.extend_from_slice(&env[env.len() - 64..]);
    add(
        "non-canonical-envelope.fsimg",
        "valid-app with the signature length encoded in 2 bytes (0x59 0x0040).",
        craft_with_envelope(&nc, &app[payload_start..]),
        Some("non-canonical"),
    );
    let binapp_at = payload_start
        + app[payload_start..]
            .windows(9)
            .position(|w| w == b"test-only")
            .unwrap();
    add(
        "payload-digest-mismatch.fsimg",
        "valid-app with one byte of bin/app changed.",
        flip(app.clone(), binapp_at),
        Some("payload-digest-mismatch"),
    );

    let mut pairs = metadata_pairs(&md);
    pairs.push((Value::Integer(13.into()), Value::Bool(true)));
    add(
        "metadata-unknown-key.fsimg",
        "valid-app metadata plus key 13, signed.",
        craft(
            &k,
            Purpose::ImagePackage,
            &cbor(&Value::Map(pairs)),
            &app[payload_start..],
        ),
        Some("metadata-unknown-key"),
    );
    let mut pairs = metadata_pairs(&md);
    pairs.swap(0, 1);
    add(
        "metadata-non-canonical.fsimg",
        "valid-app metadata with keys 1 and 2 swapped, signed.",
        craft(
            &k,
            Purpose::ImagePackage,
            &cbor(&Value::Map(pairs)),
            &app[payload_start..],
        ),
        Some("metadata-non-canonical"),
    );
    let mut pairs = metadata_pairs(&md);
    pairs[3].1 = Value::Text("Other".into());
    add(
        "metadata-manifest-inconsistent.fsimg",
        "valid-app metadata whose name differs from the manifest's Name, signed.",
        craft(
            &k,
            Purpose::ImagePackage,
            &cbor(&Value::Map(pairs)),
            &app[payload_start..],
        ),
        Some("metadata-manifest-inconsistent"),
    );
    let mut short = md.clone();
    short.payload_size -= 1;
    short.payload_sha256 = sha256(&app[payload_start..app.len() - 1]);
    add(
        "payload-size-mismatch.fsimg",
        "valid-app whose signed payload size is one byte short.",
        craft(
            &k,
            Purpose::ImagePackage,
            &short.to_cbor().unwrap(),
            &app[payload_start..],
        ),
        Some("trailing-data"),
    );

    let mut other_manifest = manifest.clone();
    other_manifest.push(b' ');
    let mut e = valid_app_entries(&other_manifest);
    add(
        "manifest-mismatch.fsimg",
        "Signed app whose app_manifest.json has one extra byte.",
        app_with_payload(&raw_tar(&e)),
        Some("archive-manifest-mismatch"),
    );
    e = valid_app_entries(&manifest);
    e.remove(0);
    add(
        "manifest-missing.fsimg",
        "Signed app without app_manifest.json.",
        app_with_payload(&raw_tar(&e)),
        Some("archive-manifest-missing"),
    );
    e = valid_app_entries(&manifest);
    e.remove(1);
    add(
        "entry-point-missing.fsimg",
        "Signed app without bin/app.",
        app_with_payload(&raw_tar(&e)),
        Some("archive-required-file-missing"),
    );
    e = valid_app_entries(&manifest);
    e.push(RawEntry {
        kind: b'2',
        ..RawEntry::file("link", b"")
    });
    add(
        "symlink-entry.fsimg",
        "Signed app with a symlink entry.",
        app_with_payload(&raw_tar(&e)),
        Some("archive-disallowed-entry-type"),
    );
    e = valid_app_entries(&manifest);
    e.insert(0, RawEntry::file("../evil", b"x"));
    add(
        "path-traversal.fsimg",
        "Signed app with an entry ../evil.",
        app_with_payload(&raw_tar(&e)),
        Some("archive-invalid-path"),
    );
    e = valid_app_entries(&manifest);
    e.push(RawEntry::file("data/config.txt", b"again\n"));
    add(
        "duplicate-entry.fsimg",
        "Signed app with data/config.txt twice.",
        app_with_payload(&raw_tar(&e)),
        Some("archive-duplicate-entry"),
    );
    e = valid_app_entries(&manifest);
    e[2].mtime = 1_700_000_000;
    add(
        "nonzero-mtime.fsimg",
        "Signed app with a nonzero mtime.",
        app_with_payload(&raw_tar(&e)),
        Some("archive-non-deterministic-header"),
    );
    let mut t = raw_tar(&valid_app_entries(&manifest));
    let n = t.len();
    t[n - 100] = 1;
    add(
        "data-after-end.fsimg",
        "Signed app with a nonzero byte after the end-of-archive block.",
        app_with_payload(&t),
        Some("archive-data-after-end"),
    );
    let mut t = raw_tar(&valid_app_entries(&manifest));
    t.truncate(t.len() - 1024);
    add(
        "missing-end-of-archive.fsimg",
        "Signed app whose tar lacks the end-of-archive blocks.",
        app_with_payload(&t),
        Some("archive-missing-end"),
    );

    let os = pack_os_bytes(b"\x7fELF");
    let mut osmd = metadata_of(&os);
    let payload = raw_tar(&[RawEntry::file("etc/os-release", b"NAME=Ferrosphere\n")]);
    osmd.payload_size = payload.len() as u64;
    osmd.payload_sha256 = sha256(&payload);
    add(
        "os-without-device-binary.fsimg",
        "Signed OS image without bin/ferro-device.",
        craft(
            &k,
            Purpose::ImagePackage,
            &osmd.to_cbor().unwrap(),
            &payload,
        ),
        Some("archive-required-file-missing"),
    );
    let board = pack_board_bytes();
    let mut bmd = metadata_of(&board);
    let payload = b"[\"not an object\"]";
    bmd.payload_size = payload.len() as u64;
    bmd.payload_sha256 = sha256(payload);
    add(
        "board-config-not-object.fsimg",
        "Signed board config whose payload is a JSON array.",
        craft(&k, Purpose::ImagePackage, &bmd.to_cbor().unwrap(), payload),
        Some("board-config-invalid"),
    );
    v
}
