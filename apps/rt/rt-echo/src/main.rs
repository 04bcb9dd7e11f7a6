//! The real-time half of the intercore sample (Azure Sphere's IntercoreComms RT app): answers
//! each mailbox message with the sender's component ID (16 bytes) followed by the message,
//! cut at the mailbox's 1024 bytes, and logs the first answers and every thousandth. Kicks
//! the watchdog on every message and at least once a second while idle.
#![no_std]
#![no_main]

use core::time::Duration;

use ferro_rt::{MAX_PAYLOAD, entry, log, time, watchdog};

#[entry]
fn main() -> ! {
    let mut rt = ferro_rt::init();
    log!("rt-echo ready");
    let mut buf = [0u8; MAX_PAYLOAD];
    let mut answer = [0u8; MAX_PAYLOAD];
    let mut answered: u32 = 0;
    loop {
        watchdog::kick();
        let deadline = time::now().after(Duration::from_secs(1));
        let message = match rt.mailbox.receive_until(&mut buf, deadline) {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(e) => {
                log!("mailbox: {}", e);
                ferro_rt::exit(1)
            }
        };
        answer[..16].copy_from_slice(&message.sender.0);
        let len = (16 + message.len).min(MAX_PAYLOAD);
        answer[16..len].copy_from_slice(&buf[..len - 16]);
        if let Err(e) = rt.mailbox.send(&answer[..len]) {
            log!("mailbox: {}", e);
            ferro_rt::exit(1)
        }
        answered = answered.wrapping_add(1);
        if answered <= 3 || answered.is_multiple_of(1000) {
            log!(
                "answered {} from {} ({} bytes)",
                answered,
                message.sender,
                message.len
            );
        }
    }
}
