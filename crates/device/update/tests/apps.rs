//! `AppStore`: staging checked packages and switching `installed.json` with one atomic rewrite
//! (a reader sees the old set or the new one), refusing a set whose package is missing, and
//! pruning packages nothing names.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use ferro_image::Version;
use ferro_pki::TargetKind;
use ferro_update::{AppStore, InstalledApp, InstalledApps, UpdateError};
use uuid::Uuid;

const APP: Uuid = Uuid::from_u128(0x1689d8b2_c835_2e27_27ad_e894d6d15fa9);
const OTHER: Uuid = Uuid::from_u128(0x005180bc_402f_4cb3_a662_72937dbcde47);

fn store(w: &World) -> AppStore {
    AppStore::open(w.device.path().join("apps")).unwrap()
}

fn package_files(store: &AppStore) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.root().join("packages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn root_files(store: &AppStore) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// Accept a set naming `pkgs` (and an OS bundle, which the app store ignores), download, check
/// and stage each app that the store does not have yet; return the apps to commit.
fn stage_set(w: &World, store: &AppStore, version: u64, pkgs: &[&Package]) -> InstalledApps {
    let os = pack_os_bundle(
        &w.platform.os_release,
        Version::new(25, 1, version as u32),
        1,
    );
    let mut images: Vec<_> = pkgs.iter().map(|p| p.target()).collect();
    images.push(os.target());
    let accepted = accept_images(w, version, images);
    for pkg in pkgs {
        let t = pkg.target();
        if store.has_package(&t) {
            continue;
        }
        let checked = download_and_check(w, &accepted, &t, pkg).unwrap();
        let from = checked.path().to_path_buf();
        store.stage(checked).unwrap();
        assert!(!from.exists(), "staging moves the download into the store");
        assert!(store.has_package(&t));
    }
    let next = InstalledApps::from_targets(version, &accepted.target_set().images);
    assert!(next.apps.iter().all(|a| a.kind != TargetKind::Os.as_str()));
    next
}

#[test]
fn stage_then_commit_switches_the_set() {
    let w = World::new();
    let store = store(&w);
    assert_eq!(store.installed().unwrap(), InstalledApps::default());
    let app1 = pack_app(&w.a.image_key, APP, Version::new(1, 0, 0), 1);
    let other1 = pack_app(&w.a.image_key, OTHER, Version::new(1, 0, 0), 1);
    let next = stage_set(&w, &store, 1, &[&app1, &other1]);
    // Staged but not committed: nothing is installed yet.
    assert_eq!(store.installed().unwrap(), InstalledApps::default());
    assert!(!store.root().join("installed.json").exists());
    store.commit(&next).unwrap();
    let installed = store.installed().unwrap();
    assert_eq!(installed, next);
    assert_eq!(installed.target_version, 1);
    assert_eq!(installed.apps.len(), 2);
    assert!(
        installed
            .apps
            .windows(2)
            .all(|p| p[0].component_id < p[1].component_id)
    );
    for (a, pkg) in installed.apps.iter().zip([&other1, &app1]) {
        assert!(a.is(&pkg.target()));
        assert_eq!(a, &InstalledApp::from_target(&pkg.target()));
        let bytes = std::fs::read(store.package_path(&a.package_sha256)).unwrap();
        assert_eq!(bytes, pkg.bytes, "the stored package is the package");
    }
    // The commit left no temporary file behind.
    assert_eq!(root_files(&store), vec!["installed.json", "packages"]);

    // Version 2 updates one app and keeps the other.
    let app2 = pack_app(&w.a.image_key, APP, Version::new(2, 0, 0), 2);
    let next2 = stage_set(&w, &store, 2, &[&app2, &other1]);
    assert_eq!(
        store.installed().unwrap(),
        next,
        "still the old set until commit"
    );
    assert_eq!(package_files(&store).len(), 3);
    store.commit(&next2).unwrap();
    assert_eq!(store.installed().unwrap(), next2);
    assert!(!store.installed().unwrap().same_images(&next));
    // Prune drops the replaced package only.
    store.prune(None).unwrap();
    let mut want: Vec<String> = [&app2, &other1]
        .iter()
        .map(|p| format!("{}.imagepackage", hex::encode(p.target().package_sha256)))
        .collect();
    want.sort();
    assert_eq!(package_files(&store), want);
}

#[test]
fn commit_refuses_a_set_whose_package_is_missing() {
    let w = World::new();
    let store = store(&w);
    let app1 = pack_app(&w.a.image_key, APP, Version::new(1, 0, 0), 1);
    let next1 = stage_set(&w, &store, 1, &[&app1]);
    store.commit(&next1).unwrap();
    let manifest = store.root().join("installed.json");
    let before = std::fs::read(&manifest).unwrap();
    // Version 2 names a package that was never staged.
    let app2 = pack_app(&w.a.image_key, APP, Version::new(2, 0, 0), 2);
    let other = pack_app(&w.a.image_key, OTHER, Version::new(1, 0, 0), 1);
    let next2 = InstalledApps::from_targets(2, &sorted(vec![app2.target(), other.target()]));
    let err = store.commit(&next2).unwrap_err();
    assert!(
        matches!(&err, UpdateError::Malformed { path, .. } if path.starts_with(store.root().join("packages"))),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&manifest).unwrap(), before);
    assert_eq!(store.installed().unwrap(), next1);
    // Staging only one of the two still refuses.
    let next2b = stage_set(&w, &store, 2, &[&app2]);
    let mixed = InstalledApps {
        target_version: 2,
        apps: sorted_apps(
            next2b
                .apps
                .iter()
                .cloned()
                .chain([InstalledApp::from_target(&other.target())]),
        ),
    };
    assert!(matches!(
        store.commit(&mixed),
        Err(UpdateError::Malformed { .. })
    ));
    assert_eq!(std::fs::read(&manifest).unwrap(), before);
    assert_eq!(root_files(&store), vec!["installed.json", "packages"]);
}

