//! The QEMU backend: one `qemu-system-arm -M mps2-an386` process per core.

use std::path::PathBuf;
use std::sync::mpsc::Receiver;

use crate::{
    ComponentId, CoreError, CoreEvent, CoreId, CoreStatus, Endpoint, GpioLevels, LogFollower,
    LogLine, MemoryMap, RealTimeCore, RunConfig, VerifiedElf,
};

/// Where and how the QEMU backend runs its cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConfig {
    /// The emulator (`qemu-system-arm`, found on `PATH` when not a path).
    pub qemu: PathBuf,
    /// A directory of its own for the core's files (the shared-memory file, the UART sockets,
    /// the image), created mode 0700; on tmpfs (`/dev/shm/...` or `$XDG_RUNTIME_DIR`) so the
    /// mailbox never touches a disk.
    pub run_dir: PathBuf,
    /// Runs QEMU with `-sandbox on,...` (seccomp): no new processes, no privilege changes, no
    /// obsolete system calls.
    pub sandbox: bool,
}

impl QemuConfig {
    /// `qemu-system-arm` from `PATH`, sandboxed, in `run_dir`.
    pub fn new(run_dir: PathBuf) -> QemuConfig {
        QemuConfig { qemu: PathBuf::from("qemu-system-arm"), run_dir, sandbox: true }
    }
}

/// A real-time core emulated by QEMU's mps2-an386 (Cortex-M4).
#[derive(Debug)]
pub struct QemuCore {
    id: CoreId,
    map: MemoryMap,
}

impl QemuCore {
    /// A stopped core named `id`, with its files under `config.run_dir`.
    pub fn new(id: CoreId, config: QemuConfig) -> Result<QemuCore, CoreError> {
        let _ = config;
        Ok(QemuCore { id, map: MemoryMap::mps2_an386() })
    }
}

impl RealTimeCore for QemuCore {
    fn id(&self) -> &CoreId {
        &self.id
    }
    fn memory_map(&self) -> &MemoryMap {
        &self.map
    }
    fn start(&self, _image: VerifiedElf, _config: RunConfig) -> Result<(), CoreError> {
        todo!()
    }
    fn stop(&self) -> Result<(), CoreError> {
        todo!()
    }
    fn status(&self) -> CoreStatus {
        todo!()
    }
    fn logs(&self) -> Vec<LogLine> {
        todo!()
    }
    fn follow_logs(&self) -> LogFollower {
        todo!()
    }
    fn subscribe(&self) -> Receiver<CoreEvent> {
        todo!()
    }
    fn connect(&self, _app: &ComponentId, _partner: ComponentId) -> Result<Endpoint, CoreError> {
        todo!()
    }
    fn gpio(&self) -> GpioLevels {
        todo!()
    }
    fn set_gpio_inputs(&self, _levels: u32) {
        todo!()
    }
}
