//! `accept_target_set`: what is accepted and stored, and a table of attacks, each refused with
//! its own `UpdateError` and leaving every file of `update/` and of the root of trust (so the
//! `target-set-version` counter) exactly as it was.

mod common;

use common::*;
use ferro_pki::{CapabilityFile, DocumentError, PlatformKeyRole, VerifiedKeyList};
use ferro_signing::{DeviceId, SoftwareSigningKey, VerifyError};
use ferro_update::{UpdateError, accept_target_set};
use time::OffsetDateTime;

// ---------------------------------------------------------------- acceptance

#[test]
fn a_valid_set_is_accepted_stored_and_raises_the_counter() {
    let w = World::new();
    assert_eq!(w.device.counter(), 0);
    assert!(
        w.device
            .dir
            .load_accepted(&w.platform.key_list, &w.device.id)
            .unwrap()
            .is_none()
    );
    let set = w.set_a(5, at(0));
    let target = w.sign_a(&set);
    let ownership = w.ownership_a();
    let accepted = w.accept_bytes(&target, &ownership, None).unwrap();
    assert_eq!(accepted.target_set(), &set);
    assert_eq!(accepted.ownership().tenant_id(), w.a.id);
    assert_eq!(w.device.counter(), 5);
    assert_eq!(std::fs::read(w.device.dir.target_set()).unwrap(), target);
    assert_eq!(std::fs::read(w.device.dir.ownership()).unwrap(), ownership);
    assert_eq!(w.device.dir.service_time().unwrap(), at(0));
    let loaded = w
        .device
        .dir
        .load_accepted(&w.platform.key_list, &w.device.id)
        .unwrap()
        .unwrap();
    assert_eq!(loaded.target_set(), &set);
    assert_eq!(loaded.ownership().tenant_id(), w.a.id);
}

#[test]
fn higher_versions_raise_the_counter_and_replace_the_stored_set() {
    let w = World::new();
    for (i, v) in [1u64, 2, 7, 8, 100].into_iter().enumerate() {
        let set = w.set_a(v, at(i as i64 * HOUR));
        let bytes = w.sign_a(&set);
        w.accept_bytes(&bytes, &w.ownership_a(), None).unwrap();
        assert_eq!(w.device.counter(), v);
        assert_eq!(std::fs::read(w.device.dir.target_set()).unwrap(), bytes);
        assert_eq!(w.device.dir.service_time().unwrap(), at(i as i64 * HOUR));
    }
}

#[test]
fn an_equal_version_is_accepted_again() {
    let w = World::new();
    let set = w.set_a(5, at(0));
    w.accept(&set).unwrap();
    // The same bytes again.
    let bytes = std::fs::read(w.device.dir.target_set()).unwrap();
    w.accept_bytes(&bytes, &w.ownership_a(), None).unwrap();
    assert_eq!(w.device.counter(), 5);
    // The same version re-signed later (a new issued_at, as an update check answers).
    let again = w.set_a(5, at(HOUR));
    w.accept(&again).unwrap();
    assert_eq!(w.device.counter(), 5);
    assert_eq!(w.device.dir.service_time().unwrap(), at(HOUR));
}

#[test]
fn the_service_time_only_moves_forward() {
    let w = World::new();
    // The hint (the device certificate's notBefore) is newer than the set.
    w.accept_bytes(
        &w.sign_a(&w.set_a(1, at(0))),
        &w.ownership_a(),
        Some(at(2 * HOUR)),
    )
    .unwrap();
    assert_eq!(w.device.dir.service_time().unwrap(), at(2 * HOUR));
    // A newer set issued before the stored time (still valid): the time stays.
    w.accept(&w.set_a(2, at(HOUR))).unwrap();
    assert_eq!(w.device.dir.service_time().unwrap(), at(2 * HOUR));
    // observe_service_time never goes back either.
    assert_eq!(
        w.device.dir.observe_service_time(at(0)).unwrap(),
        at(2 * HOUR)
    );
    assert_eq!(
        w.device.dir.observe_service_time(at(3 * HOUR)).unwrap(),
        at(3 * HOUR)
    );
    assert_eq!(w.device.dir.service_time().unwrap(), at(3 * HOUR));
}

