//! The names the DNS server answers, under each of its domains
//! (docs/OPERATIONS.md "DNS"):
//!
//! - `NAME.service.DOMAIN` and its RFC 2782 form `_NAME._PROTO.service.DOMAIN`
//!   (any protocol label: the catalogue does not know protocols);
//! - the same with `.CLUSTER` before the domain, limited to that cluster;
//! - `HEX.addr.DOMAIN`, the targets of SRV answers: an IPv4 address as 8
//!   hex digits or an IPv6 address as 32 (Consul's form), so every target
//!   resolves at the same server without knowing any instance;
//! - the domain itself (its SOA).
//!
//! Labels arrive in lower case; a service NAME must be a valid DNS label
//! (1-63 of `[a-z0-9-]`): other names are not reachable by DNS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a query name asks for, below one of our domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Asked<'a> {
    /// The domain itself.
    Apex,
    /// The instances of a service (the name in lower case), in one cluster
    /// or all.
    Service {
        /// The service name, lower case.
        name: &'a str,
        /// Only this cluster (lower case).
        cluster: Option<&'a str>,
    },
    /// An SRV target: the address its label encodes.
    Addr(IpAddr),
}

/// Reads the labels before the domain, left to right (lower case); None
/// when they name nothing we answer.
pub(crate) fn parse<'a>(labels: &[&'a str]) -> Option<Asked<'a>> {
    match labels {
        [] => Some(Asked::Apex),
        [hex, "addr"] => decode_addr(hex).map(Asked::Addr),
        [name, "service", rest @ ..] => service(name, rest),
        [name, proto, "service", rest @ ..] if proto.len() > 1 && proto.starts_with('_') => {
            service(name.strip_prefix('_')?, rest)
        }
        _ => None,
    }
}

fn service<'a>(name: &'a str, rest: &[&'a str]) -> Option<Asked<'a>> {
    if !is_label(name) {
        return None;
    }
    let cluster = match rest {
        [] => None,
        [cluster] => Some(*cluster),
        _ => return None,
    };
    Some(Asked::Service { name, cluster })
}

/// Whether `s` can be a DNS label naming a service: 1-63 bytes of
/// letters, digits and hyphens.
pub(crate) fn is_label(s: &str) -> bool {
    (1..=63).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The label of an SRV target for `ip` (lower-case hex).
pub(crate) fn encode_addr(ip: IpAddr) -> String {
    let bytes: Vec<u8> = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_addr(hex: &str) -> Option<IpAddr> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect::<Option<_>>()?;
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?))),
        32 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> Option<Asked<'_>> {
        let labels: Vec<&str> = if name.is_empty() {
            vec![]
        } else {
            name.split('.').collect()
        };
        parse(&labels)
    }

    fn svc<'a>(name: &'a str, cluster: Option<&'a str>) -> Option<Asked<'a>> {
        Some(Asked::Service { name, cluster })
    }

    #[test]
    fn service_names_in_every_form() {
        assert_eq!(p(""), Some(Asked::Apex));
        assert_eq!(p("web.service"), svc("web", None));
        assert_eq!(p("web.service.eu-1"), svc("web", Some("eu-1")));
        assert_eq!(p("_web._tcp.service"), svc("web", None));
        assert_eq!(p("_web._udp.service.eu-1"), svc("web", Some("eu-1")));
        assert_eq!(p("service.service"), svc("service", None));
        assert_eq!(p("a-b-9.service"), svc("a-b-9", None));
    }

    #[test]
    fn names_that_are_not_ours() {
        for bad in [
            "web",
            "service",
            "web.node",
            "web.service.a.b",
            "_web.tcp.service",
            "_web._.service",
            "web_x.service",
            "_.service",
            "x.y.z.service",
            "ns",
            "7f00001.addr",
            "7f0000zz.addr",
            "7f000001.addr.x",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
        let long = format!("{}.service", "a".repeat(64));
        assert_eq!(p(&long), None);
        let longest = format!("{}.service", "a".repeat(63));
        assert!(p(&longest).is_some());
    }

    #[test]
    fn addresses_round_trip_through_target_labels() {
        for ip in ["127.0.0.1", "10.200.3.4", "::1", "fd00::1:2"] {
            let ip: IpAddr = ip.parse().unwrap();
            let label = encode_addr(ip);
            assert_eq!(p(&format!("{label}.addr")), Some(Asked::Addr(ip)));
        }
        assert_eq!(encode_addr("127.0.0.1".parse().unwrap()), "7f000001");
    }
}
