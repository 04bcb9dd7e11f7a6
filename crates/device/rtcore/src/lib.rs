//! `ferro-rtcore`: the device's real-time cores (`docs/realtime.md`).
//!
//! It owns the [`RealTimeCore`] trait (start an RT app's image on a core, stop it, its status,
//! log, events, GPIO words and the mailbox [`Endpoint`] of its partner app), the check of an RT
//! app's ELF against a core's memory map ([`VerifiedElf`], the only way to start a core), the
//! supervision every backend shares (watchdog, fault record, emulator exit, ring corruption:
//! each a restart with exponential backoff and a [`CoreEvent::Crashed`]), and two backends:
//! [`QemuCore`] (one `qemu-system-arm -M mps2-an386` process per core, the mailbox in a shared
//! file) and [`RemoteprocCore`] (Linux remoteproc and rpmsg-char, untested on hardware here).
//!
//! It depends on `ferro-mailbox` and `ferro-backoff` only among Ferrosphere's crates; it knows nothing of manifests,
//! images, signatures, wasmtime or the device (the device verifies the image package and hands
//! its ELF here).

mod elf;
mod endpoint;
mod logs;
mod qemu;
mod remoteproc;
mod supervisor;

pub use elf::{
    ElfError, MAX_ELF_BYTES, MAX_LOAD_SEGMENTS, MemoryMap, MemoryWindow, VerifiedElf, WindowKind,
};
pub use endpoint::{Endpoint, MailboxError, Message};
/// Restart delays (the one policy, shared with the app runtime).
pub use ferro_backoff::Backoff;
pub use ferro_mailbox::{ComponentId, Corruption, FaultKind, FaultRecord, GpioLevels, MAX_PAYLOAD};
pub use logs::{LogFollower, LogLine};
pub use qemu::{QemuConfig, QemuCore};
pub use remoteproc::{RemoteprocConfig, RemoteprocCore};

use std::fmt;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// A real-time core's name in the board's hardware definition (`IO0`, `IO1`): 1 to 32 ASCII
/// letters, digits, `-` or `_` (it names files).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CoreId(String);

impl CoreId {
    /// Checks and wraps a core name.
    pub fn new(name: &str) -> Result<CoreId, CoreError> {
        let ok = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(CoreError::BadCoreId {
                name: name.to_string(),
            });
        }
        Ok(CoreId(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How to run one RT app on a core.
#[derive(Debug)]
pub struct RunConfig {
    /// The RT app's component ID: the sender of every message the host takes from the core
    /// (whatever the core writes in a slot's sender field).
    pub app: ComponentId,
    /// The watchdog period: the core must change its kick counter within it, or it is
    /// restarted (`None`: no watchdog).
    pub watchdog: Option<Duration>,
    /// Restart delays.
    pub backoff: Backoff,
    /// The app's UART (UART2 on mps2-an386): bytes the core sends are written here and bytes
    /// read here are the core's input, across restarts. `None`: the UART has no peer.
    pub app_uart: Option<UnixStream>,
}

/// What a core is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreStatus {
    /// No app runs (never started, or stopped).
    Stopped,
    /// The app's image runs.
    Running {
        /// The app.
        app: ComponentId,
        /// The emulator's process ID (QEMU backend; `None` while it starts, and for
        /// remoteproc).
        pid: Option<u32>,
        /// Restarts since [`RealTimeCore::start`].
        restarts: u32,
    },
    /// The app crashed and is restarted after a delay.
    Restarting {
        /// The app.
        app: ComponentId,
        /// Restarts since [`RealTimeCore::start`] (this one included).
        restarts: u32,
        /// The delay before this restart.
        delay: Duration,
        /// Why it crashed last.
        last: CrashKind,
    },
}

/// Why a core was restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrashKind {
    /// The kick counter did not change within the watchdog period.
    Watchdog,
    /// A fault handler ran and recorded this (`record.kind`: HardFault, MemManage, BusFault or
    /// UsageFault).
    HardFault {
        /// The core's fault record.
        record: FaultRecord,
    },
    /// The core locked up (a fault it could not escalate, e.g. in its fault handler).
    Lockup,
    /// The app returned or called `exit` with this code.
    Exited(i32),
    /// The core wrote garbage into the shared region.
    RingCorrupt {
        /// What was wrong.
        what: Corruption,
    },
    /// The emulator (or remote processor) stopped without the core saying why.
    EmulatorExited {
        /// Its exit status, when it had one.
        status: Option<i32>,
    },
}

impl fmt::Display for CrashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrashKind::Watchdog => f.write_str("watchdog: no kick within the period"),
            CrashKind::HardFault { record } => write!(
                f,
                "{:?} at pc {:#010x} (lr {:#010x}, cfsr {:#010x}, hfsr {:#010x}, mmfar {:#010x}, bfar {:#010x})",
                record.kind,
                record.pc,
                record.lr,
                record.cfsr,
                record.hfsr,
                record.mmfar,
                record.bfar
            ),
            CrashKind::Lockup => f.write_str("lockup"),
            CrashKind::Exited(code) => write!(f, "exited with code {code}"),
            CrashKind::RingCorrupt { what } => write!(f, "mailbox corrupt: {what}"),
            CrashKind::EmulatorExited { status: Some(s) } => {
                write!(f, "the emulator exited with status {s}")
            }
            CrashKind::EmulatorExited { status: None } => f.write_str("the emulator was killed"),
        }
    }
}

