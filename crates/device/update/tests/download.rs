//! Resumable, size-bounded, hash-checked downloads: resume after a crash, endless, truncated
//! and corrupted downloads, `restart`, `DownloadedPackage::existing`, `prune`, free space, and a
//! property: any split into chunks with crashes at any flushed boundary gives the same package.

mod common;

use std::path::{Path, PathBuf};

use common::sha256;
use ferro_update::download::{FLUSH_BLOCK, FREE_SPACE_RESERVE, ensure_free_space, prune};
use ferro_update::{DownloadedPackage, PartialDownload, UpdateError};
use proptest::prelude::*;

fn package(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

fn part_path(dir: &Path, digest: [u8; 32]) -> PathBuf {
    dir.join(format!("{}.part", hex::encode(digest)))
}

fn done_path(dir: &Path, digest: [u8; 32]) -> PathBuf {
    dir.join(hex::encode(digest))
}

fn file_len(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

#[test]
fn a_download_in_one_go() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = package(200_000, 1);
    let digest = sha256(&bytes);
    let mut d = PartialDownload::open(tmp.path(), digest, bytes.len() as u64).unwrap();
    assert_eq!(d.offset(), 0);
    assert!(!d.is_complete());
    d.append(&bytes).unwrap();
    assert!(d.is_complete());
    let done = d.finish().unwrap();
    assert_eq!(done.sha256(), digest);
    assert_eq!(done.path(), done_path(tmp.path(), digest));
    assert_eq!(std::fs::read(done.path()).unwrap(), bytes);
    assert!(!part_path(tmp.path(), digest).exists());
}

#[test]
fn an_empty_package() {
    let tmp = tempfile::tempdir().unwrap();
    let digest = sha256(b"");
    let d = PartialDownload::open(tmp.path(), digest, 0).unwrap();
    assert!(d.is_complete());
    let done = d.finish().unwrap();
    assert_eq!(std::fs::read(done.path()).unwrap(), b"");
}

#[test]
fn resume_after_a_crash_from_the_flushed_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = package(3 * FLUSH_BLOCK + 1234, 2);
    let digest = sha256(&bytes);
    let len = bytes.len() as u64;

    // First attempt: 100 000 bytes arrive in 1 000-byte chunks (append writes and syncs each
    // whole block), the transfer breaks off, the agent flushes, then the process dies
    // (drop without finish).
    let mut d = PartialDownload::open(tmp.path(), digest, len).unwrap();
    for chunk in bytes[..100_000].chunks(1000) {
        d.append(chunk).unwrap();
        // Whole blocks only: boundaries do not depend on how the stream was split.
        assert!(d.offset().is_multiple_of(FLUSH_BLOCK as u64) && d.offset() <= 100_000);
    }
    assert_eq!(d.offset(), FLUSH_BLOCK as u64, "one block on disk");
    d.flush().unwrap();
    assert_eq!(d.offset(), 100_000);
    drop(d);
    assert_eq!(file_len(&part_path(tmp.path(), digest)), Some(100_000));

    // Second attempt: a crash before the flush loses only what was pending.
    let mut d = PartialDownload::open(tmp.path(), digest, len).unwrap();
    assert_eq!(d.offset(), 100_000);
    d.append(&bytes[100_000..100_500]).unwrap();
    assert_eq!(d.offset(), 100_000);
    drop(d);

    // Third attempt resumes at 100 000 (the `Range` start) and completes.
    let mut d = PartialDownload::open(tmp.path(), digest, len).unwrap();
    assert_eq!(d.offset(), 100_000);
    for chunk in bytes[100_000..].chunks(7_777) {
        d.append(chunk).unwrap();
    }
    let done = d.finish().unwrap();
    assert_eq!(std::fs::read(done.path()).unwrap(), bytes);
}

#[test]
fn an_endless_download_stops_at_the_first_byte_too_many() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = package(150_000, 3);
    let digest = sha256(&bytes);
    let len = bytes.len() as u64;
    let mut d = PartialDownload::open(tmp.path(), digest, len).unwrap();
    let mut sent = 0u64;
    // The server never stops sending.
    let err = loop {
        let chunk = package(10_000, sent as u8);
        match d.append(&chunk) {
            Ok(()) => sent += chunk.len() as u64,
            Err(e) => break e,
        }
        assert!(sent <= len, "accepted more bytes than the package has");
        if let Some(on_disk) = file_len(&part_path(tmp.path(), digest)) {
            assert!(on_disk <= len);
        }
    };
    assert!(
        matches!(&err, UpdateError::TooLong { sha256, expected } if *sha256 == hex::encode(digest) && *expected == len),
        "{err:?}"
    );
    assert_eq!(sent, 150_000);
    drop(d);
    assert!(!part_path(tmp.path(), digest).exists(), "partial removed");
    assert!(!done_path(tmp.path(), digest).exists());
    // The next attempt starts over.
    let d = PartialDownload::open(tmp.path(), digest, len).unwrap();
    assert_eq!(d.offset(), 0);
}

