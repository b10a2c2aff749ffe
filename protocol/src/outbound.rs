//! Which addresses `classroomd` may connect out to on a user's behalf (restream destinations).
//!
//! A teacher chooses a destination's host and port. Without a policy that makes the server a
//! port scanner and a proxy into its own network: a database on 127.0.0.1, a cloud's metadata
//! service at 169.254.169.254, a printer at 10.0.0.7. So by default every address that is not
//! public unicast is refused: loopback, private (RFC 1918, CGNAT 100.64/10, fc00::/7),
//! link-local, multicast, unspecified, broadcast, documentation and reserved ranges, and IPv6
//! forms that embed such an IPv4 address (IPv4-mapped, NAT64). An operator allows networks of
//! their own explicitly ([`OutboundPolicy::new`], `restream.allowed_networks`).
//!
//! Pure: this judges addresses and never resolves or connects. Callers resolve the name once,
//! keep what [`OutboundPolicy::filter`] lets through and connect only to those addresses, so
//! a name whose DNS answer changes between the check and the connect cannot slip through.
//! It lives with the wire types because the REST API (checking a destination when it is
//! added) and the RTMP client (checking at every connect) both use it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Why an address is not public: the kind of range it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Restricted {
    /// `0.0.0.0/8`, `::`: "this host", which connects to the server itself.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`), shared CGNAT space (`100.64/10`) and
    /// IPv6 unique local addresses (`fc00::/7`).
    Private,
    /// `169.254.0.0/16` (cloud metadata services live here), `fe80::/10`.
    LinkLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// Documentation and benchmarking ranges (`192.0.2/24`, `198.51.100/24`, `203.0.113/24`,
    /// `198.18/15`, `2001:db8::/32`, `3fff::/20`).
    Documentation,
    /// Anything else that is not public unicast: `240.0.0.0/4`, IETF protocol assignments,
    /// 6to4, deprecated and unassigned IPv6 space.
    Reserved,
}

impl Restricted {
    /// How a person would call it, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Restricted::Unspecified => "an unspecified (this-host) address",
            Restricted::Loopback => "a loopback address",
            Restricted::Private => "a private network address",
            Restricted::LinkLocal => "a link-local address",
            Restricted::Multicast => "a multicast address",
            Restricted::Broadcast => "the broadcast address",
            Restricted::Documentation => "a documentation or benchmarking address",
            Restricted::Reserved => "a reserved address",
        }
    }
}

impl fmt::Display for Restricted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

const V4_RANGES: [(Ipv4Net, Restricted); 16] = {
    const fn net(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
        Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
    }
    use Restricted::*;
    [
        (net(255, 255, 255, 255, 32), Broadcast),
        (net(0, 0, 0, 0, 8), Unspecified),
        (net(127, 0, 0, 0, 8), Loopback),
        (net(10, 0, 0, 0, 8), Private),
        (net(172, 16, 0, 0, 12), Private),
        (net(192, 168, 0, 0, 16), Private),
        (net(100, 64, 0, 0, 10), Private),
        (net(169, 254, 0, 0, 16), LinkLocal),
        (net(224, 0, 0, 0, 4), Multicast),
        (net(192, 0, 2, 0, 24), Documentation),
        (net(198, 51, 100, 0, 24), Documentation),
        (net(203, 0, 113, 0, 24), Documentation),
        (net(198, 18, 0, 0, 15), Documentation),
        (net(192, 0, 0, 0, 24), Reserved),
        (net(192, 88, 99, 0, 24), Reserved),
        (net(240, 0, 0, 0, 4), Reserved),
    ]
};

/// Special ranges inside `2000::/3`, the only IPv6 space that is public unicast.
const V6_GLOBAL_EXCEPTIONS: [(Ipv6Net, Restricted); 4] = {
    const fn net(first: u16, second: u16, len: u8) -> Ipv6Net {
        Ipv6Net::new_assert(Ipv6Addr::new(first, second, 0, 0, 0, 0, 0, 0), len)
    }
    use Restricted::*;
    [
        (net(0x2001, 0x0db8, 32), Documentation),
        (net(0x3fff, 0, 20), Documentation),
        // IETF protocol assignments (Teredo, ORCHID, benchmarking, ...).
        (net(0x2001, 0, 23), Reserved),
        // 6to4: the relay would carry us to whatever IPv4 address is embedded.
        (net(0x2002, 0, 16), Reserved),
    ]
};

