//! `check_package`: a downloaded package must verify under the right keys (OS bundles under the
//! key list's OS release keys, everything else under the owning tenant's image keys), be
//! exactly what its target entry names, and not be below its component's anti-rollback floor.
//! Every refusal leaves the root of trust's counters as they were.

mod common;

use common::*;
use ferro_image::{ImageError, OS_COMPONENT_ID, Version};
use ferro_pki::{TargetImage, TargetKind};
use ferro_signing::VerifyError;
use ferro_trust::RootOfTrust;
use ferro_update::package::OS_FLOOR_COUNTER;
use ferro_update::{UpdateError, check_package, component_floor_counter};
use uuid::Uuid;

const APP: Uuid = Uuid::from_u128(0x1689d8b2_c835_2e27_27ad_e894d6d15fa9);
const OTHER_APP: Uuid = Uuid::from_u128(0x005180bc_402f_4cb3_a662_72937dbcde47);

fn app_v1(w: &World) -> Package {
    pack_app(&w.a.image_key, APP, Version::new(1, 0, 0), 3)
}

fn os_v1(w: &World) -> Package {
    pack_os_bundle(&w.platform.os_release, Version::new(25, 1, 0), 2)
}

#[test]
fn correct_app_and_os_packages_are_accepted() {
    let w = World::new();
    let app = app_v1(&w);
    let os = os_v1(&w);
    let accepted = accept_images(&w, 1, vec![app.target(), os.target()]);
    for (pkg, kind) in [(&app, TargetKind::App), (&os, TargetKind::Os)] {
        let target = accepted
            .target_set()
            .images
            .iter()
            .find(|i| i.kind == kind)
            .unwrap()
            .clone();
        let checked = download_and_check(&w, &accepted, &target, pkg).unwrap();
        assert_eq!(checked.target(), &target);
        assert_eq!(checked.image().metadata(), &pkg.metadata);
        assert_eq!(
            checked.image().payload_sha256(),
            pkg.metadata.payload_sha256
        );
        assert_eq!(
            checked.path(),
            w.device
                .dir
                .downloads()
                .join(hex::encode(target.package_sha256))
        );
    }
    assert_eq!(
        check_signer(&w, &accepted, &app),
        w.a.image_key.key_id(),
        "the app verifies under the owner's image key"
    );
}

fn check_signer(
    w: &World,
    accepted: &ferro_update::AcceptedTargetSet,
    pkg: &Package,
) -> ferro_signing::KeyId {
    let target = pkg.target();
    let d =
        ferro_update::DownloadedPackage::existing(&w.device.dir.downloads(), target.package_sha256)
            .unwrap()
            .unwrap();
    check_package(&d, &target, accepted, &w.platform.key_list, &w.device.rot)
        .unwrap()
        .image()
        .signer()
}

#[test]
fn at_the_floor_is_accepted() {
    let w = World::new();
    let app = app_v1(&w);
    let os = os_v1(&w);
    w.device
        .rot
        .advance_counter(&component_floor_counter(APP, TargetKind::App), 3)
        .unwrap();
    w.device.rot.advance_counter(OS_FLOOR_COUNTER, 2).unwrap();
    let accepted = accept_images(&w, 1, vec![app.target(), os.target()]);
    download_and_check(&w, &accepted, &app.target(), &app).unwrap();
    download_and_check(&w, &accepted, &os.target(), &os).unwrap();
}

#[test]
fn floor_counter_names() {
    assert_eq!(
        component_floor_counter(OS_COMPONENT_ID, TargetKind::Os),
        "os-security-version"
    );
    assert_eq!(
        component_floor_counter(APP, TargetKind::App),
        "1689d8b2c8352e2727ade894d6d15fa9"
    );
    assert_eq!(
        component_floor_counter(APP, TargetKind::RtApp),
        component_floor_counter(APP, TargetKind::BoardConfig)
    );
}

// ---------------------------------------------------------------- refusals, as data

/// What a case does to the world before the check: the package served, the target entry the
/// (signed, accepted) set names for it, and counters to raise first.
struct Offer {
    package: Package,
    target: TargetImage,
    floors: Vec<(String, u64)>,
}

struct Refusal {
    name: &'static str,
    offer: fn(&World) -> Offer,
    refused: fn(&UpdateError) -> bool,
}

fn exact(package: Package) -> Offer {
    Offer {
        target: package.target(),
        package,
        floors: Vec::new(),
    }
}

fn mutated(package: Package, change: fn(&mut TargetImage)) -> Offer {
    let mut target = package.target();
    change(&mut target);
    Offer {
        target,
        package,
        floors: Vec::new(),
    }
}

fn unknown_key(e: &UpdateError) -> bool {
    matches!(
        e,
        UpdateError::Package {
            source: ImageError::Signature(VerifyError::UnknownKey(_)),
            ..
        }
    )
}

