//! The catalogue state machine: the struct, its inputs and its queries.
//!
//! The work is split by job: `link` (a peer's life cycle and the
//! reconciliation rounds), `replicate` (applying, storing and flooding
//! versions, owner authority), `clients` (registrations, subscriptions,
//! topology followers).

mod admit;
mod clients;
mod depart;
mod health;
mod link;
mod nesoi;
mod own;
mod regexes;
mod replicate;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use rarangi_proto::{nearest_first, Attrs, CatalogueUri, Departure, ErrorCode, Hlc, Message, ServiceUri, Ts};
use regex::Regex;

use crate::config::Config;
use crate::horizon::Horizon;
use crate::item::{Class, Db, Item, KeyRecord, PeerId, Value};
use crate::output::{ClientId, Durable, Notice, Output, PersistOp};
use crate::sort_key::SortKey;
use crate::topology::Topology;

use crate::hooks::HookState;
use crate::lease::OwnReg;
pub use admit::{KeyError, LimitError};
use clients::Client;
pub use clients::{Registration, REGISTER_RULE};
pub use health::Probe;
use link::{Peer, PeerState};
pub use nesoi::PreparedWrite;
use regexes::Regexes;

/// A service record currently visible at this catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    /// The service URI.
    pub service: ServiceUri,
    /// The catalogue it is registered at.
    pub catalogue: CatalogueUri,
    /// That catalogue's cluster.
    pub cluster: String,
    /// Registration metadata.
    pub attrs: Attrs,
    /// The record's version.
    pub ts: Ts,
}

impl ServiceView {
    fn add_message(&self) -> Message {
        Message::AddServ {
            service: self.service.clone(),
            catalogue: self.catalogue.clone(),
            cluster: self.cluster.clone(),
            ts: self.ts,
            attrs: self.attrs.clone(),
        }
    }
}

/// The link topology as this catalogue sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyView {
    /// This catalogue.
    pub me: CatalogueUri,
    /// Every catalogue known, with its cluster ("" if only seen in a link).
    pub catalogues: BTreeMap<CatalogueUri, String>,
    /// Links that are up.
    pub links: BTreeSet<(CatalogueUri, CatalogueUri)>,
    /// Catalogues reachable from this one, itself included.
    pub reachable: BTreeSet<CatalogueUri>,
    /// The lowest reachable URI.
    pub leader: CatalogueUri,
}

/// One catalogue: the replicated database plus its clients.
#[derive(Debug)]
pub struct Catalogue {
    cfg: Config,
    hlc: Hlc,
    incarnation: Ts,
    now_ms: u64,
    db: Db,
    tombstones: BTreeSet<(Ts, SortKey)>,
    volatile_horizon: Horizon,
    /// Collected configuration deletes (key → version), kept so an older
    /// copy arriving after collection is refused: exact last-writer-wins.
    collected_keys: BTreeMap<String, Ts>,
    peers: BTreeMap<CatalogueUri, Peer>,
    next_peer: PeerId,
    clients: BTreeMap<ClientId, Client>,
    own: BTreeMap<ServiceUri, OwnReg>,
    /// Watchdog checks of own registrations; critical ones are parked here.
    health: health::Watches,
    /// Incarnation and cluster of every catalogue with a live record.
    catalogues: BTreeMap<CatalogueUri, (Ts, String)>,
    /// Departed catalogues (their record is a LEFT tombstone): the
    /// departure's version and why, until it is collected.
    departed: BTreeMap<CatalogueUri, (Ts, Departure)>,
    /// Known catalogues that are unreachable, since when (ms), for reaping.
    unreachable_since: BTreeMap<CatalogueUri, u64>,
    /// Service records (live or deleted) held per owner, for its cap.
    services_held: HashMap<CatalogueUri, usize>,
    /// Effective links, reachable set, leader.
    topology: Topology,
    /// Cluster names, shared by the service items that carry them.
    clusters: BTreeMap<String, Arc<String>>,
    /// Service items to recheck for visibility (each item's `shown` flag
    /// says what subscribers were last told).
    dirty_services: BTreeSet<SortKey>,
    /// Subscription regexes by source: the clients using each, and
    /// recently used ones kept compiled with their last snapshot, since
    /// `rarangi lookup` subscribes with the same few expressions over and
    /// over and most lookups find nothing changed since the last one.
    regexes: Regexes,
    /// Bumped whenever the visible services change; snapshots cached at an
    /// older generation are stale.
    services_gen: u64,
    /// Webhook delivery bookkeeping (leader only).
    hooks: HookState,
    /// Set by the server's memory guard: new registrations and
    /// subscriptions are refused with `2 limit`.
    memory_pressure: bool,
    /// Catalogues that became unreachable since: only these are "regained"
    /// when reachable again (a first link is news of another kind).
    was_lost: BTreeSet<CatalogueUri>,
    out: Vec<Output>,
}

