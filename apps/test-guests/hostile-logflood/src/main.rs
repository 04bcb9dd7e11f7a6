//! Hostile guest: writes log lines as fast as it can (yielding now and then, so only the log
//! rate limit applies to it).

use std::time::Duration;

fn main() {
    let mut line = 0u64;
    loop {
        for _ in 0..1000 {
            println!("flood line {line}");
            line += 1;
        }
        applibs::log::info(&format!("flood reached {line}"));
        applibs::time::sleep(Duration::from_millis(1));
    }
}
