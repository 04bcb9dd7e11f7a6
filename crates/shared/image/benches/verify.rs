//! `cargo bench -p ferro-image`: verification throughput against plain SHA-256, and peak
//! memory of verification at two payload sizes (each measured in a fresh child process).

use std::io::{self, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferro_image::{PackOptions, pack_os, verify_file};
use ferro_signing::{SoftwareSigningKey, TrustedKeys};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;
const RUNS: usize = 5;

fn best_of<F: FnMut()>(mut f: F) -> Duration {
    (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// Pack an OS image whose bin/ferro-device is `size` pseudo-random bytes.
fn make_package(dir: &Path, size: usize, key: &SoftwareSigningKey) -> std::path::PathBuf {
    let os = dir.join(format!("os-{size}"));
    std::fs::create_dir_all(os.join("bin")).unwrap();
    let mut data = vec![0u8; size];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for (b, s) in chunk.iter_mut().zip(x.to_le_bytes()) {
            *b = s;
        }
    }
    std::fs::write(os.join("bin/ferro-device"), &data).unwrap();
    let dest = dir.join(format!("os-{size}.fsimg"));
    pack_os(&os, &PackOptions::default(), key, &dest).unwrap();
    dest
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn child(package: &str, pem_path: &str) {
    let pem = std::fs::read_to_string(pem_path).unwrap();
    let key = SoftwareSigningKey::from_pkcs8_pem(&pem).unwrap();
    let trusted: TrustedKeys = [key.public_key().clone()].into_iter().collect();
    let before = vm_hwm_kib();
    verify_file(Path::new(package), &trusted, &mut io::sink()).unwrap();
    println!("{before} {}", vm_hwm_kib());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--measure-rss") {
        child(&args[i + 1], &args[i + 2]);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = SoftwareSigningKey::generate();
    let pem_path = dir.path().join("key.pem");
    key.save_new(&pem_path).unwrap();
    let trusted: TrustedKeys = [key.public_key().clone()].into_iter().collect();

    let size = 64 * MIB;
    let buffer = vec![0xa5u8; size];
    let sha = best_of(|| {
        std::hint::black_box(Sha256::digest(std::hint::black_box(&buffer)));
    });
    drop(buffer);
    let big = make_package(dir.path(), size, &key);
    let small = make_package(dir.path(), MIB, &key);
    let ver = best_of(|| {
        verify_file(&big, &trusted, &mut io::sink()).unwrap();
    });

    let exe = std::env::current_exe().unwrap();
    let rss = |p: &Path| -> (u64, u64) {
        let out = Command::new(&exe)
            .args([
                "--measure-rss",
                p.to_str().unwrap(),
                pem_path.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout);
        let mut it = s.split_whitespace().map(|n| n.parse::<u64>().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    };
    let (s0, s1) = rss(&small);
    let (b0, b1) = rss(&big);

    let mut o = io::stdout().lock();
    let _ = writeln!(o, "\nferro-image verify benchmark (best of {RUNS}, 64 MiB)");
    let _ = writeln!(o, "{:<46} {:>10} {:>10}", "measurement", "time ms", "MB/s");
    let _ = writeln!(
        o,
        "{:<46} {:>10.1} {:>10.0}",
        "plain SHA-256, in memory",
        sha.as_secs_f64() * 1e3,
        mbps(size, sha)
    );
    let _ = writeln!(
        o,
        "{:<46} {:>10.1} {:>10.0}",
        "verify (file on disk, page cache), io::sink",
        ver.as_secs_f64() * 1e3,
        mbps(size, ver)
    );
    let _ = writeln!(
        o,
        "verify / SHA-256 throughput ratio: {:.1}% (goal >= 80%)",
        100.0 * sha.as_secs_f64() / ver.as_secs_f64()
    );
    let _ = writeln!(o, "\npeak RSS (VmHWM) of verification, fresh process each");
    let _ = writeln!(
        o,
        "{:<20} {:>16} {:>16} {:>12}",
        "payload", "before KiB", "after KiB", "delta KiB"
    );
    let _ = writeln!(
        o,
        "{:<20} {:>16} {:>16} {:>12}",
        "1 MiB",
        s0,
        s1,
        s1.saturating_sub(s0)
    );
    let _ = writeln!(
        o,
        "{:<20} {:>16} {:>16} {:>12}",
        "64 MiB",
        b0,
        b1,
        b1.saturating_sub(b0)
    );
}
