//! DNS service discovery (RFC 6763) for apps, over unicast DNS: a PTR query for the service
//! type (`_sample-service._tcp.local.`) names its instances; an SRV and a TXT query per instance
//! give its host, port and TXT entries; A and AAAA queries give the host's addresses. Queries go
//! to one resolver (the device's, from `/etc/resolv.conf`, unless `RuntimeConfig::dns_resolver`
//! names one: `ferro-device run --dns-resolver`, checked by [`parse_dns_resolver`]) over a
//! connected UDP socket; an answer with the truncation bit is asked again over TCP to the same
//! resolver (RFC 7766, one connection per query). hickory-proto encodes and decodes every
//! message and writes the TCP length prefix. Not multicast DNS (docs/runtime.md says why).
//!
//! Only a service type the app's manifest lists may be discovered. What a discovery returns is
//! remembered per app instance and per service type ([`Discovery::reachable`]): the app may then
//! connect to exactly those (address, port) pairs, by address or by the instance's host name
//! (mapped to the discovered addresses, never resolved again), and the next discovery of the same
//! type replaces them. Discovered addresses may be private or link-local (LAN services are the
//! point of discovery), but not loopback, unspecified, broadcast or multicast ones (the device
//! itself, never a LAN service) unless `RuntimeConfig::discovery_allows_loopback` says so.
//!
//! Everything is bounded: one answer is at most [`MAX_DNS_MESSAGE`] bytes over UDP and
//! [`MAX_TCP_DNS_MESSAGE`] over TCP, a discovery returns at most [`MAX_INSTANCES`] instances of
//! at most [`MAX_ADDRESSES`] addresses each, and the whole discovery (TCP connects and reads
//! included) takes at most the app's timeout (at most [`MAX_DISCOVERY`]), waiting in steps of at
//! most [`STOP_POLL`] so a stop request interrupts it (a TCP connect is the runtime's
//! interruptible one, [`crate::connect::connect_tcp`]).

use std::collections::BTreeMap;
use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use ferro_manifest::{AllowedConnection, ServiceType};
use hickory_proto::ProtoError;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, BinEncoder};

use crate::connect::{self, Interrupted};
use crate::host::{HostResult, HostState, STOP_POLL, StopSignal, api};
use crate::limits::Interrupt;
use api::servicediscovery::ServiceInstance;
use api::types::Error as ApiError;

/// Largest DNS answer accepted over UDP (a larger datagram is refused, not truncated); queries
/// advertise it with EDNS.
pub(crate) const MAX_DNS_MESSAGE: usize = 4096;
/// Largest DNS answer accepted over TCP, where a truncated UDP answer is asked again (a larger
/// length prefix is refused before the answer is read).
pub(crate) const MAX_TCP_DNS_MESSAGE: usize = 16 * 1024;
/// Most instances one discovery returns (the first ones the PTR answer names).
pub(crate) const MAX_INSTANCES: usize = 16;
/// Most addresses kept per instance.
pub(crate) const MAX_ADDRESSES: usize = 8;
/// Longest discovery, whatever timeout the app asks for.
pub(crate) const MAX_DISCOVERY: Duration = Duration::from_secs(10);
/// The resolver configuration read when no resolver is configured.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// One discovered endpoint: a host, its addresses and the port its SRV record named.
#[derive(Debug, Clone)]
struct Endpoint {
    /// Lowercase, without the final dot.
    host: String,
    addresses: Vec<IpAddr>,
    port: u16,
}

/// An instance's discovery state: where queries go and what the last discoveries returned.
#[derive(Debug)]
pub(crate) struct Discovery {
    resolver: Option<SocketAddr>,
    allow_loopback: bool,
    last: BTreeMap<ServiceType, Vec<Endpoint>>,
}

impl Discovery {
    /// `resolver`: where queries go (`None`: the first `nameserver` of `/etc/resolv.conf`, read
    /// at each discovery).
    pub(crate) fn new(resolver: Option<SocketAddr>, allow_loopback: bool) -> Self {
        Self {
            resolver,
            allow_loopback,
            last: BTreeMap::new(),
        }
    }

