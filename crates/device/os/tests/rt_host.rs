//! The device's real-time core host in process, with a real QEMU core and the virtual board of
//! the sample appliance: the GPIO outputs an RT app drives (apps/rt's `rt-io`: GPIO 3 high,
//! GPIO 5 low) appear on the board for the pins its manifest grants, and only those. Needs the
//! RT apps built (`cd apps/rt && cargo build --release`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferro_device::rt_apps::{RtAppSpec, RtHost};
use ferro_manifest::HardwareDefinition;
use ferro_peripherals::{Level, VirtualBoard};
use uuid::Uuid;

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

#[test]
fn the_gpio_outputs_a_core_drives_reach_the_virtual_board() {
    let definition = HardwareDefinition::load(
        &repo().join("hardware/ferro_vboard/sample_appliance.json"),
        &[],
    )
    .expect("sample appliance");
    let board = Arc::new(VirtualBoard::from_hardware_definition(&definition));
    let dir = tempfile::tempdir().expect("tempdir");
    let host = RtHost::new(
        &definition.real_time_cores(),
        dir.path(),
        Some(board.clone()),
    );
    let elf_path = repo().join("apps/rt/target/thumbv7em-none-eabihf/release/rt-io");
    let elf = std::fs::read(&elf_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the RT apps first: (cd apps/rt && cargo build --release)",
            elf_path.display()
        )
    });
    let app = Uuid::new_v4();
    host.check_elf("IO0", &elf)
        .expect("rt-io is an image for IO0");
    // The manifest grants GPIO 5 only (the board shows it high, off, until the core drives it):
    // GPIO 3, which rt-io also drives, stays untouched.
    host.install(
        app,
        "IO0",
        RtAppSpec {
            name: "rt-io".into(),
            elf,
            allowed: Vec::new(),
            gpio: vec![5],
            uart: None,
            watchdog: Duration::from_secs(5),
        },
        false,
    )
    .expect("install");
    let deadline = Instant::now() + Duration::from_secs(30);
    while board.driven_level(5) != Some(Level::Low) {
        assert!(
            Instant::now() < deadline,
            "GPIO 5 never went low: {:?}; log: {:?}",
            board.driven_level(5),
            host.logs(app)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(board.driven_level(3), None, "GPIO 3 is not the app's");
    let status = host.status(app).expect("status");
    assert!(
        matches!(status, ferro_rtcore::CoreStatus::Running { .. }),
        "{status:?}"
    );
    host.remove(app);
    assert!(matches!(
        host.status(app),
        Err(reason) if reason.contains("no real-time app")
    ));
}
