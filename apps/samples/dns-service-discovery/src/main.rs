//! Sample (as Azure Sphere's DNSServiceDiscovery sample): discovers the instances of
//! `_sample-service._tcp.local`, which its manifest lists, and sends a greeting to each one,
//! connecting by the host name the discovery returned. Each step logs one line.
//!
//! With the argument `--probe` it also tries what its manifest does not grant, for the
//! runtime's tests (crates/device/runtime/tests/discovery.rs): an unlisted service type, a discovered
//! address with another port, an address no discovery returned, and the discovered endpoint
//! over UDP. Each attempt logs `attempt <what>: <outcome>`; the last line is `done`.

use std::time::Duration;

use applibs::discovery::discover;
use applibs::net::{TcpStream, UdpSocket};

const SERVICE_TYPE: &str = "_sample-service._tcp.local";
const TIMEOUT: Duration = Duration::from_secs(5);

fn report<T>(what: &str, result: Result<T, applibs::Error>) {
    match result {
        Ok(_) => println!("attempt {what}: CONNECTED"),
        Err(error) => println!("attempt {what}: {error}"),
    }
}

fn main() {
    let probe = std::env::args().any(|arg| arg == "--probe");
    let instances = match discover(SERVICE_TYPE, TIMEOUT) {
        Ok(instances) => instances,
        Err(error) => {
            println!("discover {SERVICE_TYPE}: {error}");
            println!("done");
            return;
        }
    };
    println!("discovered {} instance(s)", instances.len());
    for instance in &instances {
        let txt: Vec<String> = instance
            .txt
            .iter()
            .map(|entry| String::from_utf8_lossy(entry).into_owned())
            .collect();
        println!(
            "instance {:?} host {} port {} addresses {} txt {}",
            instance.name,
            instance.host,
            instance.port,
            instance.addresses.join(","),
            txt.join(",")
        );
        match TcpStream::connect(&instance.host, instance.port, TIMEOUT) {
            Ok(stream) => {
                let sent = stream.send(format!("hello {}\n", instance.name).as_bytes());
                println!(
                    "attempt {}:{}: CONNECTED, sent {sent:?}",
                    instance.host, instance.port
                );
            }
            Err(error) => println!("attempt {}:{}: {error}", instance.host, instance.port),
        }
    }
    if probe {
        report(
            "unlisted service type",
            discover("_other-service._tcp.local", TIMEOUT),
        );
        if let Some(instance) = instances.first()
            && let Some(address) = instance.addresses.first()
        {
            report(
                "discovered address",
                TcpStream::connect(address, instance.port, TIMEOUT),
            );
            report(
                "other port",
                TcpStream::connect(address, instance.port.wrapping_add(1), TIMEOUT),
            );
            report(
                "other address",
                TcpStream::connect("127.0.0.2", instance.port, TIMEOUT),
            );
            match UdpSocket::bind(0) {
                Ok(socket) => report(
                    "udp to the tcp instance",
                    socket.send_to(address, instance.port, b"x"),
                ),
                Err(error) => println!("attempt udp to the tcp instance: {error}"),
            }
        }
    }
    println!("done");
}