    /// The addresses `host:port` may be reached at because the last discovery of a listed
    /// service type of this protocol returned them: `host` is a discovered address or a
    /// discovered host name, and `port` the port discovered with it. `Err(None)`: `host` was
    /// never discovered; `Err(Some(why))`: it was, but not with this port or protocol.
    pub(crate) fn reachable(
        &self,
        host: &str,
        port: u16,
        tcp: bool,
    ) -> Result<Vec<SocketAddr>, Option<String>> {
        let address = host.parse::<IpAddr>().ok();
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        let mut known = None;
        for (service, endpoints) in &self.last {
            for endpoint in endpoints {
                let matches = match address {
                    Some(address) => endpoint.addresses.contains(&address),
                    None => endpoint.host == name,
                };
                if !matches {
                    continue;
                }
                if endpoint.addresses.is_empty() {
                    known.get_or_insert_with(|| {
                        format!(
                            "{host} was discovered for {service} without an address the app may \
                             reach (loopback, unspecified, broadcast and multicast addresses are \
                             never kept)"
                        )
                    });
                    continue;
                }
                if endpoint.port == port && service.is_tcp() == tcp {
                    let addresses = match address {
                        Some(address) => vec![address],
                        None => endpoint.addresses.clone(),
                    };
                    return Ok(addresses
                        .into_iter()
                        .map(|address| SocketAddr::new(address, port))
                        .collect());
                }
                known.get_or_insert_with(|| {
                    format!(
                        "{host} was discovered for {service} with port {}, not {port} over {}",
                        endpoint.port,
                        if tcp { "TCP" } else { "UDP" }
                    )
                });
            }
        }
        Err(known)
    }
}

/// Why a discovery stopped early.
enum Failure {
    Api(ApiError),
    Stopped,
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

fn io(what: impl std::fmt::Display) -> Failure {
    Failure::Api(ApiError::Io(what.to_string()))
}

/// A DNS resolver setting that names no usable resolver ([`parse_dns_resolver`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a DNS resolver: {reason}")]
pub struct DnsResolverError {
    text: String,
    reason: &'static str,
}

/// The DNS resolver a device configuration names (`RuntimeConfig::dns_resolver`): an IP
/// address (port 53) or `ADDRESS:PORT` (`[IPv6]:PORT`). Host names are refused (the resolver
/// is what resolves them), and so are unspecified, broadcast and multicast addresses and port
/// 0; a loopback resolver (a local caching resolver) is fine.
pub fn parse_dns_resolver(text: &str) -> Result<SocketAddr, DnsResolverError> {
    let refuse = |reason| DnsResolverError {
        text: text.to_owned(),
        reason,
    };
    let resolver = match text.parse::<IpAddr>() {
        Ok(address) => SocketAddr::new(address, 53),
        Err(_) => text.parse::<SocketAddr>().map_err(|_| {
            refuse("give an IP address, optionally with a port (192.168.1.1, 192.168.1.1:53, [fd00::1]:53)")
        })?,
    };
    let address = resolver.ip();
    if address.is_unspecified() {
        return Err(refuse("the unspecified address names no resolver"));
    }
    if address.is_multicast() || matches!(address, IpAddr::V4(v4) if v4.is_broadcast()) {
        return Err(refuse(
            "a resolver is one host, not a multicast or broadcast address",
        ));
    }
    if resolver.port() == 0 {
        return Err(refuse("port 0 names no resolver"));
    }
    Ok(resolver)
}

/// The first `nameserver` of a resolv.conf text (port 53).
pub(crate) fn resolver_from_resolv_conf(text: &str) -> Option<SocketAddr> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next())
            .flatten()
            .and_then(|address| address.parse::<IpAddr>().ok())
            .map(|address| SocketAddr::new(address, 53))
    })
}

/// How a DNS answer arrived (named in errors).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Udp => "",
            Self::Tcp => " over TCP",
        })
    }
}