fn not_the_target(e: &UpdateError, field: &str) -> bool {
    matches!(e, UpdateError::NotTheTarget { reason, .. } if reason == field)
}

const REFUSALS: &[Refusal] = &[
    Refusal {
        name: "an app of another tenant (signed by its image key)",
        offer: |w| exact(pack_app(&w.b.image_key, APP, Version::new(1, 0, 0), 3)),
        refused: unknown_key,
    },
    Refusal {
        name: "an app signed by the owner's metadata key",
        offer: |w| exact(pack_app(&w.a.metadata_key, APP, Version::new(1, 0, 0), 3)),
        refused: unknown_key,
    },
    Refusal {
        name: "an app signed by the OS release key",
        offer: |w| {
            exact(pack_app(
                &w.platform.os_release,
                APP,
                Version::new(1, 0, 0),
                3,
            ))
        },
        refused: unknown_key,
    },
    Refusal {
        name: "an app signed by the tenant endorsement key",
        offer: |w| {
            exact(pack_app(
                &w.platform.endorsement,
                APP,
                Version::new(1, 0, 0),
                3,
            ))
        },
        refused: unknown_key,
    },
    Refusal {
        name: "an OS bundle signed by the owner's image key",
        offer: |w| exact(pack_os_bundle(&w.a.image_key, Version::new(25, 1, 0), 2)),
        refused: unknown_key,
    },
    Refusal {
        name: "an OS bundle signed by the platform root",
        offer: |w| exact(pack_os_bundle(&w.platform.root, Version::new(25, 1, 0), 2)),
        refused: unknown_key,
    },
    Refusal {
        name: "an app named as the OS (verified under the OS release keys)",
        offer: |w| mutated(app_v1(w), |t| t.kind = TargetKind::Os),
        refused: unknown_key,
    },
    Refusal {
        name: "a real OS bundle named as an app (verified under the tenant's image keys)",
        offer: |w| mutated(os_v1(w), |t| t.kind = TargetKind::App),
        refused: unknown_key,
    },
    Refusal {
        name: "another image ID",
        offer: |w| mutated(app_v1(w), |t| t.image_id = Uuid::from_u128(42)),
        refused: |e| not_the_target(e, "image ID"),
    },
    Refusal {
        name: "another component",
        offer: |w| mutated(app_v1(w), |t| t.component_id = OTHER_APP),
        refused: |e| not_the_target(e, "component ID"),
    },
    Refusal {
        name: "another type (rt app)",
        offer: |w| mutated(app_v1(w), |t| t.kind = TargetKind::RtApp),
        refused: |e| not_the_target(e, "image type"),
    },
    Refusal {
        name: "another type (board configuration)",
        offer: |w| mutated(app_v1(w), |t| t.kind = TargetKind::BoardConfig),
        refused: |e| not_the_target(e, "image type"),
    },
    Refusal {
        name: "a higher security version in the target than in the package",
        offer: |w| mutated(app_v1(w), |t| t.security_version = 4),
        refused: |e| not_the_target(e, "security version"),
    },
    Refusal {
        name: "a lower security version in the target than in the package",
        offer: |w| mutated(app_v1(w), |t| t.security_version = 2),
        refused: |e| not_the_target(e, "security version"),
    },
    Refusal {
        name: "another payload digest",
        offer: |w| mutated(app_v1(w), |t| t.payload_sha256 = [7; 32]),
        refused: |e| not_the_target(e, "payload digest"),
    },
    Refusal {
        name: "another version",
        offer: |w| mutated(app_v1(w), |t| t.version = "1.0.1".into()),
        refused: |e| not_the_target(e, "version"),
    },
    Refusal {
        name: "an older package served for a newer target (version and image ID differ)",
        offer: |w| {
            let old = pack_app(&w.a.image_key, APP, Version::new(0, 9, 0), 3);
            let new = pack_app(&w.a.image_key, APP, Version::new(1, 0, 0), 3);
            let mut target = new.target();
            target.package_sha256 = sha256(&old.bytes);
            target.package_size = old.bytes.len() as u64;
            Offer {
                package: old,
                target,
                floors: Vec::new(),
            }
        },
        refused: |e| not_the_target(e, "image ID"),
    },
    Refusal {
        name: "an app below its component's floor (security version downgrade)",
        offer: |w| Offer {
            floors: vec![(component_floor_counter(APP, TargetKind::App), 4)],
            ..exact(app_v1(w))
        },
        refused: |e| {
            matches!(
                e,
                UpdateError::BelowFloor {
                    component_id: APP,
                    security_version: 3,
                    floor: 4,
                    ..
                }
            )
        },
    },
    Refusal {
        name: "an OS below the OS floor",
        offer: |w| Offer {
            floors: vec![(OS_FLOOR_COUNTER.to_string(), 3)],
            ..exact(os_v1(w))
        },
        refused: |e| {
            matches!(
                e,
                UpdateError::BelowFloor {
                    component_id: OS_COMPONENT_ID,
                    security_version: 2,
                    floor: 3,
                    ..
                }
            )
        },
    },
];

