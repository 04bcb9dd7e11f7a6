//! `ferro-device run`: the device agent's main loop.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ferro_wire::device_api::AttachedDevice;
use tokio::sync::Notify;

use ferro_trust::{MeasurementLog, RootOfTrustKind};
use serde::Serialize;

use crate::DeviceError;
use crate::identity::DeviceContext;
use crate::layout::{DataDir, Slot, write_json};
use crate::os::{EventJson, read_events};
use crate::update_agent::UpdateOutcome;
use ferro_boot::mark_healthy;

/// How `run` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunExit {
    /// Asked to stop (SIGTERM/SIGINT).
    Stopped,
    /// An OS switch is pending: restart through ferro-boot.
    Reboot,
}

/// How often the agent asks for its target set without being told to (docs/design.md §3.4: 20 hours).
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
/// until SIGTERM or SIGINT. `dns_resolver`: where apps' service discoveries go (`None`: the
/// first `nameserver` of `/etc/resolv.conf`).
pub async fn run(
    data_dir: DataDir,
    booted_slot: Option<Slot>,
    update_interval: std::time::Duration,
    dns_resolver: Option<std::net::SocketAddr>,
) -> Result<RunExit, DeviceError> {
    // Take over SIGTERM/SIGINT first: a signal arriving at any later point asks for a clean stop
    // instead of killing the process mid-write.
    let mut shutdown = Shutdown::install()?;
    let ctx = DeviceContext::open(&data_dir)?;
    let device_id = ctx.device_id().to_string();
    let adopted = adopt_boot_measurements(&ctx)?;
    tracing::info!(device_id = %device_id, adopted, "identity and key list loaded");
    if let Err(error) =
        crate::update_agent::UpdateAgent::new(&ctx, booted_slot).and_then(|a| a.prepare_boot())
    {
        tracing::error!(%error, "could not align the apps with the booted OS");
    }
    // Apps: verified, measured and started before the first attestation, so that a device that
    // cannot reach its service still runs what it has (and attests to what it runs).
    let restart = Arc::new(Notify::new());
    shutdown.restart = Some(restart.clone());
    let deferrals = Arc::new(
        crate::deferral::Deferrals::with_limits(
            update_notice(),
            env_secs("FERRO_MAX_OS_DEFERRAL_SECS").unwrap_or(crate::deferral::MAX_OS_DEFERRAL),
            env_secs("FERRO_MAX_APP_DEFERRAL_SECS").unwrap_or(crate::deferral::MAX_APP_DEFERRAL),
        )
        .with_state_file(data_dir.deferral_state()),
    );
    let services = Arc::new(crate::app_services::AppServices::new(
        &ctx,
        restart.clone(),
        deferrals.clone(),
    ));
    let apps = Arc::new(
        crate::apps::AppManager::new(
            &ctx,
            hardware_dir().as_deref(),
            services,
            deferrals.clone(),
            dns_resolver,
        )
        .map_err(|e| DeviceError::Apps(e.to_string()))?,
    );
    // Verifying and compiling apps blocks: keep the runtime's other tasks moving meanwhile.
    if let Err(error) = tokio::task::block_in_place(|| apps.sync(&ctx)) {
        tracing::error!(%error, "could not start the installed apps");
    }
    let attached = Arc::new(Mutex::new(attached_device(&ctx, booted_slot)?));
    lock(&attached).board = apps.board().map(|b| b.name().to_string());
    let api_stop = Arc::new(Notify::new());
    let api_task = {
        let state = crate::local_api::LocalApi::new(
            ctx.clone(),
            apps.clone(),
            attached.clone(),
            restart.clone(),
        );
        let stop = api_stop.clone();
        let socket = data_dir.root().join(ferro_wire::device_api::SOCKET_PATH);
        tokio::spawn(async move {
            if let Err(error) =
                crate::local_api::serve(socket, state, async move { stop.notified().await }).await
            {
                tracing::error!(%error, "the local device API stopped");
            }
        })
    };
    let events_stop = Arc::new(Notify::new());
    let events_task = {
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        crate::events::EventReporter::forward(apps.runtime().subscribe_events(), tx)
            .map_err(DeviceError::io("event forwarder"))?;
        let reporter = crate::events::EventReporter::open(&ctx, event_upload_interval());
        tokio::spawn(reporter.run(rx, events_stop.clone()))
    };
    let exit = run_attested(
        &ctx,
        booted_slot,
        update_interval,
        &mut shutdown,
        &apps,
        &attached,
        &deferrals,
    )
    .await;
    api_stop.notify_one();
    events_stop.notify_one();
    let _ = api_task.await;
    let _ = events_task.await;
    drop(apps);
    let _ = std::fs::remove_file(data_dir.ready());
    exit
}

