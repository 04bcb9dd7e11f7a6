//! The QEMU backend with real guests (`apps/rt`, built by `scripts/test.sh` first): the echo
//! sample's round trips and 10,000 messages, and each hostile guest contained (a restart and
//! a typed event, the host unharmed).

mod common;

use std::time::{Duration, Instant};

use common::{APP, PARTNER, core, guest, run_config, wait_event, wait_log};
use ferro_rtcore::{CoreEvent, CoreStatus, CrashKind, FaultKind, MailboxError, RealTimeCore};

const BOOT: Duration = Duration::from_secs(10);

fn expected_echo(payload: &[u8]) -> Vec<u8> {
    let mut answer = PARTNER.0.to_vec();
    answer.extend_from_slice(payload);
    answer.truncate(1024);
    answer
}

#[test]
fn echo_answers_with_the_sender_prefixed() {
    let core = core();
    let events = core.subscribe();
    core.start(guest("rt-echo"), run_config(Some(Duration::from_secs(3))))
        .expect("start");
    wait_event(&events, BOOT, |e| {
        matches!(e, CoreEvent::Started { restarts: 0, .. }).then_some(())
    });
    wait_log(&*core, "rt-echo ready", BOOT);
    let endpoint = core.connect(&APP, PARTNER).expect("connect");
    for payload in [
        &b"hello"[..],
        &[0u8; 1][..],
        &[0xffu8; 1008][..],
        &[7u8; 1024][..],
    ] {
        endpoint
            .send_timeout(payload, Duration::from_secs(5))
            .expect("send");
        let answer = endpoint
            .receive_timeout(Duration::from_secs(5))
            .expect("answer");
        assert_eq!(
            answer.sender, APP,
            "the host tags the core's messages with the RT app's ID"
        );
        assert_eq!(answer.payload, expected_echo(payload));
    }
    assert!(
        matches!(core.status(), CoreStatus::Running { restarts: 0, .. }),
        "{:?}",
        core.status()
    );
    assert!(matches!(
        endpoint.try_send(&[0u8; 1025]),
        Err(MailboxError::TooLarge { len: 1025 })
    ));
    core.stop().expect("stop");
    assert_eq!(core.status(), CoreStatus::Stopped);
    assert_eq!(endpoint.try_send(b"x"), Err(MailboxError::Disconnected));
}

/// 10,000 messages of random sizes from 1 to 1024 bytes, pipelined (a sender thread, the
/// ring's backpressure between): every answer arrives once, whole, in order.
#[test]
fn ten_thousand_messages_none_lost_duplicated_or_reordered() {
    let core = core();
    core.start(guest("rt-echo"), run_config(Some(Duration::from_secs(3))))
        .expect("start");
    wait_log(&*core, "rt-echo ready", BOOT);
    let endpoint = core.connect(&APP, PARTNER).expect("connect");
    const N: usize = 10_000;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let payloads: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            let mut next = || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            let len = (next() % 1024 + 1) as usize;
            let mut p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            for (k, b) in (i as u32).to_le_bytes().iter().enumerate().take(len) {
                p[k] = *b;
            }
            p
        })
        .collect();
    let started = Instant::now();
    std::thread::scope(|s| {
        let sender = endpoint.clone();
        let to_send = &payloads;
        s.spawn(move || {
            for p in to_send {
                sender
                    .send_timeout(p, Duration::from_secs(10))
                    .expect("send");
            }
        });
        for (i, p) in payloads.iter().enumerate() {
            let answer = endpoint
                .receive_timeout(Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("answer {i}: {e}"));
            assert_eq!(answer.payload, expected_echo(p), "answer {i}");
        }
    });
    assert_eq!(endpoint.try_receive(), Ok(None), "no extra answer");
    eprintln!("10,000 round trips (pipelined) in {:?}", started.elapsed());
    assert!(
        matches!(core.status(), CoreStatus::Running { restarts: 0, .. }),
        "{:?}",
        core.status()
    );
}

