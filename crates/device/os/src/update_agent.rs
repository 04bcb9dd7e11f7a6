//! The device's update agent (docs/updates.md, "Device side"): asks the service for the
//! device's target set over TLS authenticated by the device certificate, accepts it with
//! `ferro-update`'s checks, downloads what is missing (resuming with `Range`), verifies each
//! package, stages apps in the app store and an OS bundle in the inactive slot, and switches:
//! apps with one atomic manifest rewrite, the OS through `ferro-boot` (a pending slot with boot
//! attempts, then a re-exec of the loader). Every step is recorded in the update transaction
//! first, so [`UpdateAgent::resume`] can finish or abandon it after any crash.

use std::time::Duration;

use ferro_client::{DeviceClient, DeviceClientError, TargetSetAnswer};
use ferro_image::OS_COMPONENT_ID;
use ferro_pki::{TargetImage, TargetKind};
use ferro_update::transaction::OsSwitch;
use ferro_update::{
    AcceptedTargetSet, AppStore, DownloadedPackage, InstalledApps, PartialDownload, Phase,
    Transaction, UpdateDir, accept_target_set, check_package, component_floor_counter, crash,
};
use ferro_wire::{InstalledImage, UpdateState, UpdateStatusReport};
use uuid::Uuid;

use crate::DeviceError;
use crate::identity::DeviceContext;
use crate::layout::{DEFAULT_BOOT_ATTEMPTS, PendingSlot, Slot};

/// An OS bundle that did not become healthy (`update/failed-os.json`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FailedOs {
    image_id: Uuid,
    reason: String,
}

/// What a check or a resume ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// Nothing to do: the device runs its target set (or the set leaves it as it is).
    UpToDate,
    /// Nothing new since the last check (304).
    NotModified,
    /// New apps were switched in by this process: measure them, attest again, then
    /// [`UpdateAgent::confirm`].
    AppsSwitched,
    /// The new set was measured and attested at this boot: [`UpdateAgent::confirm`] if the
    /// verdict was Trusted.
    Confirm,
    /// The OS switch is set up: restart through `ferro-boot`.
    Reboot,
    /// The update was abandoned; the device keeps what it runs (the reason).
    Failed(String),
    /// Apps were told about the update and it waits for them (a notice period or a
    /// deferral) until this time; check again then. Nothing was staged.
    Deferred(time::OffsetDateTime),
}

/// The agent: one per `ferro-device run`.
#[derive(Debug)]
pub struct UpdateAgent {
    ctx: DeviceContext,
    booted_slot: Option<Slot>,
    dir: UpdateDir,
    apps: AppStore,
    etag: Option<String>,
    client: Option<(String, DeviceClient)>,
    /// Apps that may defer updates are asked before a switch (none: switch at once).
    deferrals: Option<std::sync::Arc<crate::deferral::Deferrals>>,
}

/// A failed call as the device's error, naming what was asked: 401 means the service refused
/// the device certificate (attest again), anything else is a service error.
fn call_err(what: &'static str) -> impl FnOnce(DeviceClientError) -> DeviceError {
    move |e| match e {
        DeviceClientError::Unauthorized { .. } => DeviceError::CertificateRefused(what),
        e => DeviceError::Service(format!("{what}: {e}")),
    }
}

impl UpdateAgent {
    /// The agent for a running device.
    pub fn new(ctx: &DeviceContext, booted_slot: Option<Slot>) -> Result<UpdateAgent, DeviceError> {
        Ok(UpdateAgent {
            ctx: ctx.clone(),
            booted_slot,
            dir: UpdateDir::open(ctx.data_dir.update_dir())?,
            apps: AppStore::open(ctx.data_dir.apps_dir())?,
            etag: None,
            client: None,
            deferrals: None,
        })
    }

    /// Ask `deferrals` before switching to a new set.
    pub fn with_deferrals(
        mut self,
        deferrals: std::sync::Arc<crate::deferral::Deferrals>,
    ) -> UpdateAgent {
        self.deferrals = Some(deferrals);
        self
    }

