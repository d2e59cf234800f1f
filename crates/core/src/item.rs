//! Replicated items: catalogue records, links, services and configuration
//! keys, each with a version and a tombstone flag.

use rarangi_proto::{Attrs, CatalogueUri, Departure, Message, ServiceUri, Ts};
use smallvec::SmallVec;
use std::sync::Arc;

use crate::sort_key::SortKey;

/// The payload of an item. A service's URI is not here: it is stored once,
/// in the item's sort key, and read back with [`SortKey::service_uri`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Catalogue {
        uri: CatalogueUri,
        cluster: String,
        /// Some when the catalogue departed (LEFT): a tombstone of the
        /// incarnation, collected after the horizon.
        left: Option<Departure>,
    },
    Link {
        a: CatalogueUri,
        b: CatalogueUri,
        up: bool,
    },
    Service {
        catalogue: CatalogueUri,
        /// Shared among services of one cluster; a thin pointer keeps the
        /// item within 96 bytes.
        cluster: Arc<String>,
        /// None for a tombstone.
        attrs: Option<Attrs>,
    },
    Key {
        key: Box<str>,
        origin: CatalogueUri,
        /// None for a tombstone.
        value: Option<Box<str>>,
    },
}

/// A peer link's identity for send-once bookkeeping; never reused.
pub(crate) type PeerId = u32;

/// One stored item: payload, version, and the peers known to hold this
/// exact version (so nothing is sent to them twice).
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) value: Value,
    pub(crate) ts: Ts,
    /// Usually a few neighbours: kept inline, no allocation.
    pub(crate) known: SmallVec<[PeerId; 4]>,
    /// Services: subscribers were last told this record is visible.
    pub(crate) shown: bool,
    /// Services: a new version not yet shown to subscribers.
    pub(crate) fresh: bool,
}

/// The replicated database, ordered by sort key. Items are boxed so the
/// tree's nodes stay small (they are often half full).
pub(crate) type Db = std::collections::BTreeMap<SortKey, Box<Item>>;

/// Which horizon (collection floor) an item kind belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Catalogue records: deleted only by a departure (LEFT).
    Catalogue,
    /// Links and services: lost on restart.
    Volatile,
    /// Configuration: durable.
    Config,
}

impl Value {
    /// A digest of the content a version carries beyond its origin and
    /// kind: a key's value, a service's attributes, a catalogue's cluster.
    pub(crate) fn digest(&self) -> u64 {
        let mut h = Fnv::default();
        match self {
            Value::Catalogue { cluster, left, .. } => {
                h.write(cluster.as_bytes());
                if let Some(d) = left {
                    h.write(d.as_str().as_bytes());
                }
            }
            Value::Link { .. } => {}
            Value::Service { cluster, attrs, .. } => {
                h.write(cluster.as_bytes());
                for (k, v) in attrs.iter().flat_map(|a| a.0.iter()) {
                    h.write(k.as_bytes());
                    h.write(&[0]);
                    h.write(v.as_bytes());
                    h.write(&[0]);
                }
            }
            Value::Key { value, .. } => {
                if let Some(v) = value {
                    h.write(v.as_bytes());
                }
            }
        }
        h.0
    }

    pub(crate) fn is_tombstone(&self) -> bool {
        match self {
            Value::Catalogue { left, .. } => left.is_some(),
            Value::Link { up, .. } => !up,
            Value::Service { attrs, .. } => attrs.is_none(),
            Value::Key { value, .. } => value.is_none(),
        }
    }

    /// The catalogue whose version stream this item belongs to, for the
    /// collection horizon and tie-breaking. Links use their lower end.
    pub(crate) fn origin(&self) -> &CatalogueUri {
        match self {
            Value::Catalogue { uri, .. } => uri,
            Value::Link { a, .. } => a,
            Value::Service { catalogue, .. } => catalogue,
            Value::Key { origin, .. } => origin,
        }
    }

    /// Converts a replication message into an item's sort key, value and
    /// version; None for any other message.
    pub(crate) fn from_message(msg: Message) -> Option<(SortKey, Value, Ts)> {
        let service = |service: ServiceUri, catalogue: CatalogueUri, cluster: String, attrs| {
            let key = SortKey::service(&catalogue, &service);
            let value = Value::Service {
                catalogue,
                cluster: Arc::new(cluster),
                attrs,
            };
            (key, value)
        };
        Some(match msg {
            Message::Catalogue {
                catalogue,
                cluster,
                ts,
            } => (
                SortKey::catalogue(&catalogue),
                Value::Catalogue {
                    uri: catalogue,
                    cluster,
                    left: None,
                },
                ts,
            ),
            Message::Left {
                catalogue,
                cluster,
                ts,
                reason,
            } => (
                SortKey::catalogue(&catalogue),
                Value::Catalogue {
                    uri: catalogue,
                    cluster,
                    left: Some(reason),
                },
                ts,
            ),
            Message::AddLink { a, b, ts } => Self::link(a, b, true, ts),
            Message::DelLink { a, b, ts } => Self::link(a, b, false, ts),
            Message::AddServ {
                service: s,
                catalogue,
                cluster,
                ts,
                attrs,
            } => {
                let (key, value) = service(s, catalogue, cluster, Some(attrs));
                (key, value, ts)
            }
            Message::DelServ {
                service: s,
                catalogue,
                cluster,
                ts,
            } => {
                let (key, value) = service(s, catalogue, cluster, None);
                (key, value, ts)
            }
            Message::SetKey {
                key,
                origin,
                ts,
                value,
            } => (
                SortKey::config(&key),
                Value::Key {
                    key: key.into(),
                    origin,
                    value: Some(value.into()),
                },
                ts,
            ),
            Message::DelKey { key, origin, ts } => (
                SortKey::config(&key),
                Value::Key {
                    key: key.into(),
                    origin,
                    value: None,
                },
                ts,
            ),
            _ => return None,
        })
    }