#[test]
fn an_exit_is_a_crash_restarted_with_backoff_and_a_disconnect() {
    let core = core();
    let events = core.subscribe();
    core.start(guest("rt-exit"), run_config(None))
        .expect("start");
    let (kind, delay) = wait_event(&events, BOOT, |e| match e {
        CoreEvent::Crashed {
            kind,
            restarts: 1,
            delay,
            ..
        } => Some((kind.clone(), *delay)),
        _ => None,
    });
    assert_eq!(kind, CrashKind::Exited(7));
    assert_eq!(delay, Duration::from_millis(100));
    let delay2 = wait_event(&events, BOOT, |e| match e {
        CoreEvent::Crashed {
            restarts: 2, delay, ..
        } => Some(*delay),
        _ => None,
    });
    assert_eq!(delay2, Duration::from_millis(200), "the delay doubles");
    assert!(
        core.logs()
            .iter()
            .any(|l| l.text == "rt-exit: exiting with 7")
    );
    core.stop().expect("stop");
    wait_event(&events, BOOT, |e| {
        matches!(e, CoreEvent::Stopped { .. }).then_some(())
    });
}

#[test]
fn a_spin_without_kicks_is_a_watchdog_crash() {
    let core = core();
    let events = core.subscribe();
    core.start(
        guest("rt-spin"),
        run_config(Some(Duration::from_millis(500))),
    )
    .expect("start");
    let kind = wait_event(&events, BOOT, |e| match e {
        CoreEvent::Crashed { kind, .. } => Some(kind.clone()),
        _ => None,
    });
    assert_eq!(kind, CrashKind::Watchdog);
    wait_event(&events, BOOT, |e| {
        matches!(e, CoreEvent::Started { restarts: 1, .. }).then_some(())
    });
}

#[test]
fn a_hardfault_is_reported_with_its_record() {
    let core = core();
    let events = core.subscribe();
    core.start(guest("rt-hardfault"), run_config(None))
        .expect("start");
    let kind = wait_event(&events, BOOT, |e| match e {
        CoreEvent::Crashed { kind, .. } => Some(kind.clone()),
        _ => None,
    });
    let CrashKind::HardFault { record } = kind else {
        panic!("{kind:?}")
    };
    assert_eq!(record.kind, FaultKind::BusFault, "{record:?}");
    assert_eq!(record.bfar, 0x5fff_0000, "{record:?}");
    assert!(record.pc < 0x40_0000 && record.pc != 0, "{record:?}");
    assert!(!core.logs().iter().any(|l| l.text.contains("survived")));
}

/// A core that floods the mailbox and the doorbell: the host keeps up, in order, nothing
/// dropped, and the core is not restarted (a flood is backpressure, not a crash).
#[test]
fn a_flood_is_backpressure() {
    let core = core();
    core.start(guest("rt-flood"), run_config(Some(Duration::from_secs(3))))
        .expect("start");
    wait_log(&*core, "rt-flood: flooding", BOOT);
    let endpoint = core.connect(&APP, PARTNER).expect("connect");
    std::thread::sleep(Duration::from_millis(300)); // let the ring fill
    for seq in 0u32..3000 {
        let m = endpoint
            .receive_timeout(Duration::from_secs(5))
            .expect("message");
        assert_eq!(m.payload.len(), 1024);
        assert_eq!(m.payload[..4], seq.to_le_bytes(), "message {seq}");
    }
    assert!(
        matches!(core.status(), CoreStatus::Running { restarts: 0, .. }),
        "{:?}",
        core.status()
    );
}

#[test]
fn writes_over_the_ring_headers_are_ring_corrupt() {
    let core = core();
    let events = core.subscribe();
    core.start(
        guest("rt-scribble"),
        run_config(Some(Duration::from_secs(3))),
    )
    .expect("start");
    wait_log(&*core, "waiting for a message", BOOT);
    let endpoint = core.connect(&APP, PARTNER).expect("connect");
    endpoint
        .send_timeout(b"go", Duration::from_secs(5))
        .expect("send");
    let kind = wait_event(&events, BOOT, |e| match e {
        CoreEvent::Crashed { kind, .. } => Some(kind.clone()),
        _ => None,
    });
    assert!(matches!(kind, CrashKind::RingCorrupt { .. }), "{kind:?}");
    let err = endpoint.try_receive().expect_err("the run is over");
    assert!(
        matches!(
            err,
            MailboxError::Disconnected | MailboxError::RingCorrupt { .. }
        ),
        "{err:?}"
    );
}

