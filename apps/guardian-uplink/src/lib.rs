//! The guardian's uplink (`docs/guardian.md`, "Uplink"): readings out and write requests in over
//! MQTT 3.1.1, on the TLS connection the device makes with its certificate (the app never holds
//! the key).
//!
//! - [`Uplink::accept`] turns one poll round's readings into one batch (the JSON payload or a
//!   Sparkplug B NDATA, [`Format`]), has its final bytes sealed by the [`Seal`] (the guardian's
//!   is the device's provenance signature, `docs/provenance.md`) and appends the sealed batch to
//!   the [`spool::Spool`] in the app's mutable storage. A batch that cannot be sealed now (the
//!   signer's rate) waits for the next round's; one that cannot be sealed at all is stored
//!   unsigned, marked so, and reported ([`Event::Unsigned`]). Every message goes through the spool, connected or not: it is
//!   removed only when the broker acknowledged it (QoS 1 PUBACK), so a broker outage, a lost
//!   connection or a restart of the app loses nothing that fits the quota, and what does not fit
//!   is dropped oldest first and counted (in every later batch, and as [`Event::Dropped`]).
//! - [`Uplink::service`] does the I/O within a time budget: connects (with backoff), publishes
//!   the spool in order with at most [`UplinkConfig::window`] messages in flight, retransmits
//!   after a reconnect (with DUP in a persistent session), keeps the connection alive, and takes
//!   write requests from the command topic (JSON) and from Sparkplug NCMD.
//! - [`Uplink::acknowledge`] publishes a write's acknowledgement (through the spool, QoS 1).
//!
//! The MQTT packets are `mqttbytes`'s; nothing here does I/O but through [`Connector`],
//! [`spool::Storage`] and [`Clock`], which the app implements with the device's API and the host
//! tests with sockets and memory. Depends on `ferro-registermap` only among Ferrosphere crates;
//! must not depend on `applibs` (so it is tested on the host).

#[cfg(feature = "device")]
pub mod device;
pub mod json;
pub mod mqtt;
pub mod sparkplug;
pub mod spool;

/// The MQTT codec, for apps that use [`mqtt::Connection`] directly (the telemetry sample).
pub use mqttbytes;

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use ferro_registermap::{PointName, Reading, ValueKind, WriteAck, WriteRequest};
use mqttbytes::QoS;
use mqttbytes::v4::{Connect, LastWill, Packet, PubAck, Publish, Subscribe};

use mqtt::{Connection, MqttError, Transport};
use spool::{Spool, SpoolError, Storage};

/// The payload format of telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    SparkplugB,
}

/// A point as the uplink needs to know it (from the register map): its unit, and whether its
/// value is a boolean or a number (Sparkplug declares each metric's type in NBIRTH).
#[derive(Debug, Clone, PartialEq)]
pub struct PointInfo {
    pub name: PointName,
    pub unit: Option<String>,
    pub kind: ValueKind,
}

/// How the uplink talks to the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct UplinkConfig {
    /// The MQTT client ID: the device's ID.
    pub client_id: String,
    pub format: Format,
    /// JSON topics are `{prefix}/telemetry`, `{prefix}/commands` and `{prefix}/acks`.
    pub topic_prefix: String,
    /// Sparkplug B group ID and edge node ID.
    pub group: String,
    pub node: String,
    pub keep_alive: Duration,
    /// Messages in flight (sent, not yet acknowledged) at most.
    pub window: usize,
    /// The wait before the first reconnect attempt, doubled after each failure up to
    /// `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How long CONNECT waits for CONNACK.
    pub connect_timeout: Duration,
    /// How long readings wait for a seal the signer cannot give now ([`SealError::Later`])
    /// before their batch is stored unsigned (marked so).
    pub seal_deferral: Duration,
}

