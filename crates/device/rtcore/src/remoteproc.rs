//! The Linux remoteproc backend, **untested on hardware here** (no board with a remote
//! processor is on this project's machines; its unit tests play the kernel with plain files).
//!
//! The same contract as the QEMU backend, over the kernel's documented interfaces
//! (`Documentation/staging/remoteproc.rst`, `Documentation/ABI/testing/sysfs-class-remoteproc`):
//!
//! | contract | remoteproc |
//! |---|---|
//! | load the image | the ELF written to `<firmware_dir>/ferro-rt-<core>.elf`, its name written to `<remoteproc>/firmware` |
//! | start, stop | `start` / `stop` written to `<remoteproc>/state` |
//! | restarts | the supervisor's own: `disabled` written to `<remoteproc>/recovery` (the kernel's recovery would hide crashes) |
//! | a crash | `<remoteproc>/state` reads `crashed` (or `offline` while running), with the control block read as for QEMU |
//! | the mailbox region | the board's shared carveout as a mappable file (`mailbox`, e.g. a UIO map over the memory the core sees at its mailbox address), the same `ferro-mailbox` layout |
//! | the debug log | the core's trace buffer (`trace`, e.g. `/sys/kernel/debug/remoteproc/remoteproc0/trace0`), read every 100 ms |
//! | doorbells | none generic: the host polls the rings every 2 ms (a chip's inter-processor mailbox would be the doorbell; the core's SDK needs that chip's interrupt too) |
//!
//! rpmsg-char (`/dev/rpmsgN`) is not used for the mailbox: its virtio buffers carry at most 496
//! payload bytes, not the contract's 1024, and creating an endpoint needs an ioctl.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferro_mailbox::{ControlBlock, CoreState, MappedRegion};

use crate::endpoint::{Region, Session};
use crate::supervisor::{Instance, LaunchIo, Launcher, Supervised, ping};
use crate::{CoreId, CrashKind, MemoryMap, VerifiedElf};

/// How often the rings are polled for waiters (no doorbell).
const POLL: Duration = Duration::from_millis(2);
/// How often the trace buffer is read.
const TRACE_POLL: Duration = Duration::from_millis(100);

/// Where a board's remote processor is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteprocConfig {
    /// The remoteproc device (`/sys/class/remoteproc/remoteproc0`).
    pub remoteproc: PathBuf,
    /// The firmware directory the kernel loads from (`/lib/firmware`).
    pub firmware_dir: PathBuf,
    /// The shared carveout as a file that can be mapped (a UIO map), at least the mailbox
    /// region's size.
    pub mailbox: PathBuf,
    /// The core's trace buffer, if the board has one.
    pub trace: Option<PathBuf>,
    /// The core's memory map (the board's: images are checked against it).
    pub map: MemoryMap,
}

/// A real-time core behind Linux remoteproc (untested on hardware here).
#[derive(Debug)]
pub struct RemoteprocCore {
    inner: Supervised<RemoteprocLauncher>,
}

impl RemoteprocCore {
    /// A stopped core named `id`, driven through `config`.
    pub fn new(id: CoreId, config: RemoteprocConfig) -> RemoteprocCore {
        let map = config.map.clone();
        RemoteprocCore {
            inner: Supervised::new(id, map, RemoteprocLauncher { config }),
        }
    }
}

crate::supervisor::delegate_real_time_core!(RemoteprocCore);

#[derive(Debug)]
struct RemoteprocLauncher {
    config: RemoteprocConfig,
}

fn read_state(remoteproc: &Path) -> io::Result<String> {
    Ok(fs::read_to_string(remoteproc.join("state"))?
        .trim()
        .to_string())
}

fn write_attr(remoteproc: &Path, name: &str, value: &str) -> io::Result<()> {
    fs::write(remoteproc.join(name), value)
}

impl Launcher for RemoteprocLauncher {
    fn launch(
        &self,
        core: &CoreId,
        image: &VerifiedElf,
        io: &LaunchIo,
    ) -> io::Result<Box<dyn Instance>> {
        let rp = &self.config.remoteproc;
        if matches!(
            read_state(rp)?.as_str(),
            "running" | "crashed" | "suspended"
        ) {
            write_attr(rp, "state", "stop")?;
        }
        let name = format!("ferro-rt-{core}.elf");
        let firmware = self.config.firmware_dir.join(&name);
        match fs::remove_file(&firmware) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&firmware)?
            .write_all(image.bytes())?;
        write_attr(rp, "firmware", &name)?;
        match write_attr(rp, "recovery", "disabled") {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let region: Region = Arc::new(MappedRegion::open(&self.config.mailbox)?);
        let control = ControlBlock::new(region.clone());
        control.initialise();
        control.set_gpio_inputs(io.gpio_in);
        let session = Session::new(region.clone(), io.app, Box::new(|| {}));
        write_attr(rp, "state", "start")?;

        let alive = Arc::new(AtomicBool::new(true));
        let (a, s, wake, log, trace) = (
            alive.clone(),
            session.clone(),
            io.wake.clone(),
            io.log.clone(),
            self.config.trace.clone(),
        );
        std::thread::spawn(move || {
            let mut seen = 0usize;
            let mut since_trace = Duration::ZERO;
            while a.load(Ordering::SeqCst) {
                s.notify();
                since_trace += POLL;
                if since_trace >= TRACE_POLL {
                    since_trace = Duration::ZERO;
                    ping(&wake);
                    if let Some(bytes) = trace.as_ref().and_then(|t| fs::read(t).ok()) {
                        if bytes.len() < seen {
                            seen = 0; // the buffer wrapped or was reset
                        }
                        log.feed(&bytes[seen..]);
                        seen = bytes.len();
                    }
                }
                std::thread::sleep(POLL);
            }
        });
        Ok(Box::new(RemoteprocInstance {
            remoteproc: rp.clone(),
            region,
            session,
            alive,
            stopped: Mutex::new(false),
        }))
    }
}

struct RemoteprocInstance {
    remoteproc: PathBuf,
    region: Region,
    session: Arc<Session>,
    alive: Arc<AtomicBool>,
    stopped: Mutex<bool>,
}

impl Instance for RemoteprocInstance {
    fn pid(&self) -> Option<u32> {
        None
    }

    fn session(&self) -> Arc<Session> {
        self.session.clone()
    }

    fn region(&self) -> Region {
        self.region.clone()
    }

    fn ended(&mut self) -> Option<CrashKind> {
        let state = match read_state(&self.remoteproc) {
            Ok(state) => state,
            Err(_) => return Some(CrashKind::EmulatorExited { status: None }),
        };
        if !matches!(state.as_str(), "crashed" | "offline") {
            return None;
        }
        match ControlBlock::new(self.region.clone()).state() {
            Ok(CoreState::Exited(code)) => Some(CrashKind::Exited(code)),
            Ok(CoreState::Faulted(record)) => Some(CrashKind::HardFault { record }),
            _ => Some(CrashKind::EmulatorExited { status: None }),
        }
    }

    fn kill(&mut self) {
        self.alive.store(false, Ordering::SeqCst);
        let mut stopped = self
            .stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*stopped {
            *stopped = true;
            if read_state(&self.remoteproc).is_ok_and(|s| s != "offline") {
                let _ = write_attr(&self.remoteproc, "state", "stop");
            }
        }
    }
}

impl Drop for RemoteprocInstance {
    fn drop(&mut self) {
        self.kill();
    }
}
