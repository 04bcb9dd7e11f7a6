//! Claiming devices: claim codes (made, hashed, compared in constant time), the claim rules
//! ([`parse_claims`]: which requests are well formed; [`judge`]: who may claim which device) and
//! storing claimed devices. The claim, assignment and transfer routes (`routes::devices`,
//! `routes::ownership`) share these.

use crate::datastore;
use crate::datastore::devices::Registrations;
use crate::db::Tx;
use crate::error::{ApiError, ApiResult, item};
use ferro_wire::{
    CLAIM_CODE_BYTES, DeviceClaim, DeviceId, ErrorCode, ErrorItem, format_claim_code,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A new claim code: its text (shown once) and the hex SHA-256 the service keeps.
pub(crate) struct NewClaimCode {
    pub text: String,
    pub sha256_hex: String,
}

/// 16 bytes from the operating system's CSPRNG.
pub(crate) fn new_claim_code() -> ApiResult<NewClaimCode> {
    let mut bytes = [0u8; CLAIM_CODE_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(format!("random: {e}")))?;
    Ok(NewClaimCode {
        text: format_claim_code(&bytes),
        sha256_hex: hex::encode(Sha256::digest(bytes)),
    })
}

/// Whether `presented` (the SHA-256 of the code a claimer sent) is the stored hash, compared in
/// constant time. A device without a stored hash (unknown, claimed, or registered before claim
/// codes) is compared against a fixed value, so every refusal costs the same.
pub(crate) fn code_matches(stored: Option<&[u8]>, presented: &[u8; 32]) -> bool {
    match stored {
        Some(stored) if stored.len() == 32 => bool::from(stored.ct_eq(presented)),
        _ => {
            let _ = [0u8; 32].ct_eq(presented);
            false
        }
    }
}

/// `invalid_device_id` for entry `index` of a request's list.
pub(crate) fn bad_device_id(index: usize) -> ferro_wire::ErrorItem {
    item(
        index,
        None,
        "invalid_device_id",
        "a device ID is 128 hexadecimal characters",
    )
}

/// Insert claimed devices for `tid` and use up their claim codes (in the caller's transaction).
/// A device claimed at the same moment by another request is `already_claimed`.
pub(crate) async fn insert_devices(
    tx: &mut Tx,
    tid: &str,
    ids: &[String],
    now: i64,
) -> ApiResult<()> {
    datastore::devices::insert_claimed(tx, tid, ids, now)
        .await
        .map_err(|e| {
            let e = ApiError::from(e);
            if e.is_unique_violation() {
                ApiError::new(
                    ErrorCode::AlreadyClaimed,
                    "a device in the request was claimed at the same moment by another request; \
                     retry to see which",
                )
            } else {
                e
            }
        })
}

/// One well-formed device of a claim request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Presented {
    /// Its index in the request.
    pub index: usize,
    /// The device ID, as stored (lower case).
    pub device: String,
    /// The SHA-256 of the claim code presented with it.
    pub code_sha256: [u8; 32],
}

/// The devices of a claim request, each parsed (a device repeated in the request counts once,
/// at its first index), or every malformed device ID and claim code at once.
pub(crate) fn parse_claims(devices: &[DeviceClaim]) -> Result<Vec<Presented>, Vec<ErrorItem>> {
    let mut bad = Vec::new();
    let mut out: Vec<Presented> = Vec::with_capacity(devices.len());
    let mut unique = std::collections::HashSet::new();
    for (index, d) in devices.iter().enumerate() {
        let Ok(id) = d.device_id.parse::<DeviceId>() else {
            bad.push(bad_device_id(index));
            continue;
        };
        let device = id.to_string();
        let Some(code) = ferro_wire::parse_claim_code(&d.claim_code) else {
            bad.push(item(
                index,
                Some(device),
                "invalid_claim_code",
                "a claim code is 32 hexadecimal digits (hyphens and spaces are ignored), as the \
                 manufacturer gave it with the device",
            ));
            continue;
        };
        if unique.insert(device.clone()) {
            out.push(Presented {
                index,
                device,
                code_sha256: Sha256::digest(code).into(),
            });
        }
    }
    if bad.is_empty() { Ok(out) } else { Err(bad) }
}

/// What a claim by `tenant` (stored form) of `presented` devices comes to, given what the
/// service holds of them (`known`).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Judgement {
    /// Devices the tenant claims now (in request order).
    pub new: Vec<String>,
    /// Devices the tenant already holds (idempotent repeats).
    pub already_owned: u32,
    /// Devices it may not claim: unknown, claimed by anyone, or a wrong code, all with one
    /// answer, so that the claim tells nothing about devices whose code the caller does not
    /// hold. Any refusal refuses the whole claim.
    pub refused: Vec<ErrorItem>,
}