impl UplinkConfig {
    pub fn new(client_id: &str, format: Format) -> Self {
        UplinkConfig {
            client_id: client_id.to_owned(),
            format,
            topic_prefix: format!("ferro/guardian/{client_id}"),
            group: "ferrosphere".to_owned(),
            node: client_id.to_owned(),
            keep_alive: Duration::from_secs(30),
            window: 16,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            seal_deferral: Duration::from_secs(10),
        }
    }

    pub fn telemetry_topic(&self) -> String {
        match self.format {
            Format::Json => format!("{}/telemetry", self.topic_prefix),
            Format::SparkplugB => sparkplug::topic(&self.group, "NDATA", &self.node),
        }
    }

    pub fn commands_topic(&self) -> String {
        format!("{}/commands", self.topic_prefix)
    }

    pub fn acks_topic(&self) -> String {
        format!("{}/acks", self.topic_prefix)
    }
}

/// Makes connections to the broker (on the device: `TcpStream::connect_tls`).
pub trait Connector {
    type Transport: Transport;
    fn connect(&mut self) -> io::Result<Self::Transport>;
}

/// Time as the uplink needs it.
pub trait Clock {
    /// Milliseconds on a monotonic clock.
    fn monotonic_ms(&self) -> u64;
    fn sleep(&self, duration: Duration);
}

/// The clock of the host (not on the device, which gives apps no WASI monotonic clock).
#[cfg(not(target_os = "wasi"))]
#[derive(Debug, Clone, Copy)]
pub struct StdClock(pub std::time::Instant);

#[cfg(not(target_os = "wasi"))]
impl Default for StdClock {
    fn default() -> Self {
        StdClock(std::time::Instant::now())
    }
}

#[cfg(not(target_os = "wasi"))]
impl Clock for StdClock {
    fn monotonic_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// Why a batch could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealError {
    /// Not now (the signer's rate limit, no device certificate yet): the batch's readings are
    /// kept and sealed with a later round's, for at most [`UplinkConfig::seal_deferral`].
    Later(String),
    /// Not at all (the signer refused or failed): the batch is stored unsigned, marked so.
    Refused(String),
}

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealError::Later(reason) | SealError::Refused(reason) => f.write_str(reason),
        }
    }
}

/// Where a batch's bytes are final, before they are stored and published: attested provenance
/// (`docs/provenance.md`). Gets the exact bytes of the batch (a JSON batch, or a Sparkplug B
/// NDATA without `seq`) and returns their seal: a COSE_Sign1 that embeds them, or `None` when
/// this uplink does not seal (the batch is published as it is, not marked unsigned).
pub trait Seal {
    fn seal(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, SealError>;
}

/// The [`Seal`] of an uplink without provenance: batches are published as they are.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unsealed;

impl Seal for Unsealed {
    fn seal(&mut self, _payload: &[u8]) -> Result<Option<Vec<u8>>, SealError> {
        Ok(None)
    }
}

/// How long a batch's readings wait for a seal after [`SealError::Later`] before they are
/// retried (the device's signing rate refills a token every 200 ms).
const SEAL_RETRY_MS: u64 = 200;
/// The largest batch (its unsealed bytes) whose readings may wait for a seal; a larger one is
/// stored unsigned rather than grow further (towards the signer's 256 KiB and the spool's
/// quota).
const MAX_DEFERRED_BYTES: usize = 16 * 1024;

/// The least time one [`Uplink::service`] call spends on the uplink, whatever budget it is
/// given.
pub const MIN_PASS: Duration = Duration::from_millis(2);

/// The readings of a batch not stored yet: one round's, or several while they wait for a seal
/// ([`SealError::Later`]).
#[derive(Debug)]
struct Pending {
    readings: Vec<Reading>,
    /// For each reading: it was taken while the uplink was disconnected (Sparkplug's
    /// `is_historical`).
    historical: Vec<bool>,
    /// When the first of them started waiting (monotonic).
    since_ms: u64,
    /// When to try to seal them again.
    retry_ms: u64,
}

/// What happened that the app should log (errors become error events in the tenant's report).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Connected to the broker (`session_present`: it kept this client's session).
    Connected { session_present: bool },
    /// The connection failed or was lost; reconnecting after `retry_in`.
    Disconnected { reason: String, retry_in: Duration },
    /// The spool was full: `count` of the oldest messages were dropped (an error).
    Dropped { count: u64, total: u64 },
    /// A command that is not a valid write request (an error; it was answered on the ack topic).
    BadCommand(String),
    /// The spool's storage failed: a message was not stored (an error).
    Storage(String),
    /// A batch was stored unsigned (marked so in its payload) because it could not be sealed
    /// (an error): `batch` is its spool sequence number.
    Unsigned { batch: u64, reason: String },
}

