use std::net::IpAddr;

use ipnet::IpNet;

/// Networks the policy records but never bans. Loopback is always in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedNetworks {
    nets: Vec<IpNet>,
}

impl TrustedNetworks {
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        TrustedNetworks { nets: nets.into_iter().map(|n| n.trunc()).collect() }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        ip.is_loopback() || self.nets.iter().any(|n| n.contains(&ip))
    }

    /// These networks plus `more` (e.g. those added from the panel).
    pub fn with(&self, more: impl IntoIterator<Item = IpNet>) -> TrustedNetworks {
        let mut nets = self.nets.clone();
        for n in more {
            let n = n.trunc();
            if !nets.contains(&n) {
                nets.push(n);
            }
        }
        TrustedNetworks { nets }
    }

    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }
}

/// What a ban names: an address (a /32 or /128), or a network such as a banned IPv6
/// prefix (`2001:db8:1:2::/64`), as stored, typed or listed.
pub fn parse_ban_target(text: &str) -> Option<IpNet> {
    text.parse::<IpAddr>().map(IpNet::from).ok().or_else(|| text.parse::<IpNet>().ok().map(|n| n.trunc()))
}

/// IPv4-mapped IPv6 addresses are the IPv4 host they carry.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_always_trusted_and_configured_networks_are() {
        let t = TrustedNetworks::new(["192.168.1.0/24".parse().unwrap()]);
        assert!(t.contains("127.0.0.5".parse().unwrap()));
        assert!(t.contains("::1".parse().unwrap()));
        assert!(t.contains("192.168.1.77".parse().unwrap()));
        assert!(t.contains("::ffff:192.168.1.77".parse().unwrap()));
        assert!(!t.contains("192.168.2.1".parse().unwrap()));
        assert!(!t.contains("203.0.113.9".parse().unwrap()));
    }
}

/// The lists a network can be on. Stored by [`NetworkList::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkList {
    /// Never banned, full access.
    Trusted,
    /// An admin's own login address: never banned, so the panel cannot lock its admin out.
    Admin,
    /// Where office phones may register from.
    Extensions,
    /// A trunk provider's addresses: may register as that trunk only.
    Trunk,
    /// Always blocked.
    Deny,
}

impl NetworkList {
    /// The lists an admin edits, in the order they are shown.
    pub const EDITABLE: [NetworkList; 4] =
        [NetworkList::Trusted, NetworkList::Extensions, NetworkList::Trunk, NetworkList::Deny];

    pub fn as_str(self) -> &'static str {
        match self {
            NetworkList::Trusted => "trusted",
            NetworkList::Admin => "admin",
            NetworkList::Extensions => "extensions",
            NetworkList::Trunk => "trunk",
            NetworkList::Deny => "deny",
        }
    }

    pub fn parse(text: &str) -> Option<NetworkList> {
        [NetworkList::Admin].into_iter().chain(NetworkList::EDITABLE).find(|l| l.as_str() == text)
    }
}

impl std::fmt::Display for NetworkList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for NetworkList {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        NetworkList::parse(&text).ok_or_else(|| format!("{text:?} is not a network list"))
    }
}

/// What closed mode can close to everyone outside the allowed networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClosableService {
    Sip,
    Iax2,
    Ami,
    Panel,
}

impl ClosableService {
    pub const ALL: [ClosableService; 4] =
        [ClosableService::Sip, ClosableService::Iax2, ClosableService::Ami, ClosableService::Panel];

    pub fn as_str(self) -> &'static str {
        match self {
            ClosableService::Sip => "sip",
            ClosableService::Iax2 => "iax2",
            ClosableService::Ami => "ami",
            ClosableService::Panel => "panel",
        }
    }

    pub fn parse(text: &str) -> Option<ClosableService> {
        ClosableService::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for ClosableService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