/// GPIO outputs through the control block, an input the host sets (its edge wakes the core at
/// once: the doorbell), and the app's UART bridged to the caller's stream.
#[test]
fn gpio_and_the_app_uart_reach_the_host() {
    use std::io::{Read, Write};
    const BUTTON: u32 = 1 << 12;
    const LED: u32 = 1 << 8;
    let core = core();
    let (mut peer, ours) = std::os::unix::net::UnixStream::pair().expect("pair");
    let mut config = run_config(Some(Duration::from_secs(3)));
    config.app_uart = Some(ours);
    core.set_gpio_inputs(BUTTON); // released: the pull-up holds it high
    core.start(guest("rt-io"), config).expect("start");
    wait_log(&*core, "rt-io ready", BOOT);
    let gpio = core.gpio();
    assert_eq!(gpio.output & (1 << 3), 1 << 3, "{gpio:?}");
    assert_eq!(gpio.output & (1 << 5), 0, "{gpio:?}");
    assert_eq!(
        gpio.enable & ((1 << 3) | (1 << 5)),
        (1 << 3) | (1 << 5),
        "{gpio:?}"
    );
    // How long after `started` the LED shows `lit`.
    let wait_led = |lit: bool, started: Instant| -> Duration {
        while (core.gpio().output & LED == 0) != lit {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the LED does not follow the button: {:?}",
                core.gpio()
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        started.elapsed()
    };
    wait_led(false, Instant::now());
    // Presses: each edge reaches the core at once (it sleeps up to 1 s between alarms: without
    // the doorbell the median edge would take about 500 ms).
    let mut edges = Vec::new();
    for n in 1..=5 {
        let started = Instant::now();
        core.set_gpio_inputs(0);
        edges.push(wait_led(true, started));
        wait_log(&*core, &format!("rt-io: press {n}"), BOOT);
        let started = Instant::now();
        core.set_gpio_inputs(BUTTON);
        edges.push(wait_led(false, started));
    }
    edges.sort();
    eprintln!(
        "input edge to output: median {:?}, max {:?}",
        edges[edges.len() / 2],
        edges[edges.len() - 1]
    );
    assert!(
        edges[edges.len() / 2] < Duration::from_millis(200),
        "edges wait for the core's 1 s alarm: the doorbell did not wake it ({edges:?})"
    );
    peer.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    peer.write_all(b"abc").expect("write");
    let mut got = [0u8; 3];
    peer.read_exact(&mut got).expect("answer");
    assert_eq!(&got, b"ABC");
}

/// The async sample (embassy): the same answers, and its second task's log line every second.
#[test]
fn the_async_sample_answers_and_ticks() {
    let core = core();
    core.start(
        guest("rt-echo-async"),
        run_config(Some(Duration::from_secs(3))),
    )
    .expect("start");
    wait_log(&*core, "rt-echo-async ready", BOOT);
    let endpoint = core.connect(&APP, PARTNER).expect("connect");
    for i in 0..200u32 {
        let payload = vec![i as u8; (i as usize * 37) % 1024 + 1];
        endpoint
            .send_timeout(&payload, Duration::from_secs(5))
            .expect("send");
        let answer = endpoint
            .receive_timeout(Duration::from_secs(5))
            .expect("answer");
        assert_eq!(answer.payload, expected_echo(&payload), "message {i}");
    }
    wait_log(
        &*core,
        "rt-echo-async: 200 answered",
        Duration::from_secs(5),
    );
    assert!(
        matches!(core.status(), CoreStatus::Running { restarts: 0, .. }),
        "{:?}",
        core.status()
    );
}

#[test]
fn a_lockup_is_reported_as_one() {
    let core = core();
    let events = core.subscribe();
    core.start(guest("rt-lockup"), run_config(None))
        .expect("start");
    let kind = wait_event(&events, BOOT, |e| match e {
        CoreEvent::Crashed { kind, .. } => Some(kind.clone()),
        _ => None,
    });
    assert_eq!(kind, CrashKind::Lockup);
    wait_event(&events, BOOT, |e| {
        matches!(e, CoreEvent::Started { restarts: 1, .. }).then_some(())
    });
}

/// A minimal executor for the async endpoint: polls on the calling thread, parks between wakes.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_secs(1));
    }
}

