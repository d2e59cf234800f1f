//! The key under which an item is stored: its place in the ordered item
//! map, which is also the key space that reconciliation splits.
//!
//! A key is a tag letter and the item's percent-encoded identity fields,
//! separated by spaces (fields never contain a space once encoded):
//!
//! | item | key |
//! | --- | --- |
//! | catalogue record | `C catalogue` |
//! | configuration key | `K key` |
//! | link (a < b) | `L a b` |
//! | service | `S owner service` |
//!
//! Services sort by owner first, so one catalogue's services are one range,
//! rechecked together when its reachability changes. The text is kept as
//! one `String` (no per-item memory beyond it).

use std::borrow::{Borrow, Cow};
use std::fmt;

use rarangi_proto::{decode_field, encode_field, CatalogueUri, ServiceUri};

use crate::item::Class;

const CATALOGUE: &str = "C ";
const CONFIG: &str = "K ";
const LINK: &str = "L ";
const SERVICE: &str = "S ";

/// An item's sort key (see the module documentation for the layout).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SortKey(String);

impl SortKey {
    /// A catalogue's incarnation record.
    pub(crate) fn catalogue(uri: &CatalogueUri) -> Self {
        Self(format!("{CATALOGUE}{}", encode_field(uri.as_str())))
    }

    /// A configuration key.
    pub(crate) fn config(key: &str) -> Self {
        Self(format!("{CONFIG}{}", encode_field(key)))
    }

    /// The link between `a` and `b` (a < b).
    pub(crate) fn link(a: &CatalogueUri, b: &CatalogueUri) -> Self {
        Self(format!(
            "{LINK}{} {}",
            encode_field(a.as_str()),
            encode_field(b.as_str())
        ))
    }

    /// `service` registered at `owner`.
    pub(crate) fn service(owner: &CatalogueUri, service: &ServiceUri) -> Self {
        Self(format!(
            "{SERVICE}{} {}",
            encode_field(owner.as_str()),
            encode_field(service.as_str())
        ))
    }

    /// The key text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The collection horizon the item belongs to, from its tag. Only
    /// meaningful for keys made by the constructors above.
    pub(crate) fn class(&self) -> Class {
        if self.0.starts_with(CATALOGUE) {
            Class::Catalogue
        } else if self.0.starts_with(CONFIG) {
            Class::Config
        } else {
            Class::Volatile
        }
    }

    /// The service URI text of a service key (its last field), decoded.
    pub(crate) fn service_text(&self) -> Cow<'_, str> {
        let field = self.0.rsplit_once(' ').map_or(&*self.0, |(_, s)| s);
        if field.contains('%') {
            Cow::Owned(decode_field(field).expect("keys are built by encode_field"))
        } else {
            Cow::Borrowed(field)
        }
    }

    /// The service URI of a service key.
    pub(crate) fn service_uri(&self) -> ServiceUri {
        ServiceUri::parse(&self.service_text()).expect("service keys are built from a parsed URI")
    }

    // ----- ranges: each is every key starting with the returned prefix --

    /// Prefix of every service key.
    pub(crate) fn all_services() -> Prefix {
        Prefix(SERVICE.to_owned())
    }

    /// Prefix of every link key.
    pub(crate) fn all_links() -> Prefix {
        Prefix(LINK.to_owned())
    }

    /// Prefix of the services registered at `owner`.
    pub(crate) fn services_of(owner: &CatalogueUri) -> Prefix {
        // The trailing space ends the owner field: no other owner's keys
        // share this prefix.
        Prefix(format!("{SERVICE}{} ", encode_field(owner.as_str())))
    }

    /// Prefix of the configuration keys starting with `prefix`. Fields are
    /// encoded character by character, so the encoded prefix is a prefix
    /// of every encoded key that starts with `prefix`.
    pub(crate) fn config_with_prefix(prefix: &str) -> Prefix {
        Prefix(format!("{CONFIG}{}", encode_field(prefix)))
    }
}

impl Borrow<str> for SortKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A range of sort keys: those starting with a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prefix(String);

impl Prefix {
    /// The entries of `map` in this range, in order.
    pub(crate) fn scan<V>(
        self,
        map: &std::collections::BTreeMap<SortKey, V>,
    ) -> impl Iterator<Item = (&SortKey, &V)> {
        use std::ops::Bound::{Included, Unbounded};
        map.range::<str, _>((Included(self.0.as_str()), Unbounded))
            .take_while(move |(k, _)| k.0.starts_with(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn cat(s: &str) -> CatalogueUri {
        CatalogueUri::from_addr(s).unwrap()
    }

    fn svc(s: &str) -> ServiceUri {
        ServiceUri::parse(s).unwrap()
    }

    #[test]
    fn classes_follow_the_tag() {
        assert_eq!(SortKey::catalogue(&cat("a:1")).class(), Class::Catalogue);
        assert_eq!(SortKey::config("app/x").class(), Class::Config);
        assert_eq!(SortKey::link(&cat("a:1"), &cat("b:1")).class(), Class::Volatile);
        assert_eq!(
            SortKey::service(&cat("a:1"), &svc("tcp://h:1/x")).class(),
            Class::Volatile
        );
    }

    #[test]
    fn a_service_key_gives_back_its_uri() {
        let s = svc("tcp://h:1/a%20b");
        let k = SortKey::service(&cat("a:1"), &s);
        assert_eq!(k.service_uri(), s);
        assert_eq!(k.service_text(), s.as_str());
    }

    #[test]
    fn ranges_hold_exactly_their_keys() {
        let (a, ab) = (cat("a:1"), cat("ab:1"));
        let keys = [
            SortKey::catalogue(&a),
            SortKey::config("app/x"),
            SortKey::config("app2"),
            SortKey::config("hook/x"),
            SortKey::link(&a, &ab),
            SortKey::service(&a, &svc("tcp://h:1/x")),
            SortKey::service(&ab, &svc("tcp://h:1/y")),
        ];
        let map: BTreeMap<SortKey, ()> = keys.iter().map(|k| (k.clone(), ())).collect();
        let names = |p: Prefix| p.scan(&map).map(|(k, _)| k.to_string()).collect::<Vec<_>>();
        assert_eq!(names(SortKey::all_services()).len(), 2);
        assert_eq!(names(SortKey::all_links()).len(), 1);
        assert_eq!(
            names(SortKey::services_of(&a)),
            [SortKey::service(&a, &svc("tcp://h:1/x")).to_string()],
            "x-tvnetcs://ab:1/ is another owner"
        );
        assert_eq!(names(SortKey::config_with_prefix("app")).len(), 2);
        assert_eq!(names(SortKey::config_with_prefix("app/")).len(), 1);
        assert_eq!(names(SortKey::config_with_prefix("")).len(), 3);
    }
}
