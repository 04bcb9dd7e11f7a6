//! The MQTT session as a broker sees it, where Mosquitto cannot show it: a scripted broker on a
//! loopback socket (packets by `mqttbytes`) that withholds PUBACKs and drops the connection, to
//! check the persistent session, the packet identifiers, DUP on retransmission, the order, the
//! spool emptied only by PUBACKs, that a broker sending garbage is disconnected, not trusted;
//! sealed batches (what is published, a seal that must wait, one refused), and Sparkplug B's
//! `bdSeq` across restarts and `is_historical` on what was read while disconnected. The end-to-end behaviour against the real Mosquitto is in
//! crates/device/runtime/tests/guardian_uplink.rs.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use ferro_registermap::{PointName, Quality, Reading, Value, ValueKind};
use guardian_uplink::mqttbytes::v4::{self, ConnAck, ConnectReturnCode, Packet, PubAck, Publish};
use guardian_uplink::sparkplug::{self, Payload};
use guardian_uplink::spool::MemoryStorage;
use guardian_uplink::{
    Connector, Event, Format, PointInfo, Seal, SealError, StdClock, Unsealed, Uplink, UplinkConfig,
};
use prost::Message;

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

    /// Acknowledges `publish` (PUBACK with its packet identifier).
    fn ack(&mut self, publish: &Publish) {
        self.send(|out| {
            PubAck::new(publish.pkid)
                .write(out)
                .map(drop)
                .expect("puback")
        });
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
    uplink_with(
        port,
        window,
        Format::Json,
        Unsealed,
        MemoryStorage::new(64 * 1024),
    )
}

