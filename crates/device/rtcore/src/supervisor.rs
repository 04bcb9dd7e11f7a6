//! Supervision shared by the backends: one thread per started core that launches the image,
//! watches it (watchdog, fault record, exit, ring corruption, the emulator's end) and restarts
//! it with exponential backoff until stopped.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{
    Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError, channel, sync_channel,
};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferro_mailbox::{ControlBlock, CoreState, GpioLevels};

use crate::endpoint::{Region, Session};
use crate::logs::CoreLog;
use crate::{
    Backoff, ComponentId, CoreError, CoreEvent, CoreId, CoreStatus, CrashKind, Endpoint,
    LogFollower, LogLine, MemoryMap, RunConfig, VerifiedElf,
};

/// How often the supervisor looks at a running core when no doorbell wakes it.
const TICK: Duration = Duration::from_millis(50);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `impl RealTimeCore` for a backend's type, a newtype over `Supervised` in field `inner`.
macro_rules! delegate_real_time_core {
    ($ty:ty) => {
        impl $crate::RealTimeCore for $ty {
            fn id(&self) -> &$crate::CoreId {
                self.inner.id()
            }
            fn memory_map(&self) -> &$crate::MemoryMap {
                self.inner.memory_map()
            }
            fn start(
                &self,
                image: $crate::VerifiedElf,
                config: $crate::RunConfig,
            ) -> Result<(), $crate::CoreError> {
                self.inner.start(image, config)
            }
            fn stop(&self) -> Result<(), $crate::CoreError> {
                self.inner.stop()
            }
            fn status(&self) -> $crate::CoreStatus {
                self.inner.status()
            }
            fn logs(&self) -> Vec<$crate::LogLine> {
                self.inner.logs()
            }
            fn follow_logs(&self) -> $crate::LogFollower {
                self.inner.follow_logs()
            }
            fn subscribe(&self) -> std::sync::mpsc::Receiver<$crate::CoreEvent> {
                self.inner.subscribe()
            }
            fn connect(
                &self,
                app: &$crate::ComponentId,
                partner: $crate::ComponentId,
            ) -> Result<$crate::Endpoint, $crate::CoreError> {
                self.inner.connect(app, partner)
            }
            fn gpio(&self) -> $crate::GpioLevels {
                self.inner.gpio()
            }
            fn set_gpio_inputs(&self, levels: u32) {
                self.inner.set_gpio_inputs(levels)
            }
        }
    };
}
pub(crate) use delegate_real_time_core;

/// What a backend's launch gets.
pub(crate) struct LaunchIo {
    /// The core's log (the debug UART's lines go here).
    pub log: CoreLog,
    /// A ping for the supervisor (a doorbell, the emulator's end): it looks at once.
    pub wake: SyncSender<()>,
    /// The app's UART bridge.
    pub uart: Arc<UartBridge>,
    /// The RT app.
    pub app: ComponentId,
    /// The GPIO inputs to give the core.
    pub gpio_in: u32,
}

/// One launch of an image.
pub(crate) trait Instance: Send {
    /// The emulator's process ID.
    fn pid(&self) -> Option<u32>;
    /// The mailbox of this run.
    fn session(&self) -> Arc<Session>;
    /// The control block.
    fn region(&self) -> Region;
    /// Why the emulator ended, if it did.
    fn ended(&mut self) -> Option<CrashKind>;
    /// Ends the run (idempotent; also on drop).
    fn kill(&mut self);
}

/// A backend: launches an image once.
pub(crate) trait Launcher: Send + Sync + 'static {
    fn launch(
        &self,
        core: &CoreId,
        image: &VerifiedElf,
        io: &LaunchIo,
    ) -> std::io::Result<Box<dyn Instance>>;
}

/// The app's UART across restarts: the caller's stream, and the current run's socket.
#[derive(Debug, Default)]
pub(crate) struct UartBridge {
    peer: Mutex<Option<UnixStream>>,
    core: Mutex<Option<UnixStream>>,
}

