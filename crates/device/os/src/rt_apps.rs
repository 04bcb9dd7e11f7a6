//! Real-time apps on the board's real-time cores (`ferro-rtcore`), for the app manager.
//!
//! One [`RtHost`] per device: a QEMU mps2-an386 core per `RealTimeCore` entry of the board's
//! hardware definition, the RT apps admitted to them (each app's ELF checked against its core's
//! memory map, its manifest's `AllowedApplicationConnections` and GPIOs), and the device's side
//! of the mailbox: [`RtHost`] is the runtime's `PartnerConnector`, so a high-level app reaches a
//! core only through it, and only when both manifests name each other. A watcher thread per
//! core turns its crashes into the runtime's error events (`CoreCrashed`, reported as AppCrash)
//! and mirrors the GPIO outputs the core drives onto the virtual board (its LEDs); an input
//! thread forwards the board's input levels (buttons) of the pins each app's manifest grants to
//! its core at each edge; the UART an app's manifest grants is bridged both ways between the
//! core's app UART and the virtual board's UART, whose peer tests drive (`docs/realtime-apps.md`,
//! "Peripherals").

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use ferro_peripherals::{GpioBackend, Level, OutputMode, UartBackend, UartConfig, VirtualBoard};
use ferro_rtcore::{
    Backoff, ComponentId, CoreEvent, CoreId, CoreStatus, Endpoint, MailboxError, QemuConfig,
    QemuCore, RealTimeCore, RunConfig, VerifiedElf,
};
use ferro_runtime::{
    AppId, ErrorKind, EventRecorder, PartnerConnector, PartnerError, PartnerLink, PartnerMessage,
};
use uuid::Uuid;

/// The watchdog period of an RT app whose manifest sets none on a core whose board sets none
/// (`WatchdogPeriodMs`, docs/realtime-apps.md).
pub const RT_WATCHDOG: Duration = Duration::from_secs(5);
/// How often a watcher copies a core's GPIO outputs to the board.
const GPIO_POLL: Duration = Duration::from_millis(20);
/// How long the input thread and a UART bridge wait before looking whether they should end.
const BRIDGE_TICK: Duration = Duration::from_millis(50);
/// Bytes a UART bridge moves at a time.
const UART_CHUNK: usize = 256;
/// Device notes (refused connections) kept per RT app for its log.
const MAX_NOTES: usize = 100;

/// One line of an RT app's log: the core's debug UART, or a note of the device about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtLogLine {
    pub seq: u64,
    pub at: SystemTime,
    /// `Core` (the debug UART) or `Device`.
    pub source: &'static str,
    pub text: String,
}

/// What an RT app's manifest (and the board) give it, for [`RtHost::install`].
#[derive(Debug, Clone)]
pub struct RtAppSpec {
    /// Its manifest's `Name`.
    pub name: String,
    /// The entry point's bytes as they verified (checked again by `VerifiedElf` at each start).
    pub elf: Vec<u8>,
    /// Its manifest's `AllowedApplicationConnections`.
    pub allowed: Vec<Uuid>,
    /// Its manifest's GPIOs (those in 0..=31 reach the core: the control block's words).
    pub gpio: Vec<u32>,
    /// Its manifest's UART (at most one: the core has one app UART), bridged to the board's.
    pub uart: Option<String>,
    /// Its watchdog period (the manifest's `WatchdogPeriodMs`, or the board's default).
    pub watchdog: Duration,
}

/// An RT app admitted to a core.
#[derive(Debug)]
struct RtApp {
    core: String,
    spec: RtAppSpec,
    /// Ends the current run's UART bridge (set by a stop).
    uart_stop: Option<Arc<AtomicBool>>,
    notes: VecDeque<RtLogLine>,
}

#[derive(Debug)]
struct Shared {
    cores: BTreeMap<String, Arc<dyn RealTimeCore>>,
    apps: Mutex<BTreeMap<Uuid, RtApp>>,
    recorder: OnceLock<EventRecorder>,
    board: Option<Arc<VirtualBoard>>,
    stop: AtomicBool,
    /// The cores' files (this process's directory), removed with the host.
    run_dir: Option<PathBuf>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle is gone: the watchers end, the cores stop, their files go.
        self.stop.store(true, Ordering::Relaxed);
        for core in self.cores.values() {
            let _ = core.stop();
        }
        if let Some(dir) = &self.run_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The device's real-time cores and the apps on them (clones share them).
#[derive(Debug, Clone)]
pub struct RtHost {
    shared: Arc<Shared>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn component(id: Uuid) -> ComponentId {
    ComponentId(*id.as_bytes())
}

/// Where the cores' files go: tmpfs when there is one, so the mailbox never touches a disk.
fn run_dir(fallback: &Path) -> PathBuf {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_dir())
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|dir| dir.is_dir()))
        .unwrap_or_else(|| fallback.to_path_buf());
    base.join(format!("ferro-rtcore-{}", std::process::id()))
}

