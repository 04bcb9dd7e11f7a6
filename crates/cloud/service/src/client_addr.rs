//! The client's address, as the login limits, the attestation limiter and the audit log see it
//! (docs/service/README.md, "Behind a reverse proxy").
//!
//! By default it is the TCP peer's address and every forwarding header is ignored. Behind a
//! reverse proxy (HAProxy, nginx) every client shares the proxy's address, so the operator lists
//! the proxies in `trusted_proxies` (`ferro-service.toml`, CIDR ranges). Only when the peer is in
//! that list is `X-Forwarded-For` read: its entries, all header lines in order, are walked from
//! the right (the entry the nearest proxy appended) and the first that is not itself a trusted
//! proxy is the client (the usual rule; RFC 7239 section 8 explains why the leftmost, which the
//! client writes, cannot be believed). Entries left of it are never looked at. `Forwarded` is
//! not read.
//!
//! Fail closed: a trusted peer that sends no `X-Forwarded-For`, or an entry that is not an IP
//! address between the right end and the client, is keyed on the proxy's own address (never on
//! anything the request chose), with one debug line per request.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// The forwarding header read from trusted proxies.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// The peers whose `X-Forwarded-For` is believed (`trusted_proxies`); empty by default: no
/// header is believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parse the configured entries: CIDR ranges (`10.0.0.0/8`, `2001:db8::/32`) or single
    /// addresses (`127.0.0.1`, one host). Names the first entry that is neither.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, String> {
        entries
            .iter()
            .map(|e| {
                let e = e.as_ref().trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        format!(
                            "trusted_proxies: {e:?} is not a CIDR range or IP address (write \
                             for example \"10.0.0.0/8\", \"2001:db8::/32\" or \"127.0.0.1\")"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `addr` (an IPv4-mapped IPv6 address counts as its IPv4 address) is a trusted
    /// proxy.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.0.iter().any(|net| net.contains(&addr))
    }
}

/// The client's address of a request from `peer` with `headers` ([module docs](self)).
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    match forwarded_client(headers, trusted) {
        Ok(client) => client,
        Err(why) => {
            tracing::debug!(proxy = %peer, why, "keying the request on the trusted proxy's address");
            peer
        }
    }
}

/// The rightmost `X-Forwarded-For` entry that is not a trusted proxy (the leftmost entry when
/// all are), or why there is none to believe.
fn forwarded_client(headers: &HeaderMap, trusted: &TrustedProxies) -> Result<IpAddr, &'static str> {
    let mut nearest_trusted = None;
    for line in headers.get_all(FORWARDED_FOR).iter().rev() {
        let line = line
            .to_str()
            .map_err(|_| "an X-Forwarded-For line is not ASCII")?;
        for entry in line.rsplit(',') {
            let addr =
                entry_addr(entry.trim()).ok_or("an X-Forwarded-For entry is not an IP address")?;
            if !trusted.contains(addr) {
                return Ok(addr);
            }
            nearest_trusted = Some(addr);
        }
    }
    nearest_trusted.ok_or("no X-Forwarded-For header")
}

