//! Networking through the host. Every destination is checked against `AllowedConnections` as
//! the app wrote it (a host name and its address are different entries: `localhost` is not
//! `127.0.0.1`), before any name resolution; then every address a listed name resolves to is
//! checked before it is connected to: loopback, link-local, private, shared (CGN), unspecified
//! and broadcast addresses are refused unless the manifest lists that address itself (DNS
//! rebinding protection: a listed public name cannot lead into the device or its LAN). Servers
//! bind only `AllowedTcpServerPorts` / `AllowedUdpServerPorts`. TLS connections authenticate
//! with the device certificate through a rustls configuration the device lends
//! (`DeviceServices::tls_client_config`); the app never sees the key. A stop request interrupts
//! a name lookup, a TCP connect and a TLS handshake (the instance traps), however slow the
//! resolver or the server ([`crate::connect`]).
//!
//! The board's private networks ([`crate::private_net`]) come on top, whatever led to an
//! address (a listed address, a name, a discovery): an address on a private subnet is reachable
//! only by the app granted that network that lists the address itself, over TCP, through a
//! socket bound to the network's interface; a connection to any other address that the routing
//! table would send out a private interface is closed; a private peer's connection to an app's
//! server, or datagram, reaches only such an app too.

use std::collections::BTreeMap;
use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

use crate::connect::{self, Interrupted, LookupRefused};
use crate::host::{HostResult, HostState, STOP_POLL, api};
use crate::limits::Interrupt;
use std::net::{Ipv4Addr, Ipv6Addr};

use api::types::Error as ApiError;

/// Longest connect attempt to one address (a stop request interrupts it).
const MAX_CONNECT: Duration = Duration::from_secs(10);
/// Largest single receive.
const MAX_RECEIVE: u32 = 64 * 1024;
/// Longest host string accepted (a DNS name is at most 253 characters).
const MAX_HOST_CHARS: usize = 253;

#[derive(Debug)]
pub(crate) enum Socket {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Listener(TcpListener),
    Udp(UdpSocket),
}

/// An instance's sockets, by handle.
#[derive(Debug)]
pub(crate) struct Sockets {
    open: BTreeMap<u32, Socket>,
    next: u32,
    max: usize,
    pub(crate) bind_address: IpAddr,
}

impl Sockets {
    pub(crate) fn new(max: usize, bind_address: IpAddr) -> Self {
        Self {
            open: BTreeMap::new(),
            next: 1,
            max,
            bind_address,
        }
    }

    fn insert(&mut self, socket: Socket) -> Result<u32, ApiError> {
        if self.open.len() >= self.max {
            return Err(ApiError::LimitExceeded(format!(
                "at most {} open sockets per app",
                self.max
            )));
        }
        let handle = self.next;
        self.next = self.next.wrapping_add(1).max(1);
        self.open.insert(handle, socket);
        Ok(handle)
    }

    fn get(&mut self, handle: u32) -> Result<&mut Socket, ApiError> {
        self.open
            .get_mut(&handle)
            .ok_or_else(|| ApiError::NoSuchResource(format!("socket {handle}")))
    }
}

/// Why [`HostState::host_allowed`] refused a host.
enum HostRefusal {
    /// Not a host name or address at all.
    Malformed(ApiError),
    /// Well formed, but `AllowedConnections` does not list it (the message says so).
    NotListed(String),
}

fn io_error(what: &str, error: &std::io::Error) -> ApiError {
    match error.kind() {
        IoErrorKind::TimedOut | IoErrorKind::WouldBlock => ApiError::TimedOut,
        _ => ApiError::Io(format!("{what}: {error}")),
    }
}

fn millis(ms: u32) -> Duration {
    Duration::from_millis(u64::from(ms))
}

