//! Serves on the ports its manifest allows (arguments: TCP port, UDP port): echoes what one TCP
//! client sends, then answers one UDP datagram (replying needs the sender's address in
//! `AllowedConnections`). Logs `tcp echoed N bytes` and `udp answered <sender>`.

use std::time::Duration;

use applibs::net::{TcpListener, UdpSocket};

const WAIT: Duration = Duration::from_secs(30);

fn main() {
    let mut args = std::env::args().skip(1);
    let tcp_port: u16 = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(7007);
    let udp_port: u16 = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(7008);
    let listener = match TcpListener::bind(tcp_port) {
        Ok(listener) => listener,
        Err(error) => {
            println!("tcp listen: {error}");
            return;
        }
    };
    let udp = match UdpSocket::bind(udp_port) {
        Ok(udp) => udp,
        Err(error) => {
            println!("udp bind: {error}");
            return;
        }
    };
    println!("listening on tcp {tcp_port} and udp {udp_port}");
    match listener.accept(WAIT) {
        Ok(stream) => match stream.receive(1024, WAIT) {
            Ok(data) => match stream.send(&data) {
                Ok(sent) => println!("tcp echoed {sent} bytes"),
                Err(error) => println!("tcp send: {error}"),
            },
            Err(error) => println!("tcp receive: {error}"),
        },
        Err(error) => println!("tcp accept: {error}"),
    }
    match udp.receive(1024, WAIT) {
        Ok((data, sender)) => {
            let reply = sender
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)));
            match reply {
                Some((host, port)) => match udp.send_to(&host, port, &data) {
                    Ok(_) => println!("udp answered {sender}"),
                    Err(error) => println!("udp send: {error}"),
                },
                None => println!("udp: unexpected sender {sender}"),
            }
        }
        Err(error) => println!("udp receive: {error}"),
    }
    applibs::time::sleep(Duration::from_secs(3600));
}
