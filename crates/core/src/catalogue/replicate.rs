//! Replication: minting, storing and flooding versions; applying a peer's
//! versions (newer wins, the owner is authoritative, the collection horizon
//! refuses what was collected); forgetting what died with an incarnation.

use std::cmp::Ordering;
use std::sync::Arc;

use rarangi_proto::{Attrs, CatalogueUri, ErrorCode, Message, ServiceUri, Ts};

use super::link::PeerState;
use super::Catalogue;
use crate::item::{version, Class, Item, KeyRecord, PeerId, Value};
use crate::output::{Notice, Output, PersistOp};
use crate::sort_key::SortKey;

impl Catalogue {
    /// Our own incarnation record.
    pub(super) fn catalogue_record(&self) -> (SortKey, Value) {
        let uri = self.cfg.uri.clone();
        let key = SortKey::catalogue(&uri);
        let value = Value::Catalogue {
            uri,
            cluster: self.cfg.cluster.clone(),
            left: None,
        };
        (key, value)
    }

    /// A service registered here, live (`attrs`) or deleted (None).
    pub(super) fn service_value(&self, service: &ServiceUri, attrs: Option<Attrs>) -> (SortKey, Value) {
        let key = SortKey::service(&self.cfg.uri, service);
        let value = Value::Service {
            catalogue: self.cfg.uri.clone(),
            cluster: self
                .clusters
                .get(self.cfg.cluster.as_str())
                .cloned()
                .unwrap_or_default(),
            attrs,
        };
        (key, value)
    }

    /// Stores a new version minted here and floods it.
    pub(super) fn mint(&mut self, (key, value): (SortKey, Value)) -> Ts {
        let ts = self.hlc.now(self.now_ms);
        self.note_seen(&key, &value, ts);
        self.put(key.clone(), Item::new(value, ts));
        self.flood(&key);
        ts
    }