impl UartBridge {
    /// Starts forwarding the caller's stream to whatever run is current.
    fn start(self: &Arc<Self>, peer: Option<UnixStream>) -> Option<JoinHandle<()>> {
        let peer = peer?;
        let reader = peer.try_clone().ok()?;
        *lock(&self.peer) = Some(peer);
        let bridge = self.clone();
        Some(std::thread::spawn(move || {
            let mut reader = reader;
            let mut buf = [0u8; 256];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if let Some(core) = lock(&bridge.core).as_mut() {
                    // A UART has no backpressure: a run that is gone loses the bytes.
                    let _ = core.write_all(&buf[..n]);
                }
            }
        }))
    }

    /// Connects a run's UART socket: what the core sends goes to the caller's stream.
    pub(crate) fn attach(self: &Arc<Self>, socket: UnixStream) {
        let Ok(mut reader) = socket.try_clone() else {
            return;
        };
        *lock(&self.core) = Some(socket);
        let bridge = self.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if let Some(peer) = lock(&bridge.peer).as_mut() {
                    let _ = peer.write_all(&buf[..n]);
                }
            }
        });
    }

    fn detach(&self) {
        if let Some(core) = lock(&self.core).take() {
            let _ = core.shutdown(std::net::Shutdown::Both);
        }
    }

    fn close(&self) {
        self.detach();
        if let Some(peer) = lock(&self.peer).take() {
            let _ = peer.shutdown(std::net::Shutdown::Both);
        }
    }
}

struct Run {
    app: ComponentId,
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    uart: Arc<UartBridge>,
}

struct State {
    status: CoreStatus,
    session: Option<Arc<Session>>,
    region: Option<Region>,
    run: Option<Run>,
}

/// The supervised core every backend is.
pub(crate) struct Supervised<L: Launcher> {
    id: CoreId,
    map: MemoryMap,
    launcher: Arc<L>,
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    log: CoreLog,
    subscribers: Mutex<Vec<Sender<CoreEvent>>>,
    gpio_in: AtomicU32,
}

impl Shared {
    fn emit(&self, event: CoreEvent) {
        lock(&self.subscribers).retain(|s| s.send(event.clone()).is_ok());
    }
}

impl<L: Launcher> std::fmt::Debug for Supervised<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervised")
            .field("id", &self.id)
            .field("map", &self.map.name)
            .finish_non_exhaustive()
    }
}

