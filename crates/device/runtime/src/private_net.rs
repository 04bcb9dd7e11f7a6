//! The device's private networks (Ferrosphere's `PrivateNetwork` capability, docs/guardian.md
//! "The private side"): a network interface of the board, the subnet behind it, and the one app
//! that may use it.
//!
//! The rules, checked at install and again at every connect, send and accept:
//! - an address inside a private network's subnet is reachable only by an app whose manifest
//!   grants that network (`PrivateNetwork`) **and** lists the address itself in
//!   `AllowedConnections`; every other app is refused, whatever name or discovery led to it;
//! - a connection to it is bound to the network's interface (`SO_BINDTODEVICE`), so it leaves
//!   through that interface or not at all, whatever the routing table says;
//! - an app granted a private network is not installed, and does not reach it, while the device
//!   forwards packets between interfaces (IPv4 or IPv6 `forwarding` on any interface): a
//!   forwarding device would route the network side onto the private one.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ferro_manifest::{AllowedConnection, Capabilities, PrivateNetworkLink, Resolved};

use crate::error::InstallError;

/// Where the kernel's network settings are (`/proc/sys/net`).
pub const SYS_NET: &str = "/proc/sys/net";

/// The board's private networks, by manifest value, and where to read the forwarding settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrivateNetworks {
    networks: BTreeMap<String, PrivateNetworkLink>,
    sys_net: PathBuf,
}

/// A private network an address belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OnPrivateNetwork<'a> {
    pub(crate) id: &'a str,
    pub(crate) link: &'a PrivateNetworkLink,
}

impl PrivateNetworks {
    pub(crate) fn new(networks: BTreeMap<String, PrivateNetworkLink>, sys_net: PathBuf) -> Self {
        Self { networks, sys_net }
    }

    /// The private network `address` is on, if any (IPv4-mapped IPv6 judged by its IPv4).
    pub(crate) fn network_of(&self, address: IpAddr) -> Option<OnPrivateNetwork<'_>> {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        self.networks
            .iter()
            .find(|(_, link)| link.subnet.contains(&address))
            .map(|(id, link)| OnPrivateNetwork { id, link })
    }

    /// The checks of an install: every granted network exists on this board, every address
    /// `AllowedConnections` lists on a private subnet is on a network the app is granted, and,
    /// when the app is granted one, the device does not forward.
    pub(crate) fn check_install(
        &self,
        capabilities: &Capabilities<Resolved>,
    ) -> Result<(), InstallError> {
        let granted = capabilities.private_network();
        for id in granted {
            if !self.networks.contains_key(id) {
                return Err(InstallError::NoSuchPrivateNetwork {
                    network: id.clone(),
                    known: self.networks.keys().cloned().collect(),
                });
            }
        }
        for entry in capabilities.allowed_connections() {
            let address = match entry {
                AllowedConnection::Ipv4(v4) => IpAddr::V4(*v4),
                AllowedConnection::Ipv6(v6) => IpAddr::V6(*v6),
                _ => continue,
            };
            if let Some(on) = self.network_of(address)
                && !granted.iter().any(|id| id == on.id)
            {
                return Err(InstallError::PrivateAddressNotGranted {
                    address,
                    network: on.id.to_owned(),
                    interface: on.link.interface.clone(),
                    subnet: on.link.subnet.to_string(),
                });
            }
        }
        if !granted.is_empty() {
            self.check_no_forwarding()
                .map_err(InstallError::Forwarding)?;
        }
        Ok(())
    }

    /// Whether an app with `capabilities` may reach `address` on a private network: `Ok(None)`
    /// when the address is on none, `Ok(Some(interface))` to bind to when it may, else why not.
    pub(crate) fn permits(
        &self,
        capabilities: &Capabilities<Resolved>,
        address: IpAddr,
    ) -> Result<Option<&str>, String> {
        let Some(on) = self.network_of(address) else {
            return Ok(None);
        };
        let network = format!(
            "{address} is on the private network {} ({}, {})",
            on.id, on.link.interface, on.link.subnet
        );
        if !capabilities.private_network().iter().any(|id| id == on.id) {
            return Err(format!(
                "{network}, which the app manifest's PrivateNetwork does not grant"
            ));
        }
        let text = address.to_string();
        let listed = capabilities
            .allowed_connections()
            .iter()
            .any(|entry| entry.allows_host(&text));
        if !listed {
            return Err(format!(
                "{network}, and the app manifest's AllowedConnections does not list {address} \
                 itself"
            ));
        }
        self.check_no_forwarding()?;
        Ok(Some(on.link.interface.as_str()))
    }

    /// Fails, saying what to set, when any interface forwards (IPv4 or IPv6), or when the
    /// settings cannot be read (fail closed).
    pub(crate) fn check_no_forwarding(&self) -> Result<(), String> {
        match forwarding_enabled(&self.sys_net) {
            Ok(on) if on.is_empty() => Ok(()),
            Ok(on) => Err(format!(
                "the device forwards packets between interfaces ({} set to 1), so a private \
                 network would not stay private: set net.ipv4.ip_forward=0, \
                 net.ipv4.conf.all.forwarding=0 and net.ipv6.conf.all.forwarding=0 (sysctl -w; \
                 persist them in /etc/sysctl.d/) and restart the app",
                on.join(", ")
            )),
            Err(error) => Err(format!(
                "cannot read the device's forwarding settings under {}: {error}; a private \
                 network is refused until they can be checked",
                self.sys_net.display()
            )),
        }
    }
}