/// The kind of restricted range `ip` is in, or `None` for a public unicast address.
pub fn restricted(ip: IpAddr) -> Option<Restricted> {
    match ip {
        IpAddr::V4(v4) => restricted_v4(v4),
        IpAddr::V6(v6) => restricted_v6(v6),
    }
}

fn restricted_v4(ip: Ipv4Addr) -> Option<Restricted> {
    V4_RANGES
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, kind)| *kind)
}

fn restricted_v6(ip: Ipv6Addr) -> Option<Restricted> {
    if let Some(v4) = embedded_v4(ip) {
        return restricted_v4(v4);
    }
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        return Some(Restricted::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Restricted::Loopback);
    }
    if first & 0xfe00 == 0xfc00 {
        return Some(Restricted::Private);
    }
    if first & 0xffc0 == 0xfe80 {
        return Some(Restricted::LinkLocal);
    }
    if first & 0xff00 == 0xff00 {
        return Some(Restricted::Multicast);
    }
    if first & 0xe000 != 0x2000 {
        return Some(Restricted::Reserved);
    }
    V6_GLOBAL_EXCEPTIONS
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, kind)| *kind)
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (`::ffff:a.b.c.d`, which the
/// kernel connects to over IPv4) and the well-known NAT64 prefix (`64:ff9b::a.b.c.d`, which a
/// NAT64 gateway forwards to that IPv4 address).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [_, _, _, _, _, _, _, _, _, _, _, _, a, b, c, d] = ip.octets();
        return Some(Ipv4Addr::new(a, b, c, d));
    }
    None
}

/// An address the policy refuses: the address and the range it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{address} is {kind}")]
pub struct Refused {
    pub address: IpAddr,
    pub kind: Restricted,
}

/// Why none of a name's addresses may be connected to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoAllowedAddress {
    #[error("the name has no address")]
    NoAddress,
    /// Every address is restricted; the first one refused, for the message.
    #[error("every address is restricted ({0})")]
    Refused(Refused),
}

impl NoAllowedAddress {
    /// The kind of range refused, when that was the reason.
    pub fn refused_kind(&self) -> Option<Restricted> {
        match self {
            NoAllowedAddress::NoAddress => None,
            NoAllowedAddress::Refused(refused) => Some(refused.kind),
        }
    }
}

/// A network in the operator's allow list did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a network: write an address with a prefix length, such as 10.0.0.0/8 or fd00::/8"
)]
pub struct BadNetwork(pub String);

/// Public unicast addresses, plus the networks an operator allows on top.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    allowed: Vec<IpNet>,
}

impl OutboundPolicy {
    /// Public addresses only (the default).
    pub fn public_only() -> Self {
        OutboundPolicy::default()
    }