/// One discovery's DNS client: a UDP socket connected to the resolver, a deadline, and the
/// app's stop signal.
struct Client<'a> {
    socket: UdpSocket,
    resolver: SocketAddr,
    deadline: Instant,
    stop: &'a StopSignal,
}

impl Client<'_> {
    /// Sends one query and returns the resolver's answer to it (answer records for `NXDOMAIN`:
    /// none). Datagrams answering another query ID are ignored; a truncated answer is asked
    /// again over TCP ([`Client::query_tcp`]); a malformed or oversized answer, a truncated TCP
    /// answer, or a resolver failure is an error.
    fn query(&self, name: &Name, record_type: RecordType) -> Result<Message, Failure> {
        let mut id = [0; 2];
        getrandom::fill(&mut id).map_err(|error| io(format!("random query ID: {error}")))?;
        let id = u16::from_be_bytes(id);
        let mut query = Message::new(id, MessageType::Query, OpCode::Query);
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(name.clone(), record_type));
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_DNS_MESSAGE as u16);
        query.set_edns(edns);
        let bytes = query
            .to_vec()
            .map_err(|error| io(format!("cannot encode a DNS query for {name}: {error}")))?;
        self.socket
            .send(&bytes)
            .map_err(|error| io(format!("DNS query to {}: {error}", self.resolver)))?;
        let answer = self.receive_udp(id, name, record_type)?;
        if let Some(answer) = self.check_answer(answer, name, record_type, Transport::Udp)? {
            return Ok(answer);
        }
        tracing::debug!(%name, %record_type, resolver = %self.resolver, "truncated; asking over TCP");
        let answer = self.query_tcp(id, &bytes, name, record_type)?;
        self.check_answer(answer, name, record_type, Transport::Tcp)?
            .ok_or_else(|| {
                Failure::Api(ApiError::LimitExceeded(format!(
                    "the DNS answer over TCP from {} for {name} {record_type} was truncated too",
                    self.resolver
                )))
            })
    }

    /// How long the next wait may be: at most [`STOP_POLL`], ending at the deadline. A stop
    /// request or the deadline ends the discovery.
    fn next_wait(&self) -> Result<Duration, Failure> {
        if self.stop.is_requested() {
            return Err(Failure::Stopped);
        }
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Failure::Api(ApiError::TimedOut));
        }
        Ok(remaining.min(STOP_POLL).max(Duration::from_millis(1)))
    }

    /// The answer to query `id`, decoded: datagrams with another ID are ignored.
    fn receive_udp(
        &self,
        id: u16,
        name: &Name,
        record_type: RecordType,
    ) -> Result<Message, Failure> {
        // One byte more than the largest answer accepted, to tell a too large one.
        let mut buffer = vec![0; MAX_DNS_MESSAGE + 1];
        loop {
            let wait = self.next_wait()?;
            self.socket
                .set_read_timeout(Some(wait))
                .map_err(|error| io(format!("DNS socket: {error}")))?;
            let count = match self.socket.recv(&mut buffer) {
                Ok(count) => count,
                Err(error)
                    if matches!(
                        error.kind(),
                        IoErrorKind::WouldBlock | IoErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(error) => {
                    return Err(io(format!("DNS answer from {}: {error}", self.resolver)));
                }
            };
            if count > MAX_DNS_MESSAGE {
                return Err(Failure::Api(ApiError::LimitExceeded(format!(
                    "the DNS answer from {} for {name} {record_type} is larger than \
                     {MAX_DNS_MESSAGE} bytes",
                    self.resolver
                ))));
            }
            let answer = Message::from_vec(&buffer[..count]).map_err(|error| {
                io(format!(
                    "malformed DNS answer from {} for {name} {record_type}: {error}",
                    self.resolver
                ))
            })?;
            if answer.metadata.id != id {
                // A late answer to an earlier query (or a stray datagram): keep waiting.
                continue;
            }
            return Ok(answer);
        }
    }

    /// Asks `query` (encoded, ID `id`) again over TCP to the same resolver (RFC 7766): one
    /// connection per query, the message framed by its two-byte length. The answer is at most
    /// [`MAX_TCP_DNS_MESSAGE`] bytes (a larger length is refused before it is read) and must
    /// carry the query's ID; connecting and reading end at the discovery's deadline and wait
    /// in steps of at most [`STOP_POLL`], so a stop request interrupts them.
    fn query_tcp(
        &self,
        id: u16,
        query: &[u8],
        name: &Name,
        record_type: RecordType,
    ) -> Result<Message, Failure> {
        let resolver = self.resolver;
        let mut stream = self.connect_tcp(name, record_type)?;
        let framed = framed(query)
            .map_err(|error| io(format!("cannot frame a DNS query for {name}: {error}")))?;
        stream
            .set_write_timeout(Some(self.next_wait()?))
            .and_then(|()| stream.write_all(&framed))
            .map_err(|error| io(format!("DNS query over TCP to {resolver}: {error}")))?;
        let mut prefix = [0; 2];
        let got = self.read_tcp(&mut stream, &mut prefix)?;
        let length = if got == prefix.len() {
            usize::from(
                BinDecoder::new(&prefix)
                    .read_u16()
                    .map_err(|error| io(format!("DNS answer length: {error}")))?
                    .unverified(),
            )
        } else {
            0
        };
        if length > MAX_TCP_DNS_MESSAGE {
            return Err(Failure::Api(ApiError::LimitExceeded(format!(
                "the DNS answer over TCP from {resolver} for {name} {record_type} is {length} \
                 bytes, larger than {MAX_TCP_DNS_MESSAGE}"
            ))));
        }
        let mut answer = vec![0; length];
        let got = got + self.read_tcp(&mut stream, &mut answer)?;
        if length == 0 || got < length + prefix.len() {
            let expected = if length == 0 {
                String::new()
            } else {
                format!(" of {}", length + prefix.len())
            };
            return Err(io(format!(
                "the DNS answer over TCP from {resolver} for {name} {record_type} ended after \
                 {got}{expected} bytes"
            )));
        }
        let answer = Message::from_vec(&answer).map_err(|error| {
            io(format!(
                "malformed DNS answer over TCP from {resolver} for {name} {record_type}: {error}"
            ))
        })?;
        if answer.metadata.id != id {
            return Err(io(format!(
                "the DNS answer over TCP from {resolver} for {name} {record_type} has ID {}, \
                 not the query's {id}",
                answer.metadata.id
            )));
        }
        Ok(answer)
    }

    /// A TCP connection to the resolver ([`connect::connect_tcp`]: a stop request or the
    /// discovery's deadline ends the wait).
    fn connect_tcp(&self, name: &Name, record_type: RecordType) -> Result<TcpStream, Failure> {
        let resolver = self.resolver;
        connect::connect_tcp(resolver, self.deadline, self.stop, None).map_err(
            |error| match error {
                Interrupted::Stopped => Failure::Stopped,
                Interrupted::TimedOut => Failure::Api(ApiError::TimedOut),
                Interrupted::Failed(error) => io(format!(
                    "DNS over TCP to {resolver} for {name} {record_type} (the UDP answer was \
                 truncated): {error}"
                )),
            },
        )
    }

    /// Fills `buffer` from `stream`, waiting in steps (see [`Client::next_wait`]); returns how
    /// many bytes arrived, fewer than `buffer.len()` only when the resolver closed the
    /// connection.
    fn read_tcp(&self, stream: &mut TcpStream, buffer: &mut [u8]) -> Result<usize, Failure> {
        let mut filled = 0;
        while filled < buffer.len() {
            let wait = self.next_wait()?;
            stream
                .set_read_timeout(Some(wait))
                .map_err(|error| io(format!("DNS socket: {error}")))?;
            match stream.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(count) => filled += count,
                Err(error)
                    if matches!(
                        error.kind(),
                        IoErrorKind::WouldBlock | IoErrorKind::TimedOut | IoErrorKind::Interrupted
                    ) => {}
                Err(error) => {
                    return Err(io(format!(
                        "DNS answer over TCP from {}: {error}",
                        self.resolver
                    )));
                }
            }
        }
        Ok(filled)
    }

    /// `answer` if it answers the query for `name` and `record_type` (for `NXDOMAIN`: an
    /// empty answer), `None` if it was truncated; an error for a resolver failure or an answer
    /// to another question.
    fn check_answer(
        &self,
        answer: Message,
        name: &Name,
        record_type: RecordType,
        transport: Transport,
    ) -> Result<Option<Message>, Failure> {
        let resolver = self.resolver;
        let asked = answer.queries.len() == 1
            && answer.queries[0].name == *name
            && answer.queries[0].query_type == record_type;
        if answer.metadata.message_type != MessageType::Response || !asked {
            return Err(io(format!(
                "the DNS answer{transport} from {resolver} does not answer the query for {name} \
                 {record_type}"
            )));
        }
        if answer.metadata.truncation {
            return Ok(None);
        }
        match answer.metadata.response_code {
            ResponseCode::NoError => Ok(Some(answer)),
            ResponseCode::NXDomain => Ok(Some(Message::new(
                answer.metadata.id,
                MessageType::Response,
                OpCode::Query,
            ))),
            code => Err(io(format!(
                "the DNS resolver {resolver} answered {code}{transport} for {name} {record_type}"
            ))),
        }
    }
}