/// Spool record kinds: the first byte of a spooled message.
const KIND_AS_IS: u8 = 0;
const KIND_NDATA: u8 = 1;

/// A spooled message: kind, topic, payload.
fn encode_message(kind: u8, topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + topic.len() + payload.len());
    out.push(kind);
    out.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(payload);
    out
}

fn decode_message(bytes: &[u8]) -> Option<(u8, &str, &[u8])> {
    let (&kind, rest) = bytes.split_first()?;
    let len = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let topic = std::str::from_utf8(rest.get(2..2 + len)?).ok()?;
    Some((kind, topic, rest.get(2 + len..)?))
}

/// The packet identifier of the message with spool sequence number `seq`: fixed per message, so
/// a retransmission (after a reconnect, or after a restart of the app) carries the same one.
fn packet_id(seq: u64) -> u16 {
    (seq % 65_535) as u16 + 1
}

struct Live<T: Transport> {
    connection: Connection<T>,
    last_sent_ms: u64,
    last_received_ms: u64,
    ping_outstanding: bool,
    /// Sparkplug: the `seq` of the next NDATA.
    sparkplug_seq: u8,
}

/// A message sent and not yet acknowledged.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u64,
    acked: bool,
}

/// The uplink: see the crate's documentation.
pub struct Uplink<S: Storage, C: Connector, K: Clock, H: Seal = Unsealed> {
    config: UplinkConfig,
    points: Vec<PointInfo>,
    spool: Spool<S>,
    connector: C,
    clock: K,
    seal: H,
    live: Option<Live<C::Transport>>,
    in_flight: VecDeque<InFlight>,
    /// Sequence numbers sent in an earlier connection and not acknowledged: retransmitted.
    resend_through: Option<u64>,
    backoff: Duration,
    next_attempt_ms: u64,
    /// Sparkplug birth/death sequence number of the current CONNECT (the spool's connect
    /// count modulo 256, so it goes on across restarts of the app).
    bd_seq: u64,
    /// Readings waiting for a seal.
    pending: Option<Pending>,
    now_unix_ms: u64,
    commands: VecDeque<WriteRequest>,
    events: Vec<Event>,
}

impl<S: Storage, C: Connector, K: Clock, H: Seal> Uplink<S, C, K, H> {
    pub fn new(
        config: UplinkConfig,
        points: Vec<PointInfo>,
        storage: S,
        connector: C,
        clock: K,
        seal: H,
    ) -> Result<Self, SpoolError> {
        let spool = Spool::open(storage)?;
        let backoff = config.backoff_initial;
        Ok(Uplink {
            config,
            points,
            spool,
            connector,
            clock,
            seal,
            live: None,
            in_flight: VecDeque::new(),
            // Whatever the spool holds from before a restart may have reached the broker.
            resend_through: None,
            backoff,
            next_attempt_ms: 0,
            bd_seq: 0,
            pending: None,
            now_unix_ms: 0,
            commands: VecDeque::new(),
            events: Vec::new(),
        })
    }

    pub fn config(&self) -> &UplinkConfig {
        &self.config
    }

    pub fn spool(&self) -> &Spool<S> {
        &self.spool
    }

    pub fn is_connected(&self) -> bool {
        self.live.is_some()
    }