    /// Sends an item to every active peer not known to hold it.
    pub(super) fn flood(&mut self, key: &SortKey) {
        let targets: Vec<(CatalogueUri, PeerId)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.state != PeerState::Handshake)
            .map(|(u, p)| (u.clone(), p.id))
            .collect();
        let Some(item) = self.db.get(key) else { return };
        let msg = item.message(key);
        let owner = service_owner(&item.value).cloned();
        for (uri, id) in targets {
            let item = self.db.get_mut(key).expect("present");
            if !item.is_known_by(id) {
                item.mark_known(id);
                if let Some(owner) = &owner {
                    self.owner_record_first(&uri, id, owner);
                }
                self.out.push(Output::ToPeer {
                    peer: uri,
                    msg: msg.clone(),
                });
            }
        }
    }

    /// Sends `owner`'s CATALOGUE record to a peer not known to hold it,
    /// before one of its services: receivers refuse services of catalogues
    /// they hold no record of, and links keep their order. Only while the
    /// link reconciles: once it is up, the peer holds every record we held
    /// then, and later ones were flooded to it before any of their services.
    pub(super) fn owner_record_first(&mut self, peer: &CatalogueUri, pid: PeerId, owner: &CatalogueUri) {
        if self.peers.get(peer).is_none_or(|p| p.state == PeerState::Up) {
            return;
        }
        let key = SortKey::catalogue(owner);
        let Some(item) = self.db.get_mut(&key) else { return };
        if !item.is_known_by(pid) {
            item.mark_known(pid);
            let msg = item.message(&key);
            self.send_peer(peer, msg);
        }
    }

    /// Replaces an item and updates everything derived from it.
    pub(super) fn put(&mut self, key: SortKey, item: Item) {
        self.put_item(key, item, true);
    }

    /// [`Self::put`]; `persist` false for configuration the driver has
    /// made durable already (a committed write, a restored record).
    pub(super) fn put_item(&mut self, key: SortKey, mut item: Item, persist: bool) {
        if item.value.is_tombstone() {
            self.tombstones.insert((item.ts, key.clone()));
        }
        match &item.value {
            Value::Catalogue { uri, cluster, left } => {
                let held = self.catalogues.get(uri).map(|(ts, _)| *ts);
                let newer = held
                    .or(self.departed.get(uri).map(|d| d.0))
                    .is_none_or(|ts| item.ts > ts);
                if newer {
                    match left {
                        None => {
                            self.departed.remove(uri);
                            self.catalogues.insert(uri.clone(), (item.ts, cluster.clone()));
                        }
                        Some(reason) => {
                            self.catalogues.remove(uri);
                            self.unreachable_since.remove(uri);
                            self.departed.insert(uri.clone(), (item.ts, *reason));
                            if *uri != self.cfg.uri {
                                self.notice(Notice::Left {
                                    catalogue: uri.clone(),
                                    reason: *reason,
                                });
                            }
                        }
                    }
                    if *uri != self.cfg.uri {
                        self.purge_stale(uri, item.ts);
                    }
                    let msg = item.message(&key);
                    self.notify_link_followers(msg);
                }
            }
            Value::Link { a, b, up } => {
                if *a != self.cfg.uri && *b != self.cfg.uri {
                    let effective = self.link_effective(a, b, *up, item.ts);
                    self.set_link(a, b, effective, item.ts);
                }
            }
            Value::Service { .. } => {
                self.dirty_services.insert(key.clone());
            }
            Value::Key { key: name, .. } => {
                self.hooks.note_change();
                self.collected_keys.remove(&**name);
                if let Some(rec) = KeyRecord::from_value(&item.value, item.ts).filter(|_| persist) {
                    self.out.push(Output::Persist(PersistOp::Key(rec)));
                }
            }
        }
        if let Value::Service {
            catalogue, cluster, ..
        } = &mut item.value
        {
            // Share the owner's URI and cluster text among all its services.
            if let Some((shared, _)) = self.catalogues.get_key_value(catalogue) {
                *catalogue = shared.clone();
            }
            *cluster = self.intern_cluster(cluster);
        }
        item.fresh = true;
        if let Some(old) = self.db.get(&key) {
            item.shown = old.shown;
        }
        let owner = service_owner(&item.value).cloned();
        if self.db.insert(key, Box::new(item)).is_none() {
            if let Some(owner) = owner {
                *self.services_held.entry(owner).or_default() += 1;
            }
        }
    }

    /// The shared copy of a cluster name.
    fn intern_cluster(&mut self, name: &str) -> Arc<String> {
        if let Some(c) = self.clusters.get(name) {
            return c.clone();
        }
        let c = Arc::new(name.to_owned());
        self.clusters.insert(name.to_owned(), c.clone());
        c
    }

    /// Drops services and links of `owner` older than its new incarnation:
    /// they died with its previous instance.
    fn purge_stale(&mut self, owner: &CatalogueUri, inc: Ts) {
        let links = SortKey::all_links().scan(&self.db);
        let services = SortKey::services_of(owner).scan(&self.db);
        let stale: Vec<SortKey> = links
            .chain(services)
            .filter(|(_, i)| i.ts < inc && owned_by(&i.value, owner))
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.forget(&k);
        }
    }

    /// Removes an item without a tombstone (collected or stale).
    pub(super) fn forget(&mut self, key: &SortKey) -> Option<Item> {
        let item = *self.db.remove(key)?;
        if let Some(owner) = service_owner(&item.value) {
            if let Some(n) = self.services_held.get_mut(owner) {
                *n -= 1;
                if *n == 0 {
                    self.services_held.remove(owner);
                }
            }
        }
        match &item.value {
            Value::Service { .. } if item.shown => {
                let del = item.value.del_serv(key, item.ts);
                self.notify_subscribers(&key.service_text(), del);
            }
            Value::Link { a, b, .. } if *a != self.cfg.uri && *b != self.cfg.uri => {
                let (a, b) = (a.clone(), b.clone());
                self.set_link(&a, &b, false, item.ts);
            }
            _ => {}
        }
        Some(item)
    }

    pub(super) fn incarnation_of(&self, c: &CatalogueUri) -> Ts {
        if *c == self.cfg.uri {
            return self.incarnation;
        }
        // A departed catalogue's departure: what it held before is stale.
        self.catalogues
            .get(c)
            .map(|r| r.0)
            .or(self.departed.get(c).map(|d| d.0))
            .unwrap_or(Ts(0))
    }

    /// A service or link version from before its owner's current incarnation.
    fn is_stale(&self, value: &Value, ts: Ts) -> bool {
        match value {
            Value::Service { catalogue, .. } => ts < self.incarnation_of(catalogue),
            Value::Link { a, b, .. } => ts < self.incarnation_of(a) || ts < self.incarnation_of(b),
            _ => false,
        }
    }

    /// The item stored under `key` with `value`, as this catalogue knows
    /// it to be, or None if it does not own it.
    fn truth(&self, key: &SortKey, value: &Value) -> Option<(SortKey, Value)> {
        let me = &self.cfg.uri;
        match value {
            Value::Service {
                catalogue, cluster, ..
            } if catalogue == me => Some((
                key.clone(),
                Value::Service {
                    catalogue: catalogue.clone(),
                    cluster: cluster.clone(),
                    attrs: self.own.get(&key.service_uri()).map(|r| r.attrs.clone()),
                },
            )),
            Value::Link { a, b, .. } if a == me || b == me => {
                let other = if a == me { b } else { a };
                match self.peers.get(other).map(|p| p.state) {
                    // Mid-handshake we are not yet sure either way.
                    Some(PeerState::Handshake | PeerState::Syncing { .. }) => None,
                    Some(PeerState::Up) => Some(self.link_value(other, true)),
                    None => Some(self.link_value(other, false)),
                }
            }
            Value::Catalogue { uri, .. } if uri == me => Some(self.catalogue_record()),
            _ => None,
        }
    }

    /// Applies a replicated item (sort key, value, version) from a peer.
    pub(super) fn apply_remote(
        &mut self,
        peer: &CatalogueUri,
        pid: PeerId,
        (key, value, ts): (SortKey, Value, Ts),
    ) {
        if let Err(e) = self.hlc.observe(ts, self.now_ms) {
            self.send_peer(peer, Message::error(ErrorCode::ClockSkew, e.to_string()));
            self.notice(Notice::ClockSkew {
                peer: peer.clone(),
                detail: e.to_string(),
            });
            return;
        }
        if self.is_stale(&value, ts) {
            return;
        }
        if let Some(truth) = self.truth(&key, &value) {
            self.apply_owned(peer, pid, key, value, ts, truth);
        } else {
            self.apply_generic(peer, pid, key, value, ts);
        }
    }

    /// The owner is authoritative for its own items: a contradicting version
    /// at least as new as ours is answered with a fresh version of the truth.
    fn apply_owned(
        &mut self,
        peer: &CatalogueUri,
        pid: PeerId,
        key: SortKey,
        value: Value,
        ts: Ts,
        truth: (SortKey, Value),
    ) {
        if let Value::Catalogue { .. } = value {
            match ts.cmp(&self.incarnation) {
                Ordering::Greater => self.reincarnate(),
                // A departure minted elsewhere with our incarnation's very
                // timestamp (two clocks can issue one value) wins the tie
                // (delete over add): answer it with a newer incarnation.
                Ordering::Equal if value.is_tombstone() => self.reincarnate(),
                Ordering::Equal => {
                    if let Some(i) = self.db.get_mut(&key) {
                        i.mark_known(pid);
                    }
                }
                Ordering::Less => self.answer_older(peer, pid, &key),
            }
            return;
        }
        if value == truth.1 {
            return self.apply_generic(peer, pid, key, value, ts);
        }
        let newer = self
            .db
            .get(&key)
            .is_none_or(|cur| version(&value, ts) >= cur.version());
        if newer {
            self.mint(truth);
        } else {
            self.answer_older(peer, pid, &key);
        }
    }

    /// Our incarnation record was contradicted by a newer one (a clock that
    /// went back with no persisted state): start a new incarnation and
    /// re-issue everything we own.
    fn reincarnate(&mut self) {
        self.incarnation = self.hlc.now(self.now_ms);
        let (key, rec) = self.catalogue_record();
        self.put(key.clone(), Item::new(rec, self.incarnation));
        self.flood(&key);
        let peers: Vec<CatalogueUri> = self
            .peers
            .iter()
            .filter(|(_, p)| p.state == PeerState::Up)
            .map(|(u, _)| u.clone())
            .collect();
        for p in peers {
            self.mint(self.link_value(&p, true));
        }
        let own: Vec<(ServiceUri, Attrs)> = self
            .own
            .iter()
            .map(|(s, r)| (s.clone(), r.attrs.clone()))
            .collect();
        for (service, attrs) in own {
            self.mint(self.service_value(&service, Some(attrs)));
        }
    }

    /// A peer sent an older version than ours: send it ours unless it has it.
    fn answer_older(&mut self, peer: &CatalogueUri, pid: PeerId, key: &SortKey) {
        let Some(cur) = self.db.get_mut(key) else { return };
        if !cur.is_known_by(pid) {
            cur.mark_known(pid);
            let msg = cur.message(key);
            if let Some(owner) = service_owner(&cur.value).cloned() {
                self.owner_record_first(peer, pid, &owner);
            }
            self.send_peer(peer, msg);
        }
    }

    fn apply_generic(&mut self, peer: &CatalogueUri, pid: PeerId, key: SortKey, value: Value, ts: Ts) {
        let class = key.class();
        let origin = value.origin().clone();
        match self.db.get_mut(&key) {
            Some(cur) => match version(&value, ts).cmp(&cur.version()) {
                Ordering::Greater => {
                    let mut item = Item::new(value, ts);
                    item.mark_known(pid);
                    self.put(key.clone(), item);
                    self.flood(&key);
                }
                Ordering::Equal => cur.mark_known(pid),
                Ordering::Less => self.answer_older(peer, pid, &key),
            },
            None => {
                if let Some(detail) = self.refuse_new_service(&value) {
                    return self.notice(Notice::ItemRefused {
                        peer: peer.clone(),
                        detail: format!("{key}: {detail}"),
                    });
                }
                // Catalogue records too: one not held is either new, or
                // the copy of a departed catalogue whose departure was
                // collected (the collection noted it as seen).
                let refused = match (&value, class) {
                    (Value::Key { key, .. }, _) => self.collected_keys.get(&**key).is_some_and(|&c| ts <= c),
                    _ => self.volatile_horizon.refuses(&origin, ts),
                };
                if refused {
                    // Seen before, deleted and collected: delete it again so
                    // the sender's side forgets it too.
                    if !value.is_tombstone() {
                        self.notice(Notice::StaleRefused { key: key.to_string() });
                        let tomb = self.tombstone_of(value);
                        self.mint((key, tomb));
                    }
                } else {
                    let mut item = Item::new(value, ts);
                    item.mark_known(pid);
                    self.put(key.clone(), item);
                    self.flood(&key);
                }
            }
        }
        if class == Class::Volatile {
            self.volatile_horizon.note_seen(&origin, ts);
        }
    }

    /// Remembers the greatest version seen per origin (see `horizon`).
    fn note_seen(&mut self, key: &SortKey, value: &Value, ts: Ts) {
        if key.class() == Class::Volatile {
            self.volatile_horizon.note_seen(value.origin(), ts);
        }
    }

    fn tombstone_of(&self, value: Value) -> Value {
        match value {
            Value::Link { a, b, .. } => Value::Link { a, b, up: false },
            Value::Service {
                catalogue, cluster, ..
            } => Value::Service {
                catalogue,
                cluster,
                attrs: None,
            },
            Value::Key { key, .. } => Value::Key {
                key,
                origin: self.cfg.uri.clone(),
                value: None,
            },
            // A stale incarnation is answered with a departure: if the
            // catalogue is in fact alive, it starts a newer incarnation.
            Value::Catalogue { uri, cluster, .. } => Value::Catalogue {
                uri,
                cluster,
                left: Some(rarangi_proto::Departure::Reaped),
            },
        }
    }
}

/// The owning catalogue of a service item.
pub(super) fn service_owner(value: &Value) -> Option<&CatalogueUri> {
    match value {
        Value::Service { catalogue, .. } => Some(catalogue),
        _ => None,
    }
}

/// Whether `owner` owns the item: a service registered there, a link with
/// it at one end, its record.
fn owned_by(value: &Value, owner: &CatalogueUri) -> bool {
    match value {
        Value::Service { catalogue, .. } => catalogue == owner,
        Value::Link { a, b, .. } => a == owner || b == owner,
        Value::Catalogue { uri, .. } => uri == owner,
        Value::Key { .. } => false,
    }
}
