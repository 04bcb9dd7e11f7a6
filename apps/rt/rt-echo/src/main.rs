//! The real-time half of the intercore sample (Azure Sphere's IntercoreComms RT app): answers
//! each mailbox message with the sender's component ID (16 bytes) followed by the message,
//! cut at the mailbox's 1024 bytes, and logs the first answers and every thousandth. Kicks
//! the watchdog on every message and at least once a second while idle.
#![no_std]
#![no_main]

use core::time::Duration;

use ferro_rt::mailbox::prefixed_with_sender;
use ferro_rt::{MAX_PAYLOAD, OrExit, entry, log, time, watchdog};

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
        let Some(message) = rt
            .mailbox
            .receive_until(&mut buf, deadline)
            .or_exit("mailbox")
        else {
            continue;
        };
        let answer = prefixed_with_sender(&message.sender, &buf[..message.len], &mut answer);
        rt.mailbox.send(answer).or_exit("mailbox");
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
