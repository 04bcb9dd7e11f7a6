//! [`Runtime`]: install, start, stop and observe apps.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use ferro_manifest::{Capabilities, Resolved, ResolvedManifest};
use ferro_peripherals::{OwnershipTable, Peripherals, Resource};
use uuid::Uuid;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::p2::bindings::sync::CommandPre;

use crate::config::{Backoff, InstallOptions, RuntimeConfig, StorageArea};
use crate::error::{ControlError, InstallError, RuntimeError};
use crate::events::{ErrorEvent, ErrorKind, EventLog, EventSubscription, EventThrottle};
use crate::host::{AppShared, DEVICE_INTERFACES, HostState, StopSignal};
use crate::limits::{Interrupt, MemoryCounters, MemoryLimiter};
use crate::logs::{LogBuffer, LogFollower, LogLevel, LogLine};
use crate::network::Sockets;
use crate::private_net::PrivateNetworks;
use crate::services::DeviceServices;
use crate::storage::{Storage, storage_path};
use crate::wasi;

/// Native stack of an app thread (wasm frames run on it; wasmtime's own limit is 512 KiB).
const APP_THREAD_STACK: usize = 8 * 1024 * 1024;
/// WebAssembly stack limit per instance.
const MAX_WASM_STACK: usize = 512 * 1024;

/// An installed app: its manifest's `ComponentId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppId(Uuid);

impl AppId {
    pub fn uuid(self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for AppId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where an app is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppState {
    /// Not running (never started, manual start, or stopped on request).
    Stopped,
    /// Being instantiated.
    Starting,
    Running,
    /// Exited or trapped; restarts after the delay.
    BackingOff {
        restart_in: Duration,
    },
}

/// `show-status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppStatus {
    pub id: AppId,
    pub name: String,
    pub state: AppState,
    pub manual_start: bool,
    /// Restarts after exits and traps since install.
    pub restarts: u32,
    /// Why the last instance ended, if one did.
    pub last_exit: Option<ErrorKind>,
    /// How long the last instantiation took.
    pub last_start_duration: Option<Duration>,
    /// When the current instance started running.
    pub running_since: Option<SystemTime>,
}

/// `show-memory-stats`: linear memory of the current (or last) instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStats {
    /// Initial memory the image declares.
    pub image_bytes: u64,
    pub current_bytes: u64,
    /// Highest since install.
    pub peak_bytes: u64,
    /// Image plus the allowance.
    pub limit_bytes: u64,
}

/// `show-quota`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageQuota {
    pub used_bytes: u64,
    pub quota_bytes: u64,
}

#[derive(Debug)]
struct Control {
    state: AppState,
    thread: Option<JoinHandle<()>>,
    restarts: u32,
    last_exit: Option<ErrorKind>,
    last_start_duration: Option<Duration>,
    running_since: Option<SystemTime>,
    /// Set by uninstall: the slot may still be referenced, but never starts again.
    uninstalled: bool,
}

