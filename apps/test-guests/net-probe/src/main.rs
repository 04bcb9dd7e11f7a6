//! Probe of the private network tests (crates/device/runtime/tests/private_network.rs): for
//! each argument `tcp:HOST:PORT` or `udp:HOST:PORT` (the port after the last `:`), tries to
//! reach the host and logs one line, `probe ARG: connected, answer "<text>"` (a TCP connection:
//! sends `probe\n` and reads the first answer), `probe ARG: sent` (a UDP datagram) or
//! `probe ARG: <error>`; then logs `probe done` and sleeps, so that it runs its probes once.

use std::time::Duration;

use applibs::net::{TcpStream, UdpSocket};

const TIMEOUT: Duration = Duration::from_secs(2);

fn probe(arg: &str) -> String {
    let Some((protocol, rest)) = arg.split_once(':') else {
        return "not PROTOCOL:HOST:PORT".to_owned();
    };
    let Some((host, port)) = rest
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
    else {
        return "not PROTOCOL:HOST:PORT".to_owned();
    };
    match protocol {
        "tcp" => match TcpStream::connect(host, port, TIMEOUT) {
            Ok(stream) => {
                if let Err(error) = stream.send(b"probe\n") {
                    return format!("connected, send failed: {error}");
                }
                // The answer is one line; TCP may hand it over in pieces.
                let mut answer = Vec::new();
                while !answer.ends_with(b"\n") && answer.len() < 256 {
                    let room = u32::try_from(256 - answer.len()).unwrap_or(256);
                    match stream.receive(room, TIMEOUT) {
                        Ok(piece) if piece.is_empty() => break,
                        Ok(piece) => answer.extend_from_slice(&piece),
                        Err(error) if answer.is_empty() => {
                            return format!("connected, no answer: {error}");
                        }
                        Err(_) => break,
                    }
                }
                format!(
                    "connected, answer {:?}",
                    String::from_utf8_lossy(&answer).trim_end()
                )
            }
            Err(error) => error.to_string(),
        },
        "udp" => match UdpSocket::bind(0).and_then(|socket| socket.send_to(host, port, b"probe\n"))
        {
            Ok(_) => "sent".to_owned(),
            Err(error) => error.to_string(),
        },
        other => format!("unknown protocol {other}"),
    }
}

fn main() {
    for arg in std::env::args().skip(1) {
        println!("probe {arg}: {}", probe(&arg));
    }
    println!("probe done");
    applibs::time::sleep(Duration::from_secs(3600));
}