impl Catalogue {
    /// Starts a catalogue. `durable` is what its [`PersistOp`]s wrote before
    /// (empty on first start); `clock_floor` is the persisted high-water mark
    /// of its clock, so timestamps stay monotonic across restarts.
    pub fn new(cfg: Config, durable: Durable, clock_floor: Ts, now_ms: u64) -> Self {
        let mut hlc = Hlc::new(clock_floor, cfg.max_skew_ms);
        let restored = durable
            .keys
            .iter()
            .map(|r| r.ts)
            .chain(durable.collected.iter().map(|c| c.1));
        for ts in restored {
            let _ = hlc.observe(ts, u64::MAX / 2);
        }
        let incarnation = hlc.now(now_ms);
        let mut c = Self {
            hlc,
            incarnation,
            now_ms,
            db: BTreeMap::new(),
            tombstones: BTreeSet::new(),
            volatile_horizon: Horizon::default(),
            collected_keys: durable.collected.iter().cloned().collect(),
            peers: BTreeMap::new(),
            next_peer: 0,
            clients: BTreeMap::new(),
            own: BTreeMap::new(),
            health: health::Watches::default(),
            catalogues: BTreeMap::new(),
            departed: BTreeMap::new(),
            unreachable_since: BTreeMap::new(),
            services_held: HashMap::new(),
            topology: Topology::new(cfg.uri.clone()),
            clusters: BTreeMap::from([(cfg.cluster.clone(), Arc::new(cfg.cluster.clone()))]),
            dirty_services: BTreeSet::new(),
            regexes: Regexes::default(),
            services_gen: 0,
            memory_pressure: false,
            was_lost: BTreeSet::new(),
            hooks: HookState::default(),
            out: Vec::new(),
            cfg,
        };
        for rec in durable.keys {
            let (key, value) = rec.to_entry();
            c.put(key, Item::new(value, rec.ts));
        }
        let (key, record) = c.catalogue_record();
        c.put(key, Item::new(record, incarnation));
        c.refresh();
        c.out.clear();
        c
    }

    // ----- inputs -------------------------------------------------------

    /// A connection to a peer catalogue passed the WELCOME check
    /// ([`crate::check_welcome`]). The link joins the topology when the
    /// peer's CATALOGUE record arrives.
    pub fn link_up(&mut self, now_ms: u64, peer: &CatalogueUri) {
        self.now_ms = now_ms;
        self.open_peer(peer);
        self.refresh();
    }

    /// The connection to a peer closed or timed out.
    pub fn link_down(&mut self, now_ms: u64, peer: &CatalogueUri) {
        self.now_ms = now_ms;
        self.drop_peer(peer);
        self.refresh();
    }

    /// A message arrived on the link to `peer`.
    pub fn peer_message(&mut self, now_ms: u64, peer: &CatalogueUri, msg: Message) {
        self.now_ms = now_ms;
        let Some(p) = self.peers.get(peer) else {
            return;
        };
        let (pid, state) = (p.id, p.state);
        let is_mark = matches!(msg, Message::SyncMark { .. });
        let before = self.out.len();
        self.handle_peer(peer, pid, state, msg);
        // While reconciling, anything we sent back (items the peer lacks,
        // refutations) must reach the peer before either side calls the
        // link in sync: it takes one more round.
        if !is_mark
            && self.out[before..]
                .iter()
                .any(|o| matches!(o, Output::ToPeer { peer: p, .. } if p == peer))
        {
            self.note_asked(peer);
        }
        self.refresh();
    }

