//! Test guest of the `application` interface: connects to the real-time partner named by its
//! first argument and sends it the number of messages its second argument gives (payload `i`
//! holds `(i * 37) % 1024 + 1` bytes of value `i % 251`), expecting each back whole and in
//! order from the partner (an echo). Every outcome is one log line the tests read:
//! `connect <id>: ok|<error>`, `mismatch <i>: ...`, `disconnected at <i>`, `oversize: <error>`,
//! `done <count>`. A disconnect (the partner restarted) is followed by a new connection and the
//! message is sent again. A third argument, when given, is a component ID to try first, which
//! the manifest does not allow.

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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let partner = args.get(1).cloned().unwrap_or_default();
    let count: u32 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100);
    if let Some(stranger) = args.get(3) {
        match Connection::connect(stranger) {
            Ok(_) => println!("connect {stranger}: ok"),
            Err(error) => println!("connect {stranger}: {error}"),
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
                if message.data != data || message.sender != partner {
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
