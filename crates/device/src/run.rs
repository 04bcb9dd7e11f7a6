//! `ferro-device run`: the device agent's main loop.

use std::path::PathBuf;

use ferro_trust::{MeasurementLog, RootOfTrustKind};
use serde::Serialize;

use crate::DeviceError;
use crate::boot::mark_healthy;
use crate::identity::DeviceContext;
use crate::layout::{DataDir, Slot, write_json};
use crate::os::{EventJson, read_events};

/// Images the agent uses besides the OS (board configuration, apps): none are installed yet,
/// so the list is empty; each will be verified and measured by [`verify_and_measure`] before
/// use.
pub fn images_in_use(_ctx: &DeviceContext) -> Vec<(PathBuf, ferro_pki::PlatformKeyRole)> {
    Vec::new()
}

/// Verify an image package under the key list's keys of `role` and measure it.
pub fn verify_and_measure(
    ctx: &DeviceContext,
    package: &std::path::Path,
    role: ferro_pki::PlatformKeyRole,
) -> Result<ferro_image::VerifiedImage, DeviceError> {
    let image =
        ferro_image::verify_file(package, &ctx.key_list.trusted(role), &mut std::io::sink())
            .map_err(|source| DeviceError::Image {
                path: package.to_path_buf(),
                source,
            })?;
    ctx.measure(&crate::os::image_measurement(&image))?;
    Ok(image)
}

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
pub async fn run(data_dir: DataDir, booted_slot: Option<Slot>) -> Result<(), DeviceError> {
    // Take over SIGTERM/SIGINT first: a signal arriving at any later point asks for a clean stop
    // instead of killing the process mid-write.
    let mut shutdown = Shutdown::install()?;
    let ctx = DeviceContext::open(&data_dir)?;
    let device_id = ctx.device_id().to_string();
    let adopted = adopt_boot_measurements(&ctx)?;
    tracing::info!(device_id = %device_id, adopted, "identity and key list loaded");
    for (package, role) in images_in_use(&ctx) {
        let image = verify_and_measure(&ctx, &package, role)?;
        tracing::info!(image_id = %image.metadata().image_id, "image verified and measured");
    }
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
                    return Ok(());
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
                        return Ok(());
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
    // Renew the certificate at half its life (with jitter and backoff, per CertificateManager);
    // an expired certificate never locks the device out: attestation uses the device key.
    loop {
        let now = time::OffsetDateTime::now_utc();
        let (outcome, next) = certificates.tick(&*ctx.rot, &connection, now).await;
        match outcome {
            Some(Ok(outcome)) => {
                let (verdict, reasons) = outcome_summary(&outcome);
                tracing::info!(%verdict, ?reasons, "re-attested");
            }
            Some(Err(error)) => tracing::warn!(%error, retry_at = %next, "re-attestation failed"),
            None => {}
        }
        if sleep_or_shutdown(&mut shutdown, next).await? {
            break;
        }
    }
    tracing::info!("shutting down");
    let _ = std::fs::remove_file(data_dir.ready());
    Ok(())
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