/// The attested part of `run`: first verdict, readiness, then renewals and update checks.
async fn run_attested(
    ctx: &DeviceContext,
    booted_slot: Option<Slot>,
    update_interval: std::time::Duration,
    shutdown: &mut Shutdown,
    apps: &Arc<crate::apps::AppManager>,
    attached: &Arc<Mutex<AttachedDevice>>,
    deferrals: &Arc<crate::deferral::Deferrals>,
) -> Result<RunExit, DeviceError> {
    let data_dir = &ctx.data_dir;
    let device_id = ctx.device_id().to_string();
    let update_agent =
        crate::update_agent::UpdateAgent::new(ctx, booted_slot)?.with_deferrals(deferrals.clone());
    let measurements = ctx.rot.read_measurements()?;
    let replays = measurements.replays();
    if !replays {
        tracing::warn!("the measurement log does not replay to the register");
    }
    // Attest before calling the boot healthy: "healthy" means the service has appraised this
    // boot's measurements (a verdict was received; docs/device.md). Retries with backoff until
    // then, or until asked to stop.
    let connection =
        ferro_attest::ServiceConnection::new(&ctx.service_url, &platform_root_pem(ctx))
            .map_err(|e| DeviceError::Attestation(e.to_string()))?;
    crate::layout::create_private_dir(&data_dir.certificates())?;
    let mut certificates = ferro_attest::CertificateManager::open(
        &data_dir.certificates(),
        ferro_attest::RenewalPolicy::default(),
    )
    .map_err(|e| DeviceError::Attestation(e.to_string()))?;
    let first = loop {
        let now = time::OffsetDateTime::now_utc();
        match certificates
            .tick_with(&*ctx.rot, &connection, now, debug_status(apps))
            .await
        {
            (Some(Ok(outcome)), _) => break outcome_summary(&outcome),
            (Some(Err(error)), next) => {
                tracing::warn!(%error, retry_at = %next, "attestation failed; will retry");
                if let Some(exit) = sleep_or_shutdown(shutdown, next).await? {
                    return Ok(exit);
                }
            }
            // A valid certificate from an earlier run: this boot still needs its own verdict.
            (None, _) => {
                match ferro_attest::attest_with(&*ctx.rot, &connection, debug_status(apps)).await {
                    Ok(outcome) => {
                        let _ = certificates.record(now, &Ok(outcome.clone()));
                        break outcome_summary(&outcome);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "attestation failed; will retry");
                        if let Some(exit) =
                            sleep_or_shutdown(shutdown, now + time::Duration::seconds(5)).await?
                        {
                            return Ok(exit);
                        }
                    }
                }
            }
        }
    };
    tracing::info!(verdict = %first.0, reasons = ?first.1, "attested");
    if let Some(slot) = booted_slot {
        let state = mark_healthy(&ctx.data_dir, ctx.rot.as_ref(), &ctx.key_list, slot)?;
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
    {
        let mut a = lock(attached);
        a.attestation = Some(ready.attestation.clone());
        a.attestation_reasons = ready.attestation_reasons.clone();
        a.certificate_not_after = ready.certificate_not_after.clone();
    }
    let mut updates = UpdateLoop {
        agent: update_agent,
        apps: apps.clone(),
        deferred_until: None,
    };
    // Finish an update a previous run started, then check at boot.
    if updates
        .resume_and_check(ctx, &connection, &mut certificates, trusted)
        .await?
    {
        return Ok(RunExit::Reboot);
    }
    let mut next_check = tokio::time::Instant::now() + update_interval;
    if let Some(at) = updates.deferred_until.take() {
        next_check = next_check.min(at);
    }
    let (signal_tx, mut signal_rx) = tokio::sync::mpsc::channel::<Signal>(1);
    let mut signal_task: Option<tokio::task::JoinHandle<()>> = None;
    // The certificate the service refused on the long poll: no new listener until another.
    let mut refused_pem: Option<String> = None;
    // Renew the certificate at half its life (with jitter and backoff, per CertificateManager);
    // an expired certificate never locks the device out: attestation uses the device key.
    let exit = loop {
        if signal_task.as_ref().is_none_or(|t| t.is_finished())
            && let Some(pem_text) = certificate_bundle(&certificates)
            && refused_pem.as_ref() != Some(&pem_text)
        {
            signal_task = Some(tokio::spawn(listen_for_signals(
                crate::update_agent::UpdateAgent::new(ctx, booted_slot)?,
                pem_text,
                signal_tx.clone(),
            )));
        }
        let now = time::OffsetDateTime::now_utc();
        let (outcome, next) = certificates
            .tick_with(&*ctx.rot, &connection, now, debug_status(apps))
            .await;
        match outcome {
            Some(Ok(outcome)) => {
                let (verdict, reasons) = outcome_summary(&outcome);
                tracing::info!(%verdict, ?reasons, "re-attested");
                record_verdict(attached, &certificates, verdict, reasons);
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
            Some(signal) = signal_rx.recv() => match signal {
                Signal::CheckNow => {
                    tracing::info!("update-now signal received");
                    true
                }
                Signal::Refused(pem_text) => {
                    // Moved to another tenant while waiting (a transfer, or an operator's
                    // reassignment or unclaim): attest now for the new tenant's certificate.
                    let scheduled = certificates.attest_again_soon(time::OffsetDateTime::now_utc());
                    tracing::warn!(scheduled, "update signal refused the certificate");
                    refused_pem = Some(pem_text);
                    false
                }
            },
            () = deferrals.resumed() => true,
            r = shutdown.requested() => break r?,
        };
        if check_now {
            next_check = tokio::time::Instant::now() + update_interval;
            if updates.check(ctx, &connection, &mut certificates).await? {
                break RunExit::Reboot;
            }
            if let Some(at) = updates.deferred_until.take() {
                next_check = next_check.min(at);
            }
        }
    };
    if let Some(t) = signal_task {
        t.abort();
    }
    tracing::info!(?exit, "shutting down");
    Ok(exit)
}

/// The device certificate and its CA chain as one PEM bundle, if there is a valid one.
fn certificate_bundle(certificates: &ferro_attest::CertificateManager) -> Option<String> {
    certificates
        .valid_at(time::OffsetDateTime::now_utc())
        .map(pem_bundle)
}

/// A device certificate and its CA chain as one PEM bundle (leaf first), as TLS clients load it.
pub(crate) fn pem_bundle(certificate: &ferro_attest::DeviceCertificate) -> String {
    format!(
        "{}\n{}",
        certificate.certificate_pem.trim_end(),
        certificate.ca_chain_pem
    )
}

/// The device certificate valid now, read from the certificate store (the agent renews it in
/// place, so readers outside the agent's loop read it each time).
pub(crate) fn stored_certificate(ctx: &DeviceContext) -> Option<ferro_attest::DeviceCertificate> {
    ferro_attest::CertificateManager::open(
        &ctx.data_dir.certificates(),
        ferro_attest::RenewalPolicy::default(),
    )
    .ok()?
    .valid_at(time::OffsetDateTime::now_utc())
    .cloned()
}

/// What the update-now listener tells the device's loop.
#[derive(Debug)]
enum Signal {
    /// Check for updates now.
    CheckNow,
    /// The service refused this certificate (PEM bundle) on the long poll (401): the device
    /// changed owner, or its certificate is no longer valid there. The listener has ended.
    Refused(String),
}

/// Long-poll the service for update-now signals and forward them (one task per certificate),
/// until the service refuses the certificate.
async fn listen_for_signals(
    mut agent: crate::update_agent::UpdateAgent,
    certificate_pem: String,
    tx: tokio::sync::mpsc::Sender<Signal>,
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
                if tx.send(Signal::CheckNow).await.is_err() {
                    return;
                }
            }
            Ok(false) => backoff = std::time::Duration::from_secs(1),
            Err(DeviceError::CertificateRefused(_)) => {
                let _ = tx.send(Signal::Refused(certificate_pem)).await;
                return;
            }
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
    /// Restarted on the new apps after a switch.
    apps: Arc<crate::apps::AppManager>,
    /// When a deferred update should be checked again.
    deferred_until: Option<tokio::time::Instant>,
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
            // Stop the replaced apps, verify, measure and start the new ones.
            if let Err(error) = tokio::task::block_in_place(|| self.apps.sync(ctx)) {
                tracing::error!(%error, "could not start the new apps");
            }
            match ferro_attest::attest_with(&*ctx.rot, connection, debug_status(&self.apps)).await {
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
        let pem_text = pem_bundle(&current);
        match self.agent.check(&pem_text, current.not_before).await {
            Ok(UpdateOutcome::Reboot) => Ok(true),
            Ok(UpdateOutcome::AppsSwitched) => {
                self.confirm_after_switch(ctx, connection, certificates, false)
                    .await?;
                Ok(false)
            }
            Ok(UpdateOutcome::Deferred(until)) => {
                let wait = std::time::Duration::try_from(until - time::OffsetDateTime::now_utc())
                    .unwrap_or_default();
                tracing::info!(until = %until, "update deferred for the apps");
                self.deferred_until = Some(tokio::time::Instant::now() + wait);
                Ok(false)
            }
            Ok(outcome) => {
                tracing::debug!(?outcome, "update check");
                Ok(false)
            }
            Err(error @ DeviceError::CertificateRefused(_)) => {
                // Moved to another tenant (a transfer or an operator's reassignment): the next
                // attestation gets the new tenant's certificate and target sets.
                let now = time::OffsetDateTime::now_utc();
                let scheduled = certificates.attest_again_soon(now);
                tracing::warn!(%error, scheduled, "update check refused");
                Ok(false)
            }
            Err(error) => {
                tracing::warn!(%error, "update check failed");
                Ok(false)
            }
        }
    }
}