#[test]
fn one_byte_too_many_in_a_single_chunk() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = package(1000, 4);
    let digest = sha256(&bytes);
    let mut d = PartialDownload::open(tmp.path(), digest, 999).unwrap();
    let err = d.append(&bytes).unwrap_err();
    assert!(
        matches!(err, UpdateError::TooLong { expected: 999, .. }),
        "{err:?}"
    );
    drop(d);
    assert!(!part_path(tmp.path(), digest).exists());
}

#[test]
fn too_long_after_a_resume_removes_the_kept_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = package(100_000, 5);
    let digest = sha256(&bytes);
    let mut d = PartialDownload::open(tmp.path(), digest, 100_000).unwrap();
    d.append(&bytes[..80_000]).unwrap();
    d.flush().unwrap();
    drop(d);
    let mut d = PartialDownload::open(tmp.path(), digest, 100_000).unwrap();
    assert_eq!(d.offset(), 80_000);
    // A server that ignores Range and resends everything from byte 0.
    let err = d.append(&bytes).unwrap_err();
    assert!(matches!(err, UpdateError::TooLong { .. }), "{err:?}");
    drop(d);
    assert!(!part_path(tmp.path(), digest).exists());
}

#[test]
fn a_truncated_download_keeps_its_bytes_for_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = package(120_000, 6);
    let digest = sha256(&bytes);
    let mut d = PartialDownload::open(tmp.path(), digest, 120_000).unwrap();
    d.append(&bytes[..70_001]).unwrap();
    let err = d.finish().unwrap_err();
    assert!(
        matches!(&err, UpdateError::Truncated { sha256, got: 70_001, expected: 120_000 } if *sha256 == hex::encode(digest)),
        "{err:?}"
    );
    assert_eq!(file_len(&part_path(tmp.path(), digest)), Some(70_001));
    assert!(!done_path(tmp.path(), digest).exists());
    let mut d = PartialDownload::open(tmp.path(), digest, 120_000).unwrap();
    assert_eq!(d.offset(), 70_001);
    d.append(&bytes[70_001..]).unwrap();
    assert_eq!(std::fs::read(d.finish().unwrap().path()).unwrap(), bytes);
}

#[test]
fn a_digest_mismatch_discards_the_partial_file() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = package(90_000, 7);
    let digest = sha256(&bytes);
    let mut evil = bytes.clone();
    evil[45_000] ^= 0x80;
    let mut d = PartialDownload::open(tmp.path(), digest, 90_000).unwrap();
    d.append(&evil).unwrap();
    let err = d.finish().unwrap_err();
    assert!(
        matches!(&err, UpdateError::DigestMismatch { expected, got } if *expected == hex::encode(digest) && *got == hex::encode(sha256(&evil))),
        "{err:?}"
    );
    assert!(!part_path(tmp.path(), digest).exists());
    assert!(!done_path(tmp.path(), digest).exists());
    assert!(
        DownloadedPackage::existing(tmp.path(), digest)
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_corrupted_partial_file_is_caught_at_finish() {
    // Bytes kept from an earlier attempt were damaged on disk (or came from another server):
    // the resumed download completes the length but the digest catches it.
    let tmp = tempfile::tempdir().unwrap();
    let bytes = package(70_000, 8);
    let digest = sha256(&bytes);
    std::fs::write(part_path(tmp.path(), digest), vec![0u8; 30_000]).unwrap();
    let mut d = PartialDownload::open(tmp.path(), digest, 70_000).unwrap();
    assert_eq!(d.offset(), 30_000);
    d.append(&bytes[30_000..]).unwrap();
    assert!(matches!(
        d.finish(),
        Err(UpdateError::DigestMismatch { .. })
    ));
    assert!(!part_path(tmp.path(), digest).exists());
}

#[test]
fn a_partial_file_longer_than_the_package_is_discarded_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = package(1000, 9);
    let digest = sha256(&bytes);
    std::fs::write(part_path(tmp.path(), digest), vec![1u8; 5000]).unwrap();
    let mut d = PartialDownload::open(tmp.path(), digest, 1000).unwrap();
    assert_eq!(d.offset(), 0);
    assert_eq!(file_len(&part_path(tmp.path(), digest)), Some(0));
    d.append(&bytes).unwrap();
    assert_eq!(std::fs::read(d.finish().unwrap().path()).unwrap(), bytes);
}

