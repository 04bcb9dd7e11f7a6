//! Test guest of the `application` interface: connects to the real-time partner named by its
//! first argument and sends it the number of messages its second argument gives (payload `i`
//! holds `(i * 37) % 1024 + 1` bytes of value `i % 251`), expecting each answered whole and in
//! order as `apps/rt/rt-echo` answers: 16 bytes of the sender's component ID, then the message,
//! cut at 1024 bytes. Every outcome is one log line the tests read: `connect <id>: ok|<error>`,
//! `mismatch <i>: ...`, `disconnected at <i>`, `oversize: <error>`, `done <count>`. A
//! disconnect (the partner restarted) is followed by a new connection and the message is sent
//! again. Further arguments are component IDs to try to connect to first (each one line).
//!
//! With `bench <partner> <size> <count>` it is the guest of `crates/device/os/benches/rt_partner.rs`
//! instead: `count` round trips of `size`-byte messages, one at a time, as fast as it can (the
//! benchmark times them on the host), then `bench done <count>` (or `bench failed <i>: ...`).

use std::time::Duration;

use applibs::application::{Connection, MAX_MESSAGE_BYTES};

const WAIT: Duration = Duration::from_secs(2);

fn payload(i: u32) -> Vec<u8> {
    vec![(i % 251) as u8; (i as usize * 37) % MAX_MESSAGE_BYTES + 1]
}

/// Connects, retrying for a while (a restarting partner comes back).
fn connect(partner: &str) -> Option<Connection> {
    let deadline = applibs::time::monotonic_ms() + 10_000;
    loop {
        match Connection::connect(partner) {
            Ok(connection) => {
                println!("connect {partner}: ok");
                return Some(connection);
            }
            Err(error) if applibs::time::monotonic_ms() > deadline => {
                println!("connect {partner}: {error}");
                return None;
            }
            Err(applibs::Error::Io(_)) => applibs::time::sleep(Duration::from_millis(50)),
            Err(error) => {
                println!("connect {partner}: {error}");
                return None;
            }
        }
    }
}

/// Whether `answer` is rt-echo's answer to `sent`: a 16-byte component ID, then `sent`, cut at
/// the mailbox's limit.
fn is_echo(answer: &[u8], sent: &[u8]) -> bool {
    let len = (16 + sent.len()).min(MAX_MESSAGE_BYTES);
    answer.len() == len && answer[16..] == sent[..len - 16]
}

/// The benchmark mode: `count` round trips of `size` bytes.
fn bench(partner: &str, size: usize, count: u32) {
    let Some(mut connection) = connect(partner) else {
        return;
    };
    let data = vec![0x5a; size.clamp(1, MAX_MESSAGE_BYTES)];
    for i in 0..count {
        let answer = connection
            .send(&data, WAIT)
            .and_then(|()| connection.receive(WAIT));
        match answer {
            Ok(Some(message)) if is_echo(&message.data, &data) => {}
            Ok(Some(_)) => {
                println!("bench failed {i}: not the echo");
                return;
            }
            Ok(None) => {
                println!("bench failed {i}: no answer");
                return;
            }
            Err(error) => {
                println!("bench failed {i}: {error}");
                return;
            }
        }
    }
    println!("bench done {count}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("bench") {
        let partner = args.get(2).cloned().unwrap_or_default();
        let size = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(16);
        let count = args.get(4).and_then(|n| n.parse().ok()).unwrap_or(1000);
        bench(&partner, size, count);
        return;
    }
    let partner = args.get(1).cloned().unwrap_or_default();
    let count: u32 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100);
    for other in args.iter().skip(3) {
        match Connection::connect(other) {
            Ok(_) => println!("connect {other}: ok"),
            Err(error) => println!("connect {other}: {error}"),
        }
    }
    let Some(mut connection) = connect(&partner) else {
        return;
    };
    match connection.send(&vec![0; MAX_MESSAGE_BYTES + 1], WAIT) {
        Ok(()) => println!("oversize: SENT"),
        Err(error) => println!("oversize: {error}"),
    }
    let mut i = 0;
    while i < count {
        let data = payload(i);
        let answer = connection
            .send(&data, WAIT)
            .and_then(|()| connection.receive(WAIT));
        match answer {
            Ok(Some(message)) => {
                if !is_echo(&message.data, &data) || message.sender != partner {
                    println!(
                        "mismatch {i}: {} bytes from {}, expected {} from {partner}",
                        message.data.len(),
                        message.sender,
                        data.len()
                    );
                }
                i += 1;
            }
            Ok(None) => {
                println!("mismatch {i}: no answer");
                i += 1;
            }
            Err(error) if error.is_disconnect() => {
                println!("disconnected at {i}");
                let Some(again) = connect(&partner) else {
                    return;
                };
                connection = again;
            }
            Err(error) => {
                println!("mismatch {i}: {error}");
                i += 1;
            }
        }
    }
    println!("done {count}");
}
