//! The real-time core benchmark (a bench binary: `cargo bench -p ferro-rtcore --bench rtcore`;
//! needs the RT guests built: `(cd apps/rt && cargo build --release)`). One run prints:
//! - mailbox round trips (host -> core -> host through `rt-bench`'s echo), p50 and p99, for 16
//!   and 1024 bytes, against the baseline in the same run: a Unix-socket round trip between
//!   this process and a child process (this binary re-run as an echo server);
//! - one-way throughput (messages/s, MB/s) both ways for 16 and 1024 bytes, and over the socket;
//! - an RT app's start to its first log line;
//! - the host CPU of an idle core (QEMU's and this process's, from /proc/PID/stat) and QEMU's
//!   resident memory per core.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferro_rtcore::{
    Backoff, ComponentId, CoreId, CoreStatus, Endpoint, MemoryMap, QemuConfig, QemuCore,
    RealTimeCore, RunConfig, VerifiedElf,
};

const APP: ComponentId = ComponentId([0xb0; 16]);
const PARTNER: ComponentId = ComponentId([0xc0; 16]);
const ROUND_TRIPS: usize = 5000;
const ONE_WAY: u32 = 20_000;
const T: Duration = Duration::from_secs(20);

fn guest(name: &str) -> VerifiedElf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../apps/rt/target/thumbv7em-none-eabihf/release")
        .join(name);
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; build apps/rt first", path.display()));
    VerifiedElf::verify(bytes, &MemoryMap::mps2_an386()).expect("valid guest")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn child_echo() {
    // The baseline's other process: echo frames (u32 length, payload) on stdin's socket.
    let mut s = UnixStream::connect(std::env::var("FERRO_RT_BENCH_SOCKET").expect("socket"))
        .expect("connect");
    let mut len = [0u8; 4];
    let mut buf = vec![0u8; 1024];
    while s.read_exact(&mut len).is_ok() {
        let n = u32::from_le_bytes(len) as usize;
        if n == 0 {
            // One-way: count frames until the next zero frame, answer the count.
            let mut count = 0u32;
            loop {
                s.read_exact(&mut len).expect("frame");
                let n = u32::from_le_bytes(len) as usize;
                if n == 0 {
                    break;
                }
                s.read_exact(&mut buf[..n]).expect("payload");
                count += 1;
            }
            s.write_all(&4u32.to_le_bytes())
                .and_then(|()| s.write_all(&count.to_le_bytes()))
                .expect("answer");
            continue;
        }
        s.read_exact(&mut buf[..n]).expect("payload");
        s.write_all(&len)
            .and_then(|()| s.write_all(&buf[..n]))
            .expect("echo");
    }
}

fn socket_baseline(size: usize) -> (Duration, Duration, f64) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("echo.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .env("FERRO_RT_BENCH_CHILD", "1")
        .env("FERRO_RT_BENCH_SOCKET", &path)
        .stdin(Stdio::null())
        .spawn()
        .expect("child");
    let (mut s, _) = listener.accept().expect("accept");
    let payload = vec![0x5au8; size];
    let mut back = vec![0u8; size];
    let mut len = [0u8; 4];
    let mut rtts = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        s.write_all(&(size as u32).to_le_bytes())
            .and_then(|()| s.write_all(&payload))
            .expect("send");
        s.read_exact(&mut len)
            .and_then(|()| s.read_exact(&mut back))
            .expect("echo");
        rtts.push(t.elapsed());
    }
    rtts.sort();
    let t = Instant::now();
    s.write_all(&0u32.to_le_bytes()).expect("start");
    let mut w = std::io::BufWriter::new(&s);
    for _ in 0..ONE_WAY {
        w.write_all(&(size as u32).to_le_bytes())
            .and_then(|()| w.write_all(&payload))
            .expect("send");
    }
    w.write_all(&0u32.to_le_bytes()).expect("end");
    drop(w);
    let mut count = [0u8; 4];
    s.read_exact(&mut len)
        .and_then(|()| s.read_exact(&mut count))
        .expect("count");
    let rate = f64::from(ONE_WAY) / t.elapsed().as_secs_f64();
    assert_eq!(u32::from_le_bytes(count), ONE_WAY);
    drop(s);
    let _ = child.wait();
    (percentile(&rtts, 0.5), percentile(&rtts, 0.99), rate)
}

fn proc_cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn start(core: &QemuCore, name: &str, ready: &str) -> Duration {
    let mut follow = core.follow_logs();
    let t = Instant::now();
    core.start(
        guest(name),
        RunConfig {
            app: APP,
            watchdog: None,
            backoff: Backoff::default(),
            app_uart: None,
        },
    )
    .expect("start");
    loop {
        let line = follow.next_timeout(T).expect("first log line");
        if line.text.contains(ready) {
            return t.elapsed();
        }
    }
}

fn round_trips(ep: &Endpoint, size: usize) -> (Duration, Duration) {
    let payload = vec![0x33u8; size];
    let mut rtts = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        ep.send_timeout(&payload, T).expect("send");
        let m = ep.receive_timeout(T).expect("echo");
        rtts.push(t.elapsed());
        assert_eq!(m.payload.len(), size);
    }
    rtts.sort();
    (percentile(&rtts, 0.5), percentile(&rtts, 0.99))
}

