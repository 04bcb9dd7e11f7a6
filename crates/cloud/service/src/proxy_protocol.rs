//! The PROXY protocol, version 2 (HAProxy's binary header), on the HTTPS listener: how a TCP
//! load balancer that passes TLS through (so devices' mutual TLS ends at the service) tells the
//! service the client's address (docs/service/scale-out.md).
//!
//! Off unless `proxy_protocol = true` in `ferro-service.toml`. When on:
//!
//! - A connection from a **trusted** balancer (`trusted_proxies`) must begin with a version 2
//!   header, else it is refused. `PROXY` headers name the client (its address then keys the
//!   attestation limiter, the login limits and the audit log, as the TCP peer does without a
//!   balancer); `LOCAL` ones (the balancer's own health checks) and ones without an IP address
//!   keep the balancer's address.
//! - A connection from any **other** peer that begins with the header's signature is refused:
//!   nobody but a trusted balancer may say where a connection comes from. Other connections are
//!   keyed on their TCP peer as usual.
//!
//! Parsing is the `ppp` crate's; this module only reads the bytes, bounds them and decides.

use crate::client_addr::TrustedProxies;
use ppp::v2::{Addresses, Command, PROTOCOL_PREFIX};
use std::net::SocketAddr;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The fixed part of a version 2 header: signature, version and command, family and protocol,
/// length of the rest.
const FIXED_LEN: usize = 16;

/// Most bytes after the fixed part: addresses (at most 216, for Unix sockets) and TLVs. HAProxy
/// sends a few dozen; a longer header is refused rather than buffered.
pub const MAX_VARIABLE_LEN: usize = 1024;

/// Why a connection was refused before TLS.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// An untrusted peer sent a PROXY header.
    #[error(
        "{0} sent a PROXY protocol header but is not in trusted_proxies; refusing the connection"
    )]
    Untrusted(SocketAddr),
    /// A trusted balancer's connection did not begin with a version 2 header.
    #[error(
        "{0} is in trusted_proxies but its connection does not begin with a PROXY protocol \
         version 2 header (configure the balancer with `send-proxy-v2`)"
    )]
    Missing(SocketAddr),
    /// The header is malformed or too long.
    #[error("malformed PROXY protocol header from {0}: {1}")]
    Malformed(SocketAddr, String),
    /// Reading failed.
    #[error("reading the PROXY protocol header from {0}: {1}")]
    Io(SocketAddr, std::io::Error),
}

/// The listener's PROXY protocol policy (see the module documentation).
#[derive(Clone, Debug)]
pub struct ProxyProtocol {
    trusted: TrustedProxies,
}

impl ProxyProtocol {
    /// Accept headers from `trusted` only.
    pub fn new(trusted: TrustedProxies) -> ProxyProtocol {
        ProxyProtocol { trusted }
    }

    /// The client's address of a connection from `peer`, reading the header off `tcp` when the
    /// peer is a trusted balancer (what follows it, the TLS handshake, stays unread).
    pub async fn accept(
        &self,
        tcp: &mut TcpStream,
        peer: SocketAddr,
    ) -> Result<SocketAddr, ProxyError> {
        if !self.trusted.contains(peer.ip()) {
            // A TLS ClientHello begins with 0x16, the signature with 0x0D: one byte tells.
            let mut first = [0u8; 1];
            return match tcp.peek(&mut first).await {
                Ok(1) if first[0] == PROTOCOL_PREFIX[0] => Err(ProxyError::Untrusted(peer)),
                _ => Ok(peer),
            };
        }
        let mut fixed = [0u8; FIXED_LEN];
        tcp.read_exact(&mut fixed).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                ProxyError::Missing(peer)
            } else {
                ProxyError::Io(peer, e)
            }
        })?;
        if fixed[..PROTOCOL_PREFIX.len()] != *PROTOCOL_PREFIX {
            return Err(ProxyError::Missing(peer));
        }
        let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
        if len > MAX_VARIABLE_LEN {
            return Err(ProxyError::Malformed(
                peer,
                format!("{len} bytes of addresses and TLVs (at most {MAX_VARIABLE_LEN})"),
            ));
        }
        let mut header = Vec::with_capacity(FIXED_LEN + len);
        header.extend_from_slice(&fixed);
        header.resize(FIXED_LEN + len, 0);
        tcp.read_exact(&mut header[FIXED_LEN..])
            .await
            .map_err(|e| ProxyError::Io(peer, e))?;
        client_of(&header, peer)
    }
}

/// The client a complete header names (`peer` for `LOCAL` and for headers without an IP
/// address, as the protocol specifies).
fn client_of(header: &[u8], peer: SocketAddr) -> Result<SocketAddr, ProxyError> {
    let parsed = ppp::v2::Header::try_from(header)
        .map_err(|e| ProxyError::Malformed(peer, e.to_string()))?;
    Ok(match (parsed.command, parsed.addresses) {
        (Command::Proxy, Addresses::IPv4(a)) => SocketAddr::from((a.source_address, a.source_port)),
        (Command::Proxy, Addresses::IPv6(a)) => SocketAddr::from((a.source_address, a.source_port)),
        (Command::Local, _) | (Command::Proxy, Addresses::Unspecified | Addresses::Unix(_)) => peer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppp::v2::{Builder, Protocol, Version};

    fn header(command: Command, src: &str, dst: &str) -> Vec<u8> {
        let src: SocketAddr = src.parse().unwrap();
        let dst: SocketAddr = dst.parse().unwrap();
        Builder::with_addresses(Version::Two | command, Protocol::Stream, (src, dst))
            .build()
            .unwrap()
    }

    #[test]
    fn proxy_names_the_client_and_local_keeps_the_balancer() {
        let balancer: SocketAddr = "10.0.0.2:40000".parse().unwrap();
        let h = header(Command::Proxy, "203.0.113.5:5555", "10.0.0.9:4443");
        assert_eq!(
            client_of(&h, balancer).unwrap(),
            "203.0.113.5:5555".parse().unwrap()
        );
        let h = header(Command::Proxy, "[2001:db8::7]:5555", "[2001:db8::1]:4443");
        assert_eq!(
            client_of(&h, balancer).unwrap(),
            "[2001:db8::7]:5555".parse().unwrap()
        );
        let local = Builder::new(Version::Two | Command::Local, 0)
            .build()
            .unwrap();
        assert_eq!(client_of(&local, balancer).unwrap(), balancer);
    }

    #[test]
    fn truncated_and_garbled_headers_are_refused_by_name() {
        let balancer: SocketAddr = "10.0.0.2:40000".parse().unwrap();
        let h = header(Command::Proxy, "203.0.113.5:5555", "10.0.0.9:4443");
        // Claims 12 address bytes, carries 4.
        let short = &h[..FIXED_LEN + 4];
        let e = client_of(short, balancer).unwrap_err();
        assert!(matches!(e, ProxyError::Malformed(..)), "{e}");
        // Version 1 in the version nibble.
        let mut bad = h.clone();
        bad[12] = 0x11;
        let e = client_of(&bad, balancer).unwrap_err();
        assert!(
            e.to_string()
                .contains("malformed PROXY protocol header from 10.0.0.2"),
            "{e}"
        );
    }
}
