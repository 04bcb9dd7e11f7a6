//! Pack/verify round trips and every way a package is refused.

mod common;

use std::io::{self, Write};

use common::*;
use ferro_image::*;
use ferro_rfc6979::Deterministic as _;
use ferro_signing::{Purpose, SoftwareSigningKey, TrustedKeys};

#[test]
fn app_round_trip_and_sink_receives_exact_payload() {
    let pkg = pack_app_bytes(false, &key());
    let (_, payload_start) = sections(&pkg);
    let mut sink = Vec::new();
    let v = verify(&pkg[..], &trusted(), &mut sink).unwrap();
    assert_eq!(sink, &pkg[payload_start..]);
    assert_eq!(v.payload_sha256(), sha256(&sink));
    let md = v.metadata();
    assert_eq!(md.image_type, ImageType::App);
    assert_eq!(md.name, "HelloWorld");
    assert_eq!(md.version, Version::new(1, 2, 3));
    assert_eq!(md.security_version, 4);
    let app = md.app.as_ref().unwrap();
    assert_eq!(app.entry_point, "/bin/app");
    assert_eq!(app.manifest_json, app_manifest(false).json_bytes);
    // The payload is the deterministic tar: manifest first, resolved bytes, entry point 0755.
    let mut ar = tar::Archive::new(&sink[..]);
    let names: Vec<(String, u32)> = ar
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().display().to_string(),
                e.header().mode().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("app_manifest.json".into(), 0o644),
            ("bin/app".into(), 0o755),
            ("data/config.txt".into(), 0o644)
        ]
    );
    // Packing is deterministic given a fixed image ID and a deterministic signer.
    assert_eq!(
        pack_app_bytes(false, &key().deterministic()),
        pack_app_bytes(false, &key().deterministic())
    );
    // inspect agrees without a key.
    let u = inspect(&pkg[..]).unwrap();
    assert_eq!(u.claimed_signer, key().key_id());
    assert_eq!(&u.claimed_metadata, md);
}

#[test]
fn os_rt_and_board_round_trip() {
    for (pkg, ty) in [
        (pack_app_bytes(true, &key()), ImageType::RtApp),
        (pack_os_bytes(b"\x7fELF device"), ImageType::Os),
        (pack_board_bytes(), ImageType::BoardConfig),
    ] {
        let v = verify(&pkg[..], &trusted(), &mut io::sink()).unwrap();
        assert_eq!(v.metadata().image_type, ty);
    }
    let b = verify(&pack_board_bytes()[..], &trusted(), &mut io::sink()).unwrap();
    assert_eq!(b.metadata().component_id, BOARD_CONFIG_COMPONENT_ID);
    assert_eq!(b.metadata().name, "virtual-board");
}

#[test]
fn every_single_byte_change_is_refused() {
    let pkg = pack_app_bytes(false, &key());
    let t = trusted();
    for i in 0..pkg.len() {
        for mask in [0x01u8, 0x80] {
            let mut m = pkg.clone();
            m[i] ^= mask;
            let r = verify(&m[..], &t, &mut io::sink());
            assert!(
                r.is_err(),
                "flip {mask:#x} at offset {i} of {} accepted",
                pkg.len()
            );
        }
    }
}

#[test]
fn truncation_at_every_offset_is_refused() {
    let pkg = pack_app_bytes(false, &key());
    let t = trusted();
    for cut in 0..pkg.len() {
        let e = verify(&pkg[..cut], &t, &mut io::sink()).unwrap_err();
        assert_eq!(e.code(), "truncated", "cut at {cut}: {e}");
    }
    for cut in 0..pkg.len() {
        // inspect never panics either.
        let _ = inspect(&pkg[..cut]);
    }
}

#[test]
fn wrong_key_and_empty_trust_refused() {
    let pkg = pack_app_bytes(false, &key());
    let other: TrustedKeys = [SoftwareSigningKey::generate().public_key().clone()]
        .into_iter()
        .collect();
    assert_eq!(
        verify(&pkg[..], &other, &mut io::sink())
            .unwrap_err()
            .code(),
        "unknown-key"
    );
    assert_eq!(
        verify(&pkg[..], &TrustedKeys::new(), &mut io::sink())
            .unwrap_err()
            .code(),
        "unknown-key"
    );
}