/// `message` framed for DNS over TCP: its length in two bytes, then the message (RFC 1035
/// 4.2.2), written by hickory-proto's encoder.
fn framed(message: &[u8]) -> Result<Vec<u8>, ProtoError> {
    let length = u16::try_from(message.len())
        .map_err(|_| ProtoError::from("a DNS message is at most 65535 bytes"))?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    let mut encoder = BinEncoder::new(&mut framed);
    encoder.emit_u16(length)?;
    encoder.emit_vec(message)?;
    Ok(framed)
}

/// Whether an app may reach a discovered `address` (see the module documentation).
fn reachable_address(address: IpAddr, allow_loopback: bool) -> bool {
    let device_itself = match address {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_unspecified() || v4.octets()[0] == 0,
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_unspecified())
        }
    };
    let never = match address {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.is_multicast(),
        IpAddr::V6(v6) => v6.is_multicast(),
    };
    !never && (allow_loopback || !device_itself)
}

/// Discovers the instances of `service` through `client`.
fn discover(
    client: &Client<'_>,
    service: &ServiceType,
    allow_loopback: bool,
) -> Result<(Vec<ServiceInstance>, Vec<Endpoint>), Failure> {
    let service_name = Name::from_ascii(format!("{service}."))
        .map_err(|error| io(format!("{service} is not a DNS name: {error}")))?;
    let browse = client.query(&service_name, RecordType::PTR)?;
    let mut instance_names: Vec<Name> = Vec::new();
    for record in &browse.answers {
        let RData::PTR(target) = &record.data else {
            continue;
        };
        // Only instances of this service type (`<instance>.<service type>`).
        if record.name != service_name
            || target.0.num_labels() != service_name.num_labels() + 1
            || target.0.base_name() != service_name
            || instance_names.contains(&target.0)
        {
            continue;
        }
        if instance_names.len() == MAX_INSTANCES {
            tracing::debug!(%service, "more than {MAX_INSTANCES} instances; the rest ignored");
            break;
        }
        instance_names.push(target.0.clone());
    }
    let mut instances = Vec::new();
    let mut endpoints = Vec::new();
    for instance in instance_names {
        let srv = client.query(&instance, RecordType::SRV)?;
        let Some(chosen) = srv
            .answers
            .iter()
            .filter(|record| record.name == instance)
            .filter_map(|record| match &record.data {
                RData::SRV(srv) => Some(srv),
                _ => None,
            })
            .min_by_key(|srv| (srv.priority, std::cmp::Reverse(srv.weight)))
        else {
            tracing::debug!(%service, %instance, "no SRV record: instance skipped");
            continue;
        };
        // A target of "." means the service is not available there (RFC 2782).
        if chosen.target.is_root() {
            continue;
        }
        let target = chosen.target.clone();
        let port = chosen.port;
        let txt = client.query(&instance, RecordType::TXT)?;
        let entries: Vec<Vec<u8>> = txt
            .answers
            .iter()
            .filter(|record| record.name == instance)
            .filter_map(|record| match &record.data {
                RData::TXT(txt) => Some(txt),
                _ => None,
            })
            .flat_map(|txt| txt.txt_data.iter().map(|entry| entry.to_vec()))
            .filter(|entry| !entry.is_empty())
            .collect();
        let mut addresses: Vec<IpAddr> = Vec::new();
        for record_type in [RecordType::A, RecordType::AAAA] {
            let answer = client.query(&target, record_type)?;
            for record in answer.answers.iter().filter(|record| record.name == target) {
                let address = match &record.data {
                    RData::A(a) => IpAddr::V4(a.0),
                    RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
                    _ => continue,
                };
                if !reachable_address(address, allow_loopback) {
                    tracing::debug!(%service, %target, %address, "discovered address refused");
                    continue;
                }
                if addresses.len() < MAX_ADDRESSES && !addresses.contains(&address) {
                    addresses.push(address);
                }
            }
        }
        let host = target.to_ascii().trim_end_matches('.').to_ascii_lowercase();
        let name = instance
            .iter()
            .next()
            .map(|label| String::from_utf8_lossy(label).into_owned())
            .unwrap_or_default();
        instances.push(ServiceInstance {
            name,
            host: host.clone(),
            port,
            addresses: addresses.iter().map(ToString::to_string).collect(),
            txt: entries,
        });
        endpoints.push(Endpoint {
            host,
            addresses,
            port,
        });
    }
    Ok((instances, endpoints))
}