    fn handle_peer(&mut self, peer: &CatalogueUri, pid: PeerId, state: PeerState, msg: Message) {
        match msg {
            Message::Heartbeat => {}
            Message::Error { code, text } => self.notice(Notice::PeerProtocol {
                peer: peer.clone(),
                detail: format!("peer sent ERROR {code} {text}"),
            }),
            Message::Sync {
                lo,
                hi,
                count,
                fingerprint,
            } => self.on_sync(peer, pid, lo, hi, count, fingerprint),
            Message::SyncPull { lo, hi } => self.on_pull(peer, pid, &lo, &hi),
            Message::SyncMark { last } => self.on_mark(peer, last),
            Message::Catalogue { ref catalogue, .. }
                if state == PeerState::Handshake && catalogue == peer =>
            {
                if let Some(entry) = Value::from_message(msg) {
                    self.apply_remote(peer, pid, entry);
                }
                self.start_sync(peer);
            }
            other => {
                let kind = other.kind();
                if self.refuse_oversized(peer, &other) {
                    return;
                }
                if let Some(entry) = Value::from_message(other) {
                    return self.apply_remote(peer, pid, entry);
                }
                self.send_peer(
                    peer,
                    Message::error(
                        ErrorCode::NotAllowed,
                        format!("{} is not a catalogue-to-catalogue message", kind.keyword()),
                    ),
                );
                self.notice(Notice::PeerProtocol {
                    peer: peer.clone(),
                    detail: format!("peer sent {}", kind.keyword()),
                });
            }
        }
    }

    /// The process is short of memory (`true`) or no longer (`false`):
    /// while it is, new REG_SERV and SUB_SERV are refused with `2 limit`
    /// (those already held, and repeats of them, go on).
    pub fn set_memory_pressure(&mut self, on: bool) {
        self.memory_pressure = on;
    }

    /// A client connected. `may_register` says whether REG_SERV is allowed
    /// on this connection (Unix socket, loopback, allow-listed, or a client
    /// certificate over TLS) and, if not, which rule its refusal names.
    pub fn client_connected(&mut self, client: ClientId, may_register: impl Into<Registration>) {
        self.clients.insert(
            client,
            Client {
                may_register: may_register.into(),
                ..Client::default()
            },
        );
    }

    /// A message arrived from a client.
    pub fn client_message(&mut self, now_ms: u64, client: ClientId, msg: Message) {
        self.now_ms = now_ms;
        if !self.clients.contains_key(&client) {
            return;
        }
        match msg {
            Message::Heartbeat => self.send_client(client, Message::Heartbeat),
            Message::Error { .. } => {}
            Message::RegServ { service, attrs } => self.register(client, service, attrs),
            Message::UnregServ { service } => self.unregister(client, &service),
            Message::SubServ { regex } => self.subscribe(client, regex),
            Message::UnsubServ { regex } => self.unsubscribe(client, regex),
            Message::SubLink => self.follow_links(client),
            Message::ForceLeave { catalogue } => self.force_leave(client, catalogue),
            Message::UnsubLink => {
                if let Some(c) = self.clients.get_mut(&client) {
                    c.follows_links = false;
                }
                self.send_client(client, Message::UnsubLink);
            }
            other => {
                let kw = other.kind().keyword();
                self.send_client(
                    client,
                    Message::error(
                        ErrorCode::NotAllowed,
                        format!("{kw} is only accepted between catalogues; clients may send REG_SERV, UNREG_SERV, SUB_SERV, UNSUB_SERV, SUB_LINK, UNSUB_LINK, HEARTBEAT"),
                    ),
                );
            }
        }
        self.refresh();
    }

    /// A client connection closed: its registrations end with it.
    pub fn client_disconnected(&mut self, now_ms: u64, client: ClientId) {
        self.now_ms = now_ms;
        let Some(c) = self.clients.remove(&client) else {
            return;
        };
        for source in &c.subs {
            self.release_regex(client, source);
        }
        for service in c.regs {
            self.release(client, &service);
        }
        self.refresh();
    }