impl RtHost {
    /// The host of `cores` (the board's real-time cores; none: a host that admits nothing),
    /// their files in a directory of this process under tmpfs (or `fallback_dir`). A core that
    /// cannot be prepared is left out (logged): apps are not admitted to it.
    pub fn new(cores: &[String], fallback_dir: &Path, board: Option<Arc<VirtualBoard>>) -> RtHost {
        let dir = run_dir(fallback_dir);
        let mut made = BTreeMap::new();
        for name in cores {
            let core =
                CoreId::new(name).and_then(|id| QemuCore::new(id, QemuConfig::new(dir.clone())));
            match core {
                Ok(core) => {
                    made.insert(name.clone(), Arc::new(core) as Arc<dyn RealTimeCore>);
                }
                Err(error) => tracing::error!(core = %name, %error, "real-time core unusable"),
            }
        }
        let host = RtHost {
            shared: Arc::new(Shared {
                cores: made,
                apps: Mutex::new(BTreeMap::new()),
                recorder: OnceLock::new(),
                board,
                stop: AtomicBool::new(false),
                run_dir: (!cores.is_empty()).then_some(dir),
            }),
        };
        if let Some(board) = host.shared.board.clone()
            && !host.shared.cores.is_empty()
        {
            let shared = Arc::downgrade(&host.shared);
            let spawned = std::thread::Builder::new()
                .name("core-inputs".into())
                .spawn(move || forward_inputs(&shared, &board));
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot forward the board's inputs to the real-time cores");
            }
        }
        for (name, core) in &host.shared.cores {
            let shared = Arc::downgrade(&host.shared);
            let events = core.subscribe();
            let core = core.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("core-{name}"))
                .spawn(move || watch(&shared, &core, &events));
            if let Err(error) = spawned {
                tracing::error!(core = %name, %error, "cannot watch the real-time core");
            }
        }
        host
    }

    /// Where crash events go (the runtime's event stream); set once.
    pub fn set_recorder(&self, recorder: EventRecorder) {
        let _ = self.shared.recorder.set(recorder);
    }

    /// The connector the runtime's `application` interface uses.
    pub fn connector(&self) -> Arc<dyn PartnerConnector> {
        Arc::new(self.clone())
    }

    fn core(&self, name: &str) -> Result<&Arc<dyn RealTimeCore>, String> {
        self.shared
            .cores
            .get(name)
            .ok_or_else(|| format!("core {name} could not be prepared on this device"))
    }

    /// Checks `elf` against core `core`'s memory map (before anything is claimed).
    pub fn check_elf(&self, core: &str, elf: &[u8]) -> Result<(), String> {
        let map = self.core(core)?.memory_map();
        VerifiedElf::verify(elf.to_vec(), map)
            .map(|_| ())
            .map_err(|e| format!("its image is not one core {core} can run: {e}"))
    }

    /// Admits `app` to `core` (already reserved for it in the ownership table, with its
    /// peripherals) and starts it unless `manual_start`. Its GPIOs and UART are opened on the
    /// board for it: outputs for the core to drive (buttons as inputs), the UART for the bridge.
    pub fn install(
        &self,
        app: Uuid,
        core: &str,
        mut spec: RtAppSpec,
        manual_start: bool,
    ) -> Result<(), String> {
        self.core(core)?;
        spec.gpio.retain(|pin| *pin < 32);
        if let Some(board) = &self.shared.board {
            let buttons = board.buttons();
            for pin in &spec.gpio {
                // The pins are the app's (the ownership table): the board shows what the core
                // drives. LEDs are active low; the core's reset level is high (off). A button
                // can only be an input: the core reads its level.
                let _ = if buttons.contains(pin) {
                    board.open_input(*pin)
                } else {
                    board.open_output(*pin, OutputMode::PushPull, Level::High)
                };
            }
            if let Some(uart) = &spec.uart {
                UartBackend::open(&**board, uart, &UartConfig::default())
                    .map_err(|e| format!("its UART {uart} cannot be opened on the board: {e}"))?;
            }
        }
        lock(&self.shared.apps).insert(
            app,
            RtApp {
                core: core.to_string(),
                spec,
                uart_stop: None,
                notes: VecDeque::new(),
            },
        );
        if !manual_start {
            self.start(app)?;
        }
        Ok(())
    }

    /// Starts `app` on its core (a no-op while it runs): its input levels first, then its UART
    /// bridge, then the core.
    pub fn start(&self, app: Uuid) -> Result<(), String> {
        let (core, spec) = {
            let apps = lock(&self.shared.apps);
            let rt = apps
                .get(&app)
                .ok_or_else(|| format!("no real-time app {app}"))?;
            (rt.core.clone(), rt.spec.clone())
        };
        let core = self.core(&core)?;
        if !matches!(core.status(), CoreStatus::Stopped) {
            return Ok(());
        }
        let image = VerifiedElf::verify(spec.elf, core.memory_map())
            .map_err(|e| format!("its image is not one core {} can run: {e}", core.id()))?;
        if let Some(board) = &self.shared.board {
            core.set_gpio_inputs(input_word(board, &spec.gpio));
        }
        let app_uart = match (&self.shared.board, &spec.uart) {
            (Some(board), Some(uart)) => {
                let (ours, theirs) = UnixStream::pair()
                    .map_err(|e| format!("cannot bridge its UART {uart}: {e}"))?;
                let stop = Arc::new(AtomicBool::new(false));
                bridge_uart(board, uart, ours, &stop)
                    .map_err(|e| format!("cannot bridge its UART {uart}: {e}"))?;
                if let Some(old) = lock(&self.shared.apps)
                    .get_mut(&app)
                    .and_then(|rt| rt.uart_stop.replace(stop))
                {
                    old.store(true, Ordering::Relaxed);
                }
                Some(theirs)
            }
            _ => None,
        };
        core.start(
            image,
            RunConfig {
                app: component(app),
                watchdog: Some(spec.watchdog),
                backoff: Backoff::default(),
                app_uart,
            },
        )
        .map_err(|e| e.to_string())
    }

    /// Stops `app`'s core (no restart) and its UART bridge.
    pub fn stop(&self, app: Uuid) -> Result<(), String> {
        let core = self.core_of(app)?;
        let result = self.core(&core)?.stop().map_err(|e| e.to_string());
        self.end_bridge(app);
        result
    }

    fn end_bridge(&self, app: Uuid) {
        if let Some(stop) = lock(&self.shared.apps)
            .get_mut(&app)
            .and_then(|rt| rt.uart_stop.take())
        {
            stop.store(true, Ordering::Relaxed);
        }
    }

    /// Stops `app` and forgets it (its core is free again once the ownership table says so).
    pub fn remove(&self, app: Uuid) {
        let removed = lock(&self.shared.apps).remove(&app);
        if let Some(rt) = removed {
            if let Some(core) = self.shared.cores.get(&rt.core)
                && let Err(error) = core.stop()
            {
                tracing::warn!(%app, %error, "stopping a removed real-time app");
            }
            if let Some(stop) = &rt.uart_stop {
                stop.store(true, Ordering::Relaxed);
            }
            if let Some(board) = &self.shared.board {
                for pin in &rt.spec.gpio {
                    GpioBackend::close(&**board, *pin);
                }
                if let Some(uart) = &rt.spec.uart {
                    UartBackend::close(&**board, uart);
                }
            }
        }
    }

    fn core_of(&self, app: Uuid) -> Result<String, String> {
        lock(&self.shared.apps)
            .get(&app)
            .map(|rt| rt.core.clone())
            .ok_or_else(|| format!("no real-time app {app}"))
    }

    /// What `app`'s core is doing.
    pub fn status(&self, app: Uuid) -> Result<CoreStatus, String> {
        let core = self.core_of(app)?;
        Ok(self.core(&core)?.status())
    }

    /// `app`'s log: its core's debug UART and the device's notes, by time.
    pub fn logs(&self, app: Uuid) -> Result<Vec<RtLogLine>, String> {
        let (core, mut lines) = {
            let apps = lock(&self.shared.apps);
            let rt = apps
                .get(&app)
                .ok_or_else(|| format!("no real-time app {app}"))?;
            (
                rt.core.clone(),
                rt.notes.iter().cloned().collect::<Vec<_>>(),
            )
        };
        lines.extend(self.core(&core)?.logs().into_iter().map(|line| RtLogLine {
            seq: line.seq,
            at: line.at,
            source: "Core",
            text: line.text,
        }));
        lines.sort_by_key(|line| line.at);
        Ok(lines)
    }

    /// A follower of `app`'s core log from the next line on.
    pub fn follow_logs(&self, app: Uuid) -> Result<ferro_rtcore::LogFollower, String> {
        let core = self.core_of(app)?;
        Ok(self.core(&core)?.follow_logs())
    }

    fn note(&self, app: Uuid, text: String) {
        if let Some(rt) = lock(&self.shared.apps).get_mut(&app) {
            let seq = rt.notes.back().map_or(0, |n| n.seq) + 1;
            rt.notes.push_back(RtLogLine {
                seq,
                at: SystemTime::now(),
                source: "Device",
                text,
            });
            while rt.notes.len() > MAX_NOTES {
                rt.notes.pop_front();
            }
        }
    }
}