impl HostState {
    /// The listed service type `text` names, or why not.
    fn listed_service_type(&self, text: &str) -> Result<ServiceType, ApiError> {
        let invalid = || {
            ApiError::InvalidArgument(format!(
                "{text:?} is not a DNS service discovery type (`_service._tcp.domain` or \
                 `_service._udp.domain`)"
            ))
        };
        if text.len() > 253 {
            return Err(invalid());
        }
        let Ok(AllowedConnection::ServiceDiscovery(service)) = AllowedConnection::parse(text)
        else {
            return Err(invalid());
        };
        let listed = self
            .app
            .capabilities
            .allowed_connections()
            .iter()
            .any(|entry| matches!(entry, AllowedConnection::ServiceDiscovery(listed) if *listed == service));
        if listed {
            Ok(service)
        } else {
            Err(self.app.denied(format!(
                "the service type {service} is not in the app manifest's AllowedConnections"
            )))
        }
    }

    /// The resolver discoveries query; never one on a private network (DNS never goes to the
    /// private side, docs/guardian.md).
    fn resolver(&self) -> Result<SocketAddr, ApiError> {
        let resolver = match self.discovery.resolver {
            Some(resolver) => resolver,
            None => {
                let text = std::fs::read_to_string(RESOLV_CONF).map_err(|error| {
                    ApiError::Io(format!("no DNS resolver: {RESOLV_CONF}: {error}"))
                })?;
                resolver_from_resolv_conf(&text).ok_or_else(|| {
                    ApiError::Io(format!(
                        "no DNS resolver: {RESOLV_CONF} lists no usable nameserver"
                    ))
                })?
            }
        };
        if let Some(on) = self.private_networks.network_of(resolver.ip()) {
            return Err(ApiError::Io(format!(
                "the DNS resolver {resolver} is on the private network {} ({}, {}); DNS never \
                 goes to a private network",
                on.id, on.link.interface, on.link.subnet
            )));
        }
        Ok(resolver)
    }