/// One entry: an IP address, an IPv6 address in brackets also accepted.
fn entry_addr(entry: &str) -> Option<IpAddr> {
    let bare = entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .unwrap_or(entry);
    bare.parse::<IpAddr>().ok().map(|a| a.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(FORWARDED_FOR, l.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_entry_from_a_trusted_peer_only() {
        let trusted =
            TrustedProxies::parse(&["127.0.0.1/32", "10.0.0.0/8", "2001:db8:f::/48"]).unwrap();
        // (peer, X-Forwarded-For lines, client)
        let table: &[(&str, &[&str], &str)] = &[
            // An untrusted peer's headers are ignored, whatever they say.
            ("198.51.100.9", &["203.0.113.5"], "198.51.100.9"),
            ("198.51.100.9", &[], "198.51.100.9"),
            ("::ffff:198.51.100.9", &["203.0.113.5"], "198.51.100.9"),
            // A trusted proxy's: the entry it appended.
            ("127.0.0.1", &["203.0.113.5"], "203.0.113.5"),
            ("::ffff:127.0.0.1", &["203.0.113.5"], "203.0.113.5"),
            ("127.0.0.1", &["2001:db8:1:2::7"], "2001:db8:1:2::7"),
            ("127.0.0.1", &["[2001:db8:1:2::7]"], "2001:db8:1:2::7"),
            // The client's own (spoofed) entries are left of the real one.
            ("127.0.0.1", &["192.0.2.66, 203.0.113.5"], "203.0.113.5"),
            ("127.0.0.1", &["192.0.2.66", "203.0.113.5"], "203.0.113.5"),
            ("127.0.0.1", &["not an address, 203.0.113.5"], "203.0.113.5"),
            // A chain of trusted proxies is skipped.
            ("127.0.0.1", &["203.0.113.5, 10.1.2.3"], "203.0.113.5"),
            (
                "127.0.0.1",
                &["203.0.113.5", "2001:db8:f::1"],
                "203.0.113.5",
            ),
            // Only trusted proxies: the farthest of them.
            ("127.0.0.1", &["10.9.9.9, 10.1.2.3"], "10.9.9.9"),
            // Missing or malformed, right of the client: the proxy's address.
            ("127.0.0.1", &[], "127.0.0.1"),
            ("127.0.0.1", &[""], "127.0.0.1"),
            ("127.0.0.1", &["203.0.113.5,"], "127.0.0.1"),
            ("127.0.0.1", &["203.0.113.5, unknown"], "127.0.0.1"),
            ("127.0.0.1", &["203.0.113.5:4711"], "127.0.0.1"),
            ("127.0.0.1", &["203.0.113.5/24"], "127.0.0.1"),
            ("127.0.0.1", &["203.0.113.5, 10.1.2.3 junk"], "127.0.0.1"),
            ("10.4.4.4", &["for=203.0.113.5"], "10.4.4.4"),
        ];
        for (peer, lines, client) in table {
            let got = resolve(peer.parse().unwrap(), &headers(lines), &trusted);
            assert_eq!(
                got.to_string(),
                *client,
                "peer {peer}, X-Forwarded-For {lines:?}"
            );
        }
        // No proxy trusted (the default): always the peer.
        let none = TrustedProxies::default();
        assert!(none.is_empty());
        let got = resolve(
            "127.0.0.1".parse().unwrap(),
            &headers(&["203.0.113.5"]),
            &none,
        );
        assert_eq!(got.to_string(), "127.0.0.1");
    }

    #[test]
    fn a_non_ascii_line_right_of_the_client_falls_back() {
        let trusted = TrustedProxies::parse(&["127.0.0.1"]).unwrap();
        let mut h = HeaderMap::new();
        h.append(
            FORWARDED_FOR,
            axum::http::HeaderValue::from_bytes(b"203.0.113.5, \xff").unwrap(),
        );
        assert_eq!(
            resolve("127.0.0.1".parse().unwrap(), &h, &trusted).to_string(),
            "127.0.0.1"
        );
        // Left of the client (the client's own line), it is never read.
        h.append(FORWARDED_FOR, "203.0.113.6".parse().unwrap());
        assert_eq!(
            resolve("127.0.0.1".parse().unwrap(), &h, &trusted).to_string(),
            "203.0.113.6"
        );
    }

    #[test]
    fn entries_parse_as_ranges_or_addresses_and_bad_ones_are_named() {
        let ok =
            TrustedProxies::parse(&["10.0.0.0/8", " 127.0.0.1 ", "2001:db8::/32", "::1"]).unwrap();
        for (addr, inside) in [
            ("10.255.0.1", true),
            ("11.0.0.1", false),
            ("127.0.0.1", true),
            ("127.0.0.2", false),
            ("::ffff:10.1.1.1", true),
            ("2001:db8:ffff::1", true),
            ("2001:db9::1", false),
            ("::1", true),
        ] {
            assert_eq!(ok.contains(addr.parse().unwrap()), inside, "{addr}");
        }
        // Host bits set are the range they fall in.
        assert!(
            TrustedProxies::parse(&["10.1.2.3/8"])
                .unwrap()
                .contains("10.9.9.9".parse().unwrap())
        );
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "proxy.example",
            "",
            "10.0.0.0/",
            "::/129",
        ] {
            let e = TrustedProxies::parse(&["127.0.0.1", bad]).unwrap_err();
            assert!(
                e.contains("trusted_proxies") && e.contains(&format!("{bad:?}")),
                "{e}"
            );
        }
    }
}