impl<L: Launcher> Supervised<L> {
    pub(crate) fn new(id: CoreId, map: MemoryMap, launcher: L) -> Self {
        Supervised {
            id,
            map,
            launcher: Arc::new(launcher),
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    status: CoreStatus::Stopped,
                    session: None,
                    region: None,
                    run: None,
                }),
                log: CoreLog::default(),
                subscribers: Mutex::new(Vec::new()),
                gpio_in: AtomicU32::new(0),
            }),
        }
    }

    pub(crate) fn id(&self) -> &CoreId {
        &self.id
    }

    pub(crate) fn memory_map(&self) -> &MemoryMap {
        &self.map
    }

    pub(crate) fn start(&self, image: VerifiedElf, config: RunConfig) -> Result<(), CoreError> {
        if image.memory_map() != self.map.name {
            return Err(CoreError::WrongMemoryMap {
                core: self.id.clone(),
                checked: image.memory_map(),
                actual: self.map.name,
            });
        }
        let mut state = lock(&self.shared.state);
        if let Some(run) = &state.run {
            return Err(CoreError::Busy {
                core: self.id.clone(),
                app: run.app,
            });
        }
        self.shared.log.clear();
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let uart = Arc::new(UartBridge::default());
        uart.start(config.app_uart);
        let ctx = RunContext {
            id: self.id.clone(),
            launcher: self.launcher.clone(),
            shared: self.shared.clone(),
            stop: stop.clone(),
            uart: uart.clone(),
            app: config.app,
            watchdog: config.watchdog,
            backoff: config.backoff,
        };
        state.status = CoreStatus::Running {
            app: config.app,
            pid: None,
            restarts: 0,
        };
        let thread = std::thread::Builder::new()
            .name(format!("rtcore-{}", self.id))
            .spawn(move || ctx.supervise(image))
            .map_err(|source| CoreError::Io {
                core: self.id.clone(),
                what: "starting the supervisor thread",
                source,
            })?;
        state.run = Some(Run {
            app: config.app,
            stop,
            thread: Some(thread),
            uart,
        });
        Ok(())
    }

    pub(crate) fn stop(&self) -> Result<(), CoreError> {
        let run = lock(&self.shared.state).run.take();
        let Some(mut run) = run else { return Ok(()) };
        *lock(&run.stop.0) = true;
        run.stop.1.notify_all();
        if let Some(thread) = run.thread.take() {
            let _ = thread.join();
        }
        run.uart.close();
        Ok(())
    }

    pub(crate) fn status(&self) -> CoreStatus {
        lock(&self.shared.state).status.clone()
    }

    pub(crate) fn logs(&self) -> Vec<LogLine> {
        self.shared.log.snapshot()
    }

    pub(crate) fn follow_logs(&self) -> LogFollower {
        self.shared.log.follower()
    }

    pub(crate) fn subscribe(&self) -> Receiver<CoreEvent> {
        let (tx, rx) = channel();
        lock(&self.shared.subscribers).push(tx);
        rx
    }

    pub(crate) fn connect(
        &self,
        app: &ComponentId,
        partner: ComponentId,
    ) -> Result<Endpoint, CoreError> {
        let state = lock(&self.shared.state);
        let running = state
            .run
            .as_ref()
            .map(|r| r.app)
            .ok_or_else(|| CoreError::NotRunning {
                core: self.id.clone(),
            })?;
        if running != *app {
            return Err(CoreError::OtherApp {
                core: self.id.clone(),
                running,
                asked: *app,
            });
        }
        let session = state.session.clone().ok_or_else(|| CoreError::NotRunning {
            core: self.id.clone(),
        })?;
        Ok(Endpoint::new(session, partner))
    }

    pub(crate) fn gpio(&self) -> GpioLevels {
        let state = lock(&self.shared.state);
        match &state.region {
            Some(region) => ControlBlock::new(region.clone()).gpio(),
            None => GpioLevels {
                input: self.shared.gpio_in.load(Ordering::Relaxed),
                ..GpioLevels::default()
            },
        }
    }

    pub(crate) fn set_gpio_inputs(&self, levels: u32) {
        let before = self.shared.gpio_in.swap(levels, Ordering::Relaxed);
        let state = lock(&self.shared.state);
        if let Some(region) = &state.region {
            ControlBlock::new(region.clone()).set_gpio_inputs(levels);
        }
        // An edge wakes a core that sleeps until its inputs change (`ferro_rt::wait_until`):
        // its doorbell rings, as for a message.
        if before != levels
            && let Some(session) = &state.session
        {
            session.ring();
        }
    }
}

impl<L: Launcher> Drop for Supervised<L> {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

struct RunContext<L: Launcher> {
    id: CoreId,
    launcher: Arc<L>,
    shared: Arc<Shared>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    uart: Arc<UartBridge>,
    app: ComponentId,
    watchdog: Option<Duration>,
    backoff: Backoff,
}

enum Outcome {
    Stopped,
    Crashed(CrashKind),
}

impl<L: Launcher> RunContext<L> {
    fn stopped(&self) -> bool {
        *lock(&self.stop.0)
    }

