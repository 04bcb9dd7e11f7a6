//! Waits (up to two minutes) for a device certificate (a device starts its apps before it has
//! attested), then has `COUNT` batches (`{"batch":N}`) signed by the device and sends each, length-prefixed
//! (4 bytes, big-endian), to the collector at `HOST PORT`, logging `signed N (LEN bytes)`.
//! Then probes the limits: a batch one byte over 256 KiB (`oversize: <error>`), and signatures
//! as fast as it can until refused (`rate limited after K: <error>`, or `never rate limited`).
//! Arguments: HOST PORT COUNT.

use std::time::Duration;

use applibs::deviceauth;
use applibs::net::TcpStream;

fn main() {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "127.0.0.1".to_owned());
    let port: u16 = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(7009);
    let count: u32 = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(3);
    for _ in 0..600 {
        if deviceauth::is_certificate_ready() {
            break;
        }
        applibs::time::sleep(Duration::from_millis(200));
    }
    let stream = match TcpStream::connect(&host, port, Duration::from_secs(5)) {
        Ok(stream) => stream,
        Err(error) => {
            println!("connect: {error}");
            return;
        }
    };
    for n in 0..count {
        let payload = format!("{{\"batch\":{n}}}");
        match deviceauth::sign_batch(payload.as_bytes()) {
            Ok(signed) => {
                let mut framed = (signed.len() as u32).to_be_bytes().to_vec();
                framed.extend_from_slice(&signed);
                let mut sent = 0;
                while sent < framed.len() {
                    match stream.send(&framed[sent..]) {
                        Ok(k) => sent += k,
                        Err(error) => {
                            println!("send: {error}");
                            return;
                        }
                    }
                }
                println!("signed {n} ({} bytes)", signed.len());
            }
            Err(error) => println!("sign {n}: {error}"),
        }
    }
    match deviceauth::sign_batch(&vec![0u8; 256 * 1024 + 1]) {
        Ok(_) => println!("oversize: signed"),
        Err(error) => println!("oversize: {error}"),
    }
    let mut refused = None;
    for k in 0..200u32 {
        if let Err(error) = deviceauth::sign_batch(b"{}") {
            refused = Some((k, error));
            break;
        }
    }
    match refused {
        Some((k, error)) => println!("rate limited after {k}: {error}"),
        None => println!("never rate limited"),
    }
    applibs::time::sleep(Duration::from_secs(3600));
}
