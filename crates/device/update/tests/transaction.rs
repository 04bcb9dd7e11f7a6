//! `Transaction`: save, load and finish round trip through `update/transaction.json`, and a
//! malformed file is reported as `Malformed`, never a panic.

use ferro_update::{
    InstalledApp, InstalledApps, OsSwitch, Phase, Transaction, UpdateDir, UpdateError,
};
use uuid::Uuid;

fn dir() -> (tempfile::TempDir, UpdateDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = UpdateDir::open(tmp.path().join("update")).unwrap();
    (tmp, dir)
}

fn apps() -> InstalledApps {
    InstalledApps {
        target_version: 9,
        apps: vec![InstalledApp {
            component_id: Uuid::from_u128(1),
            image_id: Uuid::from_u128(2),
            kind: "App".into(),
            version: "1.2.3".into(),
            security_version: 4,
            package_sha256: "ab".repeat(32),
        }],
    }
}

fn transactions() -> Vec<Transaction> {
    let os = OsSwitch {
        slot: "b".into(),
        image_id: Uuid::from_u128(3),
        version: "25.1.0".into(),
    };
    let mut v = Vec::new();
    for phase in [Phase::Staged, Phase::OsPending, Phase::Committed] {
        for next_apps in [None, Some(apps())] {
            for os in [None, Some(os.clone())] {
                v.push(Transaction {
                    target_version: 9,
                    phase,
                    next_apps: next_apps.clone(),
                    previous_apps: InstalledApps::default(),
                    os,
                    started_at: 1_800_000_000,
                });
            }
        }
    }
    v
}

#[test]
fn nothing_in_progress_at_first() {
    let (_t, dir) = dir();
    assert_eq!(Transaction::load(&dir).unwrap(), None);
    // Finishing when nothing is in progress is fine.
    Transaction::finish(&dir).unwrap();
}

