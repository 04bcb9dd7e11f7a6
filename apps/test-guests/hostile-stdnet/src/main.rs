//! Hostile guest: opens a socket with the standard library (WASI sockets), bypassing the
//! device's networking interface. The device links no WASI sockets, so it must not start.

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(9);
    match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Ok(_) => println!("CONNECTED through WASI sockets"),
        Err(error) => println!("std::net failed: {error}"),
    }
}