/// A core's watcher: its crash events into the runtime's stream, its GPIO outputs onto the
/// board. Ends when the host is gone.
fn watch(
    shared: &std::sync::Weak<Shared>,
    core: &Arc<dyn RealTimeCore>,
    events: &std::sync::mpsc::Receiver<CoreEvent>,
) {
    let mut shown: Option<(u32, u32)> = None;
    loop {
        let event = events.recv_timeout(GPIO_POLL);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(CoreEvent::Crashed {
            app, kind, delay, ..
        }) = &event
        {
            let id = Uuid::from_bytes(app.0);
            let name = lock(&shared.apps)
                .get(&id)
                .map(|rt| rt.spec.name.clone())
                .unwrap_or_default();
            tracing::warn!(core = %core.id(), app = %id, %kind, "real-time core crashed");
            if let Some(recorder) = shared.recorder.get() {
                recorder.record(
                    AppId::from(id),
                    &name,
                    ErrorKind::CoreCrashed {
                        fault: kind.to_string(),
                    },
                    Some(*delay),
                );
            }
        }
        if let Some(board) = &shared.board {
            let pins: Vec<u32> = lock(&shared.apps)
                .values()
                .filter(|rt| rt.core == core.id().as_str())
                .flat_map(|rt| rt.spec.gpio.clone())
                .collect();
            if pins.is_empty() {
                continue;
            }
            let levels = core.gpio();
            if shown == Some((levels.output, levels.enable)) {
                continue;
            }
            shown = Some((levels.output, levels.enable));
            for pin in pins {
                if levels.enable & (1 << pin) != 0 {
                    let level = if levels.output & (1 << pin) != 0 {
                        Level::High
                    } else {
                        Level::Low
                    };
                    let _ = board.set_level(pin, level);
                }
            }
        }
    }
}