    fn discover_service(
        &mut self,
        service_type: &str,
        timeout_ms: u32,
    ) -> Result<Vec<ServiceInstance>, Failure> {
        let service = self.listed_service_type(service_type)?;
        let resolver = self.resolver()?;
        let local: SocketAddr = match resolver {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local)
            .and_then(|socket| socket.connect(resolver).map(|()| socket))
            .map_err(|error| io(format!("DNS socket to {resolver}: {error}")))?;
        let timeout = Duration::from_millis(u64::from(timeout_ms))
            .clamp(Duration::from_millis(1), MAX_DISCOVERY);
        let client = Client {
            socket,
            resolver,
            deadline: Instant::now() + timeout,
            stop: &self.app.stop,
        };
        let (instances, endpoints) = discover(&client, &service, self.discovery.allow_loopback)?;
        tracing::debug!(app = %self.app.name, %service, instances = instances.len(), "discovered");
        self.discovery.last.insert(service, endpoints);
        Ok(instances)
    }
}

impl api::servicediscovery::Host for HostState {
    fn discover(
        &mut self,
        service_type: String,
        timeout_ms: u32,
    ) -> HostResult<Vec<ServiceInstance>> {
        self.begin_blocking();
        let result = self.discover_service(&service_type, timeout_ms);
        self.yielded();
        match result {
            Ok(instances) => Ok(Ok(instances)),
            Err(Failure::Api(error)) => Ok(Err(error)),
            Err(Failure::Stopped) => Err(wasmtime::Error::new(Interrupt::Stopped)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
    use std::sync::Arc;
    use std::time::Instant;

    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};

    use super::{
        Client, Failure, MAX_DISCOVERY, framed, parse_dns_resolver, reachable_address,
        resolver_from_resolv_conf,
    };
    use crate::host::StopSignal;

    /// A client of `resolver` with the longest deadline, stopped by `stop`.
    fn client(resolver: SocketAddr, stop: &StopSignal) -> Client<'_> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        socket.connect(resolver).expect("connect");
        Client {
            socket,
            resolver,
            deadline: Instant::now() + MAX_DISCOVERY,
            stop,
        }
    }

    /// A resolver that takes the query and never answers holds a discovery for at most
    /// `MAX_DISCOVERY`; a stop request while it waits ends the wait (the instance then traps),
    /// as it ends a TLS handshake. The stop is requested only once the resolver has the query,
    /// so the client is waiting for the answer then.
    #[test]
    fn a_stop_interrupts_a_discovery_waiting_for_a_silent_resolver() {
        let resolver = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let resolver_address = resolver.local_addr().expect("address");
        let stop = Arc::new(StopSignal::default());
        let requester = stop.clone();
        let silent = std::thread::spawn(move || {
            let mut query = [0u8; 512];
            let received = resolver.recv(&mut query).expect("the query arrives");
            requester.request();
            received
        });
        let client = client(resolver_address, &stop);
        let name = Name::from_ascii("_sample-service._tcp.local.").expect("name");
        let outcome = client.query(&name, RecordType::PTR);
        assert!(
            silent.join().expect("resolver") > 12,
            "a DNS query was sent"
        );
        assert!(
            matches!(outcome, Err(Failure::Stopped)),
            "the stop ended the wait (not the deadline, not an answer)"
        );
    }

    /// The same over TCP (a truncated UDP answer asked again): the resolver accepts the
    /// connection, takes the framed query and never answers; the stop, requested once the
    /// query is there, ends the wait for the answer.
    #[test]
    fn a_stop_interrupts_a_discovery_waiting_for_a_tcp_answer() {
        let resolver = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let resolver_address = resolver.local_addr().expect("address");
        let stop = Arc::new(StopSignal::default());
        let requester = stop.clone();
        let silent = std::thread::spawn(move || {
            let (mut connection, _) = resolver.accept().expect("the client connects");
            let mut length = [0u8; 2];
            connection.read_exact(&mut length).expect("the length");
            let mut query = vec![0; usize::from(u16::from_be_bytes(length))];
            connection.read_exact(&mut query).expect("the query");
            requester.request();
            // The connection stays open (returned) until the client is done.
            (connection, Message::from_vec(&query).expect("a DNS query"))
        });
        let client = client(resolver_address, &stop);
        let name = Name::from_ascii("_sample-service._tcp.local.").expect("name");
        let mut query = Message::new(7, MessageType::Query, OpCode::Query);
        query.add_query(Query::query(name.clone(), RecordType::PTR));
        let bytes = query.to_vec().expect("encode");
        let outcome = client.query_tcp(7, &bytes, &name, RecordType::PTR);
        let (_connection, received) = silent.join().expect("resolver");
        assert_eq!(received.metadata.id, 7, "the framed query arrived whole");
        assert_eq!(received.queries, query.queries);
        assert!(
            matches!(outcome, Err(Failure::Stopped)),
            "the stop ended the wait (not the deadline, not an answer)"
        );
    }

    /// DNS over TCP frames a message by its length in two bytes (RFC 1035 4.2.2).
    #[test]
    fn a_tcp_query_is_framed_by_its_length() {
        for length in [0usize, 1, 12, 300, 16 * 1024] {
            let message = vec![0xA5; length];
            let framed = framed(&message).expect("frame");
            assert_eq!(framed.len(), length + 2);
            assert_eq!(
                usize::from(u16::from_be_bytes([framed[0], framed[1]])),
                length
            );
            assert_eq!(&framed[2..], &message[..]);
        }
        assert!(framed(&vec![0; 65536]).is_err(), "too long for the length");
    }

    #[test]
    fn a_configured_resolver_is_an_address_with_an_optional_port() {
        for (text, parsed) in [
            ("192.168.1.1", Some("192.168.1.1:53")),
            ("192.168.1.1:5353", Some("192.168.1.1:5353")),
            ("fd00::1", Some("[fd00::1]:53")),
            ("[fd00::1]:5353", Some("[fd00::1]:5353")),
            ("127.0.0.53", Some("127.0.0.53:53")),
            ("", None),
            ("resolver.lan", None),
            ("resolver.lan:53", None),
            ("192.168.1.1:", None),
            ("192.168.1.1:65536", None),
            ("192.168.1.1:0", None),
            ("192.168.1.256", None),
            (" 192.168.1.1", None),
            ("fd00::1:53:", None),
            ("0.0.0.0", None),
            ("::", None),
            ("255.255.255.255", None),
            ("224.0.0.251", None),
            ("ff02::fb", None),
        ] {
            let expected = parsed.map(|address| address.parse().expect("address"));
            assert_eq!(parse_dns_resolver(text).ok(), expected, "{text:?}");
        }
        let error = parse_dns_resolver("resolver.lan").expect_err("a name");
        assert!(
            error
                .to_string()
                .starts_with("\"resolver.lan\" is not a DNS resolver: give an IP address"),
            "{error}"
        );
    }

    #[test]
    fn the_first_nameserver_is_the_resolver() {
        let conf = "# generated\nsearch lan\nnameserver fe80::1%eth0\nnameserver 192.168.1.1\n\
                    nameserver 8.8.8.8\n";
        assert_eq!(
            resolver_from_resolv_conf(conf),
            Some("192.168.1.1:53".parse().expect("address"))
        );
        assert_eq!(resolver_from_resolv_conf("search lan\n"), None);
        assert_eq!(resolver_from_resolv_conf("nameserver\n"), None);
    }

    #[test]
    fn discovered_addresses_may_be_lan_but_not_the_device_itself() {
        for (address, reachable) in [
            ("192.168.1.20", true),
            ("10.0.0.7", true),
            ("169.254.3.4", true),
            ("fe80::1", true),
            ("fd00::5", true),
            ("8.8.8.8", true),
            ("127.0.0.1", false),
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("::1", false),
            ("::", false),
            ("::ffff:127.0.0.1", false),
            ("255.255.255.255", false),
            ("224.0.0.251", false),
            ("ff02::fb", false),
        ] {
            let parsed = address.parse().expect("address");
            assert_eq!(reachable_address(parsed, false), reachable, "{address}");
        }
        assert!(reachable_address(
            "127.0.0.1".parse().expect("address"),
            true
        ));
        assert!(!reachable_address(
            "224.0.0.251".parse().expect("address"),
            true
        ));
    }
}
