//! The one instance model (docs/MODEL.md): what every interface (line
//! protocol, `/srv`, DNS, the Consul-compatible API) derives from a
//! service record, so they all show the same instance the same way.
//!
//! A record is a service URI plus attributes. The model reads:
//! - name: the URI's first path segment;
//! - address and port: the URI's authority (user information dropped);
//! - id: the `id` attribute when the registrant set one (HTTP
//!   announcements always do: the HOST of `/srv/NAME/HOST`), else the
//!   authority (`host:port`); unique among a service's instances at a
//!   catalogue;
//! - `master` and `updated_at` (Nesoi), and `endpoints` as announced over
//!   HTTP: attributes with those names;
//! - user attributes: every other attribute.

use crate::{Attrs, ServiceUri};

/// Attribute naming the instance id.
pub const ID: &str = "id";
/// Attribute of Nesoi's master rule: "true" or "false".
pub const MASTER: &str = "master";
/// Attribute of Nesoi's master rule: when the instance last announced
/// itself (RFC 3339, UTC).
pub const UPDATED_AT: &str = "updated_at";
/// Attribute holding the endpoints an HTTP announcement gave (JSON).
pub const ENDPOINTS: &str = "endpoints";
/// Attribute giving the instance's DNS SRV / Consul weight (1..=65535).
pub const WEIGHT: &str = "weight";

/// Attributes that are model fields, not user attributes.
pub const MODEL_KEYS: [&str; 4] = [ID, MASTER, UPDATED_AT, ENDPOINTS];

/// Whether `key` is a model field rather than a user attribute.
pub fn is_model_key(key: &str) -> bool {
    MODEL_KEYS.contains(&key)
}

/// The user attributes of a record: every attribute that is not a model
/// field.
pub fn user_attrs(attrs: &Attrs) -> impl Iterator<Item = (&str, &str)> {
    attrs
        .0
        .iter()
        .filter(|(k, _)| !is_model_key(k))
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

/// The instance id of a record.
pub fn id<'a>(uri: &'a ServiceUri, attrs: &'a Attrs) -> &'a str {
    attrs.get(ID).unwrap_or_else(|| uri.instance())
}

/// The instance's address (host name or IP address, IPv6 without
/// brackets) and port, from the URI's authority.
pub fn address(uri: &ServiceUri) -> (&str, Option<u16>) {
    host_port(uri.instance()).unwrap_or((uri.instance(), None))
}

/// Splits `host[:port]` or `[v6][:port]`; None when it is neither.
pub fn host_port(s: &str) -> Option<(&str, Option<u16>)> {
    crate::uri::split_host_port(s)
}

/// Whether the record claims Nesoi's master role.
pub fn is_master(attrs: &Attrs) -> bool {
    attrs.get(MASTER) == Some("true")
}

/// The instance's weight for DNS SRV answers and the Consul API: the
/// `weight` attribute when it is 1..=65535, else 1.
pub fn weight(attrs: &Attrs) -> u16 {
    attrs
        .get(WEIGHT)
        .and_then(|w| w.parse::<u16>().ok())
        .filter(|w| *w > 0)
        .unwrap_or(1)
}

/// RFC 3339 UTC with milliseconds for a time in milliseconds since the
/// Unix epoch: how `updated_at` is written when it comes from a record's
/// timestamp.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// The `updated_at` of a record: its `updated_at` attribute, else its
/// timestamp's wall-clock part.
pub fn updated_at(attrs: &Attrs, ts_millis: u64) -> String {
    attrs
        .get(UPDATED_AT)
        .map_or_else(|| rfc3339(ts_millis), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> ServiceUri {
        ServiceUri::parse(s).unwrap()
    }

    #[test]
    fn address_and_id_come_from_the_authority() {
        let u = uri("tcp://user@10.0.0.1:8080/orders");
        assert_eq!(address(&u), ("10.0.0.1", Some(8080)));
        assert_eq!(id(&u, &Attrs::default()), "10.0.0.1:8080");
        let v6 = uri("http://[fd00::1]:80/web");
        assert_eq!(address(&v6), ("fd00::1", Some(80)));
        let bare = uri("nesoi://web1/orders");
        assert_eq!(address(&bare), ("web1", None));
    }

    #[test]
    fn the_id_attribute_wins_and_model_keys_are_not_user_attributes() {
        let u = uri("http://10.0.0.1:8080/orders");
        let a: Attrs = [
            ("id", "web1"),
            ("master", "true"),
            ("zone", "a"),
            ("endpoints", "{}"),
        ]
        .into_iter()
        .collect();
        assert_eq!(id(&u, &a), "web1");
        assert!(is_master(&a));
        assert_eq!(user_attrs(&a).collect::<Vec<_>>(), vec![("zone", "a")]);
    }

    #[test]
    fn rfc3339_renders_milliseconds_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
    }

    #[test]
    fn weight_defaults_to_one() {
        let w = |v: &str| weight(&[("weight", v)].into_iter().collect());
        assert_eq!(weight(&Attrs::default()), 1);
        assert_eq!(w("10"), 10);
        assert_eq!(w("0"), 1);
        assert_eq!(w("70000"), 1);
        assert_eq!(w("x"), 1);
    }
}