    /// Periodic housekeeping: collects tombstones past the horizon,
    /// withdraws lapsed leases, retries webhooks that are due, and reaps
    /// catalogues unreachable for longer than `reap_after_ms`.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        self.expire_leases(now_ms);
        self.reap(now_ms);
        self.hooks.note_change();
        let horizon = self.cfg.tombstone_horizon_ms;
        while let Some((ts, key)) = self.tombstones.first().cloned() {
            if ts.millis().saturating_add(horizon) >= now_ms {
                break;
            }
            self.tombstones.pop_first();
            let Some(item) = self.db.get(&key) else { continue };
            if item.ts != ts || !item.value.is_tombstone() {
                continue;
            }
            let Some(item) = self.forget(&key) else { continue };
            match (key.class(), item.value) {
                (Class::Volatile, _) => self.volatile_horizon.floor = self.volatile_horizon.floor.max(ts),
                (Class::Catalogue, Value::Catalogue { uri, .. }) => {
                    Self::collect_departure(&mut self.volatile_horizon, &mut self.departed, &uri, ts);
                }
                (Class::Config, Value::Key { key: name, .. }) => {
                    let name = String::from(name);
                    self.collected_keys.insert(name.clone(), ts);
                    self.out
                        .push(Output::Persist(PersistOp::Collect { key: name, ts }));
                }
                _ => {}
            }
        }
        self.refresh();
    }

    /// Writes a configuration key locally (then replicates it). Returns the
    /// version; the driver acknowledges once the Persist output is durable.
    pub fn set_key(&mut self, now_ms: u64, key: &str, value: &str) -> Result<Ts, KeyError> {
        self.write_key(now_ms, key, value).map(|w| w.ts)
    }

    /// Deletes a configuration key; None if it does not exist. (Two
    /// phases: [`Self::prepare_key_delete`], [`Self::commit_write`].)
    pub fn del_key(&mut self, now_ms: u64, key: &str) -> Option<Ts> {
        let prepared = self.prepare_key_delete(now_ms, key);
        let ts = prepared.ts();
        self.apply_write(prepared, true);
        ts
    }

    /// Takes the outputs produced since the last call.
    pub fn drain(&mut self) -> Vec<Output> {
        // Webhooks are decided once per batch of inputs, not per input: a
        // service's version can take a scan of every service.
        self.run_hooks();
        std::mem::take(&mut self.out)
    }

    // ----- queries ------------------------------------------------------

    /// This catalogue's configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The greatest timestamp issued or seen; persist it to keep the clock
    /// monotonic across restarts.
    pub fn clock(&self) -> Ts {
        self.hlc.last()
    }

    /// The incarnation: the first timestamp this instance issued.
    pub fn incarnation(&self) -> Ts {
        self.incarnation
    }

    /// Every visible service record (owner reachable, registration live).
    pub fn services(&self) -> impl Iterator<Item = ServiceView> + '_ {
        self.services_where(|_| true)
    }

    /// Visible service records whose URI passes `keep`, tested before
    /// anything is copied.
    pub fn services_where<'a>(
        &'a self,
        keep: impl Fn(&str) -> bool + 'a,
    ) -> impl Iterator<Item = ServiceView> + 'a {
        SortKey::all_services()
            .scan(&self.db)
            .filter(|(_, item)| item.shown)
            .filter_map(move |(key, item)| match &item.value {
                Value::Service {
                    catalogue,
                    cluster,
                    attrs: Some(attrs),
                } if keep(&key.service_text()) => Some(ServiceView {
                    service: key.service_uri(),
                    catalogue: catalogue.clone(),
                    cluster: cluster.to_string(),
                    attrs: attrs.clone(),
                    ts: item.ts,
                }),
                _ => None,
            })
    }

    /// Visible records whose URI matches `regex`, one per URI, in locality
    /// order: registered here, then in our cluster, then elsewhere.
    pub fn lookup(&self, regex: &Regex) -> Vec<ServiceView> {
        nearest_first(
            self.services_where(|s| regex.is_match(s)),
            Some(&self.cfg.uri),
            &self.cfg.cluster,
            |v| (v.service.as_str(), &v.catalogue, &v.cluster),
        )
    }

    /// The topology as seen from here.
    pub fn topology(&self) -> TopologyView {
        let mut catalogues: BTreeMap<CatalogueUri, String> = self
            .catalogues
            .iter()
            .map(|(u, (_, c))| (u.clone(), c.clone()))
            .collect();
        // A departed catalogue is gone from the view at once, even while
        // its closing connection still counts in our own links.
        let links: BTreeSet<(CatalogueUri, CatalogueUri)> =
            self.live_links().map(|(a, b)| (a.clone(), b.clone())).collect();
        for (a, b) in &links {
            catalogues.entry(a.clone()).or_default();
            catalogues.entry(b.clone()).or_default();
        }
        TopologyView {
            me: self.cfg.uri.clone(),
            catalogues,
            links,
            reachable: self.live_reachable().cloned().collect(),
            leader: self.topology.leader().clone(),
        }
    }

    /// Links in the topology between catalogues that have not departed.
    fn live_links(&self) -> impl Iterator<Item = (&CatalogueUri, &CatalogueUri)> {
        self.topology
            .links()
            .filter(|(a, b)| !self.departed.contains_key(*a) && !self.departed.contains_key(*b))
    }

    /// Reachable catalogues that have not departed (this one always: the
    /// set is never empty).
    fn live_reachable(&self) -> impl Iterator<Item = &CatalogueUri> {
        self.topology
            .reachable()
            .iter()
            .filter(|c| **c == self.cfg.uri || !self.departed.contains_key(*c))
    }

    /// The lowest reachable catalogue URI (sends webhooks).
    pub fn leader(&self) -> &CatalogueUri {
        self.topology.leader()
    }

    /// True when `peer` has a link that is up in the topology.
    pub fn is_linked(&self, peer: &CatalogueUri) -> bool {
        self.peers.get(peer).is_some_and(|p| p.state == PeerState::Up)
    }

    /// A live configuration record.
    pub fn key(&self, key: &str) -> Option<KeyRecord> {
        let item = self.db.get(&SortKey::config(key))?;
        KeyRecord::from_value(&item.value, item.ts).filter(|r| r.value.is_some())
    }

    /// All live configuration records, ordered by key.
    pub fn keys(&self) -> Vec<KeyRecord> {
        self.keys_with_prefix("")
    }

    /// Live configuration records whose key starts with `prefix`, ordered
    /// by key.
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<KeyRecord> {
        SortKey::config_with_prefix(prefix)
            .scan(&self.db)
            .filter_map(|(_, i)| KeyRecord::from_value(&i.value, i.ts))
            .filter(|r| r.value.is_some())
            .collect()
    }

    // ----- derived state ------------------------------------------------

    /// Settles topology and visibility after an input and tells
    /// subscribers and topology followers what changed.
    fn refresh(&mut self) {
        if let Some(change) = self.topology.refresh() {
            for owner in change.catalogues() {
                let keys = SortKey::services_of(owner).scan(&self.db).map(|(k, _)| k.clone());
                self.dirty_services.extend(keys);
            }
            // A departed catalogue is reported as left, not as lost.
            let lost: Vec<CatalogueUri> = change
                .lost
                .iter()
                .filter(|c| !self.departed.contains_key(*c))
                .cloned()
                .collect();
            let regained: Vec<CatalogueUri> = change
                .regained
                .iter()
                .filter(|c| self.was_lost.remove(*c))
                .cloned()
                .collect();
            self.was_lost.extend(lost.iter().cloned());
            // Bounded by the catalogues known: drop those reclaimed.
            if self.was_lost.len() > self.catalogues.len() {
                let known = &self.catalogues;
                self.was_lost.retain(|c| known.contains_key(c));
            }
            if !(lost.is_empty() && regained.is_empty()) {
                self.notice(Notice::Reachability { lost, regained });
            }
            if let Some(leader) = change.leader {
                self.notice(Notice::Leader(leader));
            }
            let msg = self.reachable_message();
            self.notify_link_followers(msg);
        }
        for key in std::mem::take(&mut self.dirty_services) {
            self.recheck_service(key);
        }
    }

    fn send_peer(&mut self, peer: &CatalogueUri, msg: Message) {
        self.out.push(Output::ToPeer {
            peer: peer.clone(),
            msg,
        });
    }

    fn send_client(&mut self, client: ClientId, msg: Message) {
        self.out.push(Output::ToClient { client, msg });
    }

    fn notice(&mut self, n: Notice) {
        self.out.push(Output::Notice(n));
    }
}