    /// The app store.
    pub fn apps(&self) -> &AppStore {
        &self.apps
    }

    /// The service's client presenting `certificate` (PEM leaf + chain), rebuilt when it
    /// changes.
    fn client(&mut self, certificate_pem: &str) -> Result<DeviceClient, DeviceError> {
        if let Some((pem_text, client)) = &self.client
            && pem_text == certificate_pem
        {
            return Ok(client.clone());
        }
        let client = crate::net::device_client(&self.ctx, certificate_pem)?;
        self.client = Some((certificate_pem.to_string(), client.clone()));
        Ok(client)
    }

    /// What the device runs: the OS it booted (from the boot measurement) and the apps.
    fn installed_report(&self) -> Vec<InstalledImage> {
        let mut out = Vec::new();
        if let Ok(m) = self.ctx.rot.read_measurements()
            && let Some(os) = m
                .log
                .entries()
                .iter()
                .find(|e| e.event.component_id == OS_COMPONENT_ID)
        {
            out.push(InstalledImage {
                component_id: OS_COMPONENT_ID,
                image_id: os.event.image_id,
                kind: "Os".into(),
                version: os.event.version.clone(),
            });
        }
        if let Ok(apps) = self.apps.installed() {
            out.extend(apps.apps.into_iter().map(|a| InstalledImage {
                component_id: a.component_id,
                image_id: a.image_id,
                kind: a.kind,
                version: a.version,
            }));
        }
        out
    }

    /// The image ID of the OS this boot runs (its first boot measurement).
    fn running_os(&self) -> Option<Uuid> {
        let m = self.ctx.rot.read_measurements().ok()?;
        m.log
            .entries()
            .iter()
            .find(|e| e.event.component_id == OS_COMPONENT_ID)
            .map(|e| e.event.image_id)
    }

    /// Report that apps hold the update back until `until`.
    async fn report_deferred(
        &mut self,
        certificate_pem: &str,
        version: u64,
        until: time::OffsetDateTime,
    ) {
        self.report_with(
            certificate_pem,
            UpdateState::Deferred,
            Some(version),
            Some("the device's apps were told about the update; it waits for them".into()),
            Some(until),
        )
        .await;
    }

    /// Report the update state (best effort: a report that cannot be sent is logged).
    pub async fn report(
        &mut self,
        certificate_pem: &str,
        state: UpdateState,
        target_version: Option<u64>,
        detail: Option<String>,
    ) {
        self.report_with(certificate_pem, state, target_version, detail, None)
            .await;
    }