impl HostState {
    /// Where the app may reach `host:port` (`tcp`: over TCP, else UDP): a host
    /// `AllowedConnections` lists exactly as written, resolved ([`HostState::resolve`]), or an
    /// address or host name the last discovery of a listed service type of that protocol
    /// returned with that port ([`crate::discovery::Discovery::reachable`]), never resolved
    /// again.
    /// A stop request during the name lookup traps.
    fn destination(&self, host: &str, port: u16, tcp: bool) -> HostResult<Vec<SocketAddr>> {
        match self.host_allowed(host) {
            Ok(()) => self.resolve(host, port),
            Err(HostRefusal::Malformed(error)) => Ok(Err(error)),
            Err(HostRefusal::NotListed(why)) => {
                Ok(match self.discovery.reachable(host, port, tcp) {
                    Ok(addresses) => Ok(addresses),
                    Err(discovered) => Err(self.app.denied(discovered.unwrap_or(why))),
                })
            }
        }
    }

    /// Checks `host` against `AllowedConnections` exactly as written.
    fn host_allowed(&self, host: &str) -> Result<(), HostRefusal> {
        let well_formed = !host.is_empty()
            && host.len() <= MAX_HOST_CHARS
            && host
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b':'));
        if !well_formed {
            return Err(HostRefusal::Malformed(ApiError::InvalidArgument(format!(
                "{host:?} is not a host name or an IP address"
            ))));
        }
        let allowed = self
            .app
            .capabilities
            .allowed_connections()
            .iter()
            .any(|entry| entry.allows_host(host));
        if allowed {
            Ok(())
        } else {
            Err(HostRefusal::NotListed(format!(
                "{host} is not in the app manifest's AllowedConnections"
            )))
        }
    }

    /// Resolves an allowed host: an address as is (the manifest lists it), a name through the
    /// system resolver, keeping only the addresses an app may reach through a name
    /// ([`internal_range`]): the ones returned are the ones connected to. The lookup runs on
    /// the app's lookup thread ([`connect::LookupSlot`]): a stop request traps at once.
    fn resolve(&self, host: &str, port: u16) -> HostResult<Vec<SocketAddr>> {
        if let Ok(address) = host.parse::<IpAddr>() {
            return Ok(Ok(vec![SocketAddr::new(address, port)]));
        }
        let name = host.to_owned();
        let lookup = self.app.lookup.run(&self.app.stop, move || {
            (name.as_str(), port)
                .to_socket_addrs()
                .map(Iterator::collect::<Vec<SocketAddr>>)
        });
        let resolved = match lookup {
            Ok(Ok(resolved)) => resolved,
            Ok(Err(error)) => {
                return Ok(Err(ApiError::Io(format!("cannot resolve {host}: {error}"))));
            }
            Err(LookupRefused::Stopped) => {
                return Err(wasmtime::Error::new(Interrupt::Stopped));
            }
            Err(LookupRefused::Busy) => {
                return Ok(Err(ApiError::LimitExceeded(format!(
                    "cannot resolve {host}: an earlier name lookup of this app, abandoned by a \
                     stop, has not returned yet"
                ))));
            }
            Err(LookupRefused::Spawn(error)) => {
                return Ok(Err(ApiError::Io(format!("cannot resolve {host}: {error}"))));
            }
        };
        Ok(self.keep_reachable(host, resolved))
    }

    /// The addresses `host` resolved to that an app may reach through a name: an internal
    /// one ([`internal_range`]) only if the manifest lists that address itself.
    fn keep_reachable(
        &self,
        host: &str,
        resolved: Vec<SocketAddr>,
    ) -> Result<Vec<SocketAddr>, ApiError> {
        if resolved.is_empty() {
            return Err(ApiError::Io(format!("{host} has no addresses")));
        }
        let mut refused = None;
        let addresses: Vec<SocketAddr> = resolved
            .into_iter()
            .filter(|address| match internal_range(address.ip()) {
                None => true,
                Some(_) if self.address_listed(address.ip()) => true,
                Some(range) => {
                    refused.get_or_insert((address.ip(), range));
                    false
                }
            })
            .collect();
        match (addresses.is_empty(), refused) {
            (true, Some((address, range))) => Err(self.app.denied(format!(
                "{host} resolves to {address}, a {range} address, which the app manifest's \
                 AllowedConnections does not list itself"
            ))),
            (true, None) => Err(ApiError::Io(format!("{host} has no addresses"))),
            (false, _) => Ok(addresses),
        }
    }

    /// Whether `AllowedConnections` lists `address` itself.
    fn address_listed(&self, address: IpAddr) -> bool {
        let text = address.to_string();
        self.app
            .capabilities
            .allowed_connections()
            .iter()
            .any(|entry| entry.allows_host(&text))
    }

    /// The private network rules on `addresses` ([`HostState::destination`]'s): each address
    /// with the interface its connection must be bound to (`None`: not on a private network);
    /// the addresses the app may not reach on a private network are dropped, and when none is
    /// left the call is refused (event `AccessDenied`).
    fn private_route(
        &self,
        addresses: Vec<SocketAddr>,
    ) -> Result<Vec<(SocketAddr, Option<String>)>, ApiError> {
        let mut refused = None;
        let routes: Vec<(SocketAddr, Option<String>)> = addresses
            .into_iter()
            .filter_map(|address| {
                match self
                    .private_networks
                    .permits(&self.app.capabilities, address.ip())
                {
                    Ok(device) => Some((address, device.map(str::to_owned))),
                    Err(why) => {
                        refused.get_or_insert(why);
                        None
                    }
                }
            })
            .collect();
        match (routes.is_empty(), refused) {
            (true, Some(why)) => Err(self.app.denied(why)),
            _ => Ok(routes),
        }
    }

    /// Whether an accepted connection's or a datagram's `peer` may reach this app (a peer on
    /// a private network only if the app could reach it, [`HostState::private_route`]);
    /// a refusal is recorded as a throttled `AccessDenied`.
    fn private_peer_allowed(&self, peer: SocketAddr) -> bool {
        match self
            .private_networks
            .permits(&self.app.capabilities, peer.ip())
        {
            Ok(_) => true,
            Err(why) => {
                self.app
                    .denied(format!("refused a packet from {peer}: {why}"));
                false
            }
        }
    }

    /// Connects to the first of `routes` ([`HostState::private_route`]) that answers, each
    /// within the timeout ([`connect::connect_tcp`]: a stop request traps at once), bound to
    /// its private interface if it has one. A connection to an address on no private network
    /// whose local address is on one (the routing table sent it out a private interface) is
    /// closed and refused.
    fn connect_stream(
        &self,
        host: &str,
        port: u16,
        routes: Vec<(SocketAddr, Option<String>)>,
        timeout_ms: u32,
    ) -> HostResult<TcpStream> {
        let timeout = millis(timeout_ms).clamp(Duration::from_millis(1), MAX_CONNECT);
        let mut last = ApiError::Io(format!("cannot connect to {host}:{port}"));
        for (address, device) in routes {
            match connect::connect_tcp(
                address,
                Instant::now() + timeout,
                &self.app.stop,
                device.as_deref(),
            ) {
                Ok(stream) if device.is_none() => {
                    let local = stream.local_addr().map(|local| local.ip());
                    match local
                        .as_ref()
                        .ok()
                        .and_then(|local| self.private_networks.network_of(*local))
                    {
                        None if local.is_ok() => return Ok(Ok(stream)),
                        Some(on) => {
                            last = self.app.denied(format!(
                                "the route to {address} leaves through the private network {}'s \
                                 interface {}; the device's routing sends only {} there",
                                on.id, on.link.interface, on.link.subnet
                            ));
                        }
                        None => {
                            last =
                                ApiError::Io(format!("connect to {host}:{port}: no local address"))
                        }
                    }
                }
                Ok(stream) => return Ok(Ok(stream)),
                Err(Interrupted::Stopped) => return Err(wasmtime::Error::new(Interrupt::Stopped)),
                Err(Interrupted::TimedOut) => last = ApiError::TimedOut,
                Err(Interrupted::Failed(error)) => {
                    last = io_error(&format!("connect to {host}:{port}"), &error);
                }
            }
        }
        Ok(Err(last))
    }

    fn connect(&mut self, host: &str, port: u16, timeout_ms: u32) -> HostResult<u32> {
        let addresses = match self.destination(host, port, true)? {
            Ok(addresses) => addresses,
            Err(error) => return Ok(Err(error)),
        };
        let addresses = match self.private_route(addresses) {
            Ok(routes) => routes,
            Err(error) => return Ok(Err(error)),
        };
        let stream = match self.connect_stream(host, port, addresses, timeout_ms)? {
            Ok(stream) => stream,
            Err(error) => return Ok(Err(error)),
        };
        Ok(self.sockets.insert(Socket::Tcp(stream)))
    }

    /// Connects with TLS. The handshake waits for the server in steps of [`STOP_POLL`], so a
    /// stop request interrupts it (the instance traps) however slow the server is.
    fn connect_tls(&mut self, host: &str, port: u16, timeout_ms: u32) -> HostResult<u32> {
        let addresses = match self.destination(host, port, true)? {
            Ok(addresses) => addresses,
            Err(error) => return Ok(Err(error)),
        };
        let addresses = match self.private_route(addresses) {
            Ok(routes) => routes,
            Err(error) => return Ok(Err(error)),
        };
        let (config, name) = match self.tls_setup(host) {
            Ok(setup) => setup,
            Err(error) => return Ok(Err(error)),
        };
        let mut stream = match self.connect_stream(host, port, addresses, timeout_ms)? {
            Ok(stream) => stream,
            Err(error) => return Ok(Err(error)),
        };
        let timeout = millis(timeout_ms).clamp(Duration::from_millis(1), MAX_CONNECT);
        let deadline = Instant::now() + timeout;
        let handshake_error =
            |error: &std::io::Error| io_error(&format!("TLS handshake with {host}:{port}"), error);
        if let Err(error) = stream.set_write_timeout(Some(timeout)) {
            return Ok(Err(handshake_error(&error)));
        }
        let mut connection = match rustls::ClientConnection::new(config, name) {
            Ok(connection) => connection,
            Err(error) => {
                return Ok(Err(ApiError::Io(format!(
                    "TLS with {host}:{port}: {error}"
                ))));
            }
        };
        while connection.is_handshaking() {
            self.check_stop()?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Ok(Err(ApiError::TimedOut));
            }
            let step = remaining.min(STOP_POLL).max(Duration::from_millis(1));
            if let Err(error) = stream.set_read_timeout(Some(step)) {
                return Ok(Err(handshake_error(&error)));
            }
            match connection.complete_io(&mut stream) {
                Ok(_) => {}
                // Nothing from the server within this step: check for a stop, wait again.
                Err(error)
                    if matches!(
                        error.kind(),
                        IoErrorKind::WouldBlock | IoErrorKind::TimedOut
                    ) => {}
                Err(error) => return Ok(Err(handshake_error(&error))),
            }
        }
        if let Err(error) = stream.set_write_timeout(Some(MAX_CONNECT)) {
            return Ok(Err(handshake_error(&error)));
        }
        Ok(self
            .sockets
            .insert(Socket::Tls(Box::new(rustls::StreamOwned::new(
                connection, stream,
            )))))
    }

    /// The checks before a TLS connection (after [`HostState::destination`]):
    /// DeviceAuthentication for a tenant, a current device certificate, a valid server name.
    fn tls_setup(
        &self,
        host: &str,
    ) -> Result<(std::sync::Arc<rustls::ClientConfig>, ServerName<'static>), ApiError> {
        let Some(tenant) = self.app.capabilities.device_authentication() else {
            return Err(self
                .app
                .denied("the app manifest does not grant DeviceAuthentication".to_owned()));
        };
        let Some(config) = self.services.tls_client_config(self.app.id, tenant) else {
            return Err(ApiError::NoSuchResource(
                "no current device certificate (the device has not attested yet)".to_owned(),
            ));
        };
        let name = ServerName::try_from(host.to_owned())
            .map_err(|error| ApiError::InvalidArgument(format!("{host}: {error}")))?;
        Ok((config, name))
    }

    fn receive(
        &mut self,
        handle: u32,
        max_len: u32,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, ApiError>> {
        self.begin_blocking();
        let deadline = Instant::now() + millis(timeout_ms);
        let mut buffer = vec![0; max_len.min(MAX_RECEIVE) as usize];
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let step = remaining.min(STOP_POLL).max(Duration::from_millis(1));
            let result = match self.sockets.get(handle) {
                Ok(Socket::Tcp(stream)) => stream
                    .set_read_timeout(Some(step))
                    .and_then(|()| stream.read(&mut buffer)),
                Ok(Socket::Tls(stream)) => stream
                    .sock
                    .set_read_timeout(Some(step))
                    .and_then(|()| stream.read(&mut buffer)),
                Ok(_) => {
                    return Ok(Err(ApiError::InvalidArgument(format!(
                        "socket {handle} is not a connected stream"
                    ))));
                }
                Err(error) => return Ok(Err(error)),
            };
            self.yielded();
            match result {
                Ok(count) => {
                    buffer.truncate(count);
                    return Ok(Ok(buffer));
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        IoErrorKind::WouldBlock | IoErrorKind::TimedOut
                    ) =>
                {
                    if remaining.is_zero() {
                        return Ok(Err(ApiError::TimedOut));
                    }
                    self.check_stop()?;
                }
                Err(error) => return Ok(Err(io_error("receive", &error))),
            }
        }
    }
}