/// The `forwarding` settings that are on under `sys_net` (`/proc/sys/net`): every
/// `ipv4/conf/*/forwarding` and `ipv6/conf/*/forwarding` whose value is not `0`, named as
/// sysctl names them (`net.ipv4.conf.eth0.forwarding`). An absent `ipv6` directory (IPv6
/// disabled) is no forwarding; an absent `ipv4/conf` is an error.
pub fn forwarding_enabled(sys_net: &Path) -> std::io::Result<Vec<String>> {
    let mut on = Vec::new();
    for (family, required) in [("ipv4", true), ("ipv6", false)] {
        let conf = sys_net.join(family).join("conf");
        let entries = match std::fs::read_dir(&conf) {
            Ok(entries) => entries,
            Err(error) if !required && error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        let mut names = Vec::new();
        for entry in entries {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        for name in names {
            let value = std::fs::read_to_string(conf.join(&name).join("forwarding"))?;
            if value.trim() != "0" {
                on.push(format!("net.{family}.conf.{name}.forwarding"));
            }
        }
    }
    Ok(on)
}

#[cfg(test)]
mod tests {
    use super::forwarding_enabled;

    fn tree(settings: &[(&str, &str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (family, interface, value) in settings {
            let path = dir.path().join(family).join("conf").join(interface);
            std::fs::create_dir_all(&path).expect("mkdir");
            std::fs::write(path.join("forwarding"), value).expect("write");
        }
        dir
    }

    #[test]
    fn forwarding_on_any_interface_of_either_family_is_found() {
        let off = tree(&[
            ("ipv4", "all", "0\n"),
            ("ipv4", "eth0", "0\n"),
            ("ipv6", "all", "0\n"),
        ]);
        assert!(forwarding_enabled(off.path()).expect("read").is_empty());
        let on = tree(&[
            ("ipv4", "all", "0\n"),
            ("ipv4", "eth1", "1\n"),
            ("ipv6", "all", "1\n"),
        ]);
        assert_eq!(
            forwarding_enabled(on.path()).expect("read"),
            [
                "net.ipv4.conf.eth1.forwarding",
                "net.ipv6.conf.all.forwarding"
            ]
        );
        // No IPv6 at all is no IPv6 forwarding; no IPv4 settings cannot be checked.
        let v4_only = tree(&[("ipv4", "all", "0\n")]);
        assert!(forwarding_enabled(v4_only.path()).expect("read").is_empty());
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(forwarding_enabled(empty.path()).is_err());
    }
}
