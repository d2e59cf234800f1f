//! The catalogue state machine.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rarangi_proto::{encode_field, Attrs, Bound, CatalogueUri, ErrorCode, Hlc, Message, ServiceUri, Ts};
use regex::Regex;

use crate::config::Config;
use crate::hooks::HookState;
use crate::horizon::Horizon;
use crate::item::{service_of, service_text, version, Class, Db, Item, ItemKey, KeyRecord, PeerId, Value};
use crate::lease::OwnReg;
use crate::output::{ClientId, Durable, Notice, Output, PersistOp};
use crate::{sync, topology};

mod nesoi;
mod own;

/// A neighbour catalogue with a connection up.
#[derive(Debug)]
struct Peer {
    id: PeerId,
    state: PeerState,
}

/// The life of a link: the peer's CATALOGUE record opens reconciliation;
/// the link joins the topology (ADD_LINK) only once reconciliation is done,
/// so nobody sees the far side's services before its deletes have arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerState {
    /// WELCOME exchanged; waiting for the peer's CATALOGUE record.
    Handshake,
    /// Reconciling; `asked` is true when we sent SYNC or SYNC_PULL since
    /// our last SYNC_MARK. Changes are flooded to the peer already.
    Syncing { asked: bool },
    /// In the topology.
    Up,
}

#[derive(Debug, Default)]
struct Client {
    may_register: bool,
    regs: BTreeSet<ServiceUri>,
    subs: Vec<(String, Regex)>,
    follows_links: bool,
}

/// A compiled subscription regex and the snapshot it last produced, with
/// the services generation it was taken at.
#[derive(Debug)]
struct CachedRegex {
    regex: Regex,
    snapshot: Option<(u64, Arc<[Message]>)>,
}

