//! Guest of `crates/device/runtime/benches/runtime.rs`. Arguments: a mode and a GPIO number.
//! - `idle`: opens the GPIO, logs `idle`, then sleeps forever (memory per running app);
//! - `hostcall`: times a million GPIO reads (a host call that checks the manifest and reaches
//!   the board), a million `monotonic-ms` calls (the cheapest host call) and a hundred million
//!   calls of a plain function that is not inlined, and logs nanoseconds per call.

use std::hint::black_box;
use std::time::Duration;

use applibs::gpio::InputPin;
use applibs::time;

const HOST_CALLS: u64 = 1_000_000;
const PLAIN_CALLS: u64 = 100_000_000;

#[inline(never)]
fn plain(value: u64) -> u64 {
    black_box(value).wrapping_mul(3).wrapping_add(1)
}

fn per_call_ns(start_ms: u64, calls: u64) -> f64 {
    (time::monotonic_ms() - start_ms) as f64 * 1e6 / calls as f64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let pin: u32 = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(56);
    let input = match InputPin::open(pin) {
        Ok(input) => input,
        Err(error) => {
            println!("cannot open GPIO {pin}: {error}");
            return;
        }
    };
    if mode == "hostcall" {
        let start = time::monotonic_ms();
        for _ in 0..HOST_CALLS {
            black_box(input.read().ok());
        }
        println!("gpio-read ns/call {:.1}", per_call_ns(start, HOST_CALLS));
        let start = time::monotonic_ms();
        for _ in 0..HOST_CALLS {
            black_box(time::monotonic_ms());
        }
        println!("monotonic-ms ns/call {:.1}", per_call_ns(start, HOST_CALLS));
        let start = time::monotonic_ms();
        let mut value = 0u64;
        for _ in 0..PLAIN_CALLS {
            value = plain(value);
        }
        black_box(value);
        println!("plain ns/call {:.3}", per_call_ns(start, PLAIN_CALLS));
    }
    println!("idle");
    loop {
        time::sleep(Duration::from_secs(1));
    }
}