#[test]
fn restart_discards_what_was_received() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = package(100_000, 10);
    let digest = sha256(&bytes);
    let mut d = PartialDownload::open(tmp.path(), digest, 100_000).unwrap();
    d.append(&bytes[..70_000]).unwrap();
    d.flush().unwrap();
    d.append(&bytes[70_000..70_100]).unwrap();
    // The server ignored Range and starts from byte 0.
    d.restart().unwrap();
    assert_eq!(d.offset(), 0);
    assert!(!d.is_complete());
    assert_eq!(file_len(&part_path(tmp.path(), digest)), Some(0));
    d.append(&bytes).unwrap();
    let done = d.finish().unwrap();
    assert_eq!(std::fs::read(done.path()).unwrap(), bytes);
}

#[test]
fn restart_then_crash_resumes_from_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = package(100_000, 11);
    let digest = sha256(&bytes);
    let mut d = PartialDownload::open(tmp.path(), digest, 100_000).unwrap();
    d.append(&bytes[..70_000]).unwrap();
    d.flush().unwrap();
    d.restart().unwrap();
    d.append(&bytes[..10]).unwrap();
    d.flush().unwrap();
    drop(d);
    let mut d = PartialDownload::open(tmp.path(), digest, 100_000).unwrap();
    assert_eq!(d.offset(), 10);
    d.append(&bytes[10..]).unwrap();
    assert_eq!(std::fs::read(d.finish().unwrap().path()).unwrap(), bytes);
}

#[test]
fn existing_rehashes_and_removes_a_corrupted_package() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = package(50_000, 12);
    let digest = sha256(&bytes);
    assert!(
        DownloadedPackage::existing(tmp.path(), digest)
            .unwrap()
            .is_none()
    );
    let done = common::download(tmp.path(), digest, 50_000, &bytes).unwrap();
    assert_eq!(
        DownloadedPackage::existing(tmp.path(), digest).unwrap(),
        Some(done.clone())
    );
    // Flip one bit on disk.
    let mut damaged = bytes.clone();
    damaged[49_999] ^= 1;
    std::fs::write(done.path(), &damaged).unwrap();
    assert!(
        DownloadedPackage::existing(tmp.path(), digest)
            .unwrap()
            .is_none()
    );
    assert!(!done.path().exists(), "the corrupted file is removed");
    // A truncated complete file too.
    let done = common::download(tmp.path(), digest, 50_000, &bytes).unwrap();
    std::fs::write(done.path(), &bytes[..100]).unwrap();
    assert!(
        DownloadedPackage::existing(tmp.path(), digest)
            .unwrap()
            .is_none()
    );
    assert!(!done.path().exists());
}

#[test]
fn prune_keeps_only_wanted_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let packages: Vec<Vec<u8>> = (0..4).map(|i| package(1000 + i, i as u8)).collect();
    let digests: Vec<[u8; 32]> = packages.iter().map(|p| sha256(p)).collect();
    // Two complete, two partial.
    for i in 0..2 {
        common::download(dir, digests[i], packages[i].len() as u64, &packages[i]).unwrap();
    }
    for i in 2..4 {
        let mut d = PartialDownload::open(dir, digests[i], packages[i].len() as u64).unwrap();
        d.append(&packages[i][..500]).unwrap();
        d.flush().unwrap();
    }
    std::fs::write(dir.join("stray-file"), b"x").unwrap();
    prune(dir, &[digests[0], digests[2]]).unwrap();
    let mut left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    let mut want = vec![
        hex::encode(digests[0]),
        format!("{}.part", hex::encode(digests[2])),
    ];
    want.sort();
    assert_eq!(left, want);
    // The kept partial still resumes; the kept package still re-hashes.
    let d = PartialDownload::open(dir, digests[2], packages[2].len() as u64).unwrap();
    assert_eq!(d.offset(), 500);
    assert!(
        DownloadedPackage::existing(dir, digests[0])
            .unwrap()
            .is_some()
    );
    // Keeping nothing empties the directory.
    drop(d);
    prune(dir, &[]).unwrap();
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0);
}