/// The async endpoint: sends and receives woken by doorbells, and a pending receive ends with
/// `Disconnected` when the core stops. A second start on a busy core, a connect for another
/// app and a bad core name are refused.
#[test]
fn async_endpoint_and_refusals() {
    let core = core();
    core.start(guest("rt-echo"), run_config(Some(Duration::from_secs(3))))
        .expect("start");
    wait_log(&*core, "rt-echo ready", BOOT);
    let busy = core
        .start(guest("rt-exit"), run_config(None))
        .expect_err("busy");
    assert!(
        matches!(busy, ferro_rtcore::CoreError::Busy { app, .. } if app == APP),
        "{busy}"
    );
    let other = ferro_rtcore::ComponentId([9; 16]);
    assert!(matches!(
        core.connect(&other, PARTNER),
        Err(ferro_rtcore::CoreError::OtherApp { .. })
    ));
    assert!(ferro_rtcore::CoreId::new("../IO0").is_err());
    assert!(ferro_rtcore::CoreId::new("").is_err());
    let endpoint = core.connect(&APP, PARTNER).expect("connect");
    block_on(async {
        for i in 0..100u8 {
            endpoint.send(&[i; 100]).await.expect("send");
            let answer = endpoint.receive().await.expect("answer");
            assert_eq!(answer.payload, expected_echo(&[i; 100]));
        }
    });
    let waiting = endpoint.clone();
    let pending = std::thread::spawn(move || block_on(waiting.receive()));
    std::thread::sleep(Duration::from_millis(200));
    core.stop().expect("stop");
    assert_eq!(
        pending.join().expect("receiver"),
        Err(MailboxError::Disconnected)
    );
}

/// Set in the child process that `qemu_dies_with_a_killed_owner` starts.
const HOLDER_ENV: &str = "FERRO_RTCORE_TEST_HOLDER_DIR";

/// Not a test of its own: the process `qemu_dies_with_a_killed_owner` kills. It starts a core
/// under the directory it is given, prints QEMU's process ID and waits to be killed.
#[test]
#[ignore = "run by qemu_dies_with_a_killed_owner in a child process"]
fn holder_of_a_core() {
    let Some(dir) = std::env::var_os(HOLDER_ENV) else {
        return;
    };
    let core = ferro_rtcore::QemuCore::new(
        ferro_rtcore::CoreId::new("IO0").expect("name"),
        ferro_rtcore::QemuConfig::new(std::path::PathBuf::from(dir)),
    )
    .expect("core");
    core.start(guest("rt-echo"), run_config(None))
        .expect("start");
    let deadline = Instant::now() + BOOT;
    loop {
        if let CoreStatus::Running { pid: Some(pid), .. } = core.status() {
            println!("qemu-pid {pid}");
            break;
        }
        assert!(Instant::now() < deadline, "QEMU did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Killed long before this; bounded so that a failing parent leaves nothing behind long.
    std::thread::sleep(Duration::from_secs(60));
}

/// Whether process `pid` still runs (a zombie no longer does: nothing reaps orphans in some
/// containers).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// `kill -9` of the process that owns a core: its QEMU does not outlive it (setpriv's parent
/// death signal).
#[test]
fn qemu_dies_with_a_killed_owner() {
    use std::io::BufRead;
    let dir = tempfile::Builder::new()
        .prefix("ferro-rtcore-holder")
        .tempdir_in("/dev/shm")
        .expect("tmpfs dir");
    let mut holder = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "holder_of_a_core",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLDER_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("holder");
    let stdout = holder.stdout.take().expect("stdout");
    let mut pid = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.expect("line");
        // The harness prints "test holder_of_a_core ... " before it on the same line.
        if let Some((_, p)) = line.split_once("qemu-pid ") {
            pid = Some(p.trim().parse::<u32>().expect("pid"));
            break;
        }
    }
    let pid = pid.expect("the holder printed QEMU's pid");
    assert!(alive(pid), "QEMU runs before the kill");
    holder.kill().expect("kill -9"); // SIGKILL: no unwinding, no Drop
    holder.wait().expect("reap");
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        if Instant::now() >= deadline {
            // Do not leave it running: end it, then fail.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("QEMU {pid} outlived its killed owner by 5 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
