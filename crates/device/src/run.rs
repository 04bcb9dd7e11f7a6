//! `ferro-device run`: the device agent's main loop.

use std::path::PathBuf;

use ferro_signing::TrustedKeys;
use ferro_trust::{MeasurementLog, RootOfTrustKind};
use serde::Serialize;

use crate::DeviceError;
use crate::boot::mark_healthy;
use crate::identity::DeviceContext;
use crate::layout::{DataDir, Slot, write_json};
use crate::os::{EventJson, read_events};
use crate::update_agent::UpdateOutcome;

/// Images the device uses besides the OS: the installed apps and board configuration
/// (`apps/installed.json`), each with the keys that must have signed it (the owning tenant's
/// image keys, from the verified ownership document). Without an ownership document no tenant
/// key is trusted, so installed packages would all be refused.
pub fn images_in_use(ctx: &DeviceContext) -> Result<Vec<(PathBuf, TrustedKeys)>, DeviceError> {
    let store = ferro_update::AppStore::open(ctx.data_dir.apps_dir())?;
    let installed = store.installed()?;
    if installed.apps.is_empty() {
        return Ok(Vec::new());
    }
    let dir = ferro_update::UpdateDir::open(ctx.data_dir.update_dir())?;
    let keys = dir
        .load_ownership(&ctx.key_list, &ctx.device_id())?
        .map(|o| o.image_keys())
        .unwrap_or_default();
    Ok(installed
        .apps
        .iter()
        .map(|a| (store.package_path(&a.package_sha256), keys.clone()))
        .collect())
}

/// Verify an image package under `trusted` and measure it.
pub fn verify_and_measure(
    ctx: &DeviceContext,
    package: &std::path::Path,
    trusted: &TrustedKeys,
) -> Result<ferro_image::VerifiedImage, DeviceError> {
    let image =
        ferro_image::verify_file(package, trusted, &mut std::io::sink()).map_err(|source| {
            DeviceError::Image {
                path: package.to_path_buf(),
                source,
            }
        })?;
    ctx.measure(&crate::os::image_measurement(&image))?;
    Ok(image)
}

/// Verify and measure the images in use; a package that does not verify is logged and not used.
fn measure_images_in_use(ctx: &DeviceContext) -> Result<(), DeviceError> {
    for (package, keys) in images_in_use(ctx)? {
        match verify_and_measure(ctx, &package, &keys) {
            Ok(image) => {
                tracing::info!(image_id = %image.metadata().image_id, "image verified and measured");
            }
            Err(error) => tracing::error!(%error, "installed image refused; it will not run"),
        }
    }
    Ok(())
}

/// How `run` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunExit {
    /// Asked to stop (SIGTERM/SIGINT).
    Stopped,
    /// An OS switch is pending: restart through ferro-boot.
    Reboot,
}

/// How often the agent asks for its target set without being told to (DESIGN: 20 hours).
pub const DEFAULT_UPDATE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(20 * 3600);

/// `run/ready.json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ready {
    /// The device ID.
    pub device_id: String,
    /// The slot ferro-boot booted.
    pub booted_slot: Option<Slot>,
    /// The measurement register value, hex.
    pub pcr_value: String,
    /// Whether the log replays to it.
    pub replays: bool,
    /// This boot's measurement log.
    pub log: Vec<EventJson>,
    /// The verdict of this boot's first attestation (`Trusted` or `Untrusted`).
    pub attestation: String,
    /// Why the service did not trust the device, if it did not.
    pub attestation_reasons: Vec<String>,
    /// When the device certificate expires, if there is one (RFC 3339).
    pub certificate_not_after: Option<String>,
    /// The process ID.
    pub pid: u32,
}

/// Take over what ferro-boot measured. TPM: the log persisted by the trust crate (kept only if
/// it replays to the PCR). Software: the hand-off file ferro-boot wrote is re-extended into
/// this process's register (the software RoT cannot make this trustworthy: see docs/device.md).
pub fn adopt_boot_measurements(ctx: &DeviceContext) -> Result<usize, DeviceError> {
    if ctx.rot.kind() != RootOfTrustKind::Software {
        return Ok(ctx.rot.read_measurements()?.log.len());
    }
    let path = ctx.data_dir.boot_measurements();
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(0);
    }
    let events = read_events(&path)?;
    for e in &events {
        ctx.measure(e)?;
    }
    Ok(events.len())
}