#[test]
fn a_newer_ownership_document_replaces_the_stored_one() {
    let w = World::new();
    w.accept(&w.set_a(1, at(0))).unwrap();
    // Tenant A rotates its metadata key: a newer ownership document lists the new one.
    let mut a2 = Tenant::new();
    a2.id = w.a.id;
    let newer = ownership_doc(&a2, w.device.id, at(-DAY))
        .sign(&w.platform.endorsement)
        .unwrap();
    let set = target_set(&a2, w.device.id, 2, at(HOUR));
    let bytes = set.sign(&a2.metadata_key).unwrap();
    let accepted = w.accept_bytes(&bytes, &newer, None).unwrap();
    assert_eq!(accepted.target_set(), &set);
    assert_eq!(std::fs::read(w.device.dir.ownership()).unwrap(), newer);
    let loaded = w
        .device
        .dir
        .load_accepted(&w.platform.key_list, &w.device.id)
        .unwrap()
        .unwrap();
    assert_eq!(loaded.target_set(), &set);
    // A set signed with the rotated-out metadata key no longer verifies.
    let before = w.device.snapshot();
    let old_key_set = w.sign_a(&w.set_a(3, at(2 * HOUR)));
    let err = w.accept_bytes(&old_key_set, &newer, None).unwrap_err();
    assert!(
        matches!(
            err,
            UpdateError::TargetSet(DocumentError::Envelope(VerifyError::UnknownKey(_)))
        ),
        "{err:?}"
    );
    assert_eq!(w.device.snapshot(), before);
}

#[test]
fn a_rotated_endorsement_key_is_accepted() {
    let w = World::new();
    w.accept(&w.set_a(1, at(0))).unwrap();
    let e2 = SoftwareSigningKey::generate();
    let list2 = w.platform.key_list_with_endorsement(2, &[&e2]);
    let own2 = ownership_doc(&w.a, w.device.id, at(-DAY))
        .sign(&e2)
        .unwrap();
    let set = w.set_a(2, at(HOUR));
    accept_target_set(
        &w.device.dir,
        &w.device.rot,
        &list2,
        &w.sign_a(&set),
        &own2,
        None,
    )
    .unwrap();
    assert_eq!(w.device.counter(), 2);
}

// ---------------------------------------------------------------- freshness and the clock

/// Service time and device clock disagree: only the service's signed times count.
#[test]
fn valid_by_the_device_clock_but_expired_by_service_time_is_refused() {
    let w = World::new();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    // The service already told the device it is 3 days later than the device's clock says.
    w.accept(&target_set(
        &w.a,
        w.device.id,
        1,
        now + time::Duration::days(3),
    ))
    .unwrap();
    let before = w.device.snapshot();
    // Valid for the device's clock (issued an hour ago, expires tomorrow).
    let mut set = target_set(&w.a, w.device.id, 2, now - time::Duration::hours(1));
    set.expires_at = now + time::Duration::days(1);
    let err = w.accept(&set).unwrap_err();
    assert!(
        matches!(err, UpdateError::Expired { version: 2, now: n, .. } if n == now + time::Duration::days(3)),
        "{err:?}"
    );
    assert_eq!(w.device.snapshot(), before);
}

#[test]
fn valid_by_the_device_clock_but_expired_by_the_hint_is_refused() {
    let w = World::new();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let before = w.device.snapshot();
    let mut set = target_set(&w.a, w.device.id, 1, now - time::Duration::hours(1));
    set.expires_at = now + time::Duration::days(1);
    let hint = now + time::Duration::days(2);
    let err = w
        .accept_bytes(&w.sign_a(&set), &w.ownership_a(), Some(hint))
        .unwrap_err();
    assert!(
        matches!(err, UpdateError::Expired { now: n, .. } if n == hint),
        "{err:?}"
    );
    assert_eq!(w.device.snapshot(), before);
}

#[test]
fn expired_by_the_device_clock_but_fresh_by_service_time_is_accepted() {
    // A device whose clock runs far ahead (or a set issued long ago and delivered to a device
    // that has seen nothing newer): the device clock is not trusted for freshness.
    let w = World::new();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let mut set = target_set(&w.a, w.device.id, 1, now - time::Duration::days(30));
    set.expires_at = now - time::Duration::days(29);
    w.accept(&set).unwrap();
    assert_eq!(w.device.counter(), 1);
    assert_eq!(
        w.device.dir.service_time().unwrap(),
        now - time::Duration::days(30)
    );
}

#[test]
fn expiry_boundary() {
    let w = World::new();
    // Exactly at the expiry is still valid; one second later is not.
    let mut set = w.set_a(1, at(0));
    set.expires_at = at(HOUR);
    w.accept_bytes(&w.sign_a(&set), &w.ownership_a(), Some(at(HOUR)))
        .unwrap();
    let before = w.device.snapshot();
    let mut set = w.set_a(2, at(0));
    set.expires_at = at(HOUR);
    let err = w
        .accept_bytes(&w.sign_a(&set), &w.ownership_a(), Some(at(HOUR + 1)))
        .unwrap_err();
    assert!(
        matches!(err, UpdateError::Expired { version: 2, .. }),
        "{err:?}"
    );
    assert_eq!(w.device.snapshot(), before);
}