impl api::networking::Host for HostState {
    fn tcp_connect(&mut self, host: String, port: u16, timeout_ms: u32) -> HostResult<u32> {
        self.begin_blocking();
        let result = self.connect(&host, port, timeout_ms);
        self.yielded();
        result
    }

    fn tls_connect(&mut self, host: String, port: u16, timeout_ms: u32) -> HostResult<u32> {
        self.begin_blocking();
        let result = self.connect_tls(&host, port, timeout_ms);
        self.yielded();
        result
    }

    fn send(&mut self, socket: u32, data: Vec<u8>) -> HostResult<u32> {
        let result = match self.sockets.get(socket) {
            Ok(Socket::Tcp(stream)) => stream
                .write(&data)
                .map(|count| u32::try_from(count).unwrap_or(u32::MAX))
                .map_err(|error| io_error("send", &error)),
            Ok(Socket::Tls(stream)) => stream
                .write(&data)
                .and_then(|count| stream.flush().map(|()| count))
                .map(|count| u32::try_from(count).unwrap_or(u32::MAX))
                .map_err(|error| io_error("send", &error)),
            Ok(_) => Err(ApiError::InvalidArgument(format!(
                "socket {socket} is not a connected stream"
            ))),
            Err(error) => Err(error),
        };
        Ok(result)
    }

