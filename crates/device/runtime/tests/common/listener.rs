//! A TCP listener that never answers a connect, shared by the runtime's unit tests
//! (`src/connect.rs`) and its integration tests.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

/// A listener on 127.0.0.1 whose accept queue is full, so the kernel drops the next SYN and a
/// connect to it stays pending, as with an unreachable host. Keep the returned streams (the
/// ones filling the queue) and the listener open while it is used.
pub fn full_listener() -> (Socket, SocketAddr, Vec<TcpStream>) {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    listener
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .expect("bind");
    listener.listen(0).expect("listen");
    let address = listener
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("an IP address");
    let mut fillers = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&address, Duration::from_millis(300)) {
            Ok(stream) => fillers.push(stream),
            Err(_) => break,
        }
    }
    assert!(fillers.len() < 16, "the accept queue never filled");
    (listener, address, fillers)
}