    /// The events since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The next write request received, if any.
    pub fn next_request(&mut self) -> Option<WriteRequest> {
        self.commands.pop_front()
    }

    /// Stores one poll round's readings as one batch. `now_ms` is Unix time in milliseconds.
    /// When the seal must wait ([`SealError::Later`]), the readings wait with it and go into the
    /// next batch (each reading keeps its own timestamp).
    pub fn accept(&mut self, readings: &[Reading], now_ms: u64) {
        self.now_unix_ms = now_ms;
        let now = self.clock.monotonic_ms();
        let disconnected = self.live.is_none();
        let mut pending = self.pending.take().unwrap_or(Pending {
            readings: Vec::new(),
            historical: Vec::new(),
            since_ms: now,
            retry_ms: now,
        });
        pending.readings.extend_from_slice(readings);
        pending
            .historical
            .extend(std::iter::repeat_n(disconnected, readings.len()));
        self.seal_and_store(pending, now_ms);
    }

    /// Whether readings wait for a seal.
    pub fn is_sealing_deferred(&self) -> bool {
        self.pending.is_some()
    }

    /// The payload of a batch of `pending`'s readings (unsealed), marked unsigned with `unsigned`.
    fn batch_payload(&self, pending: &Pending, now_ms: u64, unsigned: Option<&str>) -> Vec<u8> {
        // The count is cumulative (since the spool was made): a batch that reports it may be
        // dropped in turn, and the next one still does.
        let dropped = self.spool.dropped_total();
        match self.config.format {
            Format::Json => {
                let mut batch = json::Batch::new(
                    &self.config.client_id,
                    self.spool.next_seq(),
                    now_ms,
                    dropped,
                    &pending.readings,
                    &self.points,
                );
                batch.unsigned = unsigned.map(str::to_owned);
                batch.to_vec()
            }
            Format::SparkplugB => sparkplug::ndata_with(
                now_ms,
                dropped,
                &pending.readings,
                &pending.historical,
                unsigned,
                &self.points,
            ),
        }
    }

    /// Seals the batch of `pending`'s readings and stores it; keeps them pending when the seal
    /// must wait (within [`UplinkConfig::seal_deferral`]); stores it unsigned, marked and
    /// reported, when it cannot be sealed.
    fn seal_and_store(&mut self, mut pending: Pending, now_ms: u64) {
        let (kind, topic) = match self.config.format {
            Format::Json => (KIND_AS_IS, self.config.telemetry_topic()),
            Format::SparkplugB => (KIND_NDATA, self.config.telemetry_topic()),
        };
        let payload = self.batch_payload(&pending, now_ms, None);
        let reason = match self.seal.seal(&payload) {
            Ok(None) => {
                self.store(kind, &topic, &payload);
                return;
            }
            Ok(Some(seal)) => {
                let sealed = match self.config.format {
                    // The published payload is the COSE_Sign1, which embeds the JSON batch.
                    Format::Json => seal,
                    // The NDATA as it is, and the COSE_Sign1 over it as one more metric.
                    Format::SparkplugB => sparkplug::with_provenance(payload, now_ms, seal),
                };
                self.store(kind, &topic, &sealed);
                return;
            }
            Err(SealError::Later(reason)) => {
                let now = self.clock.monotonic_ms();
                let waited = now.saturating_sub(pending.since_ms);
                if waited < self.config.seal_deferral.as_millis() as u64
                    && payload.len() <= MAX_DEFERRED_BYTES
                {
                    pending.retry_ms = now + SEAL_RETRY_MS;
                    self.pending = Some(pending);
                    return;
                }
                format!("{reason} (waited {waited} ms)")
            }
            Err(SealError::Refused(reason)) => reason,
        };
        let batch = self.spool.next_seq();
        let payload = self.batch_payload(&pending, now_ms, Some(&reason));
        if self.store(kind, &topic, &payload) {
            self.events.push(Event::Unsigned { batch, reason });
        }
    }