    fn receive(&mut self, socket: u32, max_len: u32, timeout_ms: u32) -> HostResult<Vec<u8>> {
        HostState::receive(self, socket, max_len, timeout_ms)
    }

    fn tcp_listen(&mut self, port: u16) -> HostResult<u32> {
        if !self.app.capabilities.tcp_server_ports().contains(&port) {
            return Ok(Err(self.app.denied(format!(
                "TCP port {port} is not in the app manifest's AllowedTcpServerPorts"
            ))));
        }
        let result = TcpListener::bind(SocketAddr::new(self.sockets.bind_address, port))
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .map_err(|error| io_error(&format!("listen on TCP port {port}"), &error))
            .and_then(|listener| self.sockets.insert(Socket::Listener(listener)));
        Ok(result)
    }

    fn tcp_accept(&mut self, listener: u32, timeout_ms: u32) -> HostResult<u32> {
        self.begin_blocking();
        let deadline = Instant::now() + millis(timeout_ms);
        loop {
            let result = match self.sockets.get(listener) {
                Ok(Socket::Listener(listener)) => listener.accept(),
                Ok(_) => {
                    return Ok(Err(ApiError::InvalidArgument(format!(
                        "socket {listener} is not a listener"
                    ))));
                }
                Err(error) => return Ok(Err(error)),
            };
            match result {
                Ok((_, peer)) if !self.private_peer_allowed(peer) => {
                    // Dropped (closed) unseen; keep waiting for an allowed client.
                    if deadline <= Instant::now() {
                        self.yielded();
                        return Ok(Err(ApiError::TimedOut));
                    }
                    self.check_stop()?;
                }
                Ok((stream, _)) => {
                    self.yielded();
                    let result = stream
                        .set_nonblocking(false)
                        .map_err(|error| io_error("accept", &error))
                        .and_then(|()| self.sockets.insert(Socket::Tcp(stream)));
                    return Ok(result);
                }
                Err(error) if error.kind() == IoErrorKind::WouldBlock => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        self.yielded();
                        return Ok(Err(ApiError::TimedOut));
                    }
                    self.interruptible_sleep(remaining.min(Duration::from_millis(5)))?;
                }
                Err(error) => return Ok(Err(io_error("accept", &error))),
            }
        }
    }

    fn udp_bind(&mut self, port: u16) -> HostResult<u32> {
        let capabilities = &self.app.capabilities;
        let allowed = if port == 0 {
            !capabilities.allowed_connections().is_empty()
        } else {
            capabilities.udp_server_ports().contains(&port)
        };
        if !allowed {
            let what = if port == 0 {
                "an ephemeral UDP port needs AllowedConnections".to_owned()
            } else {
                format!("UDP port {port} is not in the app manifest's AllowedUdpServerPorts")
            };
            return Ok(Err(self.app.denied(what)));
        }
        let result = UdpSocket::bind(SocketAddr::new(self.sockets.bind_address, port))
            .map_err(|error| io_error(&format!("bind UDP port {port}"), &error))
            .and_then(|socket| self.sockets.insert(Socket::Udp(socket)));
        Ok(result)
    }

    fn udp_send_to(
        &mut self,
        socket: u32,
        host: String,
        port: u16,
        data: Vec<u8>,
    ) -> HostResult<u32> {
        let addresses = match self.destination(&host, port, false)? {
            Ok(addresses) => addresses,
            Err(error) => return Ok(Err(error)),
        };
        // UDP is not carried on a private network (an unconnected socket cannot be bound to
        // one interface per destination): only the app's TCP connections reach it.
        let addresses = match self.private_route(addresses) {
            Ok(routes) => {
                if let Some((address, _)) = routes.iter().find(|(_, device)| device.is_some()) {
                    return Ok(Err(self.app.denied(format!(
                        "{address} is on a private network, which carries TCP only"
                    ))));
                }
                routes
                    .into_iter()
                    .map(|(address, _)| address)
                    .collect::<Vec<_>>()
            }
            Err(error) => return Ok(Err(error)),
        };
        let result = match self.sockets.get(socket) {
            Ok(Socket::Udp(udp)) => addresses
                .first()
                .ok_or_else(|| ApiError::Io(format!("{host} has no addresses")))
                .and_then(|address| {
                    udp.send_to(&data, address)
                        .map(|count| u32::try_from(count).unwrap_or(u32::MAX))
                        .map_err(|error| io_error("send", &error))
                }),
            Ok(_) => Err(ApiError::InvalidArgument(format!(
                "socket {socket} is not a UDP socket"
            ))),
            Err(error) => Err(error),
        };
        Ok(result)
    }

    fn udp_receive(
        &mut self,
        socket: u32,
        max_len: u32,
        timeout_ms: u32,
    ) -> HostResult<(Vec<u8>, String)> {
        self.begin_blocking();
        let deadline = Instant::now() + millis(timeout_ms);
        let mut buffer = vec![0; max_len.min(MAX_RECEIVE) as usize];
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let step = remaining.min(STOP_POLL).max(Duration::from_millis(1));
            let result = match self.sockets.get(socket) {
                Ok(Socket::Udp(udp)) => udp
                    .set_read_timeout(Some(step))
                    .and_then(|()| udp.recv_from(&mut buffer)),
                Ok(_) => {
                    return Ok(Err(ApiError::InvalidArgument(format!(
                        "socket {socket} is not a UDP socket"
                    ))));
                }
                Err(error) => return Ok(Err(error)),
            };
            self.yielded();
            match result {
                Ok((_, from)) if !self.private_peer_allowed(from) => {
                    // Dropped unseen; keep waiting.
                    if remaining.is_zero() {
                        return Ok(Err(ApiError::TimedOut));
                    }
                    self.check_stop()?;
                }
                Ok((count, from)) => {
                    buffer.truncate(count);
                    return Ok(Ok((buffer, from.to_string())));
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        IoErrorKind::WouldBlock | IoErrorKind::TimedOut
                    ) =>
                {
                    if remaining.is_zero() {
                        return Ok(Err(ApiError::TimedOut));
                    }
                    self.check_stop()?;
                }
                Err(error) => return Ok(Err(io_error("receive", &error))),
            }
        }
    }

    fn close(&mut self, socket: u32) -> wasmtime::Result<()> {
        self.sockets.open.remove(&socket);
        Ok(())
    }
}

