//! App servers on the ports their manifest allows (`apps/test-guests/net-echo`): a TCP client and a UDP
//! client on the device's loopback reach the app, and the app's reply goes out only because
//! the sender's address is listed.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use common::{device, manifest_with, wait_until, wasm};
use ferro_runtime::InstallOptions;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

#[test]
fn tcp_and_udp_servers_on_allowed_ports() {
    let device = device();
    let (tcp_port, udp_port) = (free_port(), free_port());
    let manifest = manifest_with("net-echo", |json| {
        json["CmdArgs"] = serde_json::json!([tcp_port.to_string(), udp_port.to_string()]);
        json["Capabilities"]["AllowedTcpServerPorts"] = serde_json::json!([tcp_port]);
        json["Capabilities"]["AllowedUdpServerPorts"] = serde_json::json!([udp_port]);
    });
    let app = device
        .runtime
        .install(&wasm("net-echo"), &manifest, InstallOptions::default())
        .expect("install");
    device.wait_for_log(app, "listening on", Duration::from_secs(30));

    let mut stream = wait_until(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", tcp_port)).ok()
    })
    .expect("connect to the app");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"ping over tcp").unwrap();
    let mut echoed = [0u8; 13];
    stream.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"ping over tcp");
    device.wait_for_log(app, "tcp echoed 13 bytes", Duration::from_secs(30));

    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
        .send_to(b"ping over udp", ("127.0.0.1", udp_port))
        .unwrap();
    let mut answer = [0u8; 64];
    let (len, from) = client.recv_from(&mut answer).unwrap();
    assert_eq!(&answer[..len], b"ping over udp");
    assert_eq!(from.port(), udp_port);
    device.wait_for_log(app, "udp answered 127.0.0.1:", Duration::from_secs(30));
}

#[test]
fn a_reply_to_an_unlisted_sender_is_refused() {
    let device = device();
    let (tcp_port, udp_port) = (free_port(), free_port());
    // Without AllowedConnections the app may serve but not answer: its UDP reply is a send.
    let manifest = manifest_with("net-echo", |json| {
        json["CmdArgs"] = serde_json::json!([tcp_port.to_string(), udp_port.to_string()]);
        json["Capabilities"] = serde_json::json!({
            "AllowedTcpServerPorts": [tcp_port],
            "AllowedUdpServerPorts": [udp_port],
        });
    });
    let app = device
        .runtime
        .install(&wasm("net-echo"), &manifest, InstallOptions::default())
        .expect("install");
    device.wait_for_log(app, "listening on", Duration::from_secs(30));
    let mut stream = wait_until(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", tcp_port)).ok()
    })
    .expect("connect to the app");
    stream.write_all(b"x").unwrap();
    device.wait_for_log(app, "tcp echoed 1 bytes", Duration::from_secs(30));
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"x", ("127.0.0.1", udp_port)).unwrap();
    let line = device.wait_for_log(app, "udp send: ", Duration::from_secs(30));
    assert!(line.contains("not permitted"), "{line}");
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        client.recv_from(&mut [0u8; 8]).is_err(),
        "no answer arrived"
    );
}