fn host_to_core(ep: &Endpoint, size: usize) -> f64 {
    ep.send_timeout(b"K", T).expect("sink");
    let payload = vec![0x44u8; size];
    let t = Instant::now();
    for _ in 0..ONE_WAY {
        ep.send_timeout(&payload, T).expect("send");
    }
    ep.send_timeout(b"Z", T).expect("end");
    let count = ep.receive_timeout(T).expect("count");
    let rate = f64::from(ONE_WAY) / t.elapsed().as_secs_f64();
    assert_eq!(count.payload, ONE_WAY.to_le_bytes());
    rate
}

fn core_to_host(ep: &Endpoint, size: usize) -> f64 {
    let mut cmd = vec![b'P'];
    cmd.extend_from_slice(&ONE_WAY.to_le_bytes());
    cmd.extend_from_slice(&(size as u16).to_le_bytes());
    let t = Instant::now();
    ep.send_timeout(&cmd, T).expect("produce");
    for i in 0..ONE_WAY {
        let m = ep.receive_timeout(T).expect("message");
        assert_eq!(m.payload[..4], i.to_le_bytes());
    }
    f64::from(ONE_WAY) / t.elapsed().as_secs_f64()
}

fn main() {
    if std::env::var_os("FERRO_RT_BENCH_CHILD").is_some() {
        child_echo();
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list: there is none.
    }
    let dir = tempfile::Builder::new()
        .prefix("ferro-rtcore-bench")
        .tempdir_in("/dev/shm")
        .expect("tmpfs");
    let core = QemuCore::new(
        CoreId::new("IO0").expect("id"),
        QemuConfig::new(dir.path().to_path_buf()),
    )
    .expect("core");

    let mut starts: Vec<Duration> = (0..5)
        .map(|_| {
            let d = start(&core, "rt-echo", "rt-echo ready");
            core.stop().expect("stop");
            d
        })
        .collect();
    starts.sort();
    println!(
        "start to first log line (rt-echo, 5 runs): median {:?}, max {:?}",
        starts[2], starts[4]
    );

    start(&core, "rt-bench", "rt-bench ready");
    let ep = core.connect(&APP, PARTNER).expect("connect");
    println!(
        "{:<34} {:>10} {:>10} {:>12} {:>9}",
        "", "p50", "p99", "msgs/s", "MB/s"
    );
    for size in [16usize, 1024] {
        let (p50, p99) = round_trips(&ep, size);
        let (b50, b99, brate) = socket_baseline(size);
        let down = host_to_core(&ep, size);
        let up = core_to_host(&ep, size);
        let mb = |rate: f64| rate * size as f64 / 1e6;
        println!(
            "{:<34} {:>10.1?} {:>10.1?}",
            format!("mailbox round trip {size} B"),
            p50,
            p99
        );
        println!(
            "{:<34} {:>10.1?} {:>10.1?}",
            format!("unix socket round trip {size} B"),
            b50,
            b99
        );
        println!(
            "{:<34} {:>10} {:>10} {:>12.0} {:>9.2}",
            format!("mailbox host->core {size} B"),
            "",
            "",
            down,
            mb(down)
        );
        println!(
            "{:<34} {:>10} {:>10} {:>12.0} {:>9.2}",
            format!("mailbox core->host {size} B"),
            "",
            "",
            up,
            mb(up)
        );
        println!(
            "{:<34} {:>10} {:>10} {:>12.0} {:>9.2}",
            format!("unix socket one way {size} B"),
            "",
            "",
            brate,
            mb(brate)
        );
        println!(
            "ratio mailbox/socket round trip {size} B: p50 {:.1}x, p99 {:.1}x",
            p50.as_secs_f64() / b50.as_secs_f64(),
            p99.as_secs_f64() / b99.as_secs_f64()
        );
    }
    core.stop().expect("stop");

    // An idle core: rt-echo waiting in WFI (it wakes once a second to kick the watchdog).
    start(&core, "rt-echo", "rt-echo ready");
    let CoreStatus::Running { pid: Some(pid), .. } = core.status() else {
        panic!("not running")
    };
    std::thread::sleep(Duration::from_secs(1));
    let hz = 100.0; // USER_HZ
    let (q0, s0) = (proc_cpu_ticks(&pid.to_string()), proc_cpu_ticks("self"));
    let window = Duration::from_secs(5);
    std::thread::sleep(window);
    let (q1, s1) = (proc_cpu_ticks(&pid.to_string()), proc_cpu_ticks("self"));
    let pct = |ticks: u64| ticks as f64 / hz / window.as_secs_f64() * 100.0;
    println!(
        "idle core over {window:?}: QEMU {:.1}% of a CPU, host process {:.1}% (supervisor, readers)",
        pct(q1 - q0),
        pct(s1 - s0)
    );
    println!("memory per core: QEMU resident {} MiB", rss_kib(pid) / 1024);
    core.stop().expect("stop");
}