    fn link(a: CatalogueUri, b: CatalogueUri, up: bool, ts: Ts) -> (SortKey, Value, Ts) {
        (SortKey::link(&a, &b), Value::Link { a, b, up }, ts)
    }

    /// DEL_SERV for a service item (live or not) at version `ts`.
    pub(crate) fn del_serv(&self, sort_key: &SortKey, ts: Ts) -> Message {
        match self {
            Value::Service {
                catalogue, cluster, ..
            } => Message::DelServ {
                service: sort_key.service_uri(),
                catalogue: catalogue.clone(),
                cluster: cluster.to_string(),
                ts,
            },
            other => other.to_message(sort_key, ts),
        }
    }

    /// The replication message carrying this value, stored under
    /// `sort_key`, at version `ts`.
    pub(crate) fn to_message(&self, sort_key: &SortKey, ts: Ts) -> Message {
        match self.clone() {
            Value::Catalogue {
                uri,
                cluster,
                left: None,
            } => Message::Catalogue {
                catalogue: uri,
                cluster,
                ts,
            },
            Value::Catalogue {
                uri,
                cluster,
                left: Some(reason),
            } => Message::Left {
                catalogue: uri,
                cluster,
                ts,
                reason,
            },
            Value::Link { a, b, up: true } => Message::AddLink { a, b, ts },
            Value::Link { a, b, up: false } => Message::DelLink { a, b, ts },
            Value::Service {
                catalogue,
                cluster,
                attrs: Some(attrs),
            } => Message::AddServ {
                service: sort_key.service_uri(),
                catalogue,
                cluster: cluster.to_string(),
                ts,
                attrs,
            },
            Value::Service { attrs: None, .. } => self.del_serv(sort_key, ts),
            Value::Key {
                key,
                origin,
                value: Some(value),
            } => Message::SetKey {
                key: key.into(),
                origin,
                ts,
                value: value.into(),
            },
            Value::Key {
                key,
                origin,
                value: None,
            } => Message::DelKey {
                key: key.into(),
                origin,
                ts,
            },
        }
    }
}

/// Total order of versions: timestamp, then origin URI, then delete over add
/// (DESIGN §4: newer wins, ties broken by origin), then a digest of the
/// content. An honest origin never issues one timestamp twice, but a forged
/// or buggy one may send two contents under one version; the digest makes
/// every catalogue keep the same one of them.
pub(crate) fn version(value: &Value, ts: Ts) -> (Ts, &str, bool, u64) {
    (ts, value.origin().as_str(), value.is_tombstone(), value.digest())
}

impl Item {
    pub(crate) fn new(value: Value, ts: Ts) -> Self {
        Self {
            value,
            ts,
            known: SmallVec::new(),
            shown: false,
            fresh: true,
        }
    }

    /// The replication message for this item, stored under `sort_key`.
    pub(crate) fn message(&self, sort_key: &SortKey) -> Message {
        self.value.to_message(sort_key, self.ts)
    }

    pub(crate) fn version(&self) -> (Ts, &str, bool, u64) {
        version(&self.value, self.ts)
    }

    pub(crate) fn is_known_by(&self, peer: PeerId) -> bool {
        self.known.contains(&peer)
    }

    pub(crate) fn mark_known(&mut self, peer: PeerId) {
        if !self.known.contains(&peer) {
            self.known.push(peer);
        }
    }

    /// Hash of identity and the whole version (timestamp, origin, delete
    /// flag) for range fingerprints.
    pub(crate) fn fingerprint(&self, sort_key: &SortKey) -> u64 {
        let mut h = Fnv::default();
        h.write(sort_key.as_str().as_bytes());
        h.write(&self.ts.0.to_le_bytes());
        // The whole version: equal timestamps from two origins differ.
        h.write(self.value.origin().as_str().as_bytes());
        h.write(&[u8::from(self.value.is_tombstone())]);
        h.write(&self.value.digest().to_le_bytes());
        mix(h.0)
    }
}

/// A configuration record as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key.
    pub key: String,
    /// The catalogue that wrote this version.
    pub origin: CatalogueUri,
    /// Its version.
    pub ts: Ts,
    /// The value; None for a delete (tombstone).
    pub value: Option<String>,
}

impl KeyRecord {
    pub(crate) fn from_value(value: &Value, ts: Ts) -> Option<Self> {
        match value {
            Value::Key { key, origin, value } => Some(Self {
                key: key.to_string(),
                origin: origin.clone(),
                ts,
                value: value.as_deref().map(str::to_owned),
            }),
            _ => None,
        }
    }

    /// The record's sort key and value.
    pub(crate) fn to_entry(&self) -> (SortKey, Value) {
        let value = Value::Key {
            key: self.key.as_str().into(),
            origin: self.origin.clone(),
            value: self.value.as_deref().map(Into::into),
        };
        (SortKey::config(&self.key), value)
    }
}

#[derive(Clone, Copy)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// splitmix64 finaliser, so sums of hashes behave like random numbers.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// A catalogue holds one boxed Item per replicated service: keep it in
    /// the 96-byte allocation class (docs/BENCHMARKS.md, Scale).
    #[test]
    fn an_item_fits_in_96_bytes() {
        assert!(
            std::mem::size_of::<Item>() <= 96,
            "Item is {} bytes",
            std::mem::size_of::<Item>()
        );
        assert!(std::mem::size_of::<ServiceUri>() <= 24);
    }
}