/// What happened to a core (for the device's error report and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreEvent {
    /// The image started (`restarts` 0 the first time).
    Started {
        /// The core.
        core: CoreId,
        /// The app.
        app: ComponentId,
        /// Restarts since [`RealTimeCore::start`].
        restarts: u32,
    },
    /// The core crashed; it is restarted after `delay`.
    Crashed {
        /// The core.
        core: CoreId,
        /// The app.
        app: ComponentId,
        /// Why.
        kind: CrashKind,
        /// Restarts since [`RealTimeCore::start`] (this one included).
        restarts: u32,
        /// The delay before the restart.
        delay: Duration,
    },
    /// [`RealTimeCore::stop`] stopped the core.
    Stopped {
        /// The core.
        core: CoreId,
        /// The app.
        app: ComponentId,
    },
}

/// A refusal of a core operation.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Not a core name.
    #[error("{name:?} is not a core name (1 to 32 letters, digits, '-' or '_')")]
    BadCoreId {
        /// The name given.
        name: String,
    },
    /// The core already runs an app.
    #[error("core {core} already runs app {app}")]
    Busy {
        /// The core.
        core: CoreId,
        /// The app that holds it.
        app: ComponentId,
    },
    /// The core runs no app.
    #[error("core {core} runs no app")]
    NotRunning {
        /// The core.
        core: CoreId,
    },
    /// A partner may connect only to the app the core runs.
    #[error("core {core} runs app {running}, not {asked}")]
    OtherApp {
        /// The core.
        core: CoreId,
        /// The app it runs.
        running: ComponentId,
        /// The app asked for.
        asked: ComponentId,
    },
    /// The image was checked against another core's memory map.
    #[error("the image was checked against the memory map {checked:?}, core {core} has {actual:?}")]
    WrongMemoryMap {
        /// The core.
        core: CoreId,
        /// The map the image was checked against.
        checked: &'static str,
        /// The core's map.
        actual: &'static str,
    },
    /// Preparing the core's files or process failed.
    #[error("core {core}: {what}: {source}")]
    Io {
        /// The core.
        core: CoreId,
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

/// A real-time core and the app it runs, supervised: crashes restart it with backoff until
/// [`RealTimeCore::stop`].
pub trait RealTimeCore: Send + Sync + fmt::Debug {
    /// The core's name.
    fn id(&self) -> &CoreId;

    /// The memory map images for this core are checked against.
    fn memory_map(&self) -> &MemoryMap;

    /// Starts `image` (checked against [`Self::memory_map`]) and supervises it. Refused with
    /// [`CoreError::Busy`] while another app runs (stop it first).
    fn start(&self, image: VerifiedElf, config: RunConfig) -> Result<(), CoreError>;

    /// Stops the core (no restart) and disconnects its partner. Stopping a stopped core is not
    /// an error.
    fn stop(&self) -> Result<(), CoreError>;

    /// What the core is doing.
    fn status(&self) -> CoreStatus;

    /// The recent lines of the core's debug UART (a bounded buffer, oldest first; it survives
    /// restarts and is cleared by [`Self::start`]).
    fn logs(&self) -> Vec<LogLine>;

    /// Follows the debug UART from the next line on.
    fn follow_logs(&self) -> LogFollower;

    /// A receiver of this core's events from now on.
    fn subscribe(&self) -> Receiver<CoreEvent>;

    /// The mailbox endpoint of the running app's partner, which sends as `partner`. The
    /// endpoint lasts as long as this run of the core: after a restart or stop it answers
    /// [`MailboxError::Disconnected`] and the partner connects again.
    fn connect(&self, app: &ComponentId, partner: ComponentId) -> Result<Endpoint, CoreError>;

    /// The GPIO words of the control block (outputs as the core set them).
    fn gpio(&self) -> GpioLevels;

    /// Sets the GPIO input levels the core reads (kept across restarts); a change rings the
    /// core's doorbell, so a core asleep until an input changes wakes at once.
    fn set_gpio_inputs(&self, levels: u32);
}