    async fn report_with(
        &mut self,
        certificate_pem: &str,
        state: UpdateState,
        target_version: Option<u64>,
        detail: Option<String>,
        deferred_until: Option<time::OffsetDateTime>,
    ) {
        let report = UpdateStatusReport {
            state,
            target_version,
            detail: detail.map(|d| d.chars().take(ferro_wire::MAX_UPDATE_DETAIL_LEN).collect()),
            deferred_until,
            installed: self.installed_report(),
        };
        let sent = match self.client(certificate_pem) {
            Ok(c) => c.update_status(&report).await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot report the update state");
                return;
            }
        };
        match sent {
            Ok(()) => {}
            Err(e) if e.status().is_some() => {
                tracing::warn!(error = %e, "the service refused the update report");
            }
            Err(e) => tracing::warn!(error = %e, "cannot report the update state"),
        }
    }

    /// Before anything is measured at start: with an OS switch in progress, make the apps match
    /// the OS that booted (the new apps on the new OS, the previous apps on the old one).
    pub fn prepare_boot(&self) -> Result<(), DeviceError> {
        let Some(tx) = Transaction::load(&self.dir)? else {
            return Ok(());
        };
        let (Phase::OsPending, Some(os)) = (tx.phase, &tx.os) else {
            return Ok(());
        };
        let Some(slot) = Slot::parse(&os.slot) else {
            return Err(DeviceError::malformed(self.dir.transaction(), "slot"));
        };
        let installed = self.apps.installed()?;
        if self.booted_slot == Some(slot) {
            if let Some(next) = &tx.next_apps
                && !next.same_images(&installed)
            {
                self.apps.commit(next)?;
                tracing::info!("new OS booted: apps switched to the new set");
            }
        } else if !tx.previous_apps.same_images(&installed) {
            self.apps.commit(&tx.previous_apps)?;
            tracing::warn!("booted the previous OS: previous apps restored");
        }
        Ok(())
    }

    /// Finish or abandon an update a previous run started. Call after this boot's first
    /// attestation (which also reported the boot healthy).
    pub async fn resume(
        &mut self,
        certificate_pem: Option<&str>,
    ) -> Result<UpdateOutcome, DeviceError> {
        let Some(mut tx) = Transaction::load(&self.dir)? else {
            return Ok(UpdateOutcome::UpToDate);
        };
        tracing::info!(version = tx.target_version, phase = ?tx.phase, "resuming an update");
        match (tx.phase, tx.os.clone()) {
            (Phase::Staged, Some(os)) => self.request_os_switch(&mut tx, &os),
            (Phase::Staged, None) => self.switch_apps(&mut tx),
            (Phase::OsPending, Some(os)) => {
                let slot = Slot::parse(&os.slot)
                    .ok_or_else(|| DeviceError::malformed(self.dir.transaction(), "slot"))?;
                if self.booted_slot == Some(slot) {
                    // The new OS booted with the new apps (prepare_boot), was measured, attested
                    // and reported healthy (mark_healthy made it active).
                    tx.phase = Phase::Committed;
                    tx.save(&self.dir)?;
                    return Ok(UpdateOutcome::Confirm);
                }
                let failure = self
                    .ctx
                    .data_dir
                    .read_boot_failures()
                    .unwrap_or_default()
                    .into_iter()
                    .rev()
                    .find(|f| f.slot == slot && i64::try_from(f.at).unwrap_or(0) >= tx.started_at);
                let state = self.ctx.data_dir.read_boot_state()?;
                if let Some(f) = failure {
                    let reason = format!(
                        "OS {} (image {}) did not become healthy and the device fell back: {}",
                        os.version, os.image_id, f.reason
                    );
                    self.abandon(&tx, Some((os.image_id, &reason)))?;
                    if let Some(pem_text) = certificate_pem {
                        self.report(
                            pem_text,
                            UpdateState::Failed,
                            Some(tx.target_version),
                            Some(reason.clone()),
                        )
                        .await;
                    }
                    return Ok(UpdateOutcome::Failed(reason));
                }
                if state.pending.as_ref().is_some_and(|p| p.slot == slot) {
                    // Requested but not booted yet (this process started before the switch).
                    return Ok(UpdateOutcome::Reboot);
                }
                // The crash came between recording the phase and writing boot.json: do it now.
                self.request_os_switch(&mut tx, &os)
            }
            (Phase::OsPending, None) => self.switch_apps(&mut tx),
            (Phase::Committed, _) => Ok(UpdateOutcome::Confirm),
        }
    }

    /// Raise the floors of what was installed and close the transaction: call once the device
    /// attested Trusted with the new set.
    pub async fn confirm(&mut self, certificate_pem: &str) -> Result<(), DeviceError> {
        let Some(tx) = Transaction::load(&self.dir)? else {
            return Ok(());
        };
        if tx.phase != Phase::Committed {
            return Ok(());
        }
        if let Some(next) = &tx.next_apps {
            for a in &next.apps {
                let counter = component_floor_counter(a.component_id, TargetKind::App);
                match self
                    .ctx
                    .rot
                    .advance_counter(&counter, u64::from(a.security_version))
                {
                    Ok(()) | Err(ferro_trust::TrustError::CounterRollback { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                crash::point("confirm.floor");
            }
        }
        Transaction::finish(&self.dir)?;
        self.apps.prune(None)?;
        let keep: Vec<[u8; 32]> = Vec::new();
        ferro_update::download::prune(&self.dir.downloads(), &keep)?;
        tracing::info!(
            version = tx.target_version,
            "update installed and confirmed"
        );
        self.report(
            certificate_pem,
            UpdateState::Installed,
            Some(tx.target_version),
            None,
        )
        .await;
        Ok(())
    }

    fn abandon(
        &self,
        tx: &Transaction,
        failed_os: Option<(Uuid, &str)>,
    ) -> Result<(), DeviceError> {
        if let Some((id, reason)) = failed_os {
            let mut failed = self.failed_os()?;
            failed.retain(|f| f.image_id != id);
            failed.push(FailedOs {
                image_id: id,
                reason: reason
                    .chars()
                    .take(ferro_wire::MAX_UPDATE_DETAIL_LEN)
                    .collect(),
            });
            let excess = failed.len().saturating_sub(16);
            failed.drain(..excess);
            ferro_update::files::write_json(&self.failed_os_file(), &failed)?;
        }
        Transaction::finish(&self.dir)?;
        self.apps.prune(None)?;
        tracing::warn!(version = tx.target_version, "update abandoned");
        Ok(())
    }

    fn failed_os_file(&self) -> std::path::PathBuf {
        self.dir.root().join("failed-os.json")
    }

    /// OS bundles that failed to become healthy: a target set naming one is not applied (its
    /// apps were meant for that OS) until the service names another OS.
    fn failed_os(&self) -> Result<Vec<FailedOs>, DeviceError> {
        Ok(ferro_update::files::read_json_opt(&self.failed_os_file())?.unwrap_or_default())
    }

    fn request_os_switch(
        &self,
        tx: &mut Transaction,
        os: &OsSwitch,
    ) -> Result<UpdateOutcome, DeviceError> {
        let slot = Slot::parse(&os.slot)
            .ok_or_else(|| DeviceError::malformed(self.dir.transaction(), "slot"))?;
        tx.phase = Phase::OsPending;
        tx.save(&self.dir)?;
        let mut state = self.ctx.data_dir.read_boot_state()?;
        state.pending = Some(PendingSlot {
            slot,
            attempts_left: DEFAULT_BOOT_ATTEMPTS,
        });
        self.ctx.data_dir.write_boot_state(&state)?;
        crash::point("boot.pending-written");
        tracing::info!(slot = %slot, os = %os.image_id, "OS switch requested; restarting through ferro-boot");
        Ok(UpdateOutcome::Reboot)
    }

    fn switch_apps(&self, tx: &mut Transaction) -> Result<UpdateOutcome, DeviceError> {
        if let Some(next) = &tx.next_apps {
            self.apps.commit(next)?;
        }
        tx.phase = Phase::Committed;
        tx.save(&self.dir)?;
        Ok(UpdateOutcome::AppsSwitched)
    }

    /// Ask for the target set and apply it. `service_time` is the device certificate's
    /// `notBefore` (a time the service signed).
    pub async fn check(
        &mut self,
        certificate_pem: &str,
        service_time: time::OffsetDateTime,
    ) -> Result<UpdateOutcome, DeviceError> {
        if Transaction::load(&self.dir)?.is_some() {
            // An update is in progress; resume() owns it.
            return Ok(UpdateOutcome::UpToDate);
        }
        let client = self.client(certificate_pem)?;
        let answer = client
            .target_set(self.etag.as_deref())
            .await
            .map_err(call_err("the target set route"))?;
        let TargetSetAnswer::Current {
            target_set: doc,
            etag,
        } = answer
        else {
            return Ok(UpdateOutcome::NotModified);
        };
        let bad_base64 = |_| DeviceError::Service("target set response: bad base64".into());
        let set_bytes = decode_b64(&doc.target_set).map_err(bad_base64)?;
        let owner_bytes = decode_b64(&doc.ownership).map_err(bad_base64)?;
        let accepted = match accept_target_set(
            &self.dir,
            &*self.ctx.rot,
            &self.ctx.key_list,
            &set_bytes,
            &owner_bytes,
            Some(service_time),
        ) {
            Ok(a) => a,
            Err(e) => {
                let reason = e.to_string();
                self.report(
                    certificate_pem,
                    UpdateState::Failed,
                    Some(doc.version),
                    Some(reason.clone()),
                )
                .await;
                return Err(e.into());
            }
        };
        let version = accepted.target_set().version;
        match self.apply(&client, certificate_pem, &accepted).await {
            Ok(outcome) => {
                // A deferred set must be fetched and applied again, not answered with 304.
                self.etag = if matches!(outcome, UpdateOutcome::Deferred(_)) {
                    None
                } else {
                    etag
                };
                match &outcome {
                    UpdateOutcome::Deferred(until) => {
                        self.report_deferred(certificate_pem, version, *until).await;
                    }
                    UpdateOutcome::UpToDate => {
                        self.report(certificate_pem, UpdateState::UpToDate, Some(version), None)
                            .await;
                    }
                    UpdateOutcome::Failed(reason) => {
                        self.report(
                            certificate_pem,
                            UpdateState::Failed,
                            Some(version),
                            Some(reason.clone()),
                        )
                        .await;
                    }
                    UpdateOutcome::Reboot => {
                        self.report(
                            certificate_pem,
                            UpdateState::Installing,
                            Some(version),
                            Some("restarting into the new OS".into()),
                        )
                        .await;
                    }
                    _ => {}
                }
                Ok(outcome)
            }
            Err(e) => {
                self.report(
                    certificate_pem,
                    UpdateState::Failed,
                    Some(version),
                    Some(e.to_string()),
                )
                .await;
                Err(e)
            }
        }
    }

    async fn apply(
        &mut self,
        client: &DeviceClient,
        certificate_pem: &str,
        accepted: &AcceptedTargetSet,
    ) -> Result<UpdateOutcome, DeviceError> {
        let set = accepted.target_set();
        let os_target = set
            .os()
            .filter(|t| Some(t.image_id) != self.running_os())
            .cloned();
        if let Some(os) = &os_target
            && let Some(failed) = self
                .failed_os()?
                .into_iter()
                .find(|f| f.image_id == os.image_id)
        {
            // The set is applied whole or not at all: its apps were meant for this OS.
            return Ok(UpdateOutcome::Failed(failed.reason));
        }
        let installed = self.apps.installed()?;
        let next_apps = set
            .manage_apps
            .then(|| InstalledApps::from_targets(set.version, &set.images))
            .filter(|next| !next.same_images(&installed));
        if os_target.is_none() && next_apps.is_none() {
            return Ok(UpdateOutcome::UpToDate);
        }
        let mut wanted: Vec<TargetImage> = Vec::new();
        if let Some(next) = &next_apps {
            wanted.extend(
                set.images
                    .iter()
                    .filter(|i| i.kind != TargetKind::Os)
                    .filter(|i| next.apps.iter().any(|a| a.is(i)))
                    .filter(|i| !self.apps.has_package(i))
                    .cloned(),
            );
        }
        wanted.extend(os_target.iter().cloned());
        let needed: u64 = wanted.iter().map(|i| i.package_size).sum();
        ferro_update::download::ensure_free_space(&self.dir.downloads(), needed)?;
        self.report(
            certificate_pem,
            UpdateState::Downloading,
            Some(set.version),
            Some(format!("{} image(s), {needed} bytes", wanted.len())),
        )
        .await;
        let keep: Vec<[u8; 32]> = wanted.iter().map(|i| i.package_sha256).collect();
        ferro_update::download::prune(&self.dir.downloads(), &keep)?;
        let mut checked = Vec::new();
        for image in &wanted {
            let downloaded = self.download(client, image).await?;
            checked.push(check_package(
                &downloaded,
                image,
                accepted,
                &self.ctx.key_list,
                &*self.ctx.rot,
            )?);
            crash::point("package.checked");
        }
        if let Some(until) = self.deferrals.as_ref().and_then(|d| {
            d.gate(
                set.version,
                os_target.is_some(),
                time::OffsetDateTime::now_utc(),
            )
        }) {
            return Ok(UpdateOutcome::Deferred(until));
        }
        self.report(
            certificate_pem,
            UpdateState::Installing,
            Some(set.version),
            None,
        )
        .await;
        let mut os_switch = None;
        for package in checked {
            if package.target().kind == TargetKind::Os {
                let slot = self.inactive_slot()?;
                self.stage_os(package.path(), slot)?;
                os_switch = Some(OsSwitch {
                    slot: slot.as_str().to_string(),
                    image_id: package.target().image_id,
                    version: package.target().version.clone(),
                });
            } else {
                self.apps.stage(package)?;
            }
        }
        let mut tx = Transaction {
            target_version: set.version,
            phase: Phase::Staged,
            next_apps,
            previous_apps: installed,
            os: os_switch.clone(),
            started_at: time::OffsetDateTime::now_utc().unix_timestamp(),
        };
        tx.save(&self.dir)?;
        match os_switch {
            Some(os) => self.request_os_switch(&mut tx, &os),
            None => self.switch_apps(&mut tx),
        }
    }

    fn inactive_slot(&self) -> Result<Slot, DeviceError> {
        let state = self.ctx.data_dir.read_boot_state()?;
        Ok(self.booted_slot.unwrap_or(state.active).other())
    }

    /// Put a checked OS package into `slot` (its old content is replaced; the booted slot is
    /// never touched, so it stays the fallback).
    fn stage_os(&self, package: &std::path::Path, slot: Slot) -> Result<(), DeviceError> {
        let dir = self.ctx.data_dir.slot_dir(slot);
        crate::layout::create_private_dir(&dir)?;
        let root = self.ctx.data_dir.slot_root(slot);
        if std::fs::symlink_metadata(&root).is_ok() {
            std::fs::remove_dir_all(&root).map_err(DeviceError::io(&root))?;
        }
        crash::point("os.old-root-removed");
        ferro_update::files::rename_durable(package, &self.ctx.data_dir.slot_package(slot))?;
        crash::point("os.staged");
        Ok(())
    }

    /// Download one package, resuming a partial download.
    async fn download(
        &self,
        client: &DeviceClient,
        image: &TargetImage,
    ) -> Result<DownloadedPackage, DeviceError> {
        let dir = self.dir.downloads();
        if let Some(done) = DownloadedPackage::existing(&dir, image.package_sha256)? {
            return Ok(done);
        }
        let mut part = PartialDownload::open(&dir, image.package_sha256, image.package_size)?;
        if !part.is_complete() {
            let mut body = client
                .image(&hex::encode(image.package_sha256), part.offset())
                .await
                .map_err(call_err("the image route"))?;
            if body.start() != part.offset() {
                // The service sent the whole package: start again from its first byte.
                part.restart()?;
            }
            loop {
                match body.chunk().await {
                    Ok(Some(chunk)) => part.append(&chunk)?,
                    Ok(None) => break,
                    Err(e) => {
                        // Keep what arrived: the next attempt resumes from there.
                        part.flush()?;
                        return Err(call_err("the image route")(e));
                    }
                }
            }
        }
        Ok(part.finish()?)
    }

    /// Wait for an update-now signal (long poll); `Ok(true)` when the device should check now.
    pub async fn wait_for_signal(
        &mut self,
        certificate_pem: &str,
        since: &mut Option<String>,
        wait: Duration,
    ) -> Result<bool, DeviceError> {
        let client = self.client(certificate_pem)?;
        let Some(signal) = client
            .update_signal(since.as_deref(), wait)
            .await
            .map_err(call_err("the update signal route"))?
        else {
            return Ok(false);
        };
        *since = Some(signal.signal);
        Ok(signal.check_now)
    }
}

fn decode_b64(s: &str) -> Result<Vec<u8>, base64ct::Error> {
    <base64ct::Base64 as base64ct::Encoding>::decode_vec(s.trim())
}
