//! One MQTT 3.1.1 connection over any byte stream (the runtime's TLS socket on the device, a
//! TCP socket in the host tests). Packets are `mqttbytes`'s: this module frames them on the
//! stream, waits for CONNACK, and reads one packet at a time within a timeout. What is sent when
//! (QoS 1 tracking, retransmission, keepalive, reconnects) is [`crate::Uplink`]'s.

use std::io::{self, Read, Write};
use std::time::Duration;

use bytes::BytesMut;
use mqttbytes::v4::{self, ConnectReturnCode, Packet};

/// The largest packet accepted from the broker (a command or an acknowledgement is small).
pub const MAX_INCOMING_PACKET: usize = 64 * 1024;

/// A byte stream with a read timeout: what a connection runs on.
pub trait Transport: Read + Write {
    /// How long a read waits before it fails with `TimedOut` or `WouldBlock`.
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()>;
}

/// The host's TCP socket (the host tests'; on the device, apps have no `std::net`).
#[cfg(not(target_os = "wasi"))]
impl Transport for std::net::TcpStream {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        std::net::TcpStream::set_read_timeout(self, Some(timeout.max(Duration::from_millis(1))))
    }
}

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    #[error("the broker closed the connection")]
    Closed,
    #[error("the broker refused the connection ({0:?})")]
    Refused(ConnectReturnCode),
    #[error("malformed packet from the broker: {0:?}")]
    Malformed(mqttbytes::Error),
    #[error("the broker sent {0} where CONNACK was due")]
    NotConnAck(&'static str),
    #[error("no CONNACK within {0:?}")]
    NoConnAck(Duration),
    #[error("cannot encode the packet: {0:?}")]
    Encode(mqttbytes::Error),
}

/// A connected session.
pub struct Connection<T: Transport> {
    stream: T,
    incoming: BytesMut,
    outgoing: BytesMut,
}

impl<T: Transport> Connection<T> {
    /// Sends `connect` and waits up to `timeout` for a CONNACK that accepts it; returns the
    /// connection and whether the broker had a session for this client.
    pub fn open(
        stream: T,
        connect: &v4::Connect,
        timeout: Duration,
    ) -> Result<(Self, bool), MqttError> {
        let mut connection = Connection {
            stream,
            incoming: BytesMut::with_capacity(4096),
            outgoing: BytesMut::with_capacity(4096),
        };
        connect
            .write(&mut connection.outgoing)
            .map_err(MqttError::Encode)?;
        connection.flush()?;
        match connection.read(timeout)? {
            Some(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => {
                Ok((connection, ack.session_present))
            }
            Some(Packet::ConnAck(ack)) => Err(MqttError::Refused(ack.code)),
            Some(other) => Err(MqttError::NotConnAck(name(&other))),
            None => Err(MqttError::NoConnAck(timeout)),
        }
    }

    /// Sends one packet.
    pub fn send(&mut self, packet: &Packet) -> Result<(), MqttError> {
        let written = match packet {
            Packet::Publish(p) => p.write(&mut self.outgoing),
            Packet::PubAck(p) => p.write(&mut self.outgoing),
            Packet::Subscribe(p) => p.write(&mut self.outgoing),
            Packet::PingReq => v4::PingReq.write(&mut self.outgoing),
            Packet::Disconnect => v4::Disconnect.write(&mut self.outgoing),
            other => unreachable_packet(other),
        };
        written.map_err(MqttError::Encode)?;
        self.flush()
    }

    fn flush(&mut self) -> Result<(), MqttError> {
        let result = self.stream.write_all(&self.outgoing);
        self.outgoing.clear();
        result?;
        Ok(self.stream.flush()?)
    }

    /// The next packet from the broker, or `None` when none is complete within `timeout`.
    pub fn read(&mut self, timeout: Duration) -> Result<Option<Packet>, MqttError> {
        loop {
            match v4::read(&mut self.incoming, MAX_INCOMING_PACKET) {
                Ok(packet) => return Ok(Some(packet)),
                Err(mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(error) => return Err(MqttError::Malformed(error)),
            }
            self.stream.set_read_timeout(timeout)?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(MqttError::Closed),
                Ok(n) => self.incoming.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The packets a client sends are the ones [`Connection::send`] takes; any other is a bug.
fn unreachable_packet(packet: &Packet) -> Result<usize, mqttbytes::Error> {
    debug_assert!(false, "a client does not send {}", name(packet));
    Err(mqttbytes::Error::InvalidPacketType(0))
}

/// A packet's type, for messages.
pub fn name(packet: &Packet) -> &'static str {
    match packet {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect => "DISCONNECT",
    }
}