    /// Sleeps `d` unless stopped meanwhile; answers whether it was stopped.
    fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut stopped = lock(&self.stop.0);
        while !*stopped {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            stopped = self
                .stop
                .1
                .wait_timeout(stopped, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    fn set_status(&self, status: CoreStatus) {
        lock(&self.shared.state).status = status;
    }

    fn supervise(self, image: VerifiedElf) {
        let mut restarts = 0u32;
        // Crashes in the current crash loop (a long run ends it).
        let mut failures = 0u32;
        while !self.stopped() {
            let (wake_tx, wake_rx) = sync_channel(1);
            let io = LaunchIo {
                log: self.shared.log.clone(),
                wake: wake_tx,
                uart: self.uart.clone(),
                app: self.app,
                gpio_in: self.shared.gpio_in.load(Ordering::Relaxed),
            };
            let started = Instant::now();
            let kind = match self.launcher.launch(&self.id, &image, &io) {
                Err(e) => {
                    self.shared
                        .log
                        .note(&format!("core {} did not start: {e}", self.id));
                    tracing::warn!(core = %self.id, error = %e, "real-time core did not start");
                    CrashKind::EmulatorExited { status: None }
                }
                Ok(mut instance) => {
                    {
                        let mut state = lock(&self.shared.state);
                        state.session = Some(instance.session());
                        state.region = Some(instance.region());
                        state.status = CoreStatus::Running {
                            app: self.app,
                            pid: instance.pid(),
                            restarts,
                        };
                    }
                    self.shared.emit(CoreEvent::Started {
                        core: self.id.clone(),
                        app: self.app,
                        restarts,
                    });
                    let outcome = self.watch(instance.as_mut(), &wake_rx);
                    instance.kill();
                    let session = {
                        let mut state = lock(&self.shared.state);
                        state.region = None;
                        state.session.take()
                    };
                    if let Some(session) = session {
                        session.disconnect();
                    }
                    self.uart.detach();
                    self.shared.log.flush();
                    match outcome {
                        Outcome::Stopped => break,
                        Outcome::Crashed(kind) => kind,
                    }
                }
            };
            if self.backoff.resets(started.elapsed()) {
                failures = 0;
            }
            failures = failures.saturating_add(1);
            let delay = self.backoff.delay(failures);
            restarts = restarts.saturating_add(1);
            self.shared.log.note(&format!(
                "core {} crashed ({kind}); restart {restarts} in {delay:?}",
                self.id
            ));
            tracing::warn!(core = %self.id, app = %self.app, %kind, restarts, ?delay, "real-time core crashed");
            self.set_status(CoreStatus::Restarting {
                app: self.app,
                restarts,
                delay,
                last: kind.clone(),
            });
            self.shared.emit(CoreEvent::Crashed {
                core: self.id.clone(),
                app: self.app,
                kind,
                restarts,
                delay,
            });
            if self.sleep(delay) {
                break;
            }
        }
        self.set_status(CoreStatus::Stopped);
        self.shared.emit(CoreEvent::Stopped {
            core: self.id.clone(),
            app: self.app,
        });
    }

    /// Watches one run until it crashes or is stopped.
    fn watch(&self, instance: &mut dyn Instance, wake: &Receiver<()>) -> Outcome {
        let control = ControlBlock::new(instance.region());
        let session = instance.session();
        let mut kicks = control.kicks();
        let mut last_kick = Instant::now();
        loop {
            if self.stopped() {
                return Outcome::Stopped;
            }
            if let Some(kind) = instance.ended() {
                return Outcome::Crashed(kind);
            }
            match control.state() {
                Err(what) => return Outcome::Crashed(CrashKind::RingCorrupt { what }),
                Ok(CoreState::Exited(code)) => return Outcome::Crashed(CrashKind::Exited(code)),
                Ok(CoreState::Faulted(record)) => {
                    return Outcome::Crashed(CrashKind::HardFault { record });
                }
                Ok(CoreState::Booting | CoreState::Ready) => {}
            }
            if let Err(what) = session.check_rings() {
                return Outcome::Crashed(CrashKind::RingCorrupt { what });
            }
            let now_kicks = control.kicks();
            if now_kicks != kicks {
                kicks = now_kicks;
                last_kick = Instant::now();
            } else if self
                .watchdog
                .is_some_and(|period| last_kick.elapsed() > period)
            {
                return Outcome::Crashed(CrashKind::Watchdog);
            }
            match wake.recv_timeout(TICK) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                // The backend's readers are gone: the emulator ended (seen next round).
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(TICK),
            }
        }
    }
}

/// Pings the supervisor without blocking (one pending ping is enough).
pub(crate) fn ping(wake: &SyncSender<()>) {
    match wake.try_send(()) {
        Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
    }
}