struct Slot {
    shared: Arc<AppShared>,
    pre: CommandPre<HostState>,
    args: Vec<String>,
    manual_start: bool,
    storage: Option<(PathBuf, u64)>,
    control: Mutex<Control>,
    /// Held for the whole of a start, stop or uninstall, so they never interleave (one
    /// supervisor thread per app at most).
    lifecycle: Mutex<()>,
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("app", &self.shared.id)
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl Slot {
    fn control(&self) -> MutexGuard<'_, Control> {
        self.control
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What an app thread needs from the runtime (no back-reference to it).
#[derive(Clone)]
struct Context {
    engine: Engine,
    peripherals: Peripherals,
    services: Arc<dyn DeviceServices>,
    partners: Arc<dyn crate::partners::PartnerConnector>,
    backoff: Backoff,
    events: Arc<EventLog>,
    bind_address: std::net::IpAddr,
    dns_resolver: Option<std::net::SocketAddr>,
    discovery_allows_loopback: bool,
    private_networks: Arc<PrivateNetworks>,
}

#[derive(Debug)]
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The app runtime of one device. Dropping it stops every app.
pub struct Runtime {
    context: Context,
    config: RuntimeConfig,
    apps: Mutex<BTreeMap<AppId, Arc<Slot>>>,
    /// Held for the whole of an install, so installs are serialized.
    ownership: Mutex<OwnershipTable>,
    events: Arc<EventLog>,
    _ticker: Ticker,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("storage_dir", &self.config.storage_dir)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Runtime {
    /// A runtime over `peripherals`.
    pub fn new(config: RuntimeConfig, peripherals: Peripherals) -> Result<Self, RuntimeError> {
        let mut engine_config = wasmtime::Config::new();
        engine_config
            .epoch_interruption(true)
            .wasm_component_model(true)
            .concurrency_support(false)
            .max_wasm_stack(MAX_WASM_STACK);
        let engine = Engine::new(&engine_config)
            .map_err(|error| RuntimeError::Engine(format!("{error:#}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let tick = config.epoch_tick.max(Duration::from_millis(1));
        let ticker_engine = engine.clone();
        let ticker_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ferro-epoch".to_owned())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|error| RuntimeError::Ticker(error.to_string()))?;
        let events = Arc::new(EventLog::new(config.event_capacity));
        Ok(Self {
            context: Context {
                engine,
                peripherals,
                services: config.services.clone(),
                partners: config.partners.clone(),
                backoff: config.backoff,
                events: events.clone(),
                bind_address: config.server_bind_address,
                dns_resolver: config.dns_resolver,
                discovery_allows_loopback: config.discovery_allows_loopback,
                private_networks: Arc::new(PrivateNetworks::new(
                    config.private_networks.clone(),
                    config.sys_net_dir.clone(),
                )),
            },
            ownership: Mutex::new(OwnershipTable::new(config.pin_blocks.clone())),
            config,
            apps: Mutex::new(BTreeMap::new()),
            events,
            _ticker: Ticker {
                stop,
                thread: Some(thread),
            },
        })
    }

    /// Installs an app from its verified payload directory: the component is the manifest's
    /// `EntryPoint` inside `payload_dir`.
    pub fn install_from_dir(
        &self,
        payload_dir: &Path,
        manifest: &ResolvedManifest,
        options: InstallOptions,
    ) -> Result<AppId, InstallError> {
        let relative = manifest.entry_point().trim_start_matches('/');
        let path = payload_dir.join(relative);
        let payload_error = |message: String| InstallError::Payload {
            path: path.display().to_string(),
            message,
        };
        // The entry point must stay inside the payload (the image format already refuses `..`).
        if Path::new(relative)
            .components()
            .any(|component| !matches!(component, std::path::Component::Normal(_)))
        {
            return Err(payload_error(
                "the entry point leaves the payload".to_owned(),
            ));
        }
        let metadata =
            std::fs::metadata(&path).map_err(|error| payload_error(error.to_string()))?;
        if metadata.len() > self.config.max_component_bytes as u64 {
            return Err(InstallError::TooLarge {
                size: usize::try_from(metadata.len()).unwrap_or(usize::MAX),
                limit: self.config.max_component_bytes,
            });
        }
        let bytes = std::fs::read(&path).map_err(|error| payload_error(error.to_string()))?;
        self.install(&bytes, manifest, options)
    }

    /// Installs an app: compiles the component, links the interfaces its manifest grants
    /// (failing on any other import), claims its peripherals and server ports, and starts it
    /// unless `options.manual_start`.
    pub fn install(
        &self,
        component: &[u8],
        manifest: &ResolvedManifest,
        options: InstallOptions,
    ) -> Result<AppId, InstallError> {
        let id = AppId(manifest.component_id());
        if manifest.is_real_time() {
            return Err(InstallError::NotHighLevel(id));
        }
        if component.len() > self.config.max_component_bytes {
            return Err(InstallError::TooLarge {
                size: component.len(),
                limit: self.config.max_component_bytes,
            });
        }
        let mut ownership = lock(&self.ownership);
        if lock(&self.apps).contains_key(&id) {
            return Err(InstallError::AlreadyInstalled(id));
        }
        let capabilities = manifest.capabilities();
        self.context.private_networks.check_install(capabilities)?;
        let started = Instant::now();
        let compiled = Component::from_binary(&self.context.engine, component)
            .map_err(|error| InstallError::InvalidComponent(format!("{error:#}")))?;
        check_imports(&self.context.engine, &compiled, capabilities)?;
        let linker = build_linker(&self.context.engine, capabilities)
            .map_err(|error| InstallError::Link(format!("{error:#}")))?;
        let pre = linker
            .instantiate_pre(&compiled)
            .map_err(|error| InstallError::Link(format!("{error:#}")))?;
        let pre = CommandPre::new(pre)
            .map_err(|error| InstallError::NotACommand(format!("{error:#}")))?;
        ownership.claim(&id.to_string(), &Resource::claimed_by(capabilities))?;
        let storage = capabilities.mutable_storage_kib().map(|kib| {
            (
                storage_path(&self.config.storage_dir, id, options.storage_area),
                u64::from(kib) * 1024,
            )
        });
        if let Some((path, _)) = &storage
            && let Some(parent) = path.parent()
            && let Err(error) = std::fs::create_dir_all(parent)
        {
            ownership.release(&id.to_string());
            return Err(InstallError::Storage(error.to_string()));
        }
        let limits = options
            .limits
            .clone()
            .unwrap_or_else(|| self.config.limits.clone());
        let logs = Arc::new(LogBuffer::new(
            id,
            manifest.name(),
            self.config.log_capacity_lines,
            limits.clone(),
            self.events.clone(),
        ));
        let signing = Mutex::new(crate::limits::TokenBucket::new(
            limits.batch_signatures_per_second,
            limits.batch_signature_burst,
        ));
        let shared = Arc::new(AppShared {
            id,
            name: manifest.name().to_owned(),
            capabilities: capabilities.clone(),
            limits,
            logs,
            events: self.events.clone(),
            stop: StopSignal::default(),
            lookup: crate::connect::LookupSlot::default(),
            memory: MemoryCounters::default(),
            throttle: Mutex::new(EventThrottle::new()),
            package_files: options.package_files.clone(),
            image: options
                .image_id
                .map(|image| (image, options.storage_area == StorageArea::Development)),
            signing,
        });
        let slot = Arc::new(Slot {
            shared,
            pre,
            args: manifest.cmd_args().to_vec(),
            manual_start: options.manual_start,
            storage,
            control: Mutex::new(Control {
                state: AppState::Stopped,
                thread: None,
                restarts: 0,
                last_exit: None,
                last_start_duration: None,
                running_since: None,
                uninstalled: false,
            }),
            lifecycle: Mutex::new(()),
        });
        lock(&self.apps).insert(id, slot);
        drop(ownership);
        tracing::info!(app = %id, name = manifest.name(), compile_ms = started.elapsed().as_millis() as u64, manual_start = options.manual_start, "app installed");
        if !options.manual_start {
            self.start(id)?;
        }
        Ok(id)
    }

    fn slot(&self, id: AppId) -> Result<Arc<Slot>, ControlError> {
        lock(&self.apps)
            .get(&id)
            .cloned()
            .ok_or(ControlError::NotInstalled(id))
    }

    /// Starts an app (a no-op if it is running or restarting).
    pub fn start(&self, id: AppId) -> Result<(), ControlError> {
        let slot = self.slot(id)?;
        let _lifecycle = lock(&slot.lifecycle);
        let mut control = slot.control();
        if control.uninstalled {
            return Err(ControlError::NotInstalled(id));
        }
        if control
            .thread
            .as_ref()
            .is_some_and(|thread| !thread.is_finished())
        {
            return Ok(());
        }
        if let Some(thread) = control.thread.take() {
            let _ = thread.join();
        }
        slot.shared.stop.clear();
        control.state = AppState::Starting;
        let context = self.context.clone();
        let thread_slot = slot.clone();
        let thread = std::thread::Builder::new()
            .name(format!("app-{}", slot.shared.name))
            .stack_size(APP_THREAD_STACK)
            .spawn(move || supervise(&context, &thread_slot))
            .map_err(|error| ControlError::Spawn {
                app: id,
                message: error.to_string(),
            })?;
        control.thread = Some(thread);
        tracing::info!(app = %id, "app started");
        Ok(())
    }

    /// Stops an app and waits for its instance to end (within an epoch tick while it computes,
    /// within about 20 ms in a blocking call, at most the connect timeout in a connect).
    pub fn stop(&self, id: AppId) -> Result<(), ControlError> {
        let slot = self.slot(id)?;
        let _lifecycle = lock(&slot.lifecycle);
        stop_slot(&slot);
        tracing::info!(app = %id, "app stopped");
        Ok(())
    }

    /// Claims `resources` (a real-time app's peripherals and its core) for an app that runs
    /// outside this runtime, in the one ownership table the high-level apps' claims are in: all
    /// or nothing, refused when any overlaps another app's (the error names the holder) or when
    /// `id` already holds resources. [`Self::release_reserved`] frees them.
    pub fn reserve(&self, id: AppId, resources: &[Resource]) -> Result<(), InstallError> {
        let mut ownership = lock(&self.ownership);
        if lock(&self.apps).contains_key(&id) {
            return Err(InstallError::AlreadyInstalled(id));
        }
        ownership.claim(&id.to_string(), resources)?;
        tracing::info!(app = %id, resources = resources.len(), "resources reserved for an app outside the runtime");
        Ok(())
    }

    /// Frees what [`Self::reserve`] claimed for `id` (nothing if it holds nothing, or if `id` is
    /// a high-level app of this runtime: those release through [`Self::uninstall`]).
    pub fn release_reserved(&self, id: AppId) {
        let mut ownership = lock(&self.ownership);
        if !lock(&self.apps).contains_key(&id) {
            ownership.release(&id.to_string());
        }
    }

    /// The app that holds `resource` (installed here or reserved), if any.
    pub fn owner_of(&self, resource: &Resource) -> Option<AppId> {
        lock(&self.ownership)
            .owner_of(resource)
            .and_then(|owner| Uuid::parse_str(owner).ok())
            .map(AppId)
    }

    /// Stops and removes an app, releasing its peripherals and ports; deletes its mutable
    /// storage unless `keep_storage` (an update keeps it).
    pub fn uninstall(&self, id: AppId, keep_storage: bool) -> Result<(), ControlError> {
        let slot = self.slot(id)?;
        let _lifecycle = lock(&slot.lifecycle);
        if slot.control().uninstalled {
            return Err(ControlError::NotInstalled(id));
        }
        stop_slot(&slot);
        slot.control().uninstalled = true;
        let mut ownership = lock(&self.ownership);
        lock(&self.apps).remove(&id);
        ownership.release(&id.to_string());
        if !keep_storage
            && let Some((path, _)) = &slot.storage
            && let Some(parent) = path.parent()
        {
            let _ = std::fs::remove_dir_all(parent);
        }
        tracing::info!(app = %id, keep_storage, "app uninstalled");
        Ok(())
    }

    /// Installed apps.
    pub fn apps(&self) -> Vec<AppId> {
        lock(&self.apps).keys().copied().collect()
    }

    /// `show-status`.
    pub fn status(&self, id: AppId) -> Result<AppStatus, ControlError> {
        let slot = self.slot(id)?;
        let control = slot.control();
        Ok(AppStatus {
            id,
            name: slot.shared.name.clone(),
            state: control.state,
            manual_start: slot.manual_start,
            restarts: control.restarts,
            last_exit: control.last_exit.clone(),
            last_start_duration: control.last_start_duration,
            running_since: control.running_since,
        })
    }

    /// `show-quota`: `None` when the manifest grants no mutable storage.
    pub fn quota(&self, id: AppId) -> Result<Option<StorageQuota>, ControlError> {
        let slot = self.slot(id)?;
        Ok(slot.storage.as_ref().map(|(path, quota)| StorageQuota {
            used_bytes: std::fs::metadata(path).map_or(0, |metadata| metadata.len()),
            quota_bytes: *quota,
        }))
    }

    /// `show-memory-stats`.
    pub fn memory_stats(&self, id: AppId) -> Result<MemoryStats, ControlError> {
        let slot = self.slot(id)?;
        let memory = &slot.shared.memory;
        Ok(MemoryStats {
            image_bytes: memory.image.load(Ordering::Relaxed),
            current_bytes: memory.current.load(Ordering::Relaxed),
            peak_bytes: memory.peak.load(Ordering::Relaxed),
            limit_bytes: memory.limit.load(Ordering::Relaxed),
        })
    }

    /// The app's log lines kept so far (bounded).
    pub fn logs(&self, id: AppId) -> Result<Vec<LogLine>, ControlError> {
        Ok(self.slot(id)?.shared.logs.snapshot())
    }

    /// Log lines dropped by the rate limit since install.
    pub fn dropped_log_lines(&self, id: AppId) -> Result<u64, ControlError> {
        Ok(self.slot(id)?.shared.logs.dropped_total())
    }

    /// Follows the app's log from now on (`logs --follow`).
    pub fn follow_logs(&self, id: AppId) -> Result<LogFollower, ControlError> {
        let slot = self.slot(id)?;
        let buffer = slot.shared.logs.clone();
        let next = buffer.next_seq();
        Ok(LogFollower { buffer, next })
    }

    /// Subscribes to error events from now on.
    pub fn subscribe_events(&self) -> EventSubscription {
        EventSubscription {
            log: self.events.clone(),
            next: self.events.next_seq(),
            missed: 0,
        }
    }

    /// The error events kept so far (bounded).
    pub fn recent_events(&self) -> Vec<ErrorEvent> {
        self.events.snapshot()
    }

    /// A recorder of error events of apps that run outside this runtime (real-time apps on
    /// their cores), so that the device's one event stream carries them.
    pub fn event_recorder(&self) -> EventRecorder {
        EventRecorder {
            log: self.events.clone(),
        }
    }
}

/// Records error events into a runtime's event stream (see [`Runtime::event_recorder`]).
#[derive(Debug, Clone)]
pub struct EventRecorder {
    log: Arc<EventLog>,
}

impl EventRecorder {
    /// Records `kind` for `app`; `restart_in` when a restart is scheduled.
    pub fn record(
        &self,
        app: AppId,
        app_name: &str,
        kind: ErrorKind,
        restart_in: Option<Duration>,
    ) {
        self.log.push(app, app_name, kind, restart_in);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let apps: Vec<AppId> = self.apps();
        for app in apps {
            let _ = self.stop(app);
        }
    }
}

/// Stops the app's supervisor and waits for it; the caller holds the slot's lifecycle lock.
fn stop_slot(slot: &Slot) {
    slot.shared.stop.request();
    let thread = slot.control().thread.take();
    if let Some(thread) = thread {
        let _ = thread.join();
    }
    let mut control = slot.control();
    control.state = AppState::Stopped;
    control.running_since = None;
}

/// Which `ferrosphere:device` and WASI interfaces `capabilities` link.
pub(crate) fn linked_interfaces(capabilities: &Capabilities<Resolved>) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = wasi::WASI_INTERFACES
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    for interface in DEVICE_INTERFACES {
        if (interface.granted)(capabilities) {
            names.insert(format!("ferrosphere:device/{}", interface.name));
        }
    }
    names
}

fn check_imports(
    engine: &Engine,
    component: &Component,
    capabilities: &Capabilities<Resolved>,
) -> Result<(), InstallError> {
    let linked = linked_interfaces(capabilities);
    let mut refused: Vec<(String, String)> = Vec::new();
    for (name, _) in component.component_type().imports(engine) {
        let base = name.split('@').next().unwrap_or(name);
        if linked.contains(base) {
            continue;
        }
        let reason = match base.strip_prefix("ferrosphere:device/") {
            Some(interface) => match DEVICE_INTERFACES
                .iter()
                .find(|candidate| candidate.name == interface)
            {
                Some(candidate) => format!(
                    "its app_manifest.json does not grant (it needs {})",
                    candidate.grant.unwrap_or("nothing")
                ),
                None => "is not part of the ferrosphere:device world".to_owned(),
            },
            None => "this device does not provide to apps (no WASI sockets, file system, \
                     environment or monotonic-clock waits; use the ferrosphere:device \
                     interfaces)"
                .to_owned(),
        };
        refused.push((name.to_owned(), reason));
    }
    let mut refused = refused.into_iter();
    match refused.next() {
        None => Ok(()),
        Some((import, reason)) => Err(InstallError::ImportNotGranted {
            import,
            reason,
            others: refused.map(|(name, _)| name).collect(),
        }),
    }
}

fn build_linker(
    engine: &Engine,
    capabilities: &Capabilities<Resolved>,
) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasi::add_to_linker(&mut linker)?;
    for interface in DEVICE_INTERFACES {
        if (interface.granted)(capabilities) {
            interface.add_to(&mut linker)?;
        }
    }
    Ok(linker)
}

enum Outcome {
    Stopped,
    Ended(ErrorKind),
}

/// The app thread: run, and restart with backoff until stopped.
fn supervise(context: &Context, slot: &Arc<Slot>) {
    let shared = &slot.shared;
    let mut failures = 0u32;
    loop {
        if shared.stop.is_requested() {
            break;
        }
        slot.control().state = AppState::Starting;
        let started = Instant::now();
        let outcome = run_instance(context, slot);
        let ran = started.elapsed();
        let kind = match outcome {
            Outcome::Stopped => break,
            Outcome::Ended(kind) => kind,
        };
        if shared.stop.is_requested() {
            break;
        }
        if context.backoff.resets(ran) {
            failures = 0;
        }
        failures = failures.saturating_add(1);
        let delay = context.backoff.delay(failures);
        let level = if kind.is_crash() {
            LogLevel::Error
        } else {
            LogLevel::Warning
        };
        shared.logs.runtime_line(
            level,
            &format!("app {kind}; restarting in {} ms", delay.as_millis()),
        );
        // Status first, so whoever sees the event sees the status that goes with it.
        {
            let mut control = slot.control();
            control.restarts = control.restarts.saturating_add(1);
            control.last_exit = Some(kind.clone());
            control.state = AppState::BackingOff { restart_in: delay };
            control.running_since = None;
        }
        context
            .events
            .push(shared.id, &shared.name, kind, Some(delay));
        if shared.stop.wait(delay) {
            break;
        }
    }
    let mut control = slot.control();
    control.state = AppState::Stopped;
    control.running_since = None;
}

fn run_instance(context: &Context, slot: &Arc<Slot>) -> Outcome {
    let shared = slot.shared.clone();
    let mut table = ResourceTable::new();
    table.set_max_capacity(shared.limits.max_host_resources);
    let state = HostState {
        wasi: wasi::context(&shared.name, &slot.args, &shared.logs),
        table,
        app: shared.clone(),
        peripherals: context.peripherals.clone(),
        services: context.services.clone(),
        limiter: MemoryLimiter::new(shared.clone()),
        last_yield: Instant::now(),
        cpu: crate::limits::CpuWindow::new(shared.limits.cpu_budget, shared.limits.cpu_window),
        gpio_open: BTreeSet::new(),
        uart_open: BTreeSet::new(),
        sockets: Sockets::new(shared.limits.max_sockets, context.bind_address),
        private_networks: context.private_networks.clone(),
        discovery: crate::discovery::Discovery::new(
            context.dns_resolver,
            context.discovery_allows_loopback,
        ),
        storage: slot
            .storage
            .as_ref()
            .map(|(path, quota)| Storage::new(path.clone(), *quota)),
        partners: context.partners.clone(),
        connections: crate::application::Connections::default(),
    };
    let mut store = Store::new(&context.engine, state);
    store.limiter(|state| &mut state.limiter);
    store.set_epoch_deadline(1);
    let slice = shared.limits.cpu_slice;
    store.epoch_deadline_callback(move |mut store| {
        let state = store.data_mut();
        if state.app.stop.is_requested() {
            return Err(wasmtime::Error::new(Interrupt::Stopped));
        }
        let now = Instant::now();
        if now.saturating_duration_since(state.last_yield) > slice {
            return Err(wasmtime::Error::new(Interrupt::CpuLimit { slice }));
        }
        let since = state.last_yield;
        if state.cpu.exceeded(now, since) {
            return Err(wasmtime::Error::new(Interrupt::CpuBudget {
                budget: state.cpu.budget,
                window: state.cpu.window,
            }));
        }
        Ok(UpdateDeadline::Continue(1))
    });
    let started = Instant::now();
    let command = match slot.pre.instantiate(&mut store) {
        Ok(command) => command,
        Err(error) => {
            return match classify(&error) {
                Outcome::Ended(ErrorKind::Trapped { reason }) => {
                    Outcome::Ended(ErrorKind::StartFailed { reason })
                }
                other => other,
            };
        }
    };
    store.data_mut().limiter.instantiated();
    {
        let mut control = slot.control();
        control.state = AppState::Running;
        control.last_start_duration = Some(started.elapsed());
        control.running_since = Some(SystemTime::now());
    }
    store.data_mut().yielded();
    let result = command.wasi_cli_run().call_run(&mut store);
    match result {
        Ok(Ok(())) => Outcome::Ended(ErrorKind::Exited { code: 0 }),
        Ok(Err(())) => Outcome::Ended(ErrorKind::Exited { code: 1 }),
        Err(error) => classify(&error),
    }
}

fn classify(error: &wasmtime::Error) -> Outcome {
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return Outcome::Ended(ErrorKind::Exited { code: exit.0 });
    }
    if let Some(interrupt) = error.downcast_ref::<Interrupt>() {
        return match interrupt {
            Interrupt::Stopped => Outcome::Stopped,
            Interrupt::CpuLimit { slice } => Outcome::Ended(ErrorKind::CpuLimit { slice: *slice }),
            Interrupt::CpuBudget { budget, window } => Outcome::Ended(ErrorKind::CpuBudget {
                budget: *budget,
                window: *window,
            }),
            Interrupt::MemoryLimit { limit, .. } => Outcome::Ended(ErrorKind::MemoryLimit {
                limit_bytes: *limit,
            }),
            Interrupt::ImageTooLarge { .. } => Outcome::Ended(ErrorKind::StartFailed {
                reason: interrupt.to_string(),
            }),
            Interrupt::TableLimit { .. } => Outcome::Ended(ErrorKind::Trapped {
                reason: interrupt.to_string(),
            }),
        };
    }
    // The outermost message is wasmtime's backtrace context; the cause is what went wrong.
    let reason = match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    Outcome::Ended(ErrorKind::Trapped { reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Even without the install-time import check, a component importing an interface the
    /// manifest does not grant cannot be instantiated: the linker simply lacks it.
    #[test]
    fn an_unlinked_interface_fails_instantiate_pre_naming_it() {
        // Missing or older than its sources fails, naming the command that builds the apps.
        let path = ferro_e2e::artifacts::wasm_app("hostile-storage");
        let bytes = std::fs::read(&path).expect("read hostile-storage.wasm");
        let engine = Engine::default();
        let component = Component::from_binary(&engine, &bytes).expect("component");
        let without_storage = ResolvedManifest::parse(
            br#"{"SchemaVersion": 1, "Name": "x", "ComponentId": "1689d8b2-c835-2e27-27ad-e894d6d15fa9",
                "EntryPoint": "/bin/app", "ApplicationType": "Default", "Capabilities": {}}"#,
        )
        .expect("manifest");
        let linker = build_linker(&engine, without_storage.capabilities()).expect("linker");
        let error = linker.instantiate_pre(&component).err().expect("refused");
        assert!(
            format!("{error:#}").contains("ferrosphere:device/storage"),
            "{error:#}"
        );
        let with_storage = ResolvedManifest::parse(
            br#"{"SchemaVersion": 1, "Name": "x", "ComponentId": "1689d8b2-c835-2e27-27ad-e894d6d15fa9",
                "EntryPoint": "/bin/app", "ApplicationType": "Default",
                "Capabilities": {"MutableStorage": {"SizeKB": 4}}}"#,
        )
        .expect("manifest");
        let linker = build_linker(&engine, with_storage.capabilities()).expect("linker");
        assert!(linker.instantiate_pre(&component).is_ok());
    }

    #[test]
    fn linked_interfaces_follow_the_manifest() {
        let manifest = ResolvedManifest::parse(
            br#"{"SchemaVersion": 1, "Name": "x", "ComponentId": "1689d8b2-c835-2e27-27ad-e894d6d15fa9",
                "EntryPoint": "/bin/app", "ApplicationType": "Default",
                "Capabilities": {"Gpio": [8], "AllowedTcpServerPorts": [80]}}"#,
        )
        .expect("manifest");
        let linked = linked_interfaces(manifest.capabilities());
        for present in [
            "ferrosphere:device/types",
            "ferrosphere:device/log",
            "ferrosphere:device/timers",
            "ferrosphere:device/imagefiles",
            "ferrosphere:device/gpio",
            "ferrosphere:device/networking",
            "wasi:cli/stdout",
        ] {
            assert!(linked.contains(present), "{present}");
        }
        for absent in [
            "ferrosphere:device/uart",
            "ferrosphere:device/storage",
            "ferrosphere:device/deviceauth",
            "ferrosphere:device/powermanagement",
            "wasi:sockets/tcp",
            "wasi:clocks/monotonic-clock",
        ] {
            assert!(!linked.contains(absent), "{absent}");
        }
    }

    /// Service discovery is linked only for a manifest listing a service type, not for one
    /// listing host names only.
    #[test]
    fn service_discovery_is_linked_only_for_a_listed_service_type() {
        let linked = |allowed: &str| {
            let manifest = ResolvedManifest::parse(
                format!(
                    r#"{{"SchemaVersion": 1, "Name": "x", "ComponentId": "1689d8b2-c835-2e27-27ad-e894d6d15fa9",
                    "EntryPoint": "/bin/app", "ApplicationType": "Default",
                    "Capabilities": {{"AllowedConnections": {allowed}}}}}"#
                )
                .as_bytes(),
            )
            .expect("manifest");
            linked_interfaces(manifest.capabilities())
        };
        let hosts = linked(r#"["example.com", "192.168.1.20"]"#);
        assert!(hosts.contains("ferrosphere:device/networking"));
        assert!(!hosts.contains("ferrosphere:device/servicediscovery"));
        let service = linked(r#"["_sample-service._tcp.local"]"#);
        assert!(service.contains("ferrosphere:device/servicediscovery"));
        assert!(service.contains("ferrosphere:device/networking"));
    }
}
