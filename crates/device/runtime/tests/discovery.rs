//! DNS service discovery for apps (issue 16): the `dns-service-discovery` sample discovers
//! `_sample-service._tcp.local` through a DNS server this test runs on 127.0.0.1 (hickory-proto
//! messages over a UDP socket bound here and handed to the server thread, and for truncated
//! answers over a TCP listener on the same port), then connects to the discovered instance, a
//! TCP service on loopback; with `--service _sample-echo._udp.local` it discovers a UDP echo
//! service and exchanges datagrams with it. An unlisted service type, a port, address or
//! protocol no discovery returned, and a malformed or oversized answer over UDP or TCP (or one
//! that is truncated over TCP, too slow, for another query, or refused) are refused with a clear
//! error.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
const UDP_SERVICE: &str = "_sample-echo._udp.local.";
const UDP_INSTANCE: &str = "Kitchen._sample-echo._udp.local.";
/// Instances one discovery returns (ferro_runtime's `MAX_INSTANCES`).
const MAX_INSTANCES: usize = 16;

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
    serve_udp(socket, respond)
}

fn serve_udp(
    socket: UdpSocket,
    respond: impl Fn(&Message) -> Answer + Send + 'static,
) -> SocketAddr {
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

/// What the test DNS server's TCP side sends on a connection, once it has read the query.
enum TcpAnswer {
    /// The message, framed by its length.
    Message(Message),
    /// These bytes (the length prefix included), then the connection closes.
    Bytes(Vec<u8>),
    /// These bytes, one at a time with a pause between them.
    Drip(Vec<u8>, Duration),
}

/// How the test DNS server's TCP side answers a query.
type TcpRespond = Arc<dyn Fn(&Message) -> TcpAnswer + Send + Sync>;

/// The message framed for DNS over TCP (RFC 1035 4.2.2: its length in two bytes).
fn framed(message: &Message) -> Vec<u8> {
    let bytes = message.to_vec().expect("encode");
    let mut framed = u16::try_from(bytes.len())
        .expect("length")
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(&bytes);
    framed
}

/// A UDP and a TCP socket on the same loopback port (a resolver's address serves both).
fn same_port() -> (UdpSocket, TcpListener) {
    for _ in 0..100 {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind TCP");
        let port = tcp.local_addr().expect("address").port();
        if let Ok(udp) = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)) {
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

/// A DNS server answering over UDP with `udp` and over TCP on the same port with `tcp`
/// (`None`: nothing listens for TCP there, so a connection is refused); returns its address
/// and a count of the queries its TCP side read.
fn dns_server_with_tcp(
    udp: impl Fn(&Message) -> Answer + Send + 'static,
    tcp: Option<TcpRespond>,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let (socket, listener) = same_port();
    let address = serve_udp(socket, udp);
    let tcp_queries = Arc::new(AtomicUsize::new(0));
    let Some(tcp) = tcp else {
        drop(listener);
        return (address, tcp_queries);
    };
    let counter = tcp_queries.clone();
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            let Ok(mut connection) = connection else {
                return;
            };
            let counter = counter.clone();
            let tcp = tcp.clone();
            std::thread::spawn(move || {
                let mut length = [0u8; 2];
                if connection.read_exact(&mut length).is_err() {
                    return;
                }
                let mut query = vec![0; usize::from(u16::from_be_bytes(length))];
                if connection.read_exact(&mut query).is_err() {
                    return;
                }
                let query = Message::from_vec(&query).expect("the runtime's TCP query decodes");
                counter.fetch_add(1, Ordering::SeqCst);
                match tcp(&query) {
                    TcpAnswer::Message(message) => {
                        let _ = connection.write_all(&framed(&message));
                    }
                    TcpAnswer::Bytes(bytes) => {
                        let _ = connection.write_all(&bytes);
                    }
                    TcpAnswer::Drip(bytes, pause) => {
                        for byte in bytes {
                            if connection.write_all(&[byte]).is_err() {
                                return;
                            }
                            std::thread::sleep(pause);
                        }
                    }
                }
            });
        }
    });
    (address, tcp_queries)
}

/// Over UDP, `answer` as it is if it fits 512 bytes, else only its header and question with the
/// truncation bit set (a resolver that does not honour EDNS).
fn over_udp(answer: Message) -> Answer {
    if answer.to_vec().expect("encode").len() <= 512 {
        return Answer::Message(answer);
    }
    let mut truncated = response_to(&answer);
    truncated.metadata.truncation = true;
    Answer::Message(truncated)
}

/// An empty response to `query` (its ID and question).
fn response_to(query: &Message) -> Message {
    let mut response = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata.authoritative = true;
    response.add_queries(query.queries.clone());
    response
}