/// The input word of `pins` (those of 0..=31 the app's manifest grants): bit `n` is the level
/// the board presents to GPIO `n` (a released button is high, a pressed one low).
fn input_word(board: &VirtualBoard, pins: &[u32]) -> u32 {
    pins.iter()
        .filter(|pin| **pin < 32 && board.external_level(**pin) == Some(Level::High))
        .fold(0, |word, pin| word | (1 << pin))
}

/// The input thread: at each change of the board's external levels (a button pressed or
/// released), each core gets the input word of the pins its app's manifest grants; the core's
/// doorbell rings with it. Ends when the host is gone.
fn forward_inputs(shared: &std::sync::Weak<Shared>, board: &VirtualBoard) {
    let mut seen = board.input_changes();
    loop {
        let now = board.wait_input_change(seen, BRIDGE_TICK);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        if now == seen {
            continue;
        }
        seen = now;
        let words: Vec<(String, u32)> = lock(&shared.apps)
            .values()
            .map(|rt| (rt.core.clone(), input_word(board, &rt.spec.gpio)))
            .collect();
        for (core, word) in words {
            if let Some(core) = shared.cores.get(&core) {
                core.set_gpio_inputs(word);
            }
        }
    }
}

/// Bridges the board's `uart` to `stream` (the other end is the core's app UART, through
/// ferro-rtcore), one thread each way, until `stop` or the stream's end. The buffers are the
/// board's (64 KiB each way, `UART_QUEUE_BYTES`) and the socket's: like a UART without flow
/// control, bytes the other side has no room for are dropped (counted in the device log),
/// never queued without bound.
fn bridge_uart(
    board: &Arc<VirtualBoard>,
    uart: &str,
    stream: UnixStream,
    stop: &Arc<AtomicBool>,
) -> std::io::Result<()> {
    // A peer write waits at most this for the core's side to take it.
    stream.set_write_timeout(Some(BRIDGE_TICK))?;
    let mut from_core = stream.try_clone()?;
    let mut to_core = stream;
    {
        // The core's bytes to the board's peer.
        let (board, uart, stop) = (board.clone(), uart.to_string(), stop.clone());
        std::thread::Builder::new()
            .name(format!("uart-{uart}-in"))
            .spawn(move || {
                let mut buf = [0u8; UART_CHUNK];
                let mut dropped = 0usize;
                while let Ok(n @ 1..) = from_core.read(&mut buf) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match UartBackend::write(&*board, &uart, &buf[..n]) {
                        Ok(taken) if taken < n => {
                            dropped += n - taken;
                            tracing::warn!(%uart, dropped, "the board's UART queue is full: bytes of the real-time core dropped");
                        }
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(%uart, %error, "the board's UART refused the real-time core's bytes");
                            break;
                        }
                    }
                }
                // The core's side is gone (a stop): end the other direction too.
                stop.store(true, Ordering::Relaxed);
            })?;
    }
    {
        // The board's peer's bytes to the core.
        let (board, uart, stop) = (board.clone(), uart.to_string(), stop.clone());
        std::thread::Builder::new()
            .name(format!("uart-{uart}-out"))
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let data = match UartBackend::read(&*board, &uart, UART_CHUNK, BRIDGE_TICK) {
                        Ok(data) => data,
                        Err(error) => {
                            tracing::warn!(%uart, %error, "the board's UART cannot be read for the real-time core");
                            break;
                        }
                    };
                    if data.is_empty() {
                        continue;
                    }
                    match to_core.write_all(&data) {
                        Ok(()) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) =>
                        {
                            tracing::warn!(%uart, "the real-time core does not read its UART: bytes dropped");
                        }
                        Err(_) => break,
                    }
                }
                let _ = to_core.shutdown(std::net::Shutdown::Both);
            })?;
    }
    Ok(())
}

