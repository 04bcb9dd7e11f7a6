//! The stage-0 decisions `ferro-boot` makes (slot choice, attempt counting, fallback,
//! verification, measurement) and the boot-health report `ferro-device run` makes (the other
//! half of the A/B state machine, so that both halves are read in one place).

use std::fs;
use std::path::PathBuf;

use ferro_documents::VerifiedKeyList;
use ferro_image::{OS_DEVICE_BINARY, VerifiedImage};
use ferro_trust::{RootOfTrust, RootOfTrustKind, TrustError};

use crate::BootError;
use crate::layout::{BootState, DataDir, OS_FLOOR_COUNTER, Slot, create_private_dir};
use crate::os::{image_measurement, verify_os_package, write_events};
use crate::trust::DeviceTrust;

/// What the loader decided to run.
#[derive(Debug)]
pub struct BootPlan {
    /// The slot that verified.
    pub slot: Slot,
    /// `slots/<slot>/root/bin/ferro-device`, freshly unpacked from the verified package.
    pub executable: PathBuf,
    /// The verified OS bundle.
    pub image: VerifiedImage,
}

/// Choose, verify, unpack and measure the OS slot to boot.
///
/// Order: a pending slot with attempts left (its counter is decremented and `boot.json`
/// written **before** it is tried); a pending slot without attempts is abandoned; then the
/// active slot; then the other slot. Every refused candidate is recorded in
/// `boot-failures.json`. Fails with [`BootError::NoBootableSlot`] when nothing verifies.
pub fn plan_boot(data_dir: &DataDir, max_attempts: u32) -> Result<BootPlan, BootError> {
    let ctx = DeviceTrust::open(data_dir)?;
    // This boot's hand-off files start empty (the TPM log is the trust crate's business).
    let _ = fs::remove_file(data_dir.boot_measurements());
    let _ = fs::remove_file(data_dir.ready());
    create_private_dir(&data_dir.run_dir())?;

    let floor = ctx.rot.counter(OS_FLOOR_COUNTER)?;
    let mut state = data_dir.read_boot_state()?;
    let mut candidates = Vec::new();
    if let Some(pending) = state.pending.clone() {
        let left = pending.attempts_left.min(max_attempts);
        if left > 0 && pending.slot != state.active {
            state.pending = Some(crate::layout::PendingSlot {
                slot: pending.slot,
                attempts_left: left - 1,
            });
            data_dir.write_boot_state(&state)?;
            candidates.push(pending.slot);
        } else {
            data_dir.record_boot_failure(
                pending.slot,
                "pending slot never reported healthy within its boot attempts; abandoned",
            )?;
            state.pending = None;
            data_dir.write_boot_state(&state)?;
        }
    }
    for slot in [state.active, state.active.other()] {
        if !candidates.contains(&slot) {
            candidates.push(slot);
        }
    }

    let mut reasons = Vec::new();
    for slot in candidates {
        let package = data_dir.slot_package(slot);
        if fs::symlink_metadata(&package).is_err() && slot != state.active {
            continue; // an empty spare slot is not a failure
        }
        match verify_os_package(
            &package,
            &ctx.key_list,
            floor,
            Some(&data_dir.slot_root(slot)),
        ) {
            Ok(image) => {
                let event = image_measurement(&image);
                ctx.rot.extend_measurement(&event)?;
                if ctx.rot.kind() == RootOfTrustKind::Software {
                    // The software RoT's register lives in this process: hand the log over.
                    write_events(&data_dir.boot_measurements(), &[event])?;
                }
                return Ok(BootPlan {
                    slot,
                    executable: data_dir.slot_root(slot).join(OS_DEVICE_BINARY),
                    image,
                });
            }
            Err(e) => {
                let reason = e.to_string();
                data_dir.record_boot_failure(slot, &reason)?;
                if state.pending.as_ref().is_some_and(|p| p.slot == slot) {
                    // A bundle that fails verification will not verify next time either.
                    state.pending = None;
                    data_dir.write_boot_state(&state)?;
                }
                reasons.push(format!("slot {slot}: {reason}"));
            }
        }
    }
    Err(BootError::NoBootableSlot(reasons.join("; ")))
}

/// Report that the OS booted from `slot` is healthy: a pending slot becomes active (and the
/// anti-rollback floor rises to its security version, after re-verifying it); `last_good` is
/// set. The caller (`ferro-device run`) decides when the OS is healthy.
pub fn mark_healthy(
    dd: &DataDir,
    rot: &dyn RootOfTrust,
    key_list: &VerifiedKeyList,
    slot: Slot,
) -> Result<BootState, BootError> {
    let mut state = dd.read_boot_state()?;
    if state.pending.as_ref().is_some_and(|p| p.slot == slot) {
        let floor = rot.counter(OS_FLOOR_COUNTER)?;
        let image = verify_os_package(&dd.slot_package(slot), key_list, floor, None)?;
        match rot.advance_counter(
            OS_FLOOR_COUNTER,
            u64::from(image.metadata().security_version),
        ) {
            Ok(()) | Err(TrustError::CounterRollback { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        state.active = slot;
        state.pending = None;
    }
    state.last_good = Some(slot);
    dd.write_boot_state(&state)?;
    Ok(state)
}