    /// Tries again to seal the readings that wait, when it is time to.
    fn retry_seal(&mut self) {
        let now = self.clock.monotonic_ms();
        if self.pending.as_ref().is_some_and(|p| now >= p.retry_ms)
            && let Some(pending) = self.pending.take()
        {
            self.seal_and_store(pending, self.now_unix_ms);
        }
    }

    /// The next time [`Uplink::service`] must wake for the uplink's own sake (a seal to retry).
    fn wake_ms(&self, deadline: u64) -> u64 {
        self.pending
            .as_ref()
            .map_or(deadline, |p| p.retry_ms.min(deadline))
    }

    /// Publishes the acknowledgement of a write request (after the telemetry stored before it).
    pub fn acknowledge(&mut self, ack: &WriteAck) {
        let topic = self.config.acks_topic();
        self.store(KIND_AS_IS, &topic, &json::ack_payload(ack));
    }

    fn reject_command(&mut self, error: json::CommandError) {
        let id = match &error {
            json::CommandError::Malformed { id, .. } => id.clone(),
            _ => None,
        };
        let payload = serde_json::to_vec(&json::CommandRejected {
            id,
            error: error.to_string(),
        })
        .unwrap_or_default();
        self.events.push(Event::BadCommand(error.to_string()));
        let topic = self.config.acks_topic();
        self.store(KIND_AS_IS, &topic, &payload);
    }

    /// Appends a message to the spool; false when it could not be stored.
    fn store(&mut self, kind: u8, topic: &str, payload: &[u8]) -> bool {
        match self.spool.append(&encode_message(kind, topic, payload)) {
            Ok((_, 0)) => true,
            Ok((_, dropped)) => {
                // Messages in flight may have been dropped: they are no longer awaited.
                let first = self.spool.first_seq();
                self.in_flight.retain(|m| first.is_some_and(|f| m.seq >= f));
                self.events.push(Event::Dropped {
                    count: dropped,
                    total: self.spool.dropped_total(),
                });
                true
            }
            Err(error) => {
                self.events.push(Event::Storage(error.to_string()));
                false
            }
        }
    }

    /// Does the uplink's I/O for at most `budget`: connects when it is time to, publishes what
    /// the spool holds, and reads the broker's packets. `now_ms` is Unix time in milliseconds.
    ///
    /// Every call makes at least one pass (a connect attempt when one is due, or one step of
    /// about [`MIN_PASS`]), also with a zero budget: a caller whose poll rounds overrun their
    /// period has no time left to give, and the uplink must not starve then (it did: with a
    /// zero budget it returned at once, every time).
    pub fn service(&mut self, now_ms: u64, budget: Duration) {
        self.now_unix_ms = now_ms;
        let start = self.clock.monotonic_ms();
        let deadline = start + (budget.max(MIN_PASS)).as_millis() as u64;
        let mut passes = 0u32;
        loop {
            self.retry_seal();
            let now = self.clock.monotonic_ms();
            if now >= deadline && passes > 0 {
                return;
            }
            passes += 1;
            let wake = self.wake_ms(deadline).max(now + 1);
            if self.live.is_none() {
                if now < self.next_attempt_ms {
                    self.clock
                        .sleep(Duration::from_millis(self.next_attempt_ms.min(wake) - now));
                    continue;
                }
                if let Err(error) = self.connect() {
                    self.disconnected(error.to_string());
                }
                continue;
            }
            let remaining = Duration::from_millis(wake - now);
            if let Err(error) = self.step(remaining) {
                self.disconnected(error.to_string());
            }
        }
    }

    fn disconnected(&mut self, reason: String) {
        self.live = None;
        if let Some(last) = self.in_flight.back() {
            self.resend_through = Some(self.resend_through.unwrap_or(0).max(last.seq));
        }
        self.in_flight.clear();
        let retry_in = self.backoff;
        self.next_attempt_ms = self.clock.monotonic_ms() + retry_in.as_millis() as u64;
        self.backoff = (self.backoff * 2).min(self.config.backoff_max);
        self.events.push(Event::Disconnected { reason, retry_in });
    }

