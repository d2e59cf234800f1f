//! Service attributes: `k=v&k=v`, each key and value percent-encoded.

use std::collections::BTreeMap;
use std::fmt;

use crate::encoding::{decode_field, encode_into};
use crate::error::ParseError;

/// Metadata of a service registration (`weight=10&zone=a`), sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Attrs(pub BTreeMap<String, String>);

impl Attrs {
    /// True when there are no attributes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Looks up one attribute.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Parses the wire form; an empty string is no attributes.
    pub fn parse(field: &str) -> Result<Self, ParseError> {
        let mut map = BTreeMap::new();
        for pair in field.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(decode_field(k)?, decode_field(v)?);
        }
        Ok(Self(map))
    }

    /// The wire form (empty for no attributes).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.encode_into(&mut out);
        out
    }

    /// Writes the wire form to `out` (a `String` or a byte counter).
    pub(crate) fn encode_into<W: fmt::Write>(&self, out: &mut W) {
        let special = |b: u8| b == b'&' || b == b'=';
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                let _ = out.write_str("&");
            }
            encode_into(out, k, special);
            let _ = out.write_str("=");
            encode_into(out, v, special);
        }
    }
}

impl fmt::Display for Attrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Attrs {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_string_form() {
        let a = Attrs::parse("weight=10&zone=a%26b&master").unwrap();
        assert_eq!(a.get("zone"), Some("a&b"));
        assert_eq!(a.get("master"), Some(""));
        assert_eq!(Attrs::parse(&a.encode()).unwrap(), a);
        assert_eq!(a.encode(), "master=&weight=10&zone=a%26b");
    }
}