#[test]
fn inspect_refuses_other_purposes() {
    let md = metadata_of(&pack_app_bytes(false, &key()));
    let pkg = craft(&key(), Purpose::CapabilityFile, &md.to_cbor().unwrap(), b"");
    assert_eq!(inspect(&pkg[..]).unwrap_err().code(), "wrong-purpose");
}

struct FailingSink;
impl Write for FailingSink {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::other("disk full"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct FailingReader<'a>(&'a [u8], usize);
impl io::Read for FailingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.1 == 0 {
            return Err(io::Error::other("EIO"));
        }
        let n = buf.len().min(self.1).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        self.1 -= n;
        Ok(n)
    }
}

#[test]
fn sink_and_source_failures_are_reported_as_such() {
    let pkg = pack_app_bytes(false, &key());
    let e = verify(&pkg[..], &trusted(), &mut FailingSink).unwrap_err();
    assert_eq!(e.code(), "sink");
    let (_, payload_start) = sections(&pkg);
    let e = verify(
        FailingReader(&pkg, payload_start + 700),
        &trusted(),
        &mut io::sink(),
    )
    .unwrap_err();
    assert_eq!(e.code(), "io");
    let e = verify(FailingReader(&pkg, 5), &trusted(), &mut io::sink()).unwrap_err();
    assert_eq!(e.code(), "io");
}

#[test]
fn pack_refuses_bad_inputs_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    app_dir(&src, false);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let dest = out.join("x.fsimg");
    let listing = || std::fs::read_dir(&out).unwrap().count();

    // Entry point missing.
    let mut m = app_manifest(false);
    m.entry_point = "/bin/missing".into();
    m.json_bytes = app_manifest_json("HelloWorld", APP_COMPONENT, "/bin/missing", false);
    let e = pack_application(&src, &m, &options(0), &key(), &dest).unwrap_err();
    assert_eq!(e.code(), "pack-input");
    // Manifest inconsistent with the struct.
    let mut m = app_manifest(false);
    m.name = "Other".into();
    let e = pack_application(&src, &m, &options(0), &key(), &dest).unwrap_err();
    assert_eq!(e.code(), "metadata-manifest-inconsistent");
    // rt flag disagrees with ApplicationType.
    let mut m = app_manifest(false);
    m.is_real_time = true;
    assert!(pack_application(&src, &m, &options(0), &key(), &dest).is_err());
    // Symlink in the package directory.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/passwd", src.join("data/link")).unwrap();
        let e =
            pack_application(&src, &app_manifest(false), &options(0), &key(), &dest).unwrap_err();
        assert_eq!(e.code(), "pack-input");
        std::fs::remove_file(src.join("data/link")).unwrap();
    }
    // OS dir without bin/ferro-device.
    let e = pack_os(&src, &options(0), &key(), &dest).unwrap_err();
    assert_eq!(e.code(), "pack-input");
    // Board config that is not an object.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, b"[1]").unwrap();
    let e = pack_board_config(&bad, &options(0), &key(), &dest).unwrap_err();
    assert_eq!(e.code(), "board-config-invalid");
    assert_eq!(listing(), 0, "a failed pack left files behind");
    // A successful pack leaves exactly the package.
    pack_application(&src, &app_manifest(false), &options(0), &key(), &dest).unwrap();
    assert_eq!(listing(), 1);
    verify_file(&dest, &trusted(), &mut io::sink()).unwrap();
}

#[test]
fn random_image_ids_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    app_dir(&src, false);
    let mut ids = Vec::new();
    for i in 0..2 {
        let dest = dir.path().join(format!("{i}.fsimg"));
        let opts = PackOptions::default();
        ids.push(
            pack_application(&src, &app_manifest(false), &opts, &key(), &dest)
                .unwrap()
                .image_id,
        );
    }
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn version_parse_and_order() {
    let v: Version = "1.10.0".parse().unwrap();
    assert!(v > Version::new(1, 9, 99));
    assert_eq!(v.to_string(), "1.10.0");
    for bad in [
        "1.2",
        "1.2.3.4",
        "a.b.c",
        "1..2",
        "-1.0.0",
        "+1.0.0",
        "99999999999.0.0",
    ] {
        assert!(bad.parse::<Version>().is_err(), "{bad}");
    }
}