fn sorted_apps(apps: impl Iterator<Item = InstalledApp>) -> Vec<InstalledApp> {
    let mut v: Vec<_> = apps.collect();
    v.sort_by_key(|a| a.component_id);
    v
}

#[test]
fn commit_on_an_empty_store_refuses_without_creating_the_manifest() {
    let w = World::new();
    let store = store(&w);
    let app = pack_app(&w.a.image_key, APP, Version::new(1, 0, 0), 1);
    let next = InstalledApps::from_targets(1, &[app.target()]);
    assert!(matches!(
        store.commit(&next),
        Err(UpdateError::Malformed { .. })
    ));
    assert!(!store.root().join("installed.json").exists());
    // An empty set needs no package.
    store.commit(&InstalledApps::from_targets(1, &[])).unwrap();
    assert_eq!(store.installed().unwrap().target_version, 1);
}

#[test]
fn prune_keeps_the_installed_and_the_staged_set() {
    let w = World::new();
    let store = store(&w);
    let app1 = pack_app(&w.a.image_key, APP, Version::new(1, 0, 0), 1);
    let next1 = stage_set(&w, &store, 1, &[&app1]);
    store.commit(&next1).unwrap();
    let app2 = pack_app(&w.a.image_key, APP, Version::new(2, 0, 0), 2);
    let next2 = stage_set(&w, &store, 2, &[&app2]);
    std::fs::write(store.root().join("packages").join("stray.tmp"), b"x").unwrap();
    // An update in progress: keep what is staged for it.
    store.prune(Some(&next2)).unwrap();
    assert_eq!(package_files(&store).len(), 2);
    assert!(store.has_package(&app1.target()) && store.has_package(&app2.target()));
    // Without it, the staged package goes too.
    store.prune(None).unwrap();
    assert!(store.has_package(&app1.target()));
    assert!(!store.has_package(&app2.target()));
    assert_eq!(package_files(&store).len(), 1);
}

