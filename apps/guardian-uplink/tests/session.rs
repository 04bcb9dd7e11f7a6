//! The MQTT session as a broker sees it, where Mosquitto cannot show it: a scripted broker on a
//! loopback socket (packets by `mqttbytes`) that withholds PUBACKs and drops the connection, to
//! check the persistent session, the packet identifiers, DUP on retransmission, the order, the
//! spool emptied only by PUBACKs, and that a broker sending garbage is disconnected, not
//! trusted. The end-to-end behaviour against the real Mosquitto is in
//! crates/device/runtime/tests/guardian_uplink.rs.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use ferro_registermap::{PointName, Quality, Reading, Value, ValueKind};
use guardian_uplink::mqttbytes::v4::{self, ConnAck, ConnectReturnCode, Packet, PubAck, Publish};
use guardian_uplink::spool::MemoryStorage;
use guardian_uplink::{
    Connector, Event, Format, PointInfo, StdClock, Unsealed, Uplink, UplinkConfig,
};

struct Loopback(u16);

impl Connector for Loopback {
    type Transport = TcpStream;
    fn connect(&mut self) -> io::Result<TcpStream> {
        TcpStream::connect(("127.0.0.1", self.0))
    }
}

/// The broker's side of one connection.
struct Peer {
    stream: TcpStream,
    buffer: BytesMut,
}

impl Peer {
    fn accept(listener: &TcpListener) -> Peer {
        let (stream, _) = listener.accept().expect("the uplink connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        Peer {
            stream,
            buffer: BytesMut::new(),
        }
    }

    fn read(&mut self) -> Packet {
        loop {
            match v4::read(&mut self.buffer, 1 << 20) {
                Ok(packet) => return packet,
                Err(mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(error) => panic!("malformed packet from the uplink: {error:?}"),
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).expect("read");
            assert!(n > 0, "the uplink closed the connection");
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    fn send(&mut self, write: impl FnOnce(&mut BytesMut)) {
        let mut out = BytesMut::new();
        write(&mut out);
        self.stream.write_all(&out).expect("send");
    }

    /// Reads CONNECT and SUBSCRIBE, answers CONNACK.
    fn handshake(&mut self) -> v4::Connect {
        let Packet::Connect(connect) = self.read() else {
            panic!("CONNECT first")
        };
        self.send(|out| {
            ConnAck::new(ConnectReturnCode::Success, false)
                .write(out)
                .map(drop)
                .expect("connack")
        });
        assert!(matches!(self.read(), Packet::Subscribe(_)));
        connect
    }

    fn publish(&mut self) -> Publish {
        loop {
            match self.read() {
                Packet::Publish(publish) => return publish,
                Packet::PingReq => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

fn reading(n: i64) -> Vec<Reading> {
    vec![Reading {
        point: PointName::new("counter").expect("name"),
        value: Some(Value::Int(n)),
        timestamp_ms: 1,
        quality: Quality::Good,
    }]
}

fn uplink(port: u16, window: usize) -> Uplink<MemoryStorage, Loopback, StdClock> {
    let mut config = UplinkConfig::new("dev-1", Format::Json);
    config.window = window;
    config.backoff_initial = Duration::from_millis(10);
    let points = vec![PointInfo {
        name: PointName::new("counter").expect("name"),
        unit: None,
        kind: ValueKind::Number,
    }];
    Uplink::new(
        config,
        points,
        MemoryStorage::new(64 * 1024),
        Loopback(port),
        StdClock::default(),
        Unsealed,
    )
    .expect("uplink")
}

fn batch_number(publish: &Publish) -> u64 {
    let batch: serde_json::Value = serde_json::from_slice(&publish.payload).expect("json");
    batch["batch"].as_u64().expect("batch")
}

#[test]
fn unacknowledged_messages_are_sent_again_with_dup_and_the_same_packet_id() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let broker = std::thread::spawn(move || {
        // First connection: three PUBLISHes, only the first acknowledged, then dropped.
        let mut peer = Peer::accept(&listener);
        let connect = peer.handshake();
        assert_eq!(connect.client_id, "dev-1");
        assert!(!connect.clean_session, "a persistent session");
        let first: Vec<Publish> = (0..3).map(|_| peer.publish()).collect();
        assert_eq!(
            first.iter().map(batch_number).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(
            first
                .iter()
                .all(|p| !p.dup && p.qos == mqttbytes::QoS::AtLeastOnce)
        );
        peer.send(|out| {
            PubAck::new(first[0].pkid)
                .write(out)
                .map(drop)
                .expect("puback")
        });
        // Wait until the uplink saw the PUBACK (it sends nothing more: its window is full).
        std::thread::sleep(Duration::from_millis(300));
        drop(peer);
        // Second connection: the two unacknowledged ones again, DUP, same identifiers, in order.
        let mut peer = Peer::accept(&listener);
        peer.handshake();
        let again: Vec<Publish> = (0..2).map(|_| peer.publish()).collect();
        assert_eq!(again.iter().map(batch_number).collect::<Vec<_>>(), [1, 2]);
        assert!(again.iter().all(|p| p.dup), "{again:?}");
        assert_eq!(again[0].pkid, first[1].pkid);
        assert_eq!(again[1].pkid, first[2].pkid);
        for publish in &again {
            peer.send(|out| {
                PubAck::new(publish.pkid)
                    .write(out)
                    .map(drop)
                    .expect("puback")
            });
        }
        std::thread::sleep(Duration::from_millis(300));
    });
    let mut uplink = uplink(port, 3);
    for n in 0..3 {
        uplink.accept(&reading(n), 1);
    }
    for _ in 0..20 {
        if broker.is_finished() {
            break;
        }
        uplink.service(1, Duration::from_millis(200));
    }
    broker.join().expect("broker checks");
    assert!(uplink.spool().is_empty());
    let events = uplink.take_events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Disconnected { .. })),
        "{events:?}"
    );
}

#[test]
fn a_broker_that_sends_garbage_is_disconnected_and_nothing_is_lost() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let broker = std::thread::spawn(move || {
        let mut peer = Peer::accept(&listener);
        peer.handshake();
        let publish = peer.publish();
        // A packet type 0 (reserved) with a malformed remaining length.
        peer.stream
            .write_all(&[0x00, 0xff, 0xff, 0xff, 0xff, 0x01])
            .expect("garbage");
        std::thread::sleep(Duration::from_millis(300));
        drop(peer);
        let mut peer = Peer::accept(&listener);
        peer.handshake();
        let again = peer.publish();
        assert_eq!(
            (batch_number(&again), again.pkid),
            (batch_number(&publish), publish.pkid)
        );
        peer.send(|out| {
            PubAck::new(again.pkid)
                .write(out)
                .map(drop)
                .expect("puback")
        });
        std::thread::sleep(Duration::from_millis(300));
    });
    let mut uplink = uplink(port, 4);
    uplink.accept(&reading(0), 1);
    uplink.service(1, Duration::from_millis(1500));
    broker.join().expect("broker checks");
    assert!(uplink.spool().is_empty());
    let events = uplink.take_events();
    let reason = events
        .iter()
        .find_map(|e| match e {
            Event::Disconnected { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .expect("a disconnect");
    assert!(
        reason.contains("malformed packet from the broker"),
        "{reason}"
    );
}