#[test]
fn every_refusal_has_its_error_and_changes_no_counter() {
    let mut failures = Vec::new();
    for case in REFUSALS {
        let w = World::new();
        let offer = (case.offer)(&w);
        for (name, floor) in &offer.floors {
            w.device.rot.advance_counter(name, *floor).unwrap();
        }
        let accepted = accept_images(&w, 1, vec![offer.target.clone()]);
        let before = w.device.snapshot();
        match download_and_check(&w, &accepted, &offer.target, &offer.package) {
            Ok(_) => failures.push(format!("{}: accepted", case.name)),
            Err(e) if !(case.refused)(&e) => {
                failures.push(format!("{}: wrong error {e:?}", case.name))
            }
            Err(_) => {}
        }
        if w.device.snapshot() != before {
            failures.push(format!(
                "{}: changed the update directory or the counters",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The realistic downgrade: version 2 (security version 5) is installed and the floor raised;
/// then a newer target set names the old version 1 (security version 3) again.
#[test]
fn a_downgrade_after_the_floor_rose_is_refused() {
    let w = World::new();
    let v1 = app_v1(&w);
    let v2 = pack_app(&w.a.image_key, APP, Version::new(2, 0, 0), 5);
    let accepted = accept_images(&w, 1, vec![v2.target()]);
    let checked = download_and_check(&w, &accepted, &v2.target(), &v2).unwrap();
    // Confirmed healthy: the floor rises to the installed security version.
    let counter = component_floor_counter(APP, TargetKind::App);
    w.device
        .rot
        .advance_counter(
            &counter,
            u64::from(checked.image().metadata().security_version),
        )
        .unwrap();
    let accepted = accept_images(&w, 2, vec![v1.target()]);
    let err = download_and_check(&w, &accepted, &v1.target(), &v1).unwrap_err();
    assert!(
        matches!(
            err,
            UpdateError::BelowFloor {
                security_version: 3,
                floor: 5,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(w.device.rot.counter(&counter).unwrap(), 5);
    // A version downgrade at the same security version is not an anti-rollback matter.
    let v3_old = pack_app(&w.a.image_key, APP, Version::new(1, 5, 0), 5);
    let accepted = accept_images(&w, 3, vec![v3_old.target()]);
    download_and_check(&w, &accepted, &v3_old.target(), &v3_old).unwrap();
}

/// Bytes other than the target's digest never reach `check_package`.
#[test]
fn a_package_that_differs_from_the_target_digest_is_caught_at_download() {
    let w = World::new();
    let app = app_v1(&w);
    let target = app.target();
    accept_images(&w, 1, vec![target.clone()]);
    let downloads = w.device.dir.downloads();
    // One flipped bit anywhere: header, signature, payload.
    for at in [0, 20, app.bytes.len() / 2, app.bytes.len() - 1] {
        let mut evil = app.bytes.clone();
        evil[at] ^= 1;
        let err = download(
            &downloads,
            target.package_sha256,
            target.package_size,
            &evil,
        )
        .unwrap_err();
        assert!(
            matches!(err, UpdateError::DigestMismatch { .. }),
            "{at}: {err:?}"
        );
        assert_eq!(std::fs::read_dir(&downloads).unwrap().count(), 0, "{at}");
    }
    // Another valid, signed package of the same tenant served for this target.
    let other = pack_app(&w.a.image_key, APP, Version::new(1, 0, 0), 3);
    let mut padded = other.bytes.clone();
    padded.resize(app.bytes.len(), 0);
    let result = download(
        &downloads,
        target.package_sha256,
        target.package_size,
        &padded,
    );
    assert!(
        matches!(
            result,
            Err(UpdateError::DigestMismatch { .. } | UpdateError::TooLong { .. })
        ),
        "{result:?}"
    );
    assert_eq!(std::fs::read_dir(&downloads).unwrap().count(), 0);
    // The right bytes pass.
    download(
        &downloads,
        target.package_sha256,
        target.package_size,
        &app.bytes,
    )
    .unwrap();
}

#[test]
fn a_target_set_of_another_tenant_cannot_name_its_images_for_this_device() {
    // Tenant B's app, named in tenant A's (validly signed) set: A's set may name anything, but
    // the image must still verify under A's image keys.
    let w = World::new();
    let b_app = pack_app(&w.b.image_key, APP, Version::new(1, 0, 0), 3);
    let accepted = accept_images(&w, 1, vec![b_app.target()]);
    let err = download_and_check(&w, &accepted, &b_app.target(), &b_app).unwrap_err();
    assert!(unknown_key(&err), "{err:?}");
    assert_ne!(w.b.image_key.public_key().key_id(), w.a.image_key.key_id());
}
