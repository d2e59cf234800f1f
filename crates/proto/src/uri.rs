//! Catalogue and service URIs (DESIGN §1).

use std::fmt;
use std::sync::Arc;

/// Why a URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct UriError {
    /// "catalogue URI" or "service URI".
    pub what: &'static str,
    /// The offending text.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Longest URI accepted, in bytes.
pub const MAX_URI_LEN: usize = 2048;

/// A catalogue's identity: `x-tvnetcs://<host>:<port>/`, where host:port is
/// its advertised line-protocol address. Ordered by byte order of the text.
///
/// Cheap to clone (shared text): a catalogue holding many services from one
/// peer keeps one copy of that peer's URI.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CatalogueUri(Arc<str>);

const CATALOGUE_SCHEME: &str = "x-tvnetcs://";

impl CatalogueUri {
    /// Parses and validates `x-tvnetcs://host:port/`.
    pub fn parse(s: &str) -> Result<Self, UriError> {
        let err = |reason| UriError {
            what: "catalogue URI",
            value: s.to_owned(),
            reason,
        };
        let rest = s
            .strip_prefix(CATALOGUE_SCHEME)
            .ok_or_else(|| err("must start with x-tvnetcs://"))?;
        let hostport = rest
            .strip_suffix('/')
            .ok_or_else(|| err("must end with a single / after host:port"))?;
        split_host_port(hostport)
            .filter(|(_, port)| port.is_some())
            .ok_or_else(|| err("must be x-tvnetcs://HOST:PORT/ with a port from 1 to 65535"))?;
        Ok(Self(Arc::from(s)))
    }

    /// The URI for a catalogue advertising `host:port`.
    pub fn from_addr(hostport: &str) -> Result<Self, UriError> {
        Self::parse(&format!("{CATALOGUE_SCHEME}{hostport}/"))
    }

    /// The advertised `host:port`.
    pub fn addr(&self) -> &str {
        &self.0[CATALOGUE_SCHEME.len()..self.0.len() - 1]
    }

    /// The URI text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CatalogueUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Splits `host[:port]`, accepting `[v6]:port`. Returns None when malformed.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &rest[..end];
        if host.is_empty()
            || !host
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        {
            return None;
        }
        match &rest[end + 1..] {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b':'));
    if !host_ok {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            Some(p.parse::<u16>().ok().filter(|&p| p != 0)?)
        }
    };
    Some((host, port))
}

/// A service URI: any absolute URI with an authority and a first path
/// segment, which is the service *name* (`tcp://10.1.2.3:8080/orders`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceUri {
    /// Boxed, not a String: a catalogue holds one per replicated service.
    text: Box<str>,
    name_start: u16,
    name_end: u16,
    authority_start: u16,
}

impl ServiceUri {
    /// Parses and validates a service URI.
    pub fn parse(s: &str) -> Result<Self, UriError> {
        let (authority_start, name_start, name_end) = Self::locate(s).map_err(|reason| UriError {
            what: "service URI",
            value: s.to_owned(),
            reason,
        })?;
        Ok(Self {
            text: s.into(),
            name_start: name_start as u16,
            name_end: name_end as u16,
            authority_start: authority_start as u16,
        })
    }

    /// The service name (first path segment) of a URI text, if it is a
    /// valid service URI; no allocation.
    pub fn name_of(s: &str) -> Option<&str> {
        let (_, start, end) = Self::locate(s).ok()?;
        Some(&s[start..end])
    }

    /// Validates `s`; returns where the authority starts and where the name
    /// starts and ends.
    fn locate(s: &str) -> Result<(usize, usize, usize), &'static str> {
        if s.len() > MAX_URI_LEN {
            return Err("longer than 2048 bytes");
        }
        if s.chars().any(|c| c.is_control() || c == ' ') {
            return Err("contains spaces or control characters");
        }
        let colon = s
            .find("://")
            .ok_or("must be absolute: SCHEME://HOST[:PORT]/NAME")?;
        let scheme = &s[..colon];
        let scheme_ok = scheme.bytes().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
        if !scheme_ok {
            return Err("scheme must match [A-Za-z][A-Za-z0-9+.-]*");
        }
        let authority_start = colon + 3;
        let after = &s[authority_start..];
        let auth_len = after.find(['/', '?', '#']).unwrap_or(after.len());
        let authority = &after[..auth_len];
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if split_host_port(hostport).is_none() {
            return Err("needs a host, optionally with :PORT");
        }
        let path = &after[auth_len..];
        let name = path
            .strip_prefix('/')
            .map(|p| &p[..p.find(['/', '?', '#']).unwrap_or(p.len())])
            .unwrap_or("");
        if name.is_empty() {
            return Err("needs a path whose first segment names the service, as in tcp://host:8080/orders");
        }
        let name_start = authority_start + auth_len + 1;
        Ok((authority_start, name_start, name_start + name.len()))
    }

    /// The service name: the first path segment.
    pub fn name(&self) -> &str {
        &self.text[usize::from(self.name_start)..usize::from(self.name_end)]
    }

    /// The instance address: the authority without user information.
    pub fn instance(&self) -> &str {
        let auth = &self.text[usize::from(self.authority_start)..usize::from(self.name_start) - 1];
        auth.rsplit_once('@').map_or(auth, |(_, h)| h)
    }

    /// The URI text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for ServiceUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// How close a service record is to the asker (DESIGN: lookups prefer the