/// What the evidence says of debugging: `Enabled` while the device is in development mode (it
/// holds an appDevelopment capability file, so test-signed apps may run), `Disabled` otherwise.
/// The service refuses `Enabled` unless it still honours that capability, so a capability the
/// tenant revoked makes a device left in development mode untrusted, whatever it runs.
fn debug_status(apps: &crate::apps::AppManager) -> ferro_trust::evidence::DebugStatus {
    if apps.development_mode().enabled {
        ferro_trust::evidence::DebugStatus::Enabled
    } else {
        ferro_trust::evidence::DebugStatus::Disabled
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

/// The process's SIGTERM/SIGINT, installed once, and restart requests (local API, apps).
struct Shutdown {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    restart: Option<Arc<Notify>>,
}

impl Shutdown {
    fn install() -> Result<Shutdown, DeviceError> {
        Ok(Shutdown {
            #[cfg(unix)]
            terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(DeviceError::io("signal handler"))?,
            restart: None,
        })
    }

    /// How the process was asked to end: a signal stops it, a restart request reboots it
    /// through ferro-boot.
    async fn requested(&mut self) -> Result<RunExit, DeviceError> {
        let restart = self.restart.clone();
        let restart = async move {
            match restart {
                Some(r) => r.notified().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => Ok(RunExit::Stopped),
            r = tokio::signal::ctrl_c() => r.map(|()| RunExit::Stopped).map_err(DeviceError::io("signal handler")),
            () = restart => Ok(RunExit::Reboot),
        }
        #[cfg(not(unix))]
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map(|()| RunExit::Stopped).map_err(DeviceError::io("signal handler")),
            () = restart => Ok(RunExit::Reboot),
        }
    }
}

/// Sleeps until `until` (at most an hour at a time); how to end if asked to first.
async fn sleep_or_shutdown(
    shutdown: &mut Shutdown,
    until: time::OffsetDateTime,
) -> Result<Option<RunExit>, DeviceError> {
    let wait = (until - time::OffsetDateTime::now_utc())
        .clamp(time::Duration::ZERO, time::Duration::hours(1));
    let wait = std::time::Duration::try_from(wait).unwrap_or_default();
    tokio::select! {
        _ = tokio::time::sleep(wait) => Ok(None),
        r = shutdown.requested() => r.map(Some),
    }
}

/// How long apps that may defer updates are given to do so before a switch (`FERRO_UPDATE_NOTICE_SECS`,
/// default 10 s).
fn update_notice() -> std::time::Duration {
    env_secs("FERRO_UPDATE_NOTICE_SECS").unwrap_or(crate::deferral::DEFAULT_NOTICE)
}

/// A duration in whole seconds from the environment (device configuration).
fn env_secs(name: &str) -> Option<std::time::Duration> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(std::time::Duration::from_secs)
}

/// How often routine (non-crash) app events are uploaded: daily, or `FERRO_EVENT_UPLOAD_SECS`
/// (at least 10 s; tests shorten it).
fn event_upload_interval() -> std::time::Duration {
    env_secs("FERRO_EVENT_UPLOAD_SECS")
        .map(|d| d.max(std::time::Duration::from_secs(10)))
        .unwrap_or(std::time::Duration::from_secs(24 * 3600))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The OS bundle's `hardware/` directory: beside the running `bin/ferro-device`, so it is the
/// one ferro-boot verified and unpacked with it.
fn hardware_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.join("hardware");
    dir.is_dir().then_some(dir)
}

/// The local API's view of the device at start (attestation fields filled in later).
fn attached_device(
    ctx: &DeviceContext,
    booted_slot: Option<Slot>,
) -> Result<AttachedDevice, DeviceError> {
    let os_version = ctx.rot.read_measurements().ok().and_then(|m| {
        m.log
            .entries()
            .iter()
            .find(|e| e.event.component_id == ferro_image::OS_COMPONENT_ID)
            .map(|e| e.event.version.clone())
    });
    Ok(AttachedDevice {
        device_id: ctx.device_id(),
        manufacturing_state: ctx.manufacturing_state()?.as_str().to_string(),
        root_of_trust: match ctx.rot.kind() {
            RootOfTrustKind::Software => "Software".into(),
            _ => "Tpm".into(),
        },
        os_version,
        booted_slot: booted_slot.map(|s| s.as_str().to_string()),
        attestation: None,
        attestation_reasons: Vec::new(),
        certificate_not_after: None,
        board: None,
        development: Default::default(),
        service_url: ctx.service_url.clone(),
    })
}

/// Record a verdict in the local API's view.
fn record_verdict(
    attached: &Mutex<AttachedDevice>,
    certificates: &ferro_attest::CertificateManager,
    verdict: String,
    reasons: Vec<String>,
) {
    let mut a = lock(attached);
    a.attestation = Some(verdict);
    a.attestation_reasons = reasons;
    a.certificate_not_after = certificates.current().and_then(|c| {
        c.not_after
            .format(&time::format_description::well_known::Rfc3339)
            .ok()
    });
}

/// Replay a JSON log (as in `ready.json`) and return the register value it produces.
pub fn replay_json(log: &[EventJson]) -> Option<[u8; 32]> {
    let events: Option<Vec<_>> = log.iter().map(EventJson::to_event).collect();
    Some(MeasurementLog::from_events(events?).replay())
}