/// The claim rule: a tenant claims a registered, unclaimed device whose stored claim-code hash
/// is the presented code's (compared in constant time); a device it already holds is a repeat.
pub(crate) fn judge(presented: &[Presented], known: &Registrations, tenant: &str) -> Judgement {
    let mut out = Judgement::default();
    for p in presented {
        let (stored, owner) = known.get(&p.device).cloned().unwrap_or((None, None));
        if owner.as_deref() == Some(tenant) {
            out.already_owned += 1;
            continue;
        }
        // Unknown, claimed (code cleared) or wrong code: one answer, after one comparison.
        let stored = stored.and_then(|h| hex::decode(h).ok());
        if owner.is_none() && code_matches(stored.as_deref(), &p.code_sha256) {
            out.new.push(p.device.clone());
        } else {
            out.refused.push(item(
                p.index,
                Some(p.device.clone()),
                "device_not_registered",
                "no registered, unclaimed device has this ID and claim code; check both with the \
                 seller, or ask them to have the platform operator assign the device",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: [u8; CLAIM_CODE_BYTES] = [7; CLAIM_CODE_BYTES];

    fn claim(device: &str, code: &str) -> DeviceClaim {
        DeviceClaim {
            device_id: device.into(),
            claim_code: code.into(),
        }
    }

    fn codes(items: &[ErrorItem]) -> Vec<(u32, String)> {
        items.iter().map(|i| (i.index, i.code.clone())).collect()
    }

    #[test]
    fn malformed_requests_name_every_bad_item() {
        let good = format_claim_code(&CODE);
        let id = "ab".repeat(64);
        // (request, want: how many devices, or the refused items' indexes and codes)
        type Case = (Vec<DeviceClaim>, Result<usize, Vec<(u32, &'static str)>>);
        let cases: &[Case] = &[
            (vec![claim(&id, &good)], Ok(1)),
            // Either case; a repeat counts once.
            (
                vec![claim(&id, &good), claim(&id.to_uppercase(), &good)],
                Ok(1),
            ),
            (
                vec![claim("xyz", &good), claim(&id, "nope"), claim(&id, &good)],
                Err(vec![(0, "invalid_device_id"), (1, "invalid_claim_code")]),
            ),
        ];
        for (request, want) in cases {
            let got = parse_claims(request);
            match (got, want) {
                (Ok(p), Ok(n)) => {
                    assert_eq!(p.len(), *n);
                    assert_eq!(p[0].device, id);
                    assert_eq!(p[0].code_sha256, <[u8; 32]>::from(Sha256::digest(CODE)));
                }
                (Err(items), Err(want)) => {
                    let want: Vec<(u32, String)> =
                        want.iter().map(|(i, c)| (*i, c.to_string())).collect();
                    assert_eq!(codes(&items), want);
                }
                (got, want) => panic!("got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn who_may_claim_which_device() {
        let hash = hex::encode(Sha256::digest(CODE));
        let presented = |device: &str| Presented {
            index: 0,
            device: device.into(),
            code_sha256: Sha256::digest(CODE).into(),
        };
        let ours = "tenant-a";
        // (case, stored claim-code hash, owner, want: new, already owned, refused)
        type Case<'a> = (
            &'a str,
            Option<Option<&'a str>>,
            Option<&'a str>,
            (usize, u32, usize),
        );
        let cases: &[Case] = &[
            (
                "registered, unclaimed, right code",
                Some(Some(&hash)),
                None,
                (1, 0, 0),
            ),
            ("unknown device", None, None, (0, 0, 1)),
            ("wrong code", Some(Some(&"00".repeat(32))), None, (0, 0, 1)),
            ("no code stored (used up)", Some(None), None, (0, 0, 1)),
            ("another tenant's", Some(None), Some("tenant-b"), (0, 0, 1)),
            (
                "another tenant's, code still stored",
                Some(Some(&hash)),
                Some("tenant-b"),
                (0, 0, 1),
            ),
            ("ours already", Some(None), Some(ours), (0, 1, 0)),
        ];
        for (name, stored, owner, (new, owned, refused)) in cases {
            let mut known = Registrations::new();
            if let Some(stored) = stored {
                known.insert(
                    "d".into(),
                    (stored.map(str::to_string), owner.map(str::to_string)),
                );
            }
            let j = judge(&[presented("d")], &known, ours);
            assert_eq!(
                (j.new.len(), j.already_owned, j.refused.len()),
                (*new, *owned, *refused),
                "{name}"
            );
            assert!(
                j.refused.iter().all(|i| i.code == "device_not_registered"),
                "{name}"
            );
        }
    }
}