/// A unicast DNS-SD zone: `instances` (full names) of `service`, each on `HOST:port` at
/// 127.0.0.1 with the TXT entries `txt`; its PTR answer also names a name outside the service
/// type (ignored).
#[derive(Clone)]
struct Zone {
    service: &'static str,
    instances: Vec<String>,
    txt: Vec<String>,
    port: u16,
}

impl Zone {
    /// The sample service: one instance, `Kitchen`.
    fn sample(port: u16) -> Self {
        Self {
            service: SERVICE,
            instances: vec![INSTANCE.to_owned()],
            txt: vec!["path=/api".to_owned(), "v=1".to_owned()],
            port,
        }
    }

    fn answer(&self, query: &Message) -> Message {
        let mut response = response_to(query);
        let question = &query.queries[0];
        let asked = |text: &str, record_type| {
            question.name == name(text) && question.query_type == record_type
        };
        let instance = self
            .instances
            .iter()
            .find(|instance| question.name == name(instance));
        if asked(self.service, RecordType::PTR) {
            let outside = "elsewhere.example.com.".to_owned();
            for target in self.instances.iter().chain([&outside]) {
                response.add_answer(Record::from_rdata(
                    name(self.service),
                    120,
                    RData::PTR(PTR(name(target))),
                ));
            }
        } else if let Some(instance) = instance
            && question.query_type == RecordType::SRV
        {
            response.add_answer(Record::from_rdata(
                name(instance),
                120,
                RData::SRV(SRV::new(0, 0, self.port, name(HOST))),
            ));
        } else if let Some(instance) = instance
            && question.query_type == RecordType::TXT
        {
            response.add_answer(Record::from_rdata(
                name(instance),
                120,
                RData::TXT(TXT::new(self.txt.clone())),
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
}

/// The zone of the sample service: one instance on `HOST:port` at 127.0.0.1.
fn zone(query: &Message, port: u16) -> Message {
    Zone::sample(port).answer(query)
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
    run_sample_with(device, |json| {
        json["CmdArgs"] = serde_json::json!(["--probe"]);
    })
}

/// Runs the sample, its manifest edited by `edit`, until it is done; returns its log.
fn run_sample_with(device: &Device, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<String> {
    let manifest = manifest_with("dns-service-discovery", edit);
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

/// The discovery returned one instance, `Kitchen` on `kitchen-device.local:port` at
/// 127.0.0.1, with the TXT entries `txt` (comma-separated).
fn assert_one_kitchen(log: &[String], port: u16, txt: &str) {
    assert_eq!(
        line(log, "discovered"),
        "discovered 1 instance(s)",
        "{log:#?}"
    );
    assert_eq!(
        line(log, "instance"),
        format!(
            "instance \"Kitchen\" host kitchen-device.local port {port} addresses 127.0.0.1 \
             txt {txt}"
        )
    );
}

fn line<'a>(log: &'a [String], prefix: &str) -> &'a str {
    log.iter()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in {log:#?}"))
}

#[test]
fn an_app_discovers_a_listed_service_and_reaches_only_what_it_discovered() {
    let (port, greetings) = greeted_service();
    let device = device(
        dns_server(move |query| Answer::Message(zone(query, port))),
        true,
    );
    let log = run_sample(&device);

    assert_one_kitchen(&log, port, "path=/api,v=1");
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

/// A hostile or broken resolver: each bad PTR answer over UDP gives the app a clear error, and
/// the runtime does not panic (the app runs to its end). Truncated answers are asked again
/// over TCP (`a_truncated_answer_is_asked_again_over_tcp`, `hostile_tcp_answers_are_refused_clearly`).
#[test]
fn malformed_and_oversized_udp_answers_are_refused_clearly() {
    type Bad = fn(&Message) -> Answer;
    let cases: [(&str, Bad, &str); 4] = [
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

/// A TCP service on loopback that reads what each connection sends until it closes and passes
/// it on (a connection that sends nothing is not a greeting); returns its port.
fn greeted_service() -> (u16, mpsc::Receiver<String>) {
    let service = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the service");
    let port = service.local_addr().expect("address").port();
    let (greetings_tx, greetings) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in service.incoming() {
            let Ok(mut stream) = stream else { return };
            let greetings_tx = greetings_tx.clone();
            std::thread::spawn(move || {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                let mut greeting = Vec::new();
                let _ = stream.read_to_end(&mut greeting);
                if !greeting.is_empty() {
                    let _ = greetings_tx.send(String::from_utf8_lossy(&greeting).into_owned());
                }
            });
        }
    });
    (port, greetings)
}

/// A service with more instances and TXT entries than a 512-byte UDP answer holds: the resolver
/// truncates those answers over UDP (as one that ignores EDNS does), the runtime asks them
/// again over TCP, and the app discovers every instance it keeps (the first
/// `MAX_INSTANCES`, each with all its TXT entries) and reaches each.
#[test]
fn a_truncated_answer_is_asked_again_over_tcp() {
    let (port, greetings) = greeted_service();
    let instances: Vec<String> = (0..MAX_INSTANCES + 4)
        .map(|index| format!("Device-{index:02}-with-a-rather-long-instance-name.{SERVICE}"))
        .collect();
    let txt: Vec<String> = (0..24)
        .map(|index| format!("key-{index:02}=a-value-that-takes-room"))
        .collect();
    let zone = Zone {
        service: SERVICE,
        instances,
        txt: txt.clone(),
        port,
    };
    let udp_zone = zone.clone();
    let (resolver, tcp_queries) = dns_server_with_tcp(
        move |query| over_udp(udp_zone.answer(query)),
        Some(Arc::new(move |query| {
            TcpAnswer::Message(zone.answer(query))
        })),
    );
    let device = device(resolver, true);
    let log = run_sample_with(&device, |json| json["CmdArgs"] = serde_json::json!([]));

    assert_eq!(
        line(&log, "discovered"),
        format!("discovered {MAX_INSTANCES} instance(s)"),
        "{log:#?}"
    );
    let described: Vec<&String> = log.iter().filter(|l| l.starts_with("instance")).collect();
    assert_eq!(described.len(), MAX_INSTANCES);
    for (index, description) in described.iter().enumerate() {
        assert_eq!(
            **description,
            format!(
                "instance \"Device-{index:02}-with-a-rather-long-instance-name\" host \
                 kitchen-device.local port {port} addresses 127.0.0.1 txt {}",
                txt.join(",")
            )
        );
    }
    let reached = log
        .iter()
        .filter(|l| l.starts_with(&format!("attempt kitchen-device.local:{port}: CONNECTED")))
        .count();
    assert_eq!(reached, MAX_INSTANCES, "{log:#?}");
    for _ in 0..MAX_INSTANCES {
        let greeting = greetings.recv_timeout(WAIT).expect("a greeting");
        assert!(greeting.starts_with("hello Device-"), "{greeting}");
    }
    // Over TCP: the PTR answer and each kept instance's TXT answer (SRV, A and AAAA fit).
    assert_eq!(tcp_queries.load(Ordering::SeqCst), 1 + MAX_INSTANCES);
}

/// A resolver whose UDP answers are all truncated and whose TCP answers are hostile or broken:
/// each gives the app a specific error and no endpoints.
#[test]
fn hostile_tcp_answers_are_refused_clearly() {
    fn respond(answer: fn(&Message) -> TcpAnswer) -> Option<TcpRespond> {
        Some(Arc::new(answer))
    }
    let cases: [(&str, Option<TcpRespond>, &str, &str); 8] = [
        (
            "too long a length prefix",
            respond(|_| {
                let mut bytes = 20480u16.to_be_bytes().to_vec();
                bytes.resize(2 + 100, 0);
                TcpAnswer::Bytes(bytes)
            }),
            "limit exceeded: the DNS answer over TCP from 127.0.0.1:",
            "is 20480 bytes, larger than 16384",
        ),
        (
            "short read",
            respond(|query| {
                let mut bytes = framed(&response_to(query));
                bytes.truncate(12);
                TcpAnswer::Bytes(bytes)
            }),
            "I/O error: the DNS answer over TCP from 127.0.0.1:",
            "ended after 12 of",
        ),
        (
            "closed without an answer",
            respond(|_| TcpAnswer::Bytes(Vec::new())),
            "I/O error: the DNS answer over TCP from 127.0.0.1:",
            "ended after 0 bytes",
        ),
        (
            "malformed",
            respond(|query| {
                let mut bytes = vec![0, 14];
                bytes.extend_from_slice(&query.metadata.id.to_be_bytes());
                bytes.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 9, 0, 0, 0, 0, 0xc0, 0xff]);
                TcpAnswer::Bytes(bytes)
            }),
            "I/O error: malformed DNS answer over TCP from 127.0.0.1:",
            "PTR",
        ),
        (
            "another query ID",
            respond(|query| {
                let mut response = response_to(query);
                response.metadata.id = query.metadata.id.wrapping_add(1);
                TcpAnswer::Message(response)
            }),
            "I/O error: the DNS answer over TCP from 127.0.0.1:",
            "not the query's",
        ),
        (
            "truncated again",
            respond(|query| {
                let mut response = response_to(query);
                response.metadata.truncation = true;
                TcpAnswer::Message(response)
            }),
            "limit exceeded: the DNS answer over TCP from 127.0.0.1:",
            "was truncated too",
        ),
        (
            "slow drip past the timeout",
            respond(|query| {
                TcpAnswer::Drip(framed(&response_to(query)), Duration::from_millis(200))
            }),
            "timed out",
            "",
        ),
        (
            "connection refused",
            None,
            "I/O error: DNS over TCP to 127.0.0.1:",
            "refused",
        ),
    ];
    for (case, tcp, expected, detail) in cases {
        let (resolver, tcp_queries) = dns_server_with_tcp(
            |query| {
                let mut response = response_to(query);
                response.metadata.truncation = true;
                Answer::Message(response)
            },
            tcp,
        );
        let device = device(resolver, true);
        let log = run_sample(&device);
        let error = line(&log, "discover _sample-service._tcp.local:");
        let error = error
            .strip_prefix("discover _sample-service._tcp.local: ")
            .expect("prefix");
        assert!(error.starts_with(expected), "{case}: {error}");
        assert!(error.contains(detail), "{case}: {error}");
        if expected != "timed out" {
            assert!(
                error.contains("_sample-service._tcp.local. PTR"),
                "{case}: {error}"
            );
        }
        assert!(
            !log.iter()
                .any(|l| l.starts_with("discovered") || l.starts_with("instance")),
            "{case}: no endpoints: {log:#?}"
        );
        let expected_tcp = usize::from(!matches!(case, "connection refused"));
        assert_eq!(tcp_queries.load(Ordering::SeqCst), expected_tcp, "{case}");
    }
}

/// A `_udp` service type the manifest lists: the app discovers it, exchanges datagrams with
/// the discovered instance by its host name and by its address, and nothing else: another
/// port, another address and TCP to the instance are refused.
#[test]
fn an_app_discovers_a_listed_udp_service_and_reaches_it_only_over_udp() {
    let echo = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the echo service");
    let port = echo.local_addr().expect("address").port();
    let (received_tx, received) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 512];
        loop {
            let Ok((count, from)) = echo.recv_from(&mut buffer) else {
                return;
            };
            let text = String::from_utf8_lossy(&buffer[..count]).into_owned();
            let _ = echo.send_to(format!("echo {text}").as_bytes(), from);
            let _ = received_tx.send(text);
        }
    });
    let zone = Zone {
        service: UDP_SERVICE,
        instances: vec![UDP_INSTANCE.to_owned()],
        txt: vec!["v=1".to_owned()],
        port,
    };
    let device = device(
        dns_server(move |query| Answer::Message(zone.answer(query))),
        true,
    );
    let service = UDP_SERVICE.trim_end_matches('.');
    let log = run_sample_with(&device, |json| {
        json["CmdArgs"] = serde_json::json!(["--service", service, "--probe"]);
        json["Capabilities"]["AllowedConnections"] = serde_json::json!([service]);
    });

    assert_one_kitchen(&log, port, "v=1");
    assert_eq!(
        line(&log, &format!("attempt kitchen-device.local:{port}:")),
        format!(
            "attempt kitchen-device.local:{port}: REPLY \"echo hello Kitchen\\n\" from \
             127.0.0.1:{port}"
        )
    );
    assert_eq!(
        line(&log, "attempt discovered address:"),
        format!(
            "attempt discovered address: REPLY \"echo hello by address\\n\" from \
             127.0.0.1:{port}"
        )
    );
    assert_eq!(
        received.recv_timeout(WAIT).expect("the greeting"),
        "hello Kitchen\n"
    );
    assert_eq!(
        received
            .recv_timeout(WAIT)
            .expect("the greeting by address"),
        "hello by address\n"
    );
    assert_eq!(
        line(&log, "attempt other port:"),
        format!(
            "attempt other port: not permitted: 127.0.0.1 was discovered for {service} with \
             port {port}, not {} over UDP",
            port.wrapping_add(1)
        )
    );
    assert_eq!(
        line(&log, "attempt other address:"),
        "attempt other address: not permitted: 127.0.0.2 is not in the app manifest's \
         AllowedConnections"
    );
    let tcp = line(&log, "attempt tcp to the udp instance:");
    assert!(
        tcp.contains("not permitted") && tcp.contains("over TCP"),
        "{tcp}"
    );
    assert!(
        line(&log, "attempt unlisted service type:").contains("not permitted"),
        "{log:#?}"
    );
}