    fn connect(&mut self) -> Result<(), MqttError> {
        let transport = self.connector.connect()?;
        let mut connect = Connect::new(self.config.client_id.clone());
        connect.keep_alive = self.config.keep_alive.as_secs().clamp(1, 65_535) as u16;
        match self.config.format {
            // A persistent session: the broker keeps the command subscription and the packet
            // identifiers in flight, and a retransmission is a DUP of the same packet.
            Format::Json => connect.clean_session = false,
            // Sparkplug B requires a clean session and sets NDEATH as the will.
            Format::SparkplugB => {
                connect.clean_session = true;
                // Counted durably before the CONNECT: a restart of the app goes on from it
                // (Sparkplug B 3.0: one more for each CONNECT, 255 followed by 0).
                self.bd_seq = self
                    .spool
                    .count_connect()
                    .map_err(|e| MqttError::Io(io::Error::other(e.to_string())))?
                    % 256;
                connect.last_will = Some(LastWill::new(
                    sparkplug::topic(&self.config.group, "NDEATH", &self.config.node),
                    sparkplug::ndeath(self.now_unix_ms, self.bd_seq),
                    QoS::AtLeastOnce,
                    false,
                ));
            }
        }
        let (mut connection, session_present) =
            Connection::open(transport, &connect, self.config.connect_timeout)?;
        let mut subscribe = Subscribe::new(self.config.commands_topic(), QoS::AtLeastOnce);
        if self.config.format == Format::SparkplugB {
            subscribe.add(
                sparkplug::topic(&self.config.group, "NCMD", &self.config.node),
                QoS::AtLeastOnce,
            );
        }
        subscribe.pkid = 1;
        connection.send(&Packet::Subscribe(subscribe))?;
        let now = self.clock.monotonic_ms();
        self.live = Some(Live {
            connection,
            last_sent_ms: now,
            last_received_ms: now,
            ping_outstanding: false,
            sparkplug_seq: 0,
        });
        if self.config.format == Format::SparkplugB {
            self.birth()?;
        }
        self.backoff = self.config.backoff_initial;
        self.events.push(Event::Connected { session_present });
        Ok(())
    }

    /// Publishes NBIRTH (QoS 0, as Sparkplug B requires) with `seq` 0.
    fn birth(&mut self) -> Result<(), MqttError> {
        let payload = sparkplug::nbirth(self.now_unix_ms, self.bd_seq, &self.points);
        let topic = sparkplug::topic(&self.config.group, "NBIRTH", &self.config.node);
        let live = self.live.as_mut().ok_or(MqttError::Closed)?;
        live.connection.send(&Packet::Publish(Publish::from_bytes(
            topic,
            QoS::AtMostOnce,
            Bytes::from(payload),
        )))?;
        live.sparkplug_seq = 1;
        live.last_sent_ms = self.clock.monotonic_ms();
        Ok(())
    }

