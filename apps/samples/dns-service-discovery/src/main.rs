//! Sample (as Azure Sphere's DNSServiceDiscovery sample): discovers the instances of
//! `_sample-service._tcp.local`, which its manifest lists, and sends a greeting to each one,
//! connecting by the host name the discovery returned. Each step logs one line.
//!
//! `--service TYPE` discovers another listed type instead; for a `_udp` type the greeting is a
//! datagram sent to the discovered host and port, and the instance's reply is logged.
//!
//! With the argument `--probe` it also tries what its manifest does not grant, for the
//! runtime's tests (crates/device/runtime/tests/discovery.rs): an unlisted service type, a discovered
//! address with another port, an address no discovery returned, and the discovered endpoint
//! over the other protocol. Each attempt logs `attempt <what>: <outcome>`; the last line is
//! `done`.

use std::time::Duration;

use applibs::discovery::{ServiceInstance, discover};
use applibs::net::{TcpStream, UdpSocket};

const SERVICE_TYPE: &str = "_sample-service._tcp.local";
const TIMEOUT: Duration = Duration::from_secs(5);

fn report<T>(what: &str, result: Result<T, applibs::Error>) {
    match result {
        Ok(_) => println!("attempt {what}: CONNECTED"),
        Err(error) => println!("attempt {what}: {error}"),
    }
}

/// Sends `greeting` to `host:port` over UDP and waits for one reply: `REPLY "<text>" from
/// <address>`.
fn exchange_udp(host: &str, port: u16, greeting: &str) -> Result<String, applibs::Error> {
    let socket = UdpSocket::bind(0)?;
    socket.send_to(host, port, greeting.as_bytes())?;
    let (reply, from) = socket.receive(512, TIMEOUT)?;
    Ok(format!(
        "REPLY {:?} from {from}",
        String::from_utf8_lossy(&reply)
    ))
}

/// Greets `instance` over the service type's protocol.
fn greet(instance: &ServiceInstance, udp: bool) {
    let greeting = format!("hello {}\n", instance.name);
    let what = format!("{}:{}", instance.host, instance.port);
    if udp {
        match exchange_udp(&instance.host, instance.port, &greeting) {
            Ok(outcome) => println!("attempt {what}: {outcome}"),
            Err(error) => println!("attempt {what}: {error}"),
        }
        return;
    }
    match TcpStream::connect(&instance.host, instance.port, TIMEOUT) {
        Ok(stream) => {
            let sent = stream.send(greeting.as_bytes());
            println!("attempt {what}: CONNECTED, sent {sent:?}");
        }
        Err(error) => println!("attempt {what}: {error}"),
    }
}

/// What the manifest does not grant for the first discovered `instance`.
fn probe(instance: &ServiceInstance, udp: bool) {
    let Some(address) = instance.addresses.first() else {
        return;
    };
    let port = instance.port;
    if udp {
        match exchange_udp(address, port, "hello by address\n") {
            Ok(outcome) => println!("attempt discovered address: {outcome}"),
            Err(error) => println!("attempt discovered address: {error}"),
        }
        report(
            "other port",
            UdpSocket::bind(0)
                .and_then(|socket| socket.send_to(address, port.wrapping_add(1), b"x")),
        );
        report(
            "other address",
            UdpSocket::bind(0).and_then(|socket| socket.send_to("127.0.0.2", port, b"x")),
        );
        report(
            "tcp to the udp instance",
            TcpStream::connect(address, port, TIMEOUT),
        );
        return;
    }
    report(
        "discovered address",
        TcpStream::connect(address, port, TIMEOUT),
    );
    report(
        "other port",
        TcpStream::connect(address, port.wrapping_add(1), TIMEOUT),
    );
    report(
        "other address",
        TcpStream::connect("127.0.0.2", port, TIMEOUT),
    );
    match UdpSocket::bind(0) {
        Ok(socket) => report(
            "udp to the tcp instance",
            socket.send_to(address, port, b"x"),
        ),
        Err(error) => println!("attempt udp to the tcp instance: {error}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let probing = args.iter().any(|arg| arg == "--probe");
    let service_type = args
        .windows(2)
        .find(|pair| pair[0] == "--service")
        .map_or(SERVICE_TYPE, |pair| pair[1].as_str());
    let udp = service_type.contains("._udp.");
    let instances = match discover(service_type, TIMEOUT) {
        Ok(instances) => instances,
        Err(error) => {
            println!("discover {service_type}: {error}");
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
        greet(instance, udp);
    }
    if probing {
        report(
            "unlisted service type",
            discover("_other-service._tcp.local", TIMEOUT),
        );
        if let Some(instance) = instances.first() {
            probe(instance, udp);
        }
    }
    println!("done");
}
