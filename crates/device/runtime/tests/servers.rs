//! App servers on the ports their manifest allows (`apps/test-guests/net-echo`): a TCP client and a UDP
//! client on the device's loopback reach the app, and the app's reply goes out only because
//! the sender's address is listed.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use common::{Device, device, manifest_with, wait_until, wasm};
use ferro_runtime::{AppId, InstallOptions};

/// Installs `net-echo` serving on a TCP and a UDP port, its manifest's capabilities edited by
/// `capabilities(json, tcp, udp)`; returns the app and its ports once it listens. The app binds the
/// ports its manifest names, so they are probed first (bound to port 0, released); if another
/// process took one in between, the app logs the failed bind ("in use"), and it is installed
/// again on fresh ports.
fn net_echo(
    device: &Device,
    capabilities: impl Fn(&mut serde_json::Value, u16, u16),
) -> (AppId, u16, u16) {
    for _ in 0..5 {
        let (tcp_port, udp_port) = {
            let tcp = TcpListener::bind("127.0.0.1:0").expect("probe a TCP port");
            let udp = UdpSocket::bind("127.0.0.1:0").expect("probe a UDP port");
            (
                tcp.local_addr().expect("address").port(),
                udp.local_addr().expect("address").port(),
            )
        };
        let manifest = manifest_with("net-echo", |json| {
            json["CmdArgs"] = serde_json::json!([tcp_port.to_string(), udp_port.to_string()]);
            capabilities(&mut json["Capabilities"], tcp_port, udp_port);
        });
        let app = device
            .runtime
            .install(&wasm("net-echo"), &manifest, InstallOptions::default())
            .expect("install");
        let line = wait_until(Duration::from_secs(30), || {
            device.log_texts(app).into_iter().find(|line| {
                line.contains("listening on")
                    || line.starts_with("tcp listen: ")
                    || line.starts_with("udp bind: ")
            })
        })
        .unwrap_or_else(|| {
            panic!(
                "net-echo neither listened nor failed: {:#?}",
                device.log_texts(app)
            )
        });
        if line.contains("listening on") {
            return (app, tcp_port, udp_port);
        }
        assert!(line.contains("in use"), "{line}");
        device.runtime.uninstall(app, false).expect("uninstall");
    }
    panic!("a probed port was taken 5 times in a row");
}

#[test]
fn tcp_and_udp_servers_on_allowed_ports() {
    let device = device();
    let (app, tcp_port, udp_port) = net_echo(&device, |capabilities, tcp, udp| {
        capabilities["AllowedTcpServerPorts"] = serde_json::json!([tcp]);
        capabilities["AllowedUdpServerPorts"] = serde_json::json!([udp]);
    });

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
    // Without AllowedConnections the app may serve but not answer: its UDP reply is a send.
    let (app, tcp_port, udp_port) = net_echo(&device, |capabilities, tcp, udp| {
        *capabilities = serde_json::json!({
            "AllowedTcpServerPorts": [tcp],
            "AllowedUdpServerPorts": [udp],
        });
    });
    let mut stream = wait_until(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", tcp_port)).ok()
    })
    .expect("connect to the app");
    stream.write_all(b"x").unwrap();
    device.wait_for_log(app, "tcp echoed 1 bytes", Duration::from_secs(30));
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"x", ("127.0.0.1", udp_port)).unwrap();
    // The app's one reply was refused (its log says so): nothing was sent, so nothing can
    // arrive; the socket holds no datagram (checked without waiting).
    let line = device.wait_for_log(app, "udp send: ", Duration::from_secs(30));
    assert!(line.contains("not permitted"), "{line}");
    client.set_nonblocking(true).unwrap();
    let nothing = client.recv_from(&mut [0u8; 8]);
    assert!(
        nothing
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "{nothing:?}"
    );
}