// ---------------------------------------------------------------- attacks, as data

/// What one attack offers the device.
struct Attempt {
    target: Vec<u8>,
    ownership: Vec<u8>,
    hint: Option<OffsetDateTime>,
    key_list: Option<VerifiedKeyList>,
}

impl Attempt {
    fn new(target: Vec<u8>, ownership: Vec<u8>) -> Attempt {
        Attempt {
            target,
            ownership,
            hint: None,
            key_list: None,
        }
    }
}

struct Attack {
    name: &'static str,
    offer: fn(&World) -> Attempt,
    refused: fn(&UpdateError) -> bool,
}

fn other_device() -> DeviceId {
    DeviceId::from_public_key(SoftwareSigningKey::generate().public_key())
}

/// A valid set `version` of tenant A, issued an hour after the baseline.
fn next(w: &World, version: u64) -> Vec<u8> {
    w.sign_a(&w.set_a(version, at(HOUR)))
}

const ATTACKS: &[Attack] = &[
    Attack {
        name: "replayed older version",
        offer: |w| Attempt::new(next(w, 4), w.ownership_a()),
        refused: |e| {
            matches!(
                e,
                UpdateError::Rollback {
                    offered: 4,
                    accepted: 5
                }
            )
        },
    },
    Attack {
        name: "replayed version 1",
        offer: |w| Attempt::new(w.sign_a(&w.set_a(1, at(-2 * DAY))), w.ownership_a()),
        refused: |e| {
            matches!(
                e,
                UpdateError::Rollback {
                    offered: 1,
                    accepted: 5
                }
            )
        },
    },
    Attack {
        name: "set signed by another tenant's metadata key",
        offer: |w| {
            let set = w.set_a(6, at(HOUR));
            Attempt::new(set.sign(&w.b.metadata_key).unwrap(), w.ownership_a())
        },
        refused: |e| {
            matches!(
                e,
                UpdateError::TargetSet(DocumentError::Envelope(VerifyError::UnknownKey(_)))
            )
        },
    },
    Attack {
        name: "set signed by the owner's image key (not a metadata key)",
        offer: |w| {
            let set = w.set_a(6, at(HOUR));
            Attempt::new(set.sign(&w.a.image_key).unwrap(), w.ownership_a())
        },
        refused: |e| {
            matches!(
                e,
                UpdateError::TargetSet(DocumentError::Envelope(VerifyError::UnknownKey(_)))
            )
        },
    },
    Attack {
        name: "set signed by the platform endorsement key",
        offer: |w| {
            let set = w.set_a(6, at(HOUR));
            Attempt::new(set.sign(&w.platform.endorsement).unwrap(), w.ownership_a())
        },
        refused: |e| {
            matches!(
                e,
                UpdateError::TargetSet(DocumentError::Envelope(VerifyError::UnknownKey(_)))
            )
        },
    },
    Attack {
        name: "another tenant's own set and ownership signed by a non-endorsement key",
        offer: |w| {
            let own = ownership_doc(&w.b, w.device.id, at(0))
                .sign(&w.b.metadata_key)
                .unwrap();
            let set = target_set(&w.b, w.device.id, 6, at(HOUR));
            Attempt::new(set.sign(&w.b.metadata_key).unwrap(), own)
        },
        refused: |e| {
            matches!(
                e,
                UpdateError::Ownership(DocumentError::Envelope(VerifyError::UnknownKey(_)))
            )
        },
    },
    Attack {
        name: "ownership signed by the OS release key",
        offer: |w| {
            let own = ownership_doc(&w.a, w.device.id, at(0))
                .sign(&w.platform.os_release)
                .unwrap();
            Attempt::new(next(w, 6), own)
        },
        refused: |e| {
            matches!(
                e,
                UpdateError::Ownership(DocumentError::Envelope(VerifyError::UnknownKey(_)))
            )
        },
    },
    Attack {
        name: "ownership signed by the platform root key",
        offer: |w| {
            let own = ownership_doc(&w.a, w.device.id, at(0))
                .sign(&w.platform.root)
                .unwrap();
            Attempt::new(next(w, 6), own)
        },
        refused: |e| {
            matches!(
                e,
                UpdateError::Ownership(DocumentError::Envelope(VerifyError::UnknownKey(_)))
            )
        },
    },
    Attack {
        name: "ownership signed by the capability key",
        offer: |w| {
            let own = ownership_doc(&w.a, w.device.id, at(0))
                .sign(&w.platform.capability)
                .unwrap();
            Attempt::new(next(w, 6), own)
        },
        refused: |e| {
            matches!(
                e,
                UpdateError::Ownership(DocumentError::Envelope(VerifyError::UnknownKey(_)))
            )
        },
    },
    Attack {
        name: "key list without a tenant endorsement key",
        offer: |w| Attempt {
            key_list: Some(w.platform.key_list_with_endorsement(2, &[])),
            ..Attempt::new(next(w, 6), w.ownership_a())
        },
        refused: |e| matches!(e, UpdateError::NoEndorsementKey),
    },
    Attack {
        name: "ownership document for another device",
        offer: |w| {
            let own = ownership_doc(&w.a, other_device(), at(0))
                .sign(&w.platform.endorsement)
                .unwrap();
            Attempt::new(next(w, 6), own)
        },
        refused: |e| matches!(e, UpdateError::Ownership(DocumentError::WrongDevice { .. })),
    },
    Attack {
        name: "target set for another device",
        offer: |w| {
            let set = target_set(&w.a, other_device(), 6, at(HOUR));
            Attempt::new(w.sign_a(&set), w.ownership_a())
        },
        refused: |e| matches!(e, UpdateError::TargetSet(DocumentError::WrongDevice { .. })),
    },
    Attack {
        name: "target set of another device group (made for another device)",
        offer: |w| {
            let mut set = target_set(&w.a, other_device(), 6, at(HOUR));
            set.device_group_id = Some(uuid::Uuid::from_u128(0xbad));
            Attempt::new(w.sign_a(&set), w.ownership_a())
        },
        refused: |e| matches!(e, UpdateError::TargetSet(DocumentError::WrongDevice { .. })),
    },
    Attack {
        name: "target set naming another tenant than the ownership document",
        offer: |w| {
            let mut set = w.set_a(6, at(HOUR));
            set.tenant_id = w.b.id;
            Attempt::new(w.sign_a(&set), w.ownership_a())
        },
        refused: |e| {
            matches!(
                e,
                UpdateError::TargetSet(DocumentError::InvalidField {
                    field: "tenant_id",
                    ..
                })
            )
        },
    },
    Attack {
        name: "ownership document naming another tenant than the pinned one",
        offer: |w| {
            let own = ownership_doc(&w.b, w.device.id, at(0))
                .sign(&w.platform.endorsement)
                .unwrap();
            let set = target_set(&w.b, w.device.id, 6, at(HOUR));
            Attempt::new(set.sign(&w.b.metadata_key).unwrap(), own)
        },
        refused: |e| matches!(e, UpdateError::TenantChanged { .. }),
    },
    Attack {
        name: "expired by the stored service time (set issued before it)",
        offer: |w| {
            // The baseline stored service time T0; this set expired an hour before it.
            let mut set = w.set_a(6, at(-2 * DAY));
            set.expires_at = at(-HOUR);
            Attempt::new(w.sign_a(&set), w.ownership_a())
        },
        refused: |e| matches!(e, UpdateError::Expired { version: 6, now, .. } if *now == at(0)),
    },
    Attack {
        name: "expired by the service time hint",
        offer: |w| {
            let mut set = w.set_a(6, at(HOUR));
            set.expires_at = at(2 * HOUR);
            Attempt {
                hint: Some(at(3 * HOUR)),
                ..Attempt::new(w.sign_a(&set), w.ownership_a())
            }
        },
        refused: |e| matches!(e, UpdateError::Expired { version: 6, now, .. } if *now == at(3 * HOUR)),
    },
    Attack {
        name: "wrong purpose: a capability file",
        offer: |w| {
            let cap =
                CapabilityFile::app_development(w.device.id, vec![w.a.image_key.key_id()], at(0))
                    .sign(&w.a.metadata_key)
                    .unwrap();
            Attempt::new(cap, w.ownership_a())
        },
        refused: |e| {
            matches!(
                e,
                UpdateError::TargetSet(DocumentError::Envelope(VerifyError::WrongPurpose { .. }))
            )
        },
    },
    Attack {
        name: "wrong purpose: the ownership document as the target set",
        offer: |w| Attempt::new(w.ownership_a(), w.ownership_a()),
        refused: |e| {
            matches!(
                e,
                UpdateError::TargetSet(DocumentError::Envelope(VerifyError::WrongPurpose { .. }))
            )
        },
    },
    Attack {
        name: "wrong purpose: a target set as the ownership document",
        offer: |w| {
            // Even signed by the endorsement key, a target set is not an ownership document.
            let set = w.set_a(6, at(HOUR));
            Attempt::new(next(w, 6), set.sign(&w.platform.endorsement).unwrap())
        },
        refused: |e| {
            matches!(
                e,
                UpdateError::Ownership(DocumentError::Envelope(VerifyError::WrongPurpose { .. }))
            )
        },
    },
    Attack {
        name: "garbage target set",
        offer: |w| Attempt::new(b"\xd2\x84garbage not cbor at all".to_vec(), w.ownership_a()),
        refused: |e| matches!(e, UpdateError::TargetSet(DocumentError::Envelope(_))),
    },
    Attack {
        name: "empty target set",
        offer: |w| Attempt::new(Vec::new(), w.ownership_a()),
        refused: |e| matches!(e, UpdateError::TargetSet(DocumentError::Envelope(_))),
    },
    Attack {
        name: "garbage ownership document",
        offer: |w| Attempt::new(next(w, 6), vec![0xff; 100]),
        refused: |e| matches!(e, UpdateError::Ownership(DocumentError::Envelope(_))),
    },
    Attack {
        name: "oversized target set",
        offer: |w| Attempt::new(vec![0; ferro_pki::MAX_TARGET_SET_LEN + 1], w.ownership_a()),
        refused: |e| matches!(e, UpdateError::TargetSet(DocumentError::TooLarge { .. })),
    },
    Attack {
        name: "oversized ownership document",
        offer: |w| Attempt::new(next(w, 6), vec![0; ferro_pki::MAX_OWNERSHIP_LEN + 1]),
        refused: |e| matches!(e, UpdateError::Ownership(DocumentError::TooLarge { .. })),
    },
    Attack {
        name: "target set truncated by one byte",
        offer: |w| {
            let mut t = next(w, 6);
            t.pop();
            Attempt::new(t, w.ownership_a())
        },
        refused: |e| matches!(e, UpdateError::TargetSet(DocumentError::Envelope(_))),
    },
    Attack {
        name: "target set truncated to half",
        offer: |w| {
            let mut t = next(w, 6);
            t.truncate(t.len() / 2);
            Attempt::new(t, w.ownership_a())
        },
        refused: |e| matches!(e, UpdateError::TargetSet(DocumentError::Envelope(_))),
    },
    Attack {
        name: "ownership document truncated",
        offer: |w| {
            let mut o = w.ownership_a();
            o.truncate(o.len() - 10);
            Attempt::new(next(w, 6), o)
        },
        refused: |e| matches!(e, UpdateError::Ownership(DocumentError::Envelope(_))),
    },
    Attack {
        name: "target set with a flipped payload byte (bad signature)",
        offer: |w| {
            let mut t = next(w, 6);
            let n = t.len() - 80;
            t[n] ^= 1;
            Attempt::new(t, w.ownership_a())
        },
        refused: |e| matches!(e, UpdateError::TargetSet(_)),
    },
    Attack {
        name: "target set with trailing bytes",
        offer: |w| {
            let mut t = next(w, 6);
            t.push(0);
            Attempt::new(t, w.ownership_a())
        },
        refused: |e| matches!(e, UpdateError::TargetSet(DocumentError::Envelope(_))),
    },
];

