//! Connects to the host and port given as arguments with TLS authenticated by the device
//! certificate (the device holds the key; the app only asks for the connection), sends
//! `hello`, and logs `tls reply: <text>` or `tls: <error>`.

use std::time::Duration;

use applibs::net::TcpStream;

fn main() {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "127.0.0.1".to_owned());
    let port: u16 = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(8883);
    println!(
        "certificate ready: {}",
        applibs::deviceauth::is_certificate_ready()
    );
    match TcpStream::connect_tls(&host, port, Duration::from_secs(5)) {
        Ok(stream) => {
            let reply = stream
                .send(b"hello")
                .and_then(|_| stream.receive(256, Duration::from_secs(5)));
            match reply {
                Ok(bytes) => println!("tls reply: {}", String::from_utf8_lossy(&bytes)),
                Err(error) => println!("tls: {error}"),
            }
        }
        Err(error) => println!("tls: {error}"),
    }
    applibs::time::sleep(Duration::from_secs(3600));
}
