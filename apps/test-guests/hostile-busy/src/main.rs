//! Hostile guest: computes for 300 ms, sleeps 1 ms, forever. The CPU slice (500 ms without a
//! blocking call) never trips; the CPU budget per window must.

use std::time::Duration;

use applibs::time;

fn main() {
    println!("busy");
    let mut counter = 0u64;
    loop {
        let start = time::monotonic_ms();
        while time::monotonic_ms().saturating_sub(start) < 300 {
            counter = std::hint::black_box(counter.wrapping_add(1));
        }
        time::sleep(Duration::from_millis(1));
    }
}