/// Start the device: load and check identity and key list, adopt the boot measurements,
/// verify and measure the images in use, report boot health, write `run/ready.json`, then run
/// until SIGTERM or SIGINT.
pub async fn run(
    data_dir: DataDir,
    booted_slot: Option<Slot>,
    update_interval: std::time::Duration,
) -> Result<RunExit, DeviceError> {
    // Take over SIGTERM/SIGINT first: a signal arriving at any later point asks for a clean stop
    // instead of killing the process mid-write.
    let mut shutdown = Shutdown::install()?;
    let ctx = DeviceContext::open(&data_dir)?;
    let device_id = ctx.device_id().to_string();
    let adopted = adopt_boot_measurements(&ctx)?;
    tracing::info!(device_id = %device_id, adopted, "identity and key list loaded");
    let update_agent = crate::update_agent::UpdateAgent::new(&ctx, booted_slot)?;
    if let Err(error) = update_agent.prepare_boot() {
        tracing::error!(%error, "could not align the apps with the booted OS");
    }
    measure_images_in_use(&ctx)?;
    let measurements = ctx.rot.read_measurements()?;
    let replays = measurements.replays();
    if !replays {
        tracing::warn!("the measurement log does not replay to the register");
    }
    // Attest before calling the boot healthy: "healthy" means the service has appraised this
    // boot's measurements (a verdict was received; docs/device.md). Retries with backoff until
    // then, or until asked to stop.
    let connection =
        ferro_attest::ServiceConnection::new(&ctx.service_url, &platform_root_pem(&ctx))
            .map_err(|e| DeviceError::Attestation(e.to_string()))?;
    std::fs::create_dir_all(data_dir.certificates())
        .map_err(DeviceError::io("certificate directory"))?;
    let mut certificates = ferro_attest::CertificateManager::open(
        &data_dir.certificates(),
        ferro_attest::RenewalPolicy::default(),
    )
    .map_err(|e| DeviceError::Attestation(e.to_string()))?;
    let first = loop {
        let now = time::OffsetDateTime::now_utc();
        match certificates.tick(&*ctx.rot, &connection, now).await {
            (Some(Ok(outcome)), _) => break outcome_summary(&outcome),
            (Some(Err(error)), next) => {
                tracing::warn!(%error, retry_at = %next, "attestation failed; will retry");
                if sleep_or_shutdown(&mut shutdown, next).await? {
                    return Ok(RunExit::Stopped);
                }
            }
            // A valid certificate from an earlier run: this boot still needs its own verdict.
            (None, _) => match ferro_attest::attest(&*ctx.rot, &connection).await {
                Ok(outcome) => {
                    let _ = certificates.record(now, &Ok(outcome.clone()));
                    break outcome_summary(&outcome);
                }
                Err(error) => {
                    tracing::warn!(%error, "attestation failed; will retry");
                    if sleep_or_shutdown(&mut shutdown, now + time::Duration::seconds(5)).await? {
                        return Ok(RunExit::Stopped);
                    }
                }
            },
        }
    };
    tracing::info!(verdict = %first.0, reasons = ?first.1, "attested");
    if let Some(slot) = booted_slot {
        let state = mark_healthy(&ctx, slot)?;
        tracing::info!(slot = %slot, active = %state.active, "boot reported healthy");
    }
    let trusted = first.0 == "Trusted";
    let ready = Ready {
        device_id,
        booted_slot,
        pcr_value: hex::encode(measurements.pcr_value),
        replays,
        log: measurements
            .log
            .entries()
            .iter()
            .map(|e| EventJson::from(&e.event))
            .collect(),
        attestation: first.0,
        attestation_reasons: first.1,
        certificate_not_after: certificates.current().and_then(|c| {
            c.not_after
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        }),
        pid: std::process::id(),
    };
    write_json(&data_dir.ready(), &ready)?;
    tracing::info!("device ready");
    let mut updates = UpdateLoop {
        agent: update_agent,
    };
    // Finish an update a previous run started, then check at boot.
    if updates
        .resume_and_check(&ctx, &connection, &mut certificates, trusted)
        .await?
    {
        return Ok(RunExit::Reboot);
    }
    let mut next_check = tokio::time::Instant::now() + update_interval;
    let (signal_tx, mut signal_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut signal_task: Option<tokio::task::JoinHandle<()>> = None;
    // Renew the certificate at half its life (with jitter and backoff, per CertificateManager);
    // an expired certificate never locks the device out: attestation uses the device key.
    let exit = loop {
        if signal_task.as_ref().is_none_or(|t| t.is_finished())
            && let Some(pem_text) = certificate_bundle(&certificates)
        {
            signal_task = Some(tokio::spawn(listen_for_signals(
                crate::update_agent::UpdateAgent::new(&ctx, booted_slot)?,
                pem_text,
                signal_tx.clone(),
            )));
        }
        let now = time::OffsetDateTime::now_utc();
        let (outcome, next) = certificates.tick(&*ctx.rot, &connection, now).await;
        match outcome {
            Some(Ok(outcome)) => {
                let (verdict, reasons) = outcome_summary(&outcome);
                tracing::info!(%verdict, ?reasons, "re-attested");
                if let Some(t) = signal_task.take() {
                    t.abort(); // reconnect with the new certificate
                }
            }
            Some(Err(error)) => tracing::warn!(%error, retry_at = %next, "re-attestation failed"),
            None => {}
        }
        let wait = std::time::Duration::try_from(
            (next - time::OffsetDateTime::now_utc())
                .clamp(time::Duration::ZERO, time::Duration::hours(1)),
        )
        .unwrap_or_default();
        let check_now = tokio::select! {
            _ = tokio::time::sleep(wait) => false,
            _ = tokio::time::sleep_until(next_check) => true,
            Some(()) = signal_rx.recv() => {
                tracing::info!("update-now signal received");
                true
            }
            r = shutdown.requested() => { r?; break RunExit::Stopped; }
        };
        if check_now {
            next_check = tokio::time::Instant::now() + update_interval;
            if updates.check(&ctx, &connection, &mut certificates).await? {
                break RunExit::Reboot;
            }
        }
    };
    if let Some(t) = signal_task {
        t.abort();
    }
    tracing::info!(?exit, "shutting down");
    let _ = std::fs::remove_file(data_dir.ready());
    Ok(exit)
}

/// The device certificate and its CA chain as one PEM bundle, if there is a valid one.
fn certificate_bundle(certificates: &ferro_attest::CertificateManager) -> Option<String> {
    certificates
        .valid_at(time::OffsetDateTime::now_utc())
        .map(|c| format!("{}\n{}", c.certificate_pem.trim_end(), c.ca_chain_pem))
}

/// Long-poll the service for update-now signals and forward them (one task per certificate).
async fn listen_for_signals(
    mut agent: crate::update_agent::UpdateAgent,
    certificate_pem: String,
    tx: tokio::sync::mpsc::Sender<()>,
) {
    let mut since = None;
    let mut backoff = std::time::Duration::from_secs(1);
    loop {
        match agent
            .wait_for_signal(
                &certificate_pem,
                &mut since,
                std::time::Duration::from_secs(60),
            )
            .await
        {
            Ok(true) => {
                backoff = std::time::Duration::from_secs(1);
                if tx.send(()).await.is_err() {
                    return;
                }
            }
            Ok(false) => backoff = std::time::Duration::from_secs(1),
            Err(error) => {
                tracing::debug!(%error, "update signal long poll failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(60));
            }
        }
    }
}

/// The update agent and the state of its checks.
struct UpdateLoop {
    agent: crate::update_agent::UpdateAgent,
}

impl UpdateLoop {
    /// Resume an update in progress, then check. True: restart through ferro-boot.
    async fn resume_and_check(
        &mut self,
        ctx: &DeviceContext,
        connection: &ferro_attest::ServiceConnection,
        certificates: &mut ferro_attest::CertificateManager,
        trusted: bool,
    ) -> Result<bool, DeviceError> {
        let pem_text = certificate_bundle(certificates);
        match self.agent.resume(pem_text.as_deref()).await {
            Ok(UpdateOutcome::Reboot) => return Ok(true),
            Ok(UpdateOutcome::AppsSwitched) => {
                self.confirm_after_switch(ctx, connection, certificates, false)
                    .await?;
            }
            Ok(UpdateOutcome::Confirm) => {
                self.confirm_after_switch(ctx, connection, certificates, trusted)
                    .await?;
            }
            Ok(UpdateOutcome::Failed(reason)) => tracing::warn!(%reason, "update abandoned"),
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "resuming the update failed"),
        }
        self.check(ctx, connection, certificates).await
    }

    /// Confirm (raise floors) once the device is trusted with the new set: `attested_at_boot`
    /// when this boot's first attestation already covered it, else the switched-in apps are
    /// measured and the device attests again. True when the update was confirmed.
    async fn confirm_after_switch(
        &mut self,
        ctx: &DeviceContext,
        connection: &ferro_attest::ServiceConnection,
        certificates: &mut ferro_attest::CertificateManager,
        attested_at_boot: bool,
    ) -> Result<bool, DeviceError> {
        let transaction = ferro_update::UpdateDir::open(ctx.data_dir.update_dir())
            .and_then(|d| ferro_update::Transaction::load(&d))?;
        let trusted = if attested_at_boot {
            true
        } else {
            measure_images_in_use(ctx)?;
            match ferro_attest::attest(&*ctx.rot, connection).await {
                Ok(outcome) => {
                    let _ =
                        certificates.record(time::OffsetDateTime::now_utc(), &Ok(outcome.clone()));
                    let (verdict, reasons) = outcome_summary(&outcome);
                    tracing::info!(%verdict, ?reasons, "attested with the new apps");
                    verdict == "Trusted"
                }
                Err(error) => {
                    tracing::warn!(%error, "attestation after the app switch failed");
                    false
                }
            }
        };
        let Some(pem_text) = certificate_bundle(certificates) else {
            return Ok(false);
        };
        if trusted {
            self.agent.confirm(&pem_text).await?;
            return Ok(true);
        }
        self.agent
            .report(
                &pem_text,
                ferro_wire::UpdateState::Failed,
                transaction.map(|t| t.target_version),
                Some("the device was not trusted with the new apps; floors not raised".into()),
            )
            .await;
        Ok(false)
    }

    /// Ask for the target set and apply it. True: restart through ferro-boot.
    async fn check(
        &mut self,
        ctx: &DeviceContext,
        connection: &ferro_attest::ServiceConnection,
        certificates: &mut ferro_attest::CertificateManager,
    ) -> Result<bool, DeviceError> {
        let Some(current) = certificates
            .valid_at(time::OffsetDateTime::now_utc())
            .cloned()
        else {
            tracing::info!("no valid device certificate; the update check waits for one");
            return Ok(false);
        };
        let pem_text = format!(
            "{}\n{}",
            current.certificate_pem.trim_end(),
            current.ca_chain_pem
        );
        match self.agent.check(&pem_text, current.not_before).await {
            Ok(UpdateOutcome::Reboot) => Ok(true),
            Ok(UpdateOutcome::AppsSwitched) => {
                self.confirm_after_switch(ctx, connection, certificates, false)
                    .await?;
                Ok(false)
            }
            Ok(outcome) => {
                tracing::debug!(?outcome, "update check");
                Ok(false)
            }
            Err(error) => {
                tracing::warn!(%error, "update check failed");
                Ok(false)
            }
        }
    }
}

/// The platform root certificate as PEM: the only TLS trust anchor for the service.
fn platform_root_pem(ctx: &DeviceContext) -> String {
    pem::encode(&pem::Pem::new(
        "CERTIFICATE",
        ctx.platform_root.certificate_der.clone(),
    ))
}

/// ("Trusted" | "Untrusted", reason codes) of an attestation outcome.
fn outcome_summary(outcome: &ferro_attest::AttestationOutcome) -> (String, Vec<String>) {
    match outcome {
        ferro_attest::AttestationOutcome::Trusted { .. } => ("Trusted".to_string(), Vec::new()),
        ferro_attest::AttestationOutcome::Untrusted { reasons, .. } => (
            "Untrusted".to_string(),
            reasons.iter().map(|r| r.code.clone()).collect(),
        ),
    }
}

/// The process's SIGTERM/SIGINT, installed once.
struct Shutdown {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Shutdown {
    fn install() -> Result<Shutdown, DeviceError> {
        Ok(Shutdown {
            #[cfg(unix)]
            terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(DeviceError::io("signal handler"))?,
        })
    }

    async fn requested(&mut self) -> Result<(), DeviceError> {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => Ok(()),
            r = tokio::signal::ctrl_c() => r.map_err(DeviceError::io("signal handler")),
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c()
            .await
            .map_err(DeviceError::io("signal handler"))
    }
}

/// Sleeps until `until` (at most an hour at a time); true if a shutdown signal came first.
async fn sleep_or_shutdown(
    shutdown: &mut Shutdown,
    until: time::OffsetDateTime,
) -> Result<bool, DeviceError> {
    let wait = (until - time::OffsetDateTime::now_utc())
        .clamp(time::Duration::ZERO, time::Duration::hours(1));
    let wait = std::time::Duration::try_from(wait).unwrap_or_default();
    tokio::select! {
        _ = tokio::time::sleep(wait) => Ok(false),
        r = shutdown.requested() => r.map(|()| true),
    }
}

/// Replay a JSON log (as in `ready.json`) and return the register value it produces.
pub fn replay_json(log: &[EventJson]) -> Option<[u8; 32]> {
    let events: Option<Vec<_>> = log.iter().map(EventJson::to_event).collect();
    Some(MeasurementLog::from_events(events?).replay())
}
