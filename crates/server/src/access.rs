//! Who may do what, judged by address: one rule each, shared by the line
//! protocol (`net/`) and the HTTP API (`http/`).

use std::net::IpAddr;

use ipnet::IpNet;
use rarangi_core::Registration;

/// The registration rule over TLS (the line-protocol port with TLS on, and
/// HTTPS): the certificate decides, not the address.
pub(crate) const REGISTER_RULE_TLS: &str = "over TLS, registrations need a client certificate \
     signed by the catalogue's CA (give the client --tls-cert and --tls-key; \
     --allow-register applies to plain-text connections only)";

/// The registration rule on the Unix socket with `--register-uid`/`--register-gid`.
pub(crate) const REGISTER_RULE_LOCAL: &str = "on the Unix socket, registrations are accepted only \
     from the users of --register-uid and the groups of --register-gid";

/// Whether a TLS client may register: it presented a certificate, which
/// the handshake verified against the CA.
pub(crate) fn tls_registration(has_certificate: bool) -> Registration {
    if has_certificate {
        Registration::Allowed
    } else {
        Registration::Refused(REGISTER_RULE_TLS)
    }
}

/// `ip`, as IPv4 when it is an IPv4-mapped IPv6 address (a dual-stack
/// listener sees `::ffff:10.0.0.1`), so one rule covers both forms.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Whether a TCP client at `ip` may register services (REG_SERV, PUT
/// /srv): from loopback, or from the networks of `--allow-register`. The
/// Unix socket decides for itself.
pub(crate) fn may_register(ip: IpAddr, allow: &[IpNet]) -> bool {
    let ip = canonical(ip);
    ip.is_loopback() || allow.iter().any(|n| n.contains(&ip))
}

/// Whether an HTTP client at `ip` may register (PUT and DELETE on
/// `/srv/NAME/HOST`): as REG_SERV on the same transport. `https` is None
/// for plain HTTP, else whether the client presented a verified certificate.
pub(crate) fn http_registration(ip: IpAddr, https: Option<bool>, allow: &[IpNet]) -> Registration {
    match https {
        Some(has_certificate) => tls_registration(has_certificate),
        None => may_register(ip, allow).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rarangi_core::REGISTER_RULE;

    #[test]
    fn registration_by_address() {
        let allow: Vec<IpNet> = vec!["10.1.0.0/16".parse().unwrap()];
        let ip = |a: &str| a.parse::<IpAddr>().unwrap();
        assert!(may_register(ip("127.0.0.1"), &[]));
        assert!(may_register(ip("127.9.9.9"), &[]));
        assert!(may_register(ip("::1"), &[]));
        assert!(may_register(ip("::ffff:127.0.0.1"), &[]));
        assert!(!may_register(ip("10.1.2.3"), &[]));
        assert!(may_register(ip("10.1.2.3"), &allow));
        assert!(may_register(ip("::ffff:10.1.2.3"), &allow));
        assert!(!may_register(ip("10.2.0.1"), &allow));
        assert_eq!(canonical(ip("::ffff:10.2.0.1")), ip("10.2.0.1"));
    }

    #[test]
    fn over_tls_the_certificate_decides() {
        let ip = |a: &str| a.parse::<IpAddr>().unwrap();
        let allow: Vec<IpNet> = vec!["10.1.0.0/16".parse().unwrap()];
        assert_eq!(
            http_registration(ip("127.0.0.1"), None, &[]),
            Registration::Allowed
        );
        assert_eq!(
            http_registration(ip("10.2.0.1"), None, &allow),
            Registration::Refused(REGISTER_RULE)
        );
        // Neither loopback nor --allow-register stands in for a certificate.
        assert_eq!(
            http_registration(ip("127.0.0.1"), Some(false), &allow),
            Registration::Refused(REGISTER_RULE_TLS)
        );
        assert_eq!(
            http_registration(ip("10.9.9.9"), Some(true), &[]),
            Registration::Allowed
        );
        assert!(REGISTER_RULE_TLS.contains("client certificate signed by the catalogue's CA"));
    }
}