/// The kind of internal address `address` is, if it is one an app may reach only by listing
/// the address itself: loopback, unspecified, private (RFC 1918, IPv6 unique local), link-local,
/// shared address space (RFC 6598, carrier-grade NAT) and broadcast. IPv4-mapped and
/// IPv4-compatible IPv6 addresses are judged by their IPv4 address.
pub(crate) fn internal_range(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4() {
                // `::` and `::1` map to 0.0.0.0 / 0.0.0.1 here; judge them as IPv6 below.
                if !v6.is_unspecified() && !v6.is_loopback() {
                    return internal_v4(v4);
                }
            }
            internal_v6(v6)
        }
    }
}

fn internal_v4(v4: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = v4.octets();
    if v4.is_loopback() {
        Some("loopback")
    } else if v4.is_unspecified() || a == 0 {
        Some("unspecified (\"this network\")")
    } else if v4.is_private() {
        Some("private")
    } else if v4.is_link_local() {
        Some("link-local")
    } else if a == 100 && (b & 0xc0) == 64 {
        Some("shared (carrier-grade NAT)")
    } else if v4.is_broadcast() {
        Some("broadcast")
    } else {
        None
    }
}

fn internal_v6(v6: Ipv6Addr) -> Option<&'static str> {
    let first = v6.segments()[0];
    if v6.is_loopback() {
        Some("loopback")
    } else if v6.is_unspecified() {
        Some("unspecified")
    } else if (first & 0xfe00) == 0xfc00 {
        Some("private (unique local)")
    } else if (first & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::internal_range;

    #[test]
    fn internal_addresses_are_recognised() {
        for (address, internal) in [
            ("127.0.0.1", true),
            ("127.255.0.9", true),
            ("0.0.0.0", true),
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("172.31.255.255", true),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("100.64.0.1", true),
            ("100.127.255.254", true),
            ("255.255.255.255", true),
            ("::1", true),
            ("::", true),
            ("fd00::1", true),
            ("fc00::1", true),
            ("fe80::1", true),
            ("::ffff:127.0.0.1", true),
            ("::ffff:10.0.0.1", true),
            ("::ffff:169.254.169.254", true),
            ("8.8.8.8", false),
            ("172.32.0.1", false),
            ("100.128.0.1", false),
            ("192.169.0.1", false),
            ("2001:db8::1", false),
            ("2606:4700::1111", false),
            ("::ffff:8.8.8.8", false),
        ] {
            let parsed = address.parse().expect("address");
            assert_eq!(
                internal_range(parsed).is_some(),
                internal,
                "{address}: {:?}",
                internal_range(parsed)
            );
        }
    }
}