/// nearest): 0 registered at the asker's catalogue, 1 in its cluster, 2
/// elsewhere. Lookups list records in this order, then by URI. Shared by
/// the catalogue and the client library so both order answers alike.
pub fn locality(
    record_catalogue: &CatalogueUri,
    record_cluster: &str,
    here: Option<&CatalogueUri>,
    here_cluster: &str,
) -> u8 {
    if Some(record_catalogue) == here {
        0
    } else if record_cluster == here_cluster {
        1
    } else {
        2
    }
}

/// Orders service records for an answer: one per service URI, the most
/// local (see [`locality`]; then the lowest catalogue URI), listed by
/// locality and then by URI. `fields` gives a record's service URI,
/// catalogue and cluster. The one implementation of "one per URI, nearest
/// first", used by the catalogue and the client library.
pub fn nearest_first<T>(
    records: impl IntoIterator<Item = T>,
    here: Option<&CatalogueUri>,
    here_cluster: &str,
    fields: impl Fn(&T) -> (&str, &CatalogueUri, &str),
) -> Vec<T> {
    fn rank<'a, T>(
        r: &'a T,
        fields: &impl Fn(&T) -> (&str, &CatalogueUri, &str),
        here: Option<&CatalogueUri>,
        here_cluster: &str,
    ) -> (u8, &'a str, &'a CatalogueUri) {
        let (service, catalogue, cluster) = fields(r);
        (
            locality(catalogue, cluster, here, here_cluster),
            service,
            catalogue,
        )
    }
    let mut all: Vec<T> = records.into_iter().collect();
    // Group by URI with the nearest first, keep that one, then order.
    all.sort_by(|a, b| {
        let (ra, sa, ca) = rank(a, &fields, here, here_cluster);
        let (rb, sb, cb) = rank(b, &fields, here, here_cluster);
        (sa, ra, ca).cmp(&(sb, rb, cb))
    });
    all.dedup_by(|later, kept| fields(later).0 == fields(kept).0);
    all.sort_by(|a, b| rank(a, &fields, here, here_cluster).cmp(&rank(b, &fields, here, here_cluster)));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_first_keeps_the_most_local_record_per_uri() {
        let c = |s: &str| CatalogueUri::from_addr(s).unwrap();
        let (here, near, far, far2) = (c("h:1"), c("n:1"), c("f:1"), c("e:1"));
        let recs = vec![
            ("tcp://x:1/b", far.clone(), "us"),
            ("tcp://x:1/a", far.clone(), "us"),
            ("tcp://x:1/a", near.clone(), "eu"),
            ("tcp://x:1/c", here.clone(), "us"),
            ("tcp://x:1/d", far.clone(), "us"),
            ("tcp://x:1/d", far2.clone(), "us"),
        ];
        let out = nearest_first(recs, Some(&here), "eu", |r| (r.0, &r.1, r.2));
        let got: Vec<(&str, &str)> = out.iter().map(|r| (r.0, r.1.addr())).collect();
        assert_eq!(
            got,
            [
                ("tcp://x:1/c", "h:1"),
                ("tcp://x:1/a", "n:1"),
                ("tcp://x:1/b", "f:1"),
                ("tcp://x:1/d", "e:1"),
            ]
        );
    }

    #[test]
    fn locality_ranks_here_then_cluster_then_elsewhere() {
        let (a, b) = (
            CatalogueUri::from_addr("a:1").unwrap(),
            CatalogueUri::from_addr("b:1").unwrap(),
        );
        assert_eq!(locality(&a, "eu", Some(&a), "eu"), 0);
        assert_eq!(
            locality(&a, "us", Some(&a), "eu"),
            0,
            "our own registrations first, whatever the cluster"
        );
        assert_eq!(locality(&b, "eu", Some(&a), "eu"), 1);
        assert_eq!(locality(&b, "us", Some(&a), "eu"), 2);
        assert_eq!(
            locality(&a, "eu", None, "eu"),
            1,
            "no home catalogue: the cluster decides"
        );
    }

    #[test]
    fn catalogue_uris() {
        let u = CatalogueUri::parse("x-tvnetcs://10.0.0.1:4760/").unwrap();
        assert_eq!(u.addr(), "10.0.0.1:4760");
        assert_eq!(
            CatalogueUri::from_addr("[::1]:4761").unwrap().addr(),
            "[::1]:4761"
        );
        for bad in [
            "x-tvnetcs://h/",
            "x-tvnetcs://h:0/",
            "x-tvnetcs://h:70000/",
            "x-tvnetcs://h:1",
            "http://h:1/",
            "x-tvnetcs://:1/",
            "x-tvnetcs://h:1/x",
        ] {
            assert!(CatalogueUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn service_uris() {
        let s = ServiceUri::parse("tcp://10.1.2.3:8080/orders").unwrap();
        assert_eq!((s.name(), s.instance()), ("orders", "10.1.2.3:8080"));
        let s = ServiceUri::parse("http://u:p@host:80/api/v1?x=1").unwrap();
        assert_eq!((s.name(), s.instance()), ("api", "host:80"));
        let s = ServiceUri::parse("tcp://[::1]:9/x").unwrap();
        assert_eq!(ServiceUri::name_of("tcp://[::1]:9/x/y"), Some("x"));
        assert_eq!(ServiceUri::name_of("tcp://[::1]:9"), None);
        assert_eq!(s.instance(), "[::1]:9");
        for bad in [
            "tcp://h:1",
            "tcp://h:1/",
            "orders",
            "tcp:///x",
            "1a://h/x",
            "tcp://h:1/a b",
        ] {
            assert!(ServiceUri::parse(bad).is_err(), "{bad}");
        }
    }
}