/// The baseline every attack starts from: version 5 accepted at service time T0.
fn baseline() -> World {
    let w = World::new();
    w.accept(&w.set_a(5, at(0))).unwrap();
    assert_eq!(w.device.counter(), 5);
    w
}

#[test]
fn every_attack_is_refused_and_changes_nothing() {
    let mut failures = Vec::new();
    for attack in ATTACKS {
        let w = baseline();
        let before = w.device.snapshot();
        let attempt = (attack.offer)(&w);
        let key_list = attempt.key_list.as_ref().unwrap_or(&w.platform.key_list);
        let result = accept_target_set(
            &w.device.dir,
            &w.device.rot,
            key_list,
            &attempt.target,
            &attempt.ownership,
            attempt.hint,
        );
        match result {
            Ok(_) => failures.push(format!("{}: accepted", attack.name)),
            Err(e) if !(attack.refused)(&e) => failures.push(format!(
                "{}: refused with the wrong error {e:?}",
                attack.name
            )),
            Err(_) => {}
        }
        if w.device.snapshot() != before {
            failures.push(format!("{}: changed the files or the counter", attack.name));
        }
        // The device still holds and re-verifies its version 5.
        let held = w
            .device
            .dir
            .load_accepted(&w.platform.key_list, &w.device.id)
            .unwrap()
            .unwrap();
        assert_eq!(held.target_set().version, 5, "{}", attack.name);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Each attack also fails on a device that has accepted nothing yet (no pin, counter 0), except
/// those that only a history makes refusable.
#[test]
fn attacks_on_a_fresh_device_store_nothing() {
    let history_only = [
        "replayed older version",
        "replayed version 1",
        "ownership document naming another tenant than the pinned one",
        "expired by the stored service time (set issued before it)",
    ];
    for attack in ATTACKS.iter().filter(|a| !history_only.contains(&a.name)) {
        let w = World::new();
        let before = w.device.snapshot();
        let attempt = (attack.offer)(&w);
        let key_list = attempt.key_list.as_ref().unwrap_or(&w.platform.key_list);
        let err = accept_target_set(
            &w.device.dir,
            &w.device.rot,
            key_list,
            &attempt.target,
            &attempt.ownership,
            attempt.hint,
        )
        .expect_err(attack.name);
        assert!((attack.refused)(&err), "{}: {err:?}", attack.name);
        assert_eq!(w.device.snapshot(), before, "{}", attack.name);
        assert!(!w.device.dir.target_set().exists(), "{}", attack.name);
        assert!(!w.device.dir.ownership().exists(), "{}", attack.name);
    }
}

#[test]
fn every_truncation_of_a_valid_set_is_refused() {
    let w = baseline();
    let before = w.device.snapshot();
    let t = next(&w, 6);
    let o = w.ownership_a();
    for len in 0..t.len() {
        let err = w.accept_bytes(&t[..len], &o, None).unwrap_err();
        assert!(matches!(err, UpdateError::TargetSet(_)), "{len}: {err:?}");
    }
    for len in 0..o.len() {
        let err = w.accept_bytes(&t, &o[..len], None).unwrap_err();
        assert!(matches!(err, UpdateError::Ownership(_)), "{len}: {err:?}");
    }
    assert_eq!(w.device.snapshot(), before);
}

// ---------------------------------------------------------------- the tenant pin

/// The pin must hold across a key list rotation: once the endorsement key that signed the
/// stored ownership document is rotated out, the stored document no longer verifies, but the
/// device still belongs to its tenant.
#[test]
fn the_tenant_pin_survives_an_endorsement_key_rotation() {
    let w = baseline();
    let e2 = SoftwareSigningKey::generate();
    let list2 = w.platform.key_list_with_endorsement(2, &[&e2]);
    let before = w.device.snapshot();
    let own_b = ownership_doc(&w.b, w.device.id, at(0)).sign(&e2).unwrap();
    let set_b = target_set(&w.b, w.device.id, 6, at(HOUR))
        .sign(&w.b.metadata_key)
        .unwrap();
    let err =
        accept_target_set(&w.device.dir, &w.device.rot, &list2, &set_b, &own_b, None).unwrap_err();
    assert!(
        matches!(err, UpdateError::TenantChanged { pinned, found } if pinned == w.a.id && found == w.b.id),
        "{err:?}"
    );
    assert_eq!(w.device.snapshot(), before);
    // The owner, re-endorsed under the new key, is still accepted.
    let own_a = ownership_doc(&w.a, w.device.id, at(0)).sign(&e2).unwrap();
    accept_target_set(
        &w.device.dir,
        &w.device.rot,
        &list2,
        &next(&w, 6),
        &own_a,
        None,
    )
    .unwrap();
    assert_eq!(w.device.counter(), 6);
}

/// A transfer (docs/identity-documents.md, "Ownership epoch"): the device moves to another
/// tenant only under a greater ownership epoch; the old owner's documents, replayed or newly
/// signed at the old epoch, never win it back, and a smaller epoch is refused for the owner too.
#[test]
fn a_transfer_moves_the_pin_only_under_a_newer_epoch() {
    let w = baseline();
    let signed = |tenant: &Tenant, epoch: u64, issued: i64| {
        let mut doc = ownership_doc(tenant, w.device.id, at(issued));
        doc.ownership_epoch = epoch;
        doc.sign(&w.platform.endorsement).unwrap()
    };
    let set_b = |version: u64| {
        target_set(&w.b, w.device.id, version, at(HOUR))
            .sign(&w.b.metadata_key)
            .unwrap()
    };
    // Without a newer epoch, B is refused, whatever the time of its document.
    let before = w.device.snapshot();
    let err = w
        .accept_bytes(&set_b(6), &signed(&w.b, 0, HOUR), None)
        .unwrap_err();
    assert!(matches!(err, UpdateError::TenantChanged { .. }), "{err:?}");
    assert_eq!(w.device.snapshot(), before);
    // The transfer: epoch 1 for B is accepted and pins B.
    w.accept_bytes(&set_b(6), &signed(&w.b, 1, HOUR), None)
        .unwrap();
    assert_eq!(w.device.counter(), 6);
    let before = w.device.snapshot();
    // A's documents at the old epoch (the one it held, or a fresh one) cannot take it back.
    for own_a in [
        w.ownership_a(),
        signed(&w.a, 0, 2 * HOUR),
        signed(&w.a, 1, 2 * HOUR),
    ] {
        let err = w.accept_bytes(&next(&w, 7), &own_a, None).unwrap_err();
        assert!(
            matches!(err, UpdateError::TenantChanged { pinned, found }
                if pinned == w.b.id && found == w.a.id),
            "{err:?}"
        );
        assert_eq!(w.device.snapshot(), before);
    }
    // B's own document at a smaller epoch is refused too.
    let err = w
        .accept_bytes(&set_b(7), &signed(&w.b, 0, 2 * HOUR), None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            UpdateError::Ownership(DocumentError::InvalidField {
                field: "ownership_epoch",
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(w.device.snapshot(), before);
    // Transferred back: epoch 2 for A is accepted, and the version only grew.
    w.accept_bytes(&next(&w, 7), &signed(&w.a, 2, 2 * HOUR), None)
        .unwrap();
    assert_eq!(w.device.counter(), 7);
}

/// A stored ownership document that cannot be read must not silently unpin the device.
#[test]
fn a_corrupted_stored_ownership_does_not_unpin_the_device() {
    let w = baseline();
    std::fs::write(w.device.dir.ownership(), b"corrupted").unwrap();
    let before = w.device.snapshot();
    let own_b = ownership_doc(&w.b, w.device.id, at(0))
        .sign(&w.platform.endorsement)
        .unwrap();
    let set_b = target_set(&w.b, w.device.id, 6, at(HOUR))
        .sign(&w.b.metadata_key)
        .unwrap();
    let err = w.accept_bytes(&set_b, &own_b, None).unwrap_err();
    assert!(
        !matches!(err, UpdateError::TenantChanged { .. }),
        "the pin cannot be read, so no tenant can be compared: {err:?}"
    );
    assert!(
        matches!(
            err,
            UpdateError::Ownership(_) | UpdateError::Malformed { .. }
        ),
        "{err:?}"
    );
    assert_eq!(w.device.snapshot(), before);
}

/// An older ownership document (e.g. one listing a metadata key the tenant has since rotated
/// out because it leaked) must not be used to verify a target set once a newer one is held.
#[test]
fn an_older_ownership_document_is_refused() {
    let w = World::new();
    // Tenant A's first metadata key, in an ownership document from day -10.
    let old_own = w.ownership_a();
    w.accept(&w.set_a(1, at(0))).unwrap();
    // A rotates: a newer document (day -1) lists a new metadata key only.
    let mut a2 = Tenant::new();
    a2.id = w.a.id;
    let new_own = ownership_doc(&a2, w.device.id, at(-DAY))
        .sign(&w.platform.endorsement)
        .unwrap();
    let set2 = target_set(&a2, w.device.id, 2, at(HOUR));
    w.accept_bytes(&set2.sign(&a2.metadata_key).unwrap(), &new_own, None)
        .unwrap();
    let before = w.device.snapshot();
    // Whoever holds the rotated-out key replays the old document with a set of its own.
    let evil = w.sign_a(&w.set_a(3, at(2 * HOUR)));
    let err = w.accept_bytes(&evil, &old_own, None).unwrap_err();
    assert!(
        matches!(
            err,
            UpdateError::Ownership(DocumentError::InvalidField {
                field: "issued_at",
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(w.device.snapshot(), before);
    // And the held set still re-verifies.
    let held = w
        .device
        .dir
        .load_accepted(&w.platform.key_list, &w.device.id)
        .unwrap()
        .unwrap();
    assert_eq!(held.target_set(), &set2);
}

#[test]
fn key_list_roles_are_not_interchangeable() {
    // An ownership document signed by a key that is in the key list, but under another role.
    let w = World::new();
    for role_key in [&w.platform.os_release, &w.platform.capability] {
        let own = ownership_doc(&w.a, w.device.id, at(0))
            .sign(role_key)
            .unwrap();
        let err = w.accept_bytes(&next(&w, 1), &own, None).unwrap_err();
        assert!(
            matches!(
                err,
                UpdateError::Ownership(DocumentError::Envelope(VerifyError::UnknownKey(_)))
            ),
            "{err:?}"
        );
    }
    assert!(
        w.platform
            .key_list
            .trusted(PlatformKeyRole::TenantEndorsement)
            .contains(&w.platform.endorsement.key_id())
    );
    assert_eq!(w.device.counter(), 0);
}

/// `accept_target_set` stores the set before it raises the counter; a crash in between must
/// not let an older set (still at or above the counter) replace the stored one.
#[test]
fn a_crash_between_storing_a_set_and_raising_the_counter_opens_no_rollback_window() {
    let w = baseline();
    let v7 = next(&w, 7);
    // What a process killed at the crash point "accept.target-written" leaves behind.
    std::fs::write(w.device.dir.target_set(), &v7).unwrap();
    assert_eq!(w.device.counter(), 5);
    let before = w.device.snapshot();
    let err = w
        .accept_bytes(&next(&w, 6), &w.ownership_a(), None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            UpdateError::Rollback {
                offered: 6,
                accepted: 7
            }
        ),
        "{err:?}"
    );
    assert_eq!(w.device.snapshot(), before);
    // Offered again, version 7 is accepted and the counter catches up.
    w.accept_bytes(&v7, &w.ownership_a(), None).unwrap();
    assert_eq!(w.device.counter(), 7);
}

/// A stored set that cannot be read is no reason to refuse a new one (the counter still holds
/// the floor), and the new one replaces it.
#[test]
fn a_corrupted_stored_set_is_replaced_by_a_valid_newer_one() {
    let w = baseline();
    std::fs::write(w.device.dir.target_set(), b"torn").unwrap();
    let err = w
        .accept_bytes(&next(&w, 4), &w.ownership_a(), None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            UpdateError::Rollback {
                offered: 4,
                accepted: 5
            }
        ),
        "{err:?}"
    );
    let v6 = next(&w, 6);
    w.accept_bytes(&v6, &w.ownership_a(), None).unwrap();
    assert_eq!(std::fs::read(w.device.dir.target_set()).unwrap(), v6);
    assert_eq!(w.device.counter(), 6);
}

// ---------------------------------------------------------------- properties

/// Any sequence of offered versions: each is accepted exactly when it is not below the highest
/// accepted so far, and the counter always holds that highest version.
#[test]
fn the_counter_follows_the_highest_accepted_version() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config::with_cases(12));
    runner
        .run(&prop::collection::vec(1u64..20, 1..12), |versions| {
            let w = World::new();
            let mut highest = 0;
            for (i, v) in versions.into_iter().enumerate() {
                let before = w.device.snapshot();
                let result = w.accept(&w.set_a(v, at(i as i64 * 60)));
                if v >= highest {
                    prop_assert!(result.is_ok(), "{v} after {highest}: {result:?}");
                    highest = v;
                } else {
                    let refused = matches!(
                        result,
                        Err(UpdateError::Rollback { offered, accepted }) if offered == v && accepted == highest
                    );
                    prop_assert!(refused, "{v} after {highest}: {result:?}");
                    prop_assert_eq!(w.device.snapshot(), before);
                }
                prop_assert_eq!(w.device.counter(), highest);
            }
            Ok(())
        })
        .unwrap();
}

/// Any single-byte change to a valid signed set (or to the ownership document) is refused and
/// changes nothing.
#[test]
fn any_altered_byte_is_refused() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let w = baseline();
    let before = w.device.snapshot();
    let t = next(&w, 6);
    let o = w.ownership_a();
    let mut runner = TestRunner::new(Config::with_cases(256));
    runner
        .run(
            &(any::<bool>(), any::<prop::sample::Index>(), 1u8..=255),
            |(in_target, index, mask)| {
                let (mut t2, mut o2) = (t.clone(), o.clone());
                if in_target {
                    let i = index.index(t2.len());
                    t2[i] ^= mask;
                } else {
                    let i = index.index(o2.len());
                    o2[i] ^= mask;
                }
                let result = w.accept_bytes(&t2, &o2, None);
                let refused = if in_target {
                    matches!(result, Err(UpdateError::TargetSet(_)))
                } else {
                    matches!(result, Err(UpdateError::Ownership(_)))
                };
                prop_assert!(refused, "{result:?}");
                prop_assert_eq!(w.device.snapshot(), before.clone());
                Ok(())
            },
        )
        .unwrap();
}
