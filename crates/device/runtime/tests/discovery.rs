//! DNS service discovery for apps (issue 16): the `dns-service-discovery` sample discovers
//! `_sample-service._tcp.local` through a DNS server this test runs on 127.0.0.1 (hickory-proto
//! messages over a UDP socket bound here and handed to the server thread), then connects to the
//! discovered instance, a TCP service on loopback. An unlisted service type, a port or address
//! no discovery returned, and a malformed, oversized or truncated answer are refused with a
//! clear error.

mod common;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

use common::{Device, device_with, manifest_with, wasm};
use ferro_runtime::{AppId, InstallOptions};
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

const WAIT: Duration = Duration::from_secs(30);
const SERVICE: &str = "_sample-service._tcp.local.";
const INSTANCE: &str = "Kitchen._sample-service._tcp.local.";
const HOST: &str = "kitchen-device.local.";

fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("name")
}

/// What the test DNS server answers to a query: a message, or raw bytes.
enum Answer {
    Message(Message),
    Bytes(Vec<u8>),
}

/// Runs a DNS server on a UDP socket bound here (no port race) answering every query with
/// `respond`; returns its address. The thread ends with the test process.
fn dns_server(respond: impl Fn(&Message) -> Answer + Send + 'static) -> SocketAddr {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the DNS server");
    let address = socket.local_addr().expect("address");
    std::thread::spawn(move || {
        let mut buffer = vec![0; 4096];
        loop {
            let Ok((count, from)) = socket.recv_from(&mut buffer) else {
                return;
            };
            let query = Message::from_vec(&buffer[..count]).expect("the runtime's query decodes");
            let bytes = match respond(&query) {
                Answer::Message(message) => message.to_vec().expect("encode"),
                Answer::Bytes(bytes) => bytes,
            };
            if socket.send_to(&bytes, from).is_err() {
                return;
            }
        }
    });
    address
}

/// An empty response to `query` (its ID and question).
fn response_to(query: &Message) -> Message {
    let mut response = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata.authoritative = true;
    response.add_queries(query.queries.clone());
    response
}

/// The zone of the sample service: one instance on `HOST:port` at 127.0.0.1, and a PTR record
/// to a name outside the service type (ignored).
fn zone(query: &Message, port: u16) -> Message {
    let mut response = response_to(query);
    let question = &query.queries[0];
    let asked =
        |text: &str, record_type| question.name == name(text) && question.query_type == record_type;
    if asked(SERVICE, RecordType::PTR) {
        for target in [INSTANCE, "elsewhere.example.com."] {
            response.add_answer(Record::from_rdata(
                name(SERVICE),
                120,
                RData::PTR(PTR(name(target))),
            ));
        }
    } else if asked(INSTANCE, RecordType::SRV) {
        response.add_answer(Record::from_rdata(
            name(INSTANCE),
            120,
            RData::SRV(SRV::new(0, 0, port, name(HOST))),
        ));
    } else if asked(INSTANCE, RecordType::TXT) {
        response.add_answer(Record::from_rdata(
            name(INSTANCE),
            120,
            RData::TXT(TXT::new(vec!["path=/api".to_owned(), "v=1".to_owned()])),
        ));
    } else if asked(HOST, RecordType::A) {
        response.add_answer(Record::from_rdata(
            name(HOST),
            120,
            RData::A(A(Ipv4Addr::LOCALHOST)),
        ));
    } else if !asked(HOST, RecordType::AAAA) {
        response.metadata.response_code = ResponseCode::NXDomain;
    }
    response
}

/// A device whose apps' discoveries query `resolver`; `loopback`: discovered loopback
/// addresses are kept (the test's service runs on loopback).
fn device(resolver: SocketAddr, loopback: bool) -> Device {
    device_with(|config| {
        config.dns_resolver = Some(resolver);
        config.discovery_allows_loopback = loopback;
    })
}

/// Runs the sample (with `--probe`) until it is done; returns its log.
fn run_sample(device: &Device) -> Vec<String> {
    let manifest = manifest_with("dns-service-discovery", |json| {
        json["CmdArgs"] = serde_json::json!(["--probe"]);
    });
    let app: AppId = device
        .runtime
        .install(
            &wasm("dns-service-discovery"),
            &manifest,
            InstallOptions::default(),
        )
        .expect("install");
    device.wait_for_log(app, "done", WAIT);
    device.runtime.stop(app).expect("stop");
    let log = device.log_texts(app);
    let end = log.iter().position(|line| line == "done").expect("done");
    log[..=end].to_vec()
}

fn line<'a>(log: &'a [String], prefix: &str) -> &'a str {
    log.iter()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in {log:#?}"))
}

