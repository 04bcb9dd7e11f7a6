//! The benchmark's guest. Commands, one per message:
//! - `K`: sink: count the messages that follow until a one-byte `Z`, then answer the count
//!   (`u32`, little endian);
//! - `P` + count (`u32`) + size (`u16`): send that many messages of that size, as fast as the
//!   ring takes them;
//! - anything else: echo it back unchanged.
#![no_std]
#![no_main]

use ferro_rt::{MAX_PAYLOAD, entry, log, watchdog};

#[entry]
fn main() -> ! {
    let mut rt = ferro_rt::init();
    log!("rt-bench ready");
    let mut buf = [0u8; MAX_PAYLOAD];
    loop {
        watchdog::kick();
        let Ok(m) = rt.mailbox.receive(&mut buf) else {
            ferro_rt::exit(1)
        };
        match (m.len, buf[0]) {
            (1, b'K') => {
                let mut count: u32 = 0;
                loop {
                    let Ok(m) = rt.mailbox.receive(&mut buf) else {
                        ferro_rt::exit(1)
                    };
                    if m.len == 1 && buf[0] == b'Z' {
                        break;
                    }
                    count = count.wrapping_add(1);
                }
                if rt.mailbox.send(&count.to_le_bytes()).is_err() {
                    ferro_rt::exit(1)
                }
            }
            (7, b'P') => {
                let count = u32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]);
                let size = usize::from(u16::from_le_bytes([buf[5], buf[6]])).min(MAX_PAYLOAD);
                for i in 0..count {
                    buf[..4].copy_from_slice(&i.to_le_bytes());
                    if rt.mailbox.send(&buf[..size.max(4)]).is_err() {
                        ferro_rt::exit(1)
                    }
                }
            }
            (len, _) => {
                if rt.mailbox.send(&buf[..len]).is_err() {
                    ferro_rt::exit(1)
                }
            }
        }
    }
}