/// Larger snapshots are not cached (memory stays bounded).
const SNAPSHOT_CACHE_MAX: usize = 256;

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
    tombstones: BTreeSet<(Ts, String)>,
    volatile_horizon: Horizon,
    /// Collected configuration deletes (key → version), kept so an older
    /// copy arriving after collection is refused: exact last-writer-wins.
    collected_keys: BTreeMap<String, Ts>,
    peers: BTreeMap<CatalogueUri, Peer>,
    next_peer: PeerId,
    clients: BTreeMap<ClientId, Client>,
    own: BTreeMap<ServiceUri, OwnReg>,
    /// Incarnation and cluster of every catalogue with a record.
    catalogues: BTreeMap<CatalogueUri, (Ts, String)>,
    links: BTreeSet<(CatalogueUri, CatalogueUri)>,
    /// The same links as an adjacency map, for reachability searches.
    adj: BTreeMap<CatalogueUri, BTreeSet<CatalogueUri>>,
    reachable: BTreeSet<CatalogueUri>,
    /// Catalogues made reachable incrementally since the last refresh.
    regained: Vec<CatalogueUri>,
    leader: CatalogueUri,
    /// Cluster names, shared by the service items that carry them.
    clusters: BTreeMap<String, Arc<String>>,
    topo_dirty: bool,
    /// Service items to recheck for visibility (each item's `shown` flag
    /// says what subscribers were last told).
    dirty_services: BTreeSet<String>,
    /// Recently compiled subscription regexes, with their last snapshot:
    /// `rarangi lookup` subscribes with the same few expressions over and
    /// over, and most lookups find nothing changed since the last one.
    regex_cache: std::collections::HashMap<String, CachedRegex>,
    /// Bumped whenever the visible services change; snapshots cached at an
    /// older generation are stale.
    services_gen: u64,
    /// Webhook delivery bookkeeping (leader only).
    hooks: HookState,
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
        let me = cfg.uri.clone();
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
            catalogues: BTreeMap::new(),
            links: BTreeSet::new(),
            adj: BTreeMap::new(),
            reachable: BTreeSet::from([me.clone()]),
            regained: Vec::new(),
            leader: me.clone(),
            clusters: BTreeMap::from([(cfg.cluster.clone(), Arc::new(cfg.cluster.clone()))]),
            topo_dirty: true,
            dirty_services: BTreeSet::new(),
            regex_cache: std::collections::HashMap::new(),
            services_gen: 0,
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
        if self.peers.contains_key(peer) {
            self.drop_peer(peer);
        }
        let id = self.next_peer;
        self.next_peer = self.next_peer.wrapping_add(1);
        self.peers.insert(
            peer.clone(),
            Peer {
                id,
                state: PeerState::Handshake,
            },
        );
        let key = ItemKey::Catalogue(self.cfg.uri.clone()).sort_key();
        if let Some(item) = self.db.get_mut(&key) {
            item.mark_known(id);
            let msg = item.message(&key);
            self.send_peer(peer, msg);
        }
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

    /// A client connected. `may_register` says whether REG_SERV is allowed
    /// on this connection (Unix socket, loopback or allow-listed).
    pub fn client_connected(&mut self, client: ClientId, may_register: bool) {
        self.clients.insert(
            client,
            Client {
                may_register,
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
            Message::UnsubServ { regex } => {
                let c = self.clients.get_mut(&client).expect("checked above");
                let before = c.subs.len();
                c.subs.retain(|(src, _)| *src != regex);
                let msg = if c.subs.len() < before {
                    Message::UnsubServ { regex }
                } else {
                    Message::error(
                        ErrorCode::Other("not-found".into()),
                        format!("no subscription {regex:?} on this connection"),
                    )
                };
                self.send_client(client, msg);
            }
            Message::SubLink => self.follow_links(client),
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
        for service in c.regs {
            self.release(client, &service);
        }
        self.refresh();
    }

    /// Periodic housekeeping: collects tombstones past the horizon,
    /// withdraws lapsed leases, and retries webhooks that are due.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        self.expire_leases(now_ms);
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
            let class = item.value.class();
            self.forget(&key);
            match class {
                Class::Volatile => self.volatile_horizon.floor = self.volatile_horizon.floor.max(ts),
                Class::Config => {
                    let name = key.trim_start_matches("K ").to_owned();
                    self.collected_keys.insert(name.clone(), ts);
                    self.out
                        .push(Output::Persist(PersistOp::Collect { key: name, ts }));
                }
                Class::Catalogue => {}
            }
        }
        self.refresh();
    }

    /// Writes a configuration key locally (then replicates it). Returns the
    /// version; the driver acknowledges once the Persist output is durable.
    pub fn set_key(&mut self, now_ms: u64, key: &str, value: &str) -> Result<Ts, rarangi_proto::NameError> {
        self.write_key(now_ms, key, value).map(|w| w.ts)
    }

    /// Deletes a configuration key; None if it does not exist.
    pub fn del_key(&mut self, now_ms: u64, key: &str) -> Option<Ts> {
        self.now_ms = now_ms;
        self.key(key)?;
        let ts = self.mint(self.key_entry(key, None));
        self.refresh();
        Some(ts)
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
        self.db
            .range::<str, _>((std::ops::Bound::Included("S "), std::ops::Bound::Excluded("T")))
            .filter(|(_, item)| item.shown)
            .filter_map(move |(key, item)| match &item.value {
                Value::Service {
                    catalogue,
                    cluster,
                    attrs: Some(attrs),
                } if keep(&service_text(key)) => Some(ServiceView {
                    service: service_of(key),
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
        let mut best: BTreeMap<ServiceUri, ServiceView> = BTreeMap::new();
        for v in self.services_where(|s| regex.is_match(s)) {
            match best.get(&v.service) {
                Some(e) if self.locality(e) <= self.locality(&v) => {}
                _ => {
                    best.insert(v.service.clone(), v);
                }
            }
        }
        let mut out: Vec<ServiceView> = best.into_values().collect();
        out.sort_by(|a, b| {
            (self.locality(a), a.service.as_str()).cmp(&(self.locality(b), b.service.as_str()))
        });
        out
    }

    fn locality(&self, v: &ServiceView) -> u8 {
        rarangi_proto::locality(&v.catalogue, &v.cluster, Some(&self.cfg.uri), &self.cfg.cluster)
    }

    /// The topology as seen from here.
    pub fn topology(&self) -> TopologyView {
        let mut catalogues: BTreeMap<CatalogueUri, String> = self
            .catalogues
            .iter()
            .map(|(u, (_, c))| (u.clone(), c.clone()))
            .collect();
        for (a, b) in &self.links {
            catalogues.entry(a.clone()).or_default();
            catalogues.entry(b.clone()).or_default();
        }
        TopologyView {
            me: self.cfg.uri.clone(),
            catalogues,
            links: self.links.clone(),
            reachable: self.reachable.clone(),
            leader: self.leader.clone(),
        }
    }

    /// The lowest reachable catalogue URI (sends webhooks).
    pub fn leader(&self) -> &CatalogueUri {
        &self.leader
    }

    /// True when `peer` has a link that is up in the topology.
    pub fn is_linked(&self, peer: &CatalogueUri) -> bool {
        self.peers.get(peer).is_some_and(|p| p.state == PeerState::Up)
    }

    /// A live configuration record.
    pub fn key(&self, key: &str) -> Option<KeyRecord> {
        let item = self.db.get(&ItemKey::Key(key.to_owned()).sort_key())?;
        KeyRecord::from_value(&item.value, item.ts).filter(|r| r.value.is_some())
    }

    /// All live configuration records, ordered by key.
    pub fn keys(&self) -> Vec<KeyRecord> {
        self.keys_with_prefix("")
    }

    /// Live configuration records whose key starts with `prefix`, ordered
    /// by key.
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<KeyRecord> {
        // Fields are encoded character by character, so the encoded prefix
        // is a prefix of every encoded key that starts with `prefix`.
        let start = ItemKey::Key(prefix.to_owned()).sort_key();
        self.db
            .range(start.clone()..)
            .take_while(|(k, _)| k.starts_with(&start))
            .filter_map(|(_, i)| KeyRecord::from_value(&i.value, i.ts))
            .filter(|r| r.value.is_some())
            .collect()
    }

    /// Number of stored items, tombstones included.
    pub fn item_count(&self) -> usize {
        self.db.len()
    }

    // ----- replication --------------------------------------------------

    /// The peer's CATALOGUE record arrived: reconcile. The lower URI opens
    /// with a summary of everything; rounds end with SYNC_MARK.
    fn start_sync(&mut self, peer: &CatalogueUri) {
        self.set_state(peer, PeerState::Syncing { asked: false });
        if self.cfg.uri < *peer {
            let (count, fingerprint) = sync::summarize(&self.db, &Bound::Unbounded, &Bound::Unbounded);
            self.send_peer(
                peer,
                Message::Sync {
                    lo: Bound::Unbounded,
                    hi: Bound::Unbounded,
                    count,
                    fingerprint,
                },
            );
            self.note_asked(peer);
            self.send_mark(peer);
        }
    }

    fn set_state(&mut self, peer: &CatalogueUri, state: PeerState) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.state = state;
        }
    }

    /// Ends a round: if we asked for anything the peer answers in another
    /// round; otherwise we hold all the peer has and reconciliation is done.
    fn send_mark(&mut self, peer: &CatalogueUri) {
        let Some(PeerState::Syncing { asked }) = self.peers.get(peer).map(|p| p.state) else {
            return;
        };
        self.send_peer(peer, Message::SyncMark { last: !asked });
        if asked {
            self.set_state(peer, PeerState::Syncing { asked: false });
        } else {
            self.link_established(peer);
        }
    }

    fn on_mark(&mut self, peer: &CatalogueUri, last: bool) {
        if last {
            if let Some(PeerState::Syncing { .. }) = self.peers.get(peer).map(|p| p.state) {
                self.link_established(peer);
            }
        } else {
            self.send_mark(peer);
        }
    }

    fn link_established(&mut self, peer: &CatalogueUri) {
        self.set_state(peer, PeerState::Up);
        let ts = self.mint(self.link_value(peer, true));
        let (a, b) = ordered(&self.cfg.uri, peer);
        self.set_link(&a, &b, true, ts);
    }

    fn drop_peer(&mut self, peer: &CatalogueUri) {
        if let Some(p) = self.peers.remove(peer) {
            if p.state == PeerState::Up {
                let ts = self.mint(self.link_value(peer, false));
                let (a, b) = ordered(&self.cfg.uri, peer);
                self.set_link(&a, &b, false, ts);
            }
        }
    }

    /// Records a change of a link's effective state, tells topology
    /// followers, and flags a reachability recomputation if it can matter.
    fn set_link(&mut self, a: &CatalogueUri, b: &CatalogueUri, up: bool, ts: Ts) {
        let pair = (a.clone(), b.clone());
        let changed = if up {
            self.links.insert(pair)
        } else {
            self.links.remove(&pair)
        };
        if !changed {
            return;
        }
        if up {
            self.adj.entry(a.clone()).or_default().insert(b.clone());
            self.adj.entry(b.clone()).or_default().insert(a.clone());
        } else {
            for (x, y) in [(a, b), (b, a)] {
                if let Some(n) = self.adj.get_mut(x) {
                    n.remove(y);
                    if n.is_empty() {
                        self.adj.remove(x);
                    }
                }
            }
        }
        let (ra, rb) = (self.reachable.contains(a), self.reachable.contains(b));
        if up && ra != rb {
            // A link into an unreachable part: everything behind it joins.
            let start = if ra { b } else { a };
            let found = topology::reachable_from(start, &self.adj, &self.reachable);
            self.reachable.extend(found.iter().cloned());
            self.regained.extend(found);
        } else if !up && ra && rb {
            // Possibly cut off something: a full search at refresh.
            self.topo_dirty = true;
        }
        let (a, b) = (a.clone(), b.clone());
        self.notify_link_followers(if up {
            Message::AddLink { a, b, ts }
        } else {
            Message::DelLink { a, b, ts }
        });
    }

    /// Whether a link item counts in the topology: up, newer than both ends'
    /// incarnations, and not one of ours (ours follow our connections).
    fn link_effective(&self, a: &CatalogueUri, b: &CatalogueUri, up: bool, ts: Ts) -> bool {
        up && ts >= self.incarnation_of(a) && ts >= self.incarnation_of(b)
    }

    fn link_value(&self, peer: &CatalogueUri, up: bool) -> (String, Value) {
        let (a, b) = ordered(&self.cfg.uri, peer);
        (
            ItemKey::Link(a.clone(), b.clone()).sort_key(),
            Value::Link { a, b, up },
        )
    }

    /// Our own incarnation record.
    fn catalogue_record(&self) -> (String, Value) {
        let uri = self.cfg.uri.clone();
        let value = Value::Catalogue {
            uri: uri.clone(),
            cluster: self.cfg.cluster.clone(),
        };
        (ItemKey::Catalogue(uri).sort_key(), value)
    }

    /// A configuration version written here; None deletes.
    fn key_entry(&self, key: &str, value: Option<String>) -> (String, Value) {
        let v = Value::Key {
            key: key.into(),
            origin: self.cfg.uri.clone(),
            value: value.map(Into::into),
        };
        (ItemKey::Key(key.to_owned()).sort_key(), v)
    }

    /// Stores a new version minted here and floods it.
    fn mint(&mut self, (key, value): (String, Value)) -> Ts {
        let ts = self.hlc.now(self.now_ms);
        self.note_seen(&value, ts);
        self.put(key.clone(), Item::new(value, ts));
        self.flood(&key);
        ts
    }

    /// Sends an item to every active peer not known to hold it.
    fn flood(&mut self, key: &str) {
        let targets: Vec<(CatalogueUri, PeerId)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.state != PeerState::Handshake)
            .map(|(u, p)| (u.clone(), p.id))
            .collect();
        let Some(item) = self.db.get_mut(key) else { return };
        let msg = item.message(key);
        for (uri, id) in targets {
            if !item.is_known_by(id) {
                item.mark_known(id);
                self.out.push(Output::ToPeer {
                    peer: uri,
                    msg: msg.clone(),
                });
            }
        }
    }

    /// Replaces an item and updates everything derived from it.
    fn put(&mut self, key: String, mut item: Item) {
        if item.value.is_tombstone() {
            self.tombstones.insert((item.ts, key.clone()));
        }
        match &item.value {
            Value::Catalogue { uri, cluster } => {
                let newer = self.catalogues.get(uri).is_none_or(|(ts, _)| item.ts > *ts);
                if newer {
                    self.catalogues.insert(uri.clone(), (item.ts, cluster.clone()));
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
                if let Some(rec) = KeyRecord::from_value(&item.value, item.ts) {
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
        self.db.insert(key, Box::new(item));
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
        let stale: Vec<String> = self
            .db
            .range("L ".to_owned().."T".to_owned())
            .filter(|(_, i)| i.ts < inc && self.owned_by(&i.value, owner))
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.forget(&k);
        }
    }

    /// Removes an item without a tombstone (collected or stale).
    fn forget(&mut self, key: &str) -> Option<Item> {
        let item = *self.db.remove(key)?;
        match &item.value {
            Value::Service { .. } if item.shown => {
                let del = item.value.del_serv(key, item.ts);
                self.notify_subscribers(&service_text(key), del);
            }
            Value::Link { a, b, .. } if *a != self.cfg.uri && *b != self.cfg.uri => {
                let (a, b) = (a.clone(), b.clone());
                self.set_link(&a, &b, false, item.ts);
            }
            _ => {}
        }
        Some(item)
    }

    fn owned_by(&self, value: &Value, owner: &CatalogueUri) -> bool {
        match value {
            Value::Service { catalogue, .. } => catalogue == owner,
            Value::Link { a, b, .. } => a == owner || b == owner,
            Value::Catalogue { uri, .. } => uri == owner,
            Value::Key { .. } => false,
        }
    }

    fn incarnation_of(&self, c: &CatalogueUri) -> Ts {
        if *c == self.cfg.uri {
            return self.incarnation;
        }
        self.catalogues.get(c).map_or(Ts(0), |(ts, _)| *ts)
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
    fn truth(&self, key: &str, value: &Value) -> Option<(String, Value)> {
        let me = &self.cfg.uri;
        match value {
            Value::Service {
                catalogue, cluster, ..
            } if catalogue == me => Some((
                key.to_owned(),
                Value::Service {
                    catalogue: catalogue.clone(),
                    cluster: cluster.clone(),
                    attrs: self.own.get(&service_of(key)).map(|r| r.attrs.clone()),
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
    fn apply_remote(&mut self, peer: &CatalogueUri, pid: PeerId, (key, value, ts): (String, Value, Ts)) {
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
        key: String,
        value: Value,
        ts: Ts,
        truth: (String, Value),
    ) {
        if let Value::Catalogue { .. } = value {
            match ts.cmp(&self.incarnation) {
                Ordering::Greater => self.reincarnate(),
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
    fn answer_older(&mut self, peer: &CatalogueUri, pid: PeerId, key: &str) {
        let Some(cur) = self.db.get_mut(key) else { return };
        if !cur.is_known_by(pid) {
            cur.mark_known(pid);
            let msg = cur.message(key);
            self.send_peer(peer, msg);
        }
    }

    fn apply_generic(&mut self, peer: &CatalogueUri, pid: PeerId, key: String, value: Value, ts: Ts) {
        let class = value.class();
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
                let refused = match &value {
                    Value::Key { key, .. } => self.collected_keys.get(&**key).is_some_and(|&c| ts <= c),
                    Value::Catalogue { .. } => false,
                    _ => self.volatile_horizon.refuses(&origin, ts),
                };
                if refused {
                    // Seen before, deleted and collected: delete it again so
                    // the sender's side forgets it too.
                    if !value.is_tombstone() {
                        self.notice(Notice::StaleRefused { key: key.clone() });
                        let tomb = self.tombstone_of(value);
                        self.mint((key.clone(), tomb));
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
    fn note_seen(&mut self, value: &Value, ts: Ts) {
        if value.class() == Class::Volatile {
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
            v @ Value::Catalogue { .. } => v,
        }
    }

    fn on_sync(&mut self, peer: &CatalogueUri, pid: PeerId, lo: Bound, hi: Bound, count: u64, fp: u64) {
        let (n, f) = sync::summarize(&self.db, &lo, &hi);
        if (n, f) == (count, fp) {
            return;
        }
        self.note_asked(peer);
        if n <= sync::LEAF || count <= sync::LEAF {
            self.on_pull(peer, pid, &lo, &hi);
            self.send_peer(peer, Message::SyncPull { lo, hi });
        } else {
            for (lo, hi, count, fingerprint) in sync::split(&self.db, &lo, &hi) {
                self.send_peer(
                    peer,
                    Message::Sync {
                        lo,
                        hi,
                        count,
                        fingerprint,
                    },
                );
            }
        }
    }

    fn note_asked(&mut self, peer: &CatalogueUri) {
        if let Some(p) = self.peers.get_mut(peer) {
            if let PeerState::Syncing { asked } = &mut p.state {
                *asked = true;
            }
        }
    }

    /// Sends the items in a range that the peer is not known to hold.
    fn on_pull(&mut self, peer: &CatalogueUri, pid: PeerId, lo: &Bound, hi: &Bound) {
        let keys: Vec<String> = sync::range(&self.db, lo, hi)
            .filter(|(_, i)| !i.is_known_by(pid))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            let item = self.db.get_mut(&k).expect("key from range");
            item.mark_known(pid);
            let msg = item.message(&k);
            self.send_peer(peer, msg);
        }
    }

    // ----- clients ------------------------------------------------------

    fn service_value(&self, service: &ServiceUri, attrs: Option<Attrs>) -> (String, Value) {
        let key = ItemKey::Service(service.clone(), self.cfg.uri.clone()).sort_key();
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

    fn register(&mut self, client: ClientId, service: ServiceUri, attrs: Attrs) {
        let limit = self.cfg.limits.registrations_per_client;
        let c = self.clients.get_mut(&client).expect("caller checked");
        if !c.may_register {
            let detail = "REG_SERV is accepted only on the Unix socket, from loopback, or from addresses allowed by --allow-register".to_owned();
            self.refuse(client, ErrorCode::NotAllowed, detail);
            return;
        }
        if c.regs.len() >= limit && !c.regs.contains(&service) {
            self.refuse(
                client,
                ErrorCode::Limit,
                format!("at most {limit} registrations per connection"),
            );
            return;
        }
        c.regs.insert(service.clone());
        self.hold(service, attrs, |h| h.add_client(client));
    }

    fn unregister(&mut self, client: ClientId, service: &ServiceUri) {
        let c = self.clients.get_mut(&client).expect("caller checked");
        if !c.regs.remove(service) {
            let msg = Message::error(
                ErrorCode::Other("not-found".into()),
                format!("{service} is not registered on this connection"),
            );
            self.send_client(client, msg);
            return;
        }
        self.release(client, service);
    }

    /// Drops a client's hold on a registration.
    fn release(&mut self, client: ClientId, service: &ServiceUri) {
        self.release_with(service, |h| h.remove_client(client));
    }

    fn subscribe(&mut self, client: ClientId, source: String) {
        let limits = &self.cfg.limits;
        if source.len() > limits.regex_len {
            let d = format!(
                "regex of {} bytes exceeds the limit of {} bytes",
                source.len(),
                limits.regex_len
            );
            return self.refuse(client, ErrorCode::Limit, d);
        }
        let max_subs = limits.subscriptions_per_client;
        let regex = match self.regex_cache.get(&source) {
            Some(r) => r.regex.clone(),
            None => match regex::RegexBuilder::new(&source)
                .size_limit(limits.regex_compiled_size)
                .build()
            {
                Ok(r) => {
                    if self.regex_cache.len() >= 256 {
                        self.regex_cache.clear();
                    }
                    let cached = CachedRegex {
                        regex: r.clone(),
                        snapshot: None,
                    };
                    self.regex_cache.insert(source.clone(), cached);
                    r
                }
                Err(regex::Error::CompiledTooBig(limit)) => {
                    let text =
                        format!("{source:?} compiles to more than the limit of {limit} bytes; simplify it");
                    return self.refuse(client, ErrorCode::Limit, text);
                }
                Err(e) => {
                    let text = format!(
                        "{source:?} is not a valid regular expression: {}",
                        e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
                    );
                    return self.refuse(client, ErrorCode::BadRegex, text);
                }
            },
        };
        let c = self.clients.get_mut(&client).expect("caller checked");
        if !c.subs.iter().any(|(s, _)| *s == source) {
            if c.subs.len() >= max_subs {
                return self.refuse(
                    client,
                    ErrorCode::Limit,
                    format!("at most {max_subs} subscriptions per connection"),
                );
            }
            c.subs.push((source.clone(), regex.clone()));
        }
        let gen = self.services_gen;
        let cached = self
            .regex_cache
            .get(&source)
            .and_then(|c| c.snapshot.as_ref())
            .filter(|(g, _)| *g == gen)
            .map(|(_, m)| m.clone());
        let snapshot = cached.unwrap_or_else(|| {
            let fresh: Arc<[Message]> = self
                .services_where(|s| regex.is_match(s))
                .map(|v| v.add_message())
                .collect();
            if fresh.len() <= SNAPSHOT_CACHE_MAX {
                if let Some(c) = self.regex_cache.get_mut(&source) {
                    c.snapshot = Some((gen, fresh.clone()));
                }
            }
            fresh
        });
        if !snapshot.is_empty() {
            self.out.push(Output::ToClientMany {
                client,
                msgs: snapshot,
            });
        }
        self.send_client(client, Message::SubServ { regex: source });
    }

    fn follow_links(&mut self, client: ClientId) {
        if let Some(c) = self.clients.get_mut(&client) {
            c.follows_links = true;
        }
        let mut msgs: Vec<Message> = self
            .catalogues
            .iter()
            .map(|(u, (ts, cluster))| Message::Catalogue {
                catalogue: u.clone(),
                cluster: cluster.clone(),
                ts: *ts,
            })
            .collect();
        msgs.extend(self.links.iter().map(|(a, b)| Message::AddLink {
            a: a.clone(),
            b: b.clone(),
            ts: self.link_ts(a, b),
        }));
        for m in msgs {
            self.send_client(client, m);
        }
        self.send_client(client, Message::SubLink);
    }

    fn link_ts(&self, a: &CatalogueUri, b: &CatalogueUri) -> Ts {
        let key = ItemKey::Link(a.clone(), b.clone()).sort_key();
        self.db.get(&key).map_or(self.hlc.last(), |i| i.ts)
    }

    fn refuse(&mut self, client: ClientId, code: ErrorCode, detail: String) {
        self.notice(Notice::ClientRefused {
            client,
            detail: detail.clone(),
        });
        self.send_client(client, Message::error(code, detail));
    }

    // ----- derived state ------------------------------------------------

    /// Recomputes topology and visibility after an input and tells
    /// subscribers what changed.
    fn refresh(&mut self) {
        if self.topo_dirty || !self.regained.is_empty() {
            for owner in self.refresh_topology() {
                let lo = format!("S {} ", encode_field(owner.as_str()));
                let hi = format!("S {}!", encode_field(owner.as_str()));
                let keys = self.db.range(lo..hi).map(|(k, _)| k.clone());
                self.dirty_services.extend(keys);
            }
        }
        for key in std::mem::take(&mut self.dirty_services) {
            self.recheck_service(key);
        }
    }

    /// Recomputes links, reachability and leader; returns the catalogues
    /// that became reachable or unreachable.
    fn refresh_topology(&mut self) -> Vec<CatalogueUri> {
        let me = self.cfg.uri.clone();
        let mut regained = std::mem::take(&mut self.regained);
        let mut lost = Vec::new();
        if std::mem::take(&mut self.topo_dirty) {
            let reachable = topology::reachable_from(&me, &self.adj, &BTreeSet::new());
            // Added incrementally and gone again in the same input: never
            // reported, so not lost either.
            lost = self
                .reachable
                .difference(&reachable)
                .filter(|c| !regained.contains(c))
                .cloned()
                .collect();
            regained.retain(|c| reachable.contains(c));
            regained.extend(reachable.difference(&self.reachable).cloned());
            self.reachable = reachable;
        }
        let changed: Vec<CatalogueUri> = lost.iter().chain(&regained).cloned().collect();
        if !changed.is_empty() {
            self.notice(Notice::Reachability { lost, regained });
        }
        let leader = self.reachable.first().cloned().unwrap_or(me);
        if leader != self.leader {
            self.leader = leader.clone();
            self.notice(Notice::Leader(leader));
        }
        changed
    }

    /// Tells subscribers when a service item became visible, changed
    /// while visible, or stopped being visible.
    fn recheck_service(&mut self, key: String) {
        let Some(item) = self.db.get(&key) else {
            return; // forgotten: `forget` told subscribers
        };
        let visible = match &item.value {
            Value::Service {
                catalogue,
                attrs: Some(_),
                ..
            } => self.reachable.contains(catalogue) && item.ts >= self.incarnation_of(catalogue),
            _ => false,
        };
        let msg = match (item.shown, visible) {
            (false, false) => None,
            (true, true) if !item.fresh => None,
            (_, true) => Some(item.message(&key)),
            (true, false) => Some(item.value.del_serv(&key, item.ts)),
        };
        let item = self.db.get_mut(&key).expect("present");
        item.shown = visible;
        item.fresh = false;
        if let Some(msg) = msg {
            self.notify_subscribers(&service_text(&key), msg);
        }
    }

    /// A service became visible, changed or stopped being visible: tells
    /// the matching subscribers, and cached snapshots are stale.
    fn notify_subscribers(&mut self, service: &str, msg: Message) {
        self.services_gen += 1;
        self.hooks.service_changed(service);
        let targets: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, c)| c.subs.iter().any(|(_, r)| r.is_match(service)))
            .map(|(id, _)| *id)
            .collect();
        for id in targets {
            self.send_client(id, msg.clone());
        }
    }

    fn notify_link_followers(&mut self, msg: Message) {
        let targets: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, c)| c.follows_links)
            .map(|(id, _)| *id)
            .collect();
        for id in targets {
            self.send_client(id, msg.clone());
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

fn ordered(x: &CatalogueUri, y: &CatalogueUri) -> (CatalogueUri, CatalogueUri) {
    if x < y {
        (x.clone(), y.clone())
    } else {
        (y.clone(), x.clone())
    }
}