impl PartnerConnector for RtHost {
    fn connect(&self, app: AppId, partner: Uuid) -> Result<Box<dyn PartnerLink>, PartnerError> {
        let core = {
            let apps = lock(&self.shared.apps);
            let rt = apps
                .get(&partner)
                .ok_or(PartnerError::NoSuchPartner(partner))?;
            if !rt.spec.allowed.contains(&app.uuid()) {
                None
            } else {
                Some(rt.core.clone())
            }
        };
        let Some(core) = core else {
            let refusal = PartnerError::Refused {
                app: app.uuid(),
                partner,
            };
            self.note(
                partner,
                format!(
                    "connection from app {} refused: it is not in this app's \
                     AllowedApplicationConnections",
                    app.uuid()
                ),
            );
            return Err(refusal);
        };
        let core = self.core(&core).map_err(PartnerError::Io)?;
        let endpoint = core
            .connect(&component(partner), component(app.uuid()))
            .map_err(|_| PartnerError::NotRunning(partner))?;
        Ok(Box::new(Link { endpoint, partner }))
    }
}

/// One high-level app's connection to an RT app's core.
struct Link {
    endpoint: Endpoint,
    partner: Uuid,
}

impl Link {
    fn error(&self, error: MailboxError) -> PartnerError {
        match error {
            MailboxError::WouldBlock | MailboxError::TimedOut => PartnerError::TimedOut,
            MailboxError::Disconnected | MailboxError::RingCorrupt { .. } => {
                PartnerError::Disconnected(self.partner)
            }
            MailboxError::TooLarge { .. } => PartnerError::Io(error.to_string()),
        }
    }
}

impl PartnerLink for Link {
    fn send(&mut self, data: &[u8], timeout: Duration) -> Result<(), PartnerError> {
        self.endpoint
            .send_timeout(data, timeout)
            .map_err(|e| self.error(e))
    }

    fn receive(&mut self, timeout: Duration) -> Result<PartnerMessage, PartnerError> {
        let message = self
            .endpoint
            .receive_timeout(timeout)
            .map_err(|e| self.error(e))?;
        Ok(PartnerMessage {
            sender: Uuid::from_bytes(message.sender.0),
            data: message.payload,
        })
    }
}
