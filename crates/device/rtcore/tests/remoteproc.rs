//! The remoteproc backend against plain files playing the kernel's sysfs attributes, the
//! trace buffer and the shared carveout (no board here): what it writes, and a test thread
//! playing the core through the same `ferro-mailbox` code the SDK runs.

mod common;

use std::fs;
use std::time::Duration;

use common::{APP, PARTNER, run_config, wait_event, wait_log};
use ferro_mailbox::{
    Consumer, ControlBlock, CoreState, FaultKind, FaultRecord, MAX_PAYLOAD, MappedRegion, Producer,
    Ring,
};
use ferro_rtcore::{
    CoreEvent, CoreId, CrashKind, MemoryMap, RealTimeCore, RemoteprocConfig, RemoteprocCore,
    VerifiedElf,
};

#[test]
fn remoteproc_lifecycle_mailbox_log_and_crash() {
    let dir = tempfile::tempdir().expect("dir");
    let rp = dir.path().join("remoteproc0");
    fs::create_dir_all(&rp).expect("rp");
    fs::write(rp.join("state"), "offline\n").expect("state");
    fs::write(rp.join("firmware"), "\n").expect("firmware");
    fs::write(rp.join("recovery"), "enabled\n").expect("recovery");
    let firmware_dir = dir.path().join("firmware");
    fs::create_dir_all(&firmware_dir).expect("firmware dir");
    let mailbox = dir.path().join("carveout");
    fs::File::create(&mailbox)
        .and_then(|f| f.set_len(ferro_mailbox::REGION_SIZE as u64))
        .expect("carveout");
    let trace = dir.path().join("trace0");
    fs::write(&trace, "").expect("trace");

    let core = RemoteprocCore::new(
        CoreId::new("IO1").expect("id"),
        RemoteprocConfig {
            remoteproc: rp.clone(),
            firmware_dir: firmware_dir.clone(),
            mailbox: mailbox.clone(),
            trace: Some(trace.clone()),
            map: MemoryMap::mps2_an386(),
        },
    );
    let events = core.subscribe();
    let elf_bytes = fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../test-vectors/rt-elf/valid--minimal.elf"
    ))
    .expect("vector");
    let elf = VerifiedElf::verify(elf_bytes.clone(), &MemoryMap::mps2_an386()).expect("valid");
    core.start(elf, run_config(Some(Duration::from_secs(5))))
        .expect("start");
    wait_event(&events, Duration::from_secs(5), |e| {
        matches!(e, CoreEvent::Started { .. }).then_some(())
    });

    // What the kernel was told.
    assert_eq!(
        fs::read_to_string(rp.join("state")).expect("state"),
        "start"
    );
    assert_eq!(
        fs::read_to_string(rp.join("firmware")).expect("firmware"),
        "ferro-rt-IO1.elf"
    );
    assert_eq!(
        fs::read_to_string(rp.join("recovery")).expect("recovery"),
        "disabled"
    );
    assert_eq!(
        fs::read(firmware_dir.join("ferro-rt-IO1.elf")).expect("image"),
        elf_bytes
    );
    fs::write(rp.join("state"), "running\n").expect("state");

    // The core's side, over its own mapping of the carveout.
    let region = MappedRegion::open(&mailbox).expect("map");
    let control = ControlBlock::new(&region);
    control
        .check_header()
        .expect("the host prepared the region");
    control.set_state(CoreState::Ready);
    let mut tx = Producer::new(&region, Ring::CoreToHost);
    let mut rx = Consumer::new(&region, Ring::HostToCore);
    let endpoint = core.connect(&APP, PARTNER).expect("connect");
    let _ = tx
        .try_send(&ferro_mailbox::ComponentId([0xee; 16]), b"ping")
        .expect("room");
    let m = endpoint
        .receive_timeout(Duration::from_secs(5))
        .expect("polled without a doorbell");
    assert_eq!(
        (m.sender, m.payload.as_slice()),
        (APP, &b"ping"[..]),
        "tagged with the app's ID, not the core's claim"
    );
    endpoint
        .send_timeout(b"pong", Duration::from_secs(5))
        .expect("send");
    let mut buf = [0u8; MAX_PAYLOAD];
    let got = rx.try_receive(&mut buf).expect("valid").expect("a message");
    assert_eq!((got.sender, &buf[..got.len]), (PARTNER, &b"pong"[..]));

    // The trace buffer is the log.
    fs::write(&trace, "hello from the core\n").expect("trace");
    wait_log(&core, "hello from the core", Duration::from_secs(5));

    // A crash: the fault record, then the kernel's state.
    let record = FaultRecord {
        kind: FaultKind::HardFault,
        pc: 0x100,
        lr: 0x201,
        xpsr: 0x0100_0000,
        cfsr: 0,
        hfsr: 0,
        mmfar: 0,
        bfar: 0,
    };
    control.set_state(CoreState::Faulted(record));
    fs::write(rp.join("state"), "crashed\n").expect("state");
    let kind = wait_event(&events, Duration::from_secs(5), |e| match e {
        CoreEvent::Crashed { kind, .. } => Some(kind.clone()),
        _ => None,
    });
    assert_eq!(kind, CrashKind::HardFault { record });
    assert_eq!(
        endpoint.try_send(b"x"),
        Err(ferro_rtcore::MailboxError::Disconnected)
    );
    // Restarted after the backoff: stopped, then started again.
    wait_event(&events, Duration::from_secs(5), |e| {
        matches!(e, CoreEvent::Started { restarts: 1, .. }).then_some(())
    });
    assert_eq!(
        fs::read_to_string(rp.join("state")).expect("state"),
        "start"
    );
    core.stop().expect("stop");
    assert_eq!(fs::read_to_string(rp.join("state")).expect("state"), "stop");
}