#[test]
fn save_load_finish_round_trip() {
    let (_t, dir) = dir();
    for t in transactions() {
        t.save(&dir).unwrap();
        assert_eq!(Transaction::load(&dir).unwrap(), Some(t.clone()));
        // Each save replaces the previous one, with no temporary file left behind.
        let names: Vec<_> = std::fs::read_dir(dir.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }
    Transaction::finish(&dir).unwrap();
    assert!(!dir.transaction().exists());
    assert_eq!(Transaction::load(&dir).unwrap(), None);
    Transaction::finish(&dir).unwrap();
}

#[test]
fn a_transaction_survives_reopening_the_directory() {
    let (tmp, dir) = dir();
    let t = transactions().pop().unwrap();
    t.save(&dir).unwrap();
    let reopened = UpdateDir::open(tmp.path().join("update")).unwrap();
    assert_eq!(reopened, dir);
    assert_eq!(Transaction::load(&reopened).unwrap(), Some(t));
}

#[test]
fn phases_are_stored_by_name() {
    let (_t, dir) = dir();
    let t = Transaction {
        target_version: 1,
        phase: Phase::OsPending,
        next_apps: None,
        previous_apps: apps(),
        os: None,
        started_at: 0,
    };
    t.save(&dir).unwrap();
    let text = std::fs::read_to_string(dir.transaction()).unwrap();
    assert!(text.contains("\"OsPending\""), "{text}");
    assert!(text.contains("\"targetVersion\""), "{text}");
}

/// Malformed `transaction.json` contents: each gives `Malformed` naming the file.
const MALFORMED: &[(&str, &[u8])] = &[
    ("empty", b""),
    ("whitespace", b"  \n"),
    ("truncated JSON", b"{\"targetVersion\": 9, \"phase\": \"Sta"),
    ("null", b"null"),
    ("array", b"[]"),
    ("a number", b"42"),
    ("binary garbage", b"\x00\xff\xfe\x01garbage"),
    (
        "unknown phase",
        b"{\"targetVersion\":1,\"phase\":\"Installing\",\"nextApps\":null,\"previousApps\":{\"targetVersion\":0,\"apps\":[]},\"os\":null,\"startedAt\":0}",
    ),
    (
        "missing phase",
        b"{\"targetVersion\":1,\"nextApps\":null,\"previousApps\":{\"targetVersion\":0,\"apps\":[]},\"os\":null,\"startedAt\":0}",
    ),
    (
        "negative version",
        b"{\"targetVersion\":-1,\"phase\":\"Staged\",\"nextApps\":null,\"previousApps\":{\"targetVersion\":0,\"apps\":[]},\"os\":null,\"startedAt\":0}",
    ),
    (
        "version as text",
        b"{\"targetVersion\":\"1\",\"phase\":\"Staged\",\"nextApps\":null,\"previousApps\":{\"targetVersion\":0,\"apps\":[]},\"os\":null,\"startedAt\":0}",
    ),
    (
        "unknown field",
        b"{\"targetVersion\":1,\"phase\":\"Staged\",\"nextApps\":null,\"previousApps\":{\"targetVersion\":0,\"apps\":[]},\"os\":null,\"startedAt\":0,\"x\":1}",
    ),
    (
        "unknown field in the OS switch",
        b"{\"targetVersion\":1,\"phase\":\"Staged\",\"nextApps\":null,\"previousApps\":{\"targetVersion\":0,\"apps\":[]},\"os\":{\"slot\":\"a\",\"imageId\":\"00000000-0000-0000-0000-000000000001\",\"version\":\"1.0.0\",\"x\":0},\"startedAt\":0}",
    ),
    (
        "bad image ID",
        b"{\"targetVersion\":1,\"phase\":\"Staged\",\"nextApps\":null,\"previousApps\":{\"targetVersion\":0,\"apps\":[]},\"os\":{\"slot\":\"a\",\"imageId\":\"nope\",\"version\":\"1.0.0\"},\"startedAt\":0}",
    ),
    (
        "apps not a list",
        b"{\"targetVersion\":1,\"phase\":\"Staged\",\"nextApps\":{\"targetVersion\":1,\"apps\":7},\"previousApps\":{\"targetVersion\":0,\"apps\":[]},\"os\":null,\"startedAt\":0}",
    ),
    (
        "trailing data",
        b"{\"targetVersion\":1,\"phase\":\"Staged\",\"nextApps\":null,\"previousApps\":{\"targetVersion\":0,\"apps\":[]},\"os\":null,\"startedAt\":0} {}",
    ),
    ("deeply nested", &[b'['; 10_000]),
];

#[test]
fn a_malformed_transaction_file_is_malformed_not_a_panic() {
    let (_t, dir) = dir();
    // The well-formed base of the cases above parses.
    std::fs::write(
        dir.transaction(),
        b"{\"targetVersion\":1,\"phase\":\"Staged\",\"nextApps\":null,\"previousApps\":{\"targetVersion\":0,\"apps\":[]},\"os\":null,\"startedAt\":0}",
    )
    .unwrap();
    assert!(Transaction::load(&dir).unwrap().is_some());
    for (name, bytes) in MALFORMED {
        std::fs::write(dir.transaction(), bytes).unwrap();
        let result = std::panic::catch_unwind(|| Transaction::load(&dir));
        let Ok(result) = result else {
            panic!("{name}: panicked");
        };
        match result {
            Err(UpdateError::Malformed { path, .. }) => {
                assert_eq!(path, dir.transaction(), "{name}")
            }
            other => panic!("{name}: {other:?}"),
        }
        // A malformed file can be cleared.
        Transaction::finish(&dir).unwrap();
        assert_eq!(Transaction::load(&dir).unwrap(), None, "{name}");
    }
}

#[test]
fn an_oversized_transaction_file_is_malformed() {
    let (_t, dir) = dir();
    let mut big = b"{\"targetVersion\":1,\"phase\":\"Staged\",\"nextApps\":null,\"previousApps\":{\"targetVersion\":0,\"apps\":[]},\"os\":null,\"startedAt\":0}"
        .to_vec();
    big.resize(64 * 1024 + 1, b' ');
    std::fs::write(dir.transaction(), &big).unwrap();
    assert!(matches!(
        Transaction::load(&dir),
        Err(UpdateError::Malformed { .. })
    ));
}

#[test]
fn a_directory_in_place_of_the_file_is_an_error_not_a_panic() {
    let (_t, dir) = dir();
    std::fs::create_dir(dir.transaction()).unwrap();
    assert!(matches!(
        Transaction::load(&dir),
        Err(UpdateError::Io { .. } | UpdateError::Malformed { .. })
    ));
    assert!(Transaction::finish(&dir).is_err());
}