fn uplink_with<H: Seal>(
    port: u16,
    window: usize,
    format: Format,
    seal: H,
    storage: MemoryStorage,
) -> Uplink<MemoryStorage, Loopback, StdClock, H> {
    let mut config = UplinkConfig::new("dev-1", format);
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
        storage,
        Loopback(port),
        StdClock::default(),
        seal,
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
        peer.ack(&first[0]);
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
            peer.ack(publish);
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

/// A caller whose poll rounds overrun their period calls `service` with no budget at all; the
/// uplink still connects and publishes (it used to return at once, every time).
#[test]
fn an_uplink_given_no_time_still_publishes() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let broker = std::thread::spawn(move || {
        let mut peer = Peer::accept(&listener);
        peer.handshake();
        let publish = peer.publish();
        peer.ack(&publish);
        batch_number(&publish)
    });
    let mut uplink = uplink(port, 4);
    uplink.accept(&reading(7), 1);
    for _ in 0..2_000 {
        if broker.is_finished() {
            break;
        }
        uplink.service(1, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        broker.is_finished(),
        "nothing published with a zero budget: {:?}",
        uplink.take_events()
    );
    assert_eq!(broker.join().expect("broker"), 0);
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
        peer.ack(&again);
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

/// The signer's answers, scripted (the uplink's side of `deviceauth.sign-batch`; the device's
/// real signature is checked end to end in crates/device/runtime/tests/guardian_uplink.rs):
/// each call takes the next answer, an error or (`None`, and once the script is spent) a seal,
/// `SIG:` followed by the payload.
struct ScriptedSeal(VecDeque<Option<SealError>>);

impl Seal for ScriptedSeal {
    fn seal(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, SealError> {
        match self.0.pop_front().flatten() {
            Some(error) => Err(error),
            None => Ok(Some([b"SIG:".as_slice(), payload].concat())),
        }
    }
}

/// The JSON batch inside a scripted seal.
fn sealed_batch(publish: &Publish) -> serde_json::Value {
    let inner = publish
        .payload
        .strip_prefix(b"SIG:")
        .unwrap_or_else(|| panic!("not sealed: {:?}", publish.payload));
    serde_json::from_slice(inner).expect("json")
}

fn counters(batch: &serde_json::Value) -> Vec<i64> {
    batch["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["value"].as_i64().expect("value"))
        .collect()
}

#[test]
fn batches_are_published_as_their_seal_a_seal_that_must_wait_carries_the_readings_on_and_a_refused_one_is_marked_unsigned()
 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let broker = std::thread::spawn(move || {
        let mut peer = Peer::accept(&listener);
        peer.handshake();
        let publishes: Vec<Publish> = (0..3)
            .map(|_| {
                let publish = peer.publish();
                peer.ack(&publish);
                publish
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        publishes
    });
    let later = || Some(SealError::Later("limit exceeded: 5 a second".to_owned()));
    let seal = ScriptedSeal(VecDeque::from([
        later(),
        None,
        later(),
        None,
        Some(SealError::Refused(
            "not permitted: DeviceAuthentication".to_owned(),
        )),
    ]));
    let mut uplink = uplink_with(port, 4, Format::Json, seal, MemoryStorage::new(64 * 1024));
    // The seal must wait: nothing is stored, the readings wait for the next round.
    uplink.accept(&reading(0), 1);
    assert!(uplink.is_sealing_deferred());
    assert!(uplink.spool().is_empty());
    uplink.accept(&reading(1), 2);
    assert!(!uplink.is_sealing_deferred());
    assert_eq!(uplink.spool().len(), 1);
    // Waiting again, and no round follows: the uplink tries again by itself.
    uplink.accept(&reading(2), 3);
    assert!(uplink.is_sealing_deferred());
    uplink.service(4, Duration::from_millis(700));
    assert!(!uplink.is_sealing_deferred());
    // Refused: stored unsigned, marked, and reported.
    uplink.accept(&reading(3), 5);
    uplink.service(6, Duration::from_millis(700));
    let publishes = broker.join().expect("broker checks");
    assert_eq!(counters(&sealed_batch(&publishes[0])), [0, 1]);
    assert_eq!(sealed_batch(&publishes[0])["batch"], 0);
    assert_eq!(counters(&sealed_batch(&publishes[1])), [2]);
    assert_eq!(sealed_batch(&publishes[1])["batch"], 1);
    assert!(!publishes[2].payload.starts_with(b"SIG:"));
    let unsigned: serde_json::Value = serde_json::from_slice(&publishes[2].payload).expect("json");
    assert_eq!(counters(&unsigned), [3]);
    assert_eq!(unsigned["unsigned"], "not permitted: DeviceAuthentication");
    assert_eq!(
        sealed_batch(&publishes[0]).get("unsigned"),
        None,
        "only unsigned batches carry the mark"
    );
    let events = uplink.take_events();
    assert!(
        events.contains(&Event::Unsigned {
            batch: 2,
            reason: "not permitted: DeviceAuthentication".to_owned()
        }),
        "{events:?}"
    );
}

#[test]
fn readings_that_waited_too_long_for_a_seal_are_stored_unsigned_not_lost() {
    let later = || {
        Some(SealError::Later(
            "no such resource: no current device certificate".to_owned(),
        ))
    };
    let mut config = UplinkConfig::new("dev-1", Format::Json);
    // No wait at all (10 s by default).
    config.seal_deferral = Duration::ZERO;
    let mut uplink = Uplink::new(
        config,
        Vec::new(),
        MemoryStorage::new(64 * 1024),
        Loopback(1),
        StdClock::default(),
        ScriptedSeal(VecDeque::from([later()])),
    )
    .expect("uplink");
    uplink.accept(&reading(0), 1);
    assert!(!uplink.is_sealing_deferred());
    assert_eq!(uplink.spool().len(), 1);
    let events = uplink.take_events();
    assert!(
        matches!(
            &events[..],
            [Event::Unsigned { batch: 0, reason }]
                if reason.starts_with("no such resource: no current device certificate (waited")
        ),
        "{events:?}"
    );
}

/// The `bdSeq` metric of a Sparkplug payload.
fn bd_seq(payload: &[u8]) -> u64 {
    let payload = Payload::decode(payload).expect("sparkplug payload");
    let metric = payload
        .metrics
        .iter()
        .find(|m| m.name.as_deref() == Some(sparkplug::BD_SEQ))
        .expect("bdSeq");
    match metric.value {
        Some(sparkplug::generated::payload::metric::Value::LongValue(n)) => n,
        ref other => panic!("bdSeq {other:?}"),
    }
}

/// A Sparkplug CONNECT: the `bdSeq` of its will (NDEATH) and of the NBIRTH that follows.
fn sparkplug_birth(listener: TcpListener) -> (u64, u64) {
    let mut peer = Peer::accept(&listener);
    let connect = peer.handshake();
    let will = connect.last_will.expect("NDEATH as the will");
    let birth = peer.publish();
    assert!(birth.topic.ends_with("/NBIRTH/dev-1"), "{}", birth.topic);
    (bd_seq(&will.message), bd_seq(&birth.payload))
}

#[test]
fn bd_seq_goes_on_across_restarts_and_only_what_was_read_while_disconnected_is_historical() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (first_tx, first_rx) = std::sync::mpsc::channel();
    let broker = std::thread::spawn(move || {
        let mut peer = Peer::accept(&listener);
        let connect = peer.handshake();
        let will = connect.last_will.expect("will");
        let birth = peer.publish();
        let first = peer.publish();
        peer.ack(&first);
        first_tx.send(()).expect("signal");
        let second = peer.publish();
        peer.ack(&second);
        std::thread::sleep(Duration::from_millis(300));
        (
            bd_seq(&will.message),
            bd_seq(&birth.payload),
            vec![first, second],
        )
    });
    let seal = ScriptedSeal(VecDeque::new());
    let mut uplink = uplink_with(
        port,
        4,
        Format::SparkplugB,
        seal,
        MemoryStorage::new(64 * 1024),
    );
    // Read while disconnected (not connected yet), then while connected.
    uplink.accept(&reading(0), 1);
    uplink.service(2, Duration::from_millis(500));
    first_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the first NDATA acknowledged");
    assert!(uplink.is_connected());
    uplink.accept(&reading(1), 3);
    uplink.service(4, Duration::from_millis(500));
    let (will, birth, data) = broker.join().expect("broker checks");
    assert_eq!(
        (will, birth),
        (0, 0),
        "the first CONNECT of a new spool is bdSeq 0"
    );
    assert!(uplink.spool().is_empty());
    let historical = |publish: &Publish| {
        let payload = Payload::decode(&publish.payload[..]).expect("NDATA");
        assert_eq!(payload.metrics[0].name.as_deref(), Some("counter"));
        // Sealed: the seal over the bytes before it is the last metric, the signed bytes are
        // the prefix of what was sent.
        let provenance = payload.metrics.last().expect("metric");
        assert_eq!(provenance.name.as_deref(), Some(sparkplug::PROVENANCE));
        let Some(sparkplug::generated::payload::metric::Value::BytesValue(seal)) =
            &provenance.value
        else {
            panic!("{provenance:?}")
        };
        let signed = seal.strip_prefix(b"SIG:").expect("sealed");
        assert!(publish.payload.starts_with(signed));
        payload.metrics[0].is_historical
    };
    assert_eq!(historical(&data[0]), Some(true));
    assert_eq!(historical(&data[1]), None);

    // The app restarts (a new uplink over the same storage): the next CONNECT is one more, and
    // so on for every CONNECT after it.
    let mut storage = uplink.spool().storage().clone();
    drop(uplink);
    for expected in [1, 2] {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let broker = std::thread::spawn(move || sparkplug_birth(listener));
        let mut uplink = uplink_with(
            port,
            4,
            Format::SparkplugB,
            ScriptedSeal(VecDeque::new()),
            storage.clone(),
        );
        uplink.service(5, Duration::from_millis(500));
        let (will, birth) = broker.join().expect("broker checks");
        assert_eq!((will, birth), (expected, expected));
        storage = uplink.spool().storage().clone();
    }
}
