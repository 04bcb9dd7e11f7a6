//! `resign`: a verified package re-signed with another key keeps its metadata and payload, and
//! a package that does not verify is never re-signed (and leaves nothing behind).

mod common;

use std::path::Path;

use common::*;
use ferro_image::*;
use ferro_rfc6979::Deterministic as _;
use ferro_signing::{SoftwareSigningKey, TrustedKeys};

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn only(key: &SoftwareSigningKey) -> TrustedKeys {
    [key.public_key().clone()].into_iter().collect()
}

#[test]
fn resigned_packages_keep_metadata_and_payload_and_verify_only_with_the_new_key() {
    let new_key = SoftwareSigningKey::generate();
    for pkg in [
        pack_app_bytes(false, &key()),
        pack_app_bytes(true, &key()),
        pack_os_bytes(b"\x7fELF device"),
        pack_board_bytes(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("resigned.fsimg");
        let md = resign(&pkg[..], &trusted(), &new_key, &dest).unwrap();
        assert_eq!(md, metadata_of(&pkg));
        assert_eq!(dir_names(dir.path()), vec!["resigned.fsimg".to_string()]);
        let out = std::fs::read(&dest).unwrap();

        let mut new_payload = Vec::new();
        let v = verify(&out[..], &only(&new_key), &mut new_payload).unwrap();
        assert_eq!(v.metadata(), &md);
        assert_eq!(v.signer(), new_key.key_id());
        let mut old_payload = Vec::new();
        verify(&pkg[..], &trusted(), &mut old_payload).unwrap();
        assert_eq!(new_payload, old_payload);
        assert_eq!(&out[sections(&out).1..], &pkg[sections(&pkg).1..]);

        let err = verify(&out[..], &trusted(), &mut std::io::sink()).unwrap_err();
        assert_eq!(err.code(), "unknown-key");
    }
}

#[test]
fn resigning_is_idempotent_in_content_and_can_chain() {
    // Developer key -> tenant image key -> another key: metadata never changes.
    let tenant = SoftwareSigningKey::generate();
    let other = SoftwareSigningKey::generate();
    let pkg = pack_app_bytes(false, &key());
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.fsimg");
    let b = dir.path().join("b.fsimg");
    let md_a = resign(&pkg[..], &trusted(), &tenant, &a).unwrap();
    let md_b = resign(std::fs::File::open(&a).unwrap(), &only(&tenant), &other, &b).unwrap();
    assert_eq!(md_a, md_b);
    // RFC 6979 (`deterministic()`): re-signing the same bytes with the same key is
    // deterministic.
    let (c, d) = (dir.path().join("c.fsimg"), dir.path().join("d.fsimg"));
    resign(&pkg[..], &trusted(), &tenant.deterministic(), &c).unwrap();
    resign(&pkg[..], &trusted(), &tenant.deterministic(), &d).unwrap();
    assert_eq!(std::fs::read(&c).unwrap(), std::fs::read(&d).unwrap());
}

#[test]
fn refused_sources_leave_nothing_behind() {
    let new_key = SoftwareSigningKey::generate();
    let pkg = pack_app_bytes(false, &key());
    let payload_start = sections(&pkg).1;

    let mut tampered_payload = pkg.clone();
    let last = tampered_payload.len() - 1030;
    tampered_payload[last] ^= 0x01;
    let mut tampered_metadata = pkg.clone();
    tampered_metadata[payload_start - 70] ^= 0x01;
    let mut truncated = pkg.clone();
    truncated.truncate(pkg.len() - 1);
    let mut trailing = pkg.clone();
    trailing.push(0);
    let untrusted = pack_app_bytes(false, &untrusted_key());

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "tampered payload",
            tampered_payload,
            "payload-digest-mismatch",
        ),
        ("tampered metadata", tampered_metadata, ""),
        ("truncated", truncated, "truncated"),
        ("trailing data", trailing, "trailing-data"),
        ("untrusted signer", untrusted, "unknown-key"),
        ("garbage", b"not a package at all".to_vec(), ""),
    ];
    for (what, bytes, code) in cases {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.fsimg");
        let err = resign(&bytes[..], &trusted(), &new_key, &dest).unwrap_err();
        if !code.is_empty() {
            assert_eq!(err.code(), code, "{what}: {err}");
        }
        assert!(
            dir_names(dir.path()).is_empty(),
            "{what}: files left behind"
        );
    }
}

#[test]
fn an_existing_destination_is_untouched_when_resigning_fails() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.fsimg");
    std::fs::write(&dest, b"previous").unwrap();
    let bad = pack_app_bytes(false, &untrusted_key());
    resign(&bad[..], &trusted(), &SoftwareSigningKey::generate(), &dest).unwrap_err();
    assert_eq!(std::fs::read(&dest).unwrap(), b"previous");
    assert_eq!(dir_names(dir.path()), vec!["out.fsimg".to_string()]);
}