#[test]
fn an_app_discovers_a_listed_service_and_reaches_only_what_it_discovered() {
    let service = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the service");
    let port = service.local_addr().expect("address").port();
    let (greetings_tx, greetings) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in service.incoming() {
            let Ok(mut stream) = stream else { return };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let mut greeting = [0u8; 14];
            if stream.read_exact(&mut greeting).is_ok() {
                let _ = greetings_tx.send(String::from_utf8_lossy(&greeting).into_owned());
            }
        }
    });
    let device = device(
        dns_server(move |query| Answer::Message(zone(query, port))),
        true,
    );
    let log = run_sample(&device);

    assert_eq!(
        line(&log, "discovered"),
        "discovered 1 instance(s)",
        "{log:#?}"
    );
    assert_eq!(
        line(&log, "instance"),
        format!(
            "instance \"Kitchen\" host kitchen-device.local port {port} addresses 127.0.0.1 \
             txt path=/api,v=1"
        )
    );
    // By the discovered host name (mapped to the discovered address, not resolved again).
    let by_host = line(&log, &format!("attempt kitchen-device.local:{port}:"));
    assert!(by_host.contains("CONNECTED"), "{by_host}");
    assert_eq!(
        greetings
            .recv_timeout(WAIT)
            .expect("the service was greeted"),
        "hello Kitchen\n"
    );
    let by_address = line(&log, "attempt discovered address:");
    assert!(by_address.ends_with("CONNECTED"), "{by_address}");

    let unlisted = line(&log, "attempt unlisted service type:");
    assert_eq!(
        unlisted,
        "attempt unlisted service type: not permitted: the service type \
         _other-service._tcp.local is not in the app manifest's AllowedConnections"
    );
    let other_port = line(&log, "attempt other port:");
    assert!(
        other_port.starts_with("attempt other port: not permitted: 127.0.0.1 was discovered"),
        "{other_port}"
    );
    let other_address = line(&log, "attempt other address:");
    assert_eq!(
        other_address,
        "attempt other address: not permitted: 127.0.0.2 is not in the app manifest's \
         AllowedConnections"
    );
    let udp = line(&log, "attempt udp to the tcp instance:");
    assert!(
        udp.contains("not permitted") && udp.contains("over UDP"),
        "{udp}"
    );
}

/// Without `discovery_allows_loopback` (the default), a resolver answering with a loopback
/// address cannot lead the app into the device's own services: the instance is returned
/// without that address and connecting to it is refused.
#[test]
fn a_discovered_loopback_address_is_not_reachable_by_default() {
    let service = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the service");
    let port = service.local_addr().expect("address").port();
    let device = device(
        dns_server(move |query| Answer::Message(zone(query, port))),
        false,
    );
    let log = run_sample(&device);
    assert_eq!(
        line(&log, "instance"),
        format!(
            "instance \"Kitchen\" host kitchen-device.local port {port} addresses  txt path=/api,v=1"
        )
    );
    let by_host = line(&log, &format!("attempt kitchen-device.local:{port}:"));
    assert!(
        by_host.contains("not permitted") && by_host.contains("without an address"),
        "{by_host}"
    );
}

/// A hostile or broken resolver: each bad PTR answer gives the app a clear error, and the
/// runtime does not panic (the app runs to its end).
#[test]
fn malformed_oversized_and_truncated_answers_are_refused_clearly() {
    type Bad = fn(&Message) -> Answer;
    let cases: [(&str, Bad, &str); 5] = [
        (
            "garbage",
            |query| {
                let mut bytes = query.metadata.id.to_be_bytes().to_vec();
                bytes.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 9, 0, 0, 0, 0, 0xc0, 0xff]);
                Answer::Bytes(bytes)
            },
            "I/O error: malformed DNS answer from 127.0.0.1:",
        ),
        (
            "oversized",
            |query| {
                let mut bytes = response_to(query).to_vec().expect("encode");
                bytes.resize(5000, 0);
                Answer::Bytes(bytes)
            },
            "limit exceeded: the DNS answer from 127.0.0.1:",
        ),
        (
            "truncated",
            |query| {
                let mut response = response_to(query);
                response.metadata.truncation = true;
                Answer::Message(response)
            },
            "limit exceeded: the DNS answer from 127.0.0.1:",
        ),
        (
            "another question",
            |query| {
                let mut response =
                    Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
                response.add_query(hickory_proto::op::Query::query(name(HOST), RecordType::A));
                Answer::Message(response)
            },
            "I/O error: the DNS answer from 127.0.0.1:",
        ),
        (
            "server failure",
            |query| {
                let mut response = response_to(query);
                response.metadata.response_code = ResponseCode::ServFail;
                Answer::Message(response)
            },
            "I/O error: the DNS resolver 127.0.0.1:",
        ),
    ];
    for (case, bad, expected) in cases {
        let device = device(dns_server(bad), true);
        let log = run_sample(&device);
        let error = line(&log, "discover _sample-service._tcp.local:");
        let error = error
            .strip_prefix("discover _sample-service._tcp.local: ")
            .expect("prefix");
        assert!(error.starts_with(expected), "{case}: {error}");
        assert!(
            error.contains("_sample-service._tcp.local"),
            "{case}: {error}"
        );
    }
}