    /// One round on a live connection: fill the window, keep alive, read one packet.
    fn step(&mut self, remaining: Duration) -> Result<(), MqttError> {
        self.fill_window()?;
        let keep_alive_ms = self.config.keep_alive.as_millis() as u64;
        let now = self.clock.monotonic_ms();
        let live = self.live.as_mut().ok_or(MqttError::Closed)?;
        if live.ping_outstanding && now.saturating_sub(live.last_received_ms) > keep_alive_ms {
            return Err(MqttError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer from the broker within the keepalive",
            )));
        }
        if !live.ping_outstanding && now.saturating_sub(live.last_sent_ms) >= keep_alive_ms / 2 {
            live.connection.send(&Packet::PingReq)?;
            live.last_sent_ms = now;
            live.ping_outstanding = true;
        }
        let wait = remaining
            .min(Duration::from_millis(keep_alive_ms / 4))
            .max(Duration::from_millis(1));
        let Some(packet) = live.connection.read(wait)? else {
            return Ok(());
        };
        live.last_received_ms = self.clock.monotonic_ms();
        live.ping_outstanding = false;
        self.handle(packet)
    }

    /// Sends spooled messages until the window is full.
    fn fill_window(&mut self) -> Result<(), MqttError> {
        let room = self.config.window.saturating_sub(self.in_flight.len());
        if room == 0 || self.spool.len() <= self.in_flight.len() {
            return Ok(());
        }
        let pending = self
            .spool
            .peek(self.in_flight.len() + room)
            .map_err(|e| MqttError::Io(io::Error::other(e.to_string())))?;
        for message in pending.into_iter().skip(self.in_flight.len()) {
            let live = self.live.as_mut().ok_or(MqttError::Closed)?;
            let Some((kind, topic, payload)) = decode_message(&message.payload) else {
                // A record whose CRC held but whose framing does not: nothing to publish.
                self.in_flight.push_back(InFlight {
                    seq: message.seq,
                    acked: true,
                });
                continue;
            };
            let payload = match kind {
                KIND_NDATA => {
                    let seq = live.sparkplug_seq;
                    live.sparkplug_seq = live.sparkplug_seq.wrapping_add(1);
                    sparkplug::with_seq(payload, seq)
                }
                _ => payload.to_vec(),
            };
            let mut publish = Publish::from_bytes(topic, QoS::AtLeastOnce, Bytes::from(payload));
            publish.pkid = packet_id(message.seq);
            publish.dup = self.config.format == Format::Json
                && self.resend_through.is_some_and(|last| message.seq <= last);
            live.connection.send(&Packet::Publish(publish))?;
            live.last_sent_ms = self.clock.monotonic_ms();
            self.in_flight.push_back(InFlight {
                seq: message.seq,
                acked: false,
            });
        }
        self.settle()
    }

    /// Removes the acknowledged messages at the front of the window from the spool.
    fn settle(&mut self) -> Result<(), MqttError> {
        let mut through = None;
        while self.in_flight.front().is_some_and(|m| m.acked) {
            through = self.in_flight.pop_front().map(|m| m.seq);
        }
        if let Some(seq) = through {
            self.spool
                .delivered(seq)
                .map_err(|e| MqttError::Io(io::Error::other(e.to_string())))?;
        }
        Ok(())
    }

    fn handle(&mut self, packet: Packet) -> Result<(), MqttError> {
        match packet {
            Packet::PubAck(ack) => {
                if let Some(message) = self
                    .in_flight
                    .iter_mut()
                    .find(|m| packet_id(m.seq) == ack.pkid)
                {
                    message.acked = true;
                }
                self.settle()
            }
            Packet::Publish(publish) => {
                self.command(&publish.topic, &publish.payload);
                if publish.qos == QoS::AtLeastOnce {
                    let live = self.live.as_mut().ok_or(MqttError::Closed)?;
                    live.connection
                        .send(&Packet::PubAck(PubAck::new(publish.pkid)))?;
                }
                Ok(())
            }
            // SUBACK, PINGRESP: nothing to do beyond having heard from the broker.
            _ => Ok(()),
        }
    }

    fn command(&mut self, topic: &str, payload: &[u8]) {
        if topic == self.config.commands_topic() {
            match json::parse_command(payload) {
                Ok(request) => self.commands.push_back(request),
                Err(error) => self.reject_command(error),
            }
        } else if self.config.format == Format::SparkplugB
            && topic == sparkplug::topic(&self.config.group, "NCMD", &self.config.node)
        {
            match sparkplug::parse_ncmd(payload) {
                Ok(ncmd) => {
                    self.commands.extend(ncmd.writes);
                    for rejected in ncmd.rejected {
                        self.reject_command(rejected);
                    }
                    if ncmd.rebirth
                        && let Err(error) = self.birth()
                    {
                        self.disconnected(error.to_string());
                    }
                }
                Err(error) => self.reject_command(error),
            }
        }
    }
}