    /// Public addresses and `networks`: CIDRs (`127.0.0.0/8`, `fd00::/8`) or single addresses.
    pub fn new<S: AsRef<str>>(networks: &[S]) -> Result<Self, BadNetwork> {
        let allowed = networks
            .iter()
            .map(|raw| {
                let raw = raw.as_ref().trim();
                raw.parse::<IpNet>()
                    .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| BadNetwork(raw.to_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(OutboundPolicy { allowed })
    }

    /// The networks allowed on top of public addresses.
    pub fn allowed_networks(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Whether the server may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let canonical = ip.to_canonical();
        let Some(kind) = restricted(canonical) else {
            return Ok(());
        };
        let allowed = self
            .allowed
            .iter()
            .any(|net| net.contains(&canonical) || net.contains(&ip));
        if allowed {
            Ok(())
        } else {
            Err(Refused { address: ip, kind })
        }
    }

    /// The addresses of a resolved name that may be connected to, in the resolver's order
    /// (IPv4-mapped ones in their IPv4 form, as the kernel would connect to them).
    pub fn filter(
        &self,
        resolved: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, NoAllowedAddress> {
        let mut allowed = Vec::new();
        let mut first_refused = None;
        for addr in resolved {
            match self.check(addr.ip()) {
                Ok(()) => allowed.push(SocketAddr::new(addr.ip().to_canonical(), addr.port())),
                Err(refused) => {
                    first_refused.get_or_insert(refused);
                }
            }
        }
        match (allowed.is_empty(), first_refused) {
            (false, _) => Ok(allowed),
            (true, Some(refused)) => Err(NoAllowedAddress::Refused(refused)),
            (true, None) => Err(NoAllowedAddress::NoAddress),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn every_non_public_range_is_refused_by_default() {
        use Restricted::*;
        let policy = OutboundPolicy::public_only();
        for (address, kind) in [
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("100.64.0.1", Private),
            ("100.127.255.255", Private),
            ("169.254.169.254", LinkLocal),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("255.255.255.255", Broadcast),
            ("192.0.2.1", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.9", Documentation),
            ("198.18.0.1", Documentation),
            ("192.0.0.8", Reserved),
            ("192.88.99.1", Reserved),
            ("240.0.0.1", Reserved),
            ("::", Unspecified),
            ("::1", Loopback),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("ff02::1", Multicast),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("2001::1", Reserved),
            ("2002:a00:1::1", Reserved),
            ("fec0::1", Reserved),
            ("::10.0.0.1", Reserved),
            ("100::1", Reserved),
            ("4000::1", Reserved),
            // IPv6 forms of restricted IPv4 addresses.
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:0.0.0.0", Unspecified),
            ("64:ff9b::10.0.0.1", Private),
            ("64:ff9b::127.0.0.1", Loopback),
        ] {
            assert_eq!(
                policy.check(ip(address)),
                Err(Refused {
                    address: ip(address),
                    kind
                }),
                "{address}"
            );
        }
    }

    #[test]
    fn public_unicast_addresses_are_allowed() {
        let policy = OutboundPolicy::public_only();
        for address in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "169.253.0.1",
            "192.0.3.1",
            "198.20.0.1",
            "223.255.255.255",
            "2001:4860:4860::8888",
            "2606:4700::1111",
            "2a00:1450::1",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
        ] {
            assert_eq!(policy.check(ip(address)), Ok(()), "{address}");
        }
    }

    #[test]
    fn an_operator_allows_networks_of_their_own() {
        let policy =
            OutboundPolicy::new(&["127.0.0.0/8", " fd00::/8 ", "10.1.2.3", "192.168.1.77/24"])
                .expect("valid networks");
        for allowed in [
            "127.0.0.1",
            "127.9.9.9",
            "::ffff:127.0.0.1",
            "fd00::5",
            "10.1.2.3",
            "192.168.1.1",
            "8.8.8.8",
        ] {
            assert_eq!(policy.check(ip(allowed)), Ok(()), "{allowed}");
        }
        for refused in [
            "::1",
            "10.1.2.4",
            "192.168.2.1",
            "fc00::1",
            "169.254.169.254",
        ] {
            assert!(policy.check(ip(refused)).is_err(), "{refused}");
        }
        for bad in ["127.0.0.0/33", "localhost", "10.0.0.0/", "", "::/129"] {
            assert_eq!(
                OutboundPolicy::new(&[bad]),
                Err(BadNetwork(bad.trim().to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_name_keeps_only_its_allowed_addresses() {
        let policy = OutboundPolicy::public_only();
        let addr = |s: &str| -> SocketAddr { s.parse().expect("a socket address") };
        // A name resolving to a public and a private address: only the public one is used.
        assert_eq!(
            policy.filter([addr("10.0.0.1:1935"), addr("[::ffff:8.8.8.8]:1935")]),
            Ok(vec![addr("8.8.8.8:1935")])
        );
        // `localhost`: nothing is left, and the first refusal says why.
        assert_eq!(
            policy.filter([addr("[::1]:1935"), addr("127.0.0.1:1935")]),
            Err(NoAllowedAddress::Refused(Refused {
                address: ip("::1"),
                kind: Restricted::Loopback
            }))
        );
        assert_eq!(policy.filter([]), Err(NoAllowedAddress::NoAddress));
    }
}
