//! Hostile guest: tries to reach hosts its manifest does not list. The manifest allows only
//! `127.0.0.1`; the first argument is the port the test listens on. Each attempt logs one line
//! `attempt <what>: <outcome>`.

use std::time::Duration;

use applibs::net::{TcpListener, TcpStream, UdpSocket};

const TIMEOUT: Duration = Duration::from_secs(2);

fn report<T>(what: &str, result: Result<T, applibs::Error>) {
    match result {
        Ok(_) => println!("attempt {what}: CONNECTED"),
        Err(error) => println!("attempt {what}: {error}"),
    }
}

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(9);
    // A name that resolves to the allowed address is still not listed.
    report("localhost", TcpStream::connect("localhost", port, TIMEOUT));
    report(
        "example.com",
        TcpStream::connect("example.com", 80, TIMEOUT),
    );
    // Raw addresses that are not listed, including other spellings of loopback.
    report("127.0.0.2", TcpStream::connect("127.0.0.2", port, TIMEOUT));
    report(
        "2130706433",
        TcpStream::connect("2130706433", port, TIMEOUT),
    );
    report(
        "0x7f.0.0.1",
        TcpStream::connect("0x7f.0.0.1", port, TIMEOUT),
    );
    report("::1", TcpStream::connect("::1", port, TIMEOUT));
    report(
        "127.0.0.1:port-injection",
        TcpStream::connect("127.0.0.1:22", port, TIMEOUT),
    );
    report(
        "tls-unlisted",
        TcpStream::connect_tls("example.com", 443, TIMEOUT),
    );
    // A listed host, but the manifest grants no DeviceAuthentication.
    report(
        "tls-no-deviceauth",
        TcpStream::connect_tls("127.0.0.1", port, TIMEOUT),
    );
    report("listen", TcpListener::bind(port.wrapping_add(1)));
    match UdpSocket::bind(0) {
        Ok(socket) => report("udp 127.0.0.2", socket.send_to("127.0.0.2", port, b"x")),
        Err(error) => println!("attempt udp bind: {error}"),
    }
    // The one allowed destination.
    match TcpStream::connect("127.0.0.1", port, TIMEOUT) {
        Ok(stream) => {
            let sent = stream.send(b"hello from the sandbox");
            println!("attempt 127.0.0.1: CONNECTED, sent {sent:?}");
        }
        Err(error) => println!("attempt 127.0.0.1: {error}"),
    }
}