#[test]
fn staging_a_package_already_in_the_store_is_a_no_op() {
    let w = World::new();
    let store = store(&w);
    let app = pack_app(&w.a.image_key, APP, Version::new(1, 0, 0), 1);
    let accepted = accept_images(&w, 1, vec![app.target()]);
    let first = download_and_check(&w, &accepted, &app.target(), &app).unwrap();
    store.stage(first).unwrap();
    let again = download_and_check(&w, &accepted, &app.target(), &app).unwrap();
    store.stage(again).unwrap();
    assert_eq!(package_files(&store).len(), 1);
    assert_eq!(
        std::fs::read(store.package_path(&hex::encode(app.target().package_sha256))).unwrap(),
        app.bytes
    );
}

#[test]
fn a_malformed_manifest_is_reported_not_a_panic() {
    let w = World::new();
    let store = store(&w);
    let manifest = store.root().join("installed.json");
    for bad in [
        &b""[..],
        b"{",
        b"[]",
        b"{\"targetVersion\": 1}",
        b"{\"targetVersion\": -1, \"apps\": []}",
        b"{\"targetVersion\": 1, \"apps\": [], \"extra\": true}",
        b"\xff\xfe\x00garbage",
    ] {
        std::fs::write(&manifest, bad).unwrap();
        let err = store.installed().unwrap_err();
        assert!(
            matches!(&err, UpdateError::Malformed { path, .. } if *path == manifest),
            "{bad:?}: {err:?}"
        );
    }
    std::fs::write(&manifest, vec![b' '; 64 * 1024 + 1]).unwrap();
    assert!(matches!(
        store.installed(),
        Err(UpdateError::Malformed { .. })
    ));
}

/// A reader that polls `installed.json` while sets are committed one after another always finds
/// a whole old or new manifest, never a torn, empty or missing one.
#[test]
fn a_concurrent_reader_sees_the_old_or_the_new_set() {
    let w = World::new();
    let store = store(&w);
    let app1 = pack_app(&w.a.image_key, APP, Version::new(1, 0, 0), 1);
    let other1 = pack_app(&w.a.image_key, OTHER, Version::new(1, 0, 0), 1);
    let app2 = pack_app(&w.a.image_key, APP, Version::new(2, 0, 0), 2);
    let old = stage_set(&w, &store, 1, &[&app1, &other1]);
    let new = stage_set(&w, &store, 2, &[&app2, &other1]);
    store.commit(&old).unwrap();
    let stop = AtomicBool::new(false);
    let reads = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let got = store.installed().unwrap();
                assert!(got == old || got == new, "{got:?}");
                reads += 1;
            }
            reads
        });
        for i in 0..200 {
            store.commit(if i % 2 == 0 { &new } else { &old }).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        reader.join().unwrap()
    });
    assert!(reads > 0);
    assert_eq!(store.installed().unwrap(), old);
    assert_eq!(root_files(&store), vec!["installed.json", "packages"]);
}

#[test]
fn from_targets_leaves_the_os_out_and_sorts() {
    let w = World::new();
    let app = pack_app(&w.a.image_key, APP, Version::new(1, 0, 0), 1);
    let other = pack_app(&w.a.image_key, OTHER, Version::new(1, 0, 0), 1);
    let os = pack_os_bundle(&w.platform.os_release, Version::new(25, 1, 0), 1);
    let set = InstalledApps::from_targets(7, &[app.target(), os.target(), other.target()]);
    assert_eq!(set.target_version, 7);
    assert_eq!(
        set.apps.iter().map(|a| a.component_id).collect::<Vec<_>>(),
        vec![OTHER, APP]
    );
    let again = InstalledApps::from_targets(8, &[other.target(), app.target()]);
    assert!(set.same_images(&again));
    assert_ne!(set, again);
    // The manifest round-trips through its JSON form.
    let json = serde_json::to_string(&set).unwrap();
    assert!(json.contains("\"packageSha256\""));
    assert_eq!(serde_json::from_str::<InstalledApps>(&json).unwrap(), set);
}