#[test]
fn free_space_is_checked_with_the_reserve() {
    let tmp = tempfile::tempdir().unwrap();
    let err = ensure_free_space(tmp.path(), u64::MAX - 1).unwrap_err();
    assert!(
        matches!(err, UpdateError::NoSpace { needed, available } if needed == u64::MAX && available < needed),
        "{err:?}"
    );
    let available = fs4::available_space(tmp.path()).unwrap();
    if available > FREE_SPACE_RESERVE + 1 {
        ensure_free_space(tmp.path(), 0).unwrap();
        let err =
            ensure_free_space(tmp.path(), available - FREE_SPACE_RESERVE + (1 << 30)).unwrap_err();
        assert!(matches!(err, UpdateError::NoSpace { .. }), "{err:?}");
    }
}

// ---------------------------------------------------------------- property

/// What happens after a chunk arrives.
#[derive(Clone, Copy, Debug)]
enum After {
    /// The transfer goes on.
    Continue,
    /// The agent flushes (the transfer broke off), then the process dies.
    FlushThenCrash,
    /// The process dies without a flush (pending bytes are lost).
    Crash,
}

/// One step of a simulated download: a chunk arrives, then something happens.
#[derive(Clone, Debug)]
struct Step {
    len: usize,
    after: After,
}

fn steps() -> impl Strategy<Value = (usize, Vec<Step>)> {
    (0usize..(3 * FLUSH_BLOCK + 500)).prop_flat_map(|total| {
        let after = prop_oneof![
            2 => Just(After::Continue),
            2 => Just(After::FlushThenCrash),
            1 => Just(After::Crash),
        ];
        let step = (1usize..40_000, after).prop_map(|(len, after)| Step { len, after });
        (Just(total), prop::collection::vec(step, 0..24))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any split of the package into chunks, with a crash (drop and reopen, resuming from the
    /// offset) at any chunk boundary, yields the same `DownloadedPackage`; a crash after a
    /// flush loses nothing, and the bytes on disk never exceed the package's size.
    #[test]
    fn any_split_with_crashes_gives_the_same_package((total, steps) in steps(), seed in any::<u8>()) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let bytes = package(total, seed);
        let digest = sha256(&bytes);
        let reference = {
            let other = tempfile::tempdir().unwrap();
            let d = common::download(other.path(), digest, total as u64, &bytes).unwrap();
            (d.sha256(), std::fs::read(d.path()).unwrap())
        };
        let mut d = PartialDownload::open(dir, digest, total as u64).unwrap();
        // What this transfer has delivered so far (the agent's own count).
        let mut sent = 0usize;
        for step in &steps {
            if sent >= total {
                break;
            }
            let end = (sent + step.len).min(total);
            d.append(&bytes[sent..end]).unwrap();
            sent = end;
            match step.after {
                After::Continue => {}
                After::FlushThenCrash => {
                    d.flush().unwrap();
                    prop_assert_eq!(d.offset() as usize, sent);
                    drop(d);
                    d = PartialDownload::open(dir, digest, total as u64).unwrap();
                    prop_assert_eq!(d.offset() as usize, sent, "nothing flushed is lost");
                }
                After::Crash => {
                    let flushed = d.offset();
                    drop(d);
                    d = PartialDownload::open(dir, digest, total as u64).unwrap();
                    prop_assert_eq!(d.offset(), flushed);
                    prop_assert!(sent - flushed as usize <= FLUSH_BLOCK + step.len);
                    // The next request starts at the offset.
                    sent = flushed as usize;
                }
            }
            let on_disk = file_len(&part_path(dir, digest)).unwrap();
            prop_assert!(on_disk as usize <= total);
        }
        // The rest arrives in one transfer.
        d.append(&bytes[sent..]).unwrap();
        prop_assert!(d.is_complete());
        let done = d.finish().unwrap();
        let want = done_path(dir, digest);
        prop_assert_eq!(done.path(), want.as_path());
        prop_assert_eq!((done.sha256(), std::fs::read(done.path()).unwrap()), reference);
        prop_assert!(!part_path(dir, digest).exists());
        prop_assert_eq!(DownloadedPackage::existing(dir, digest).unwrap(), Some(done));
    }
}
