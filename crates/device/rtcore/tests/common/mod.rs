//! Helpers of the QEMU tests: the guests of `apps/rt`, a core in a temporary tmpfs directory,
//! waiting for events and log lines.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use ferro_rtcore::{
    Backoff, ComponentId, CoreEvent, CoreId, QemuConfig, QemuCore, RealTimeCore, RunConfig,
    VerifiedElf,
};

/// The RT app's component ID in these tests.
pub const APP: ComponentId = ComponentId([0xa1; 16]);
/// Its partner's.
pub const PARTNER: ComponentId = ComponentId([
    0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
]);

/// An `apps/rt` guest's ELF, checked.
pub fn guest(name: &str) -> VerifiedElf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../apps/rt/target/thumbv7em-none-eabihf/release")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the RT guests first: (cd apps/rt && cargo build --release)",
            path.display()
        )
    });
    VerifiedElf::verify(bytes, &ferro_rtcore::MemoryMap::mps2_an386())
        .expect("the guest passes the ELF check")
}

/// A core with its files in a fresh directory on tmpfs (removed on drop, after the core).
pub struct TestCore {
    pub core: QemuCore,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TestCore {
    type Target = QemuCore;
    fn deref(&self) -> &QemuCore {
        &self.core
    }
}

pub fn core() -> TestCore {
    let dir = tempfile::Builder::new()
        .prefix("ferro-rtcore-test")
        .tempdir_in("/dev/shm")
        .expect("tmpfs dir");
    let core = QemuCore::new(
        CoreId::new("IO0").expect("name"),
        QemuConfig::new(dir.path().to_path_buf()),
    )
    .expect("core");
    TestCore { core, _dir: dir }
}

pub fn run_config(watchdog: Option<Duration>) -> RunConfig {
    RunConfig {
        app: APP,
        watchdog,
        backoff: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            reset_after: Duration::from_secs(60),
        },
        app_uart: None,
    }
}

/// The first event `pick` accepts, within `timeout`.
pub fn wait_event<T>(
    events: &Receiver<CoreEvent>,
    timeout: Duration,
    mut pick: impl FnMut(&CoreEvent) -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(event) => {
                if let Some(v) = pick(&event) {
                    return v;
                }
            }
            Err(e) => panic!("no matching event within {timeout:?}: {e}"),
        }
    }
}

/// Waits until a log line contains `needle`.
pub fn wait_log(core: &dyn RealTimeCore, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if core.logs().iter().any(|l| l.text.contains(needle)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!(
        "no log line with {needle:?} within {timeout:?}; log: {:#?}",
        core.logs()
    );
}
