//! The simulated network and its invariant checks.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rarangi_core::{check_welcome, Catalogue, ClientId, Config, Durable, Output, PersistOp, WelcomeVerdict};
use rarangi_proto::{parse_line, Attrs, CatalogueUri, Message, ServiceUri, Ts};
use regex::Regex;

/// Index of a simulated catalogue.
pub type NodeId = usize;

/// Knobs of the simulated network.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Tombstone horizon of every catalogue.
    pub horizon_ms: u64,
    /// Largest random delay of one message.
    pub max_delay_ms: u64,
    /// Largest time before a cut link is noticed (dead-after).
    pub detect_ms: u64,
    /// Wall clocks differ by up to this much either way.
    pub max_clock_offset_ms: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            horizon_ms: 20_000,
            max_delay_ms: 30,
            detect_ms: 5_000,
            max_clock_offset_ms: 5_000,
        }
    }
}

/// A broken invariant, with enough context to debug it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant of DESIGN §7 (1-7), or 0 for a protocol error.
    pub invariant: u8,
    /// Simulated time.
    pub at_ms: u64,
    /// What happened.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant {} at t={}ms: {}",
            self.invariant, self.at_ms, self.detail
        )
    }
}

struct Node {
    uri: CatalogueUri,
    env: String,
    cluster: String,
    core: Option<Catalogue>,
    durable: Durable,
    clock_floor: Ts,
    offset_ms: i64,
    /// Links this catalogue was told are up, with their connection epoch.
    peers: BTreeMap<NodeId, u64>,
    /// Greatest configuration version ever persisted per key.
    key_max: BTreeMap<String, Ts>,
}

#[derive(Default)]
struct SimClient {
    regs: BTreeSet<ServiceUri>,
    subs: Vec<(String, Regex)>,
    /// Records shown, with the version of the last ADD_SERV.
    view: BTreeMap<(String, String), Ts>,
    /// Records this client saw deleted (not just withdrawn), with the
    /// version of the delete: a DEL_SERV newer than the last ADD_SERV.
    deleted: BTreeMap<(String, String), Ts>,
}

enum Event {
    Line {
        from: NodeId,
        to: NodeId,
        epoch: u64,
        line: String,
    },
    Up {
        node: NodeId,
        peer: NodeId,
        epoch: u64,
    },
    Down {
        node: NodeId,
        peer: NodeId,
        epoch: u64,
    },
}

/// The simulated network.
pub struct Net {
    cfg: NetConfig,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    nodes: Vec<Node>,
    by_uri: BTreeMap<CatalogueUri, NodeId>,
    edges: BTreeSet<(NodeId, NodeId)>,
    cut: BTreeSet<(NodeId, NodeId)>,
    refused: BTreeSet<(NodeId, NodeId)>,
    conns: BTreeMap<(NodeId, NodeId), u64>,
    next_epoch: u64,
    queue: BTreeMap<(u64, u64), Event>,
    tail: BTreeMap<(NodeId, NodeId), u64>,
    clients: BTreeMap<ClientId, (NodeId, SimClient)>,
    next_client: u64,
    last_tick: u64,
    /// Catalogue-to-catalogue lines sent.
    pub lines: u64,
    /// Catalogue-to-catalogue bytes sent (with LF).
    pub bytes: u64,
    violations: Vec<Violation>,
    trace: bool,
}

const EPOCH_MS: u64 = 1_700_000_000_000;

fn ordered(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

impl Net {
    /// A network of catalogues `(environment, cluster)` with the given
    /// physical links; nothing is connected until [`Net::connect_all`].
    pub fn new(
        cfg: NetConfig,
        mut rng: ChaCha8Rng,
        nodes: &[(String, String)],
        edges: BTreeSet<(NodeId, NodeId)>,
    ) -> Self {
        let mut net_nodes = Vec::new();
        let mut by_uri = BTreeMap::new();
        for (i, (env, cluster)) in nodes.iter().enumerate() {
            let uri =
                CatalogueUri::from_addr(&format!("127.0.{}.{}:4790", i / 250, i % 250 + 1)).expect("valid");
            by_uri.insert(uri.clone(), i);
            let off = cfg.max_clock_offset_ms as i64;
            net_nodes.push(Node {
                uri,
                env: env.clone(),
                cluster: cluster.clone(),
                core: None,
                durable: Durable::default(),
                clock_floor: Ts(0),
                offset_ms: if off > 0 { rng.gen_range(-off..=off) } else { 0 },
                peers: BTreeMap::new(),
                key_max: BTreeMap::new(),
            });
        }
        let mut net = Self {
            cfg,
            rng,
            now: EPOCH_MS,
            seq: 0,
            nodes: net_nodes,
            by_uri,
            edges,
            cut: BTreeSet::new(),
            refused: BTreeSet::new(),
            conns: BTreeMap::new(),
            next_epoch: 1,
            queue: BTreeMap::new(),
            tail: BTreeMap::new(),
            clients: BTreeMap::new(),
            next_client: 1,
            last_tick: EPOCH_MS,
            lines: 0,
            bytes: 0,
            violations: Vec::new(),
            trace: std::env::var_os("RARANGI_TRACE").is_some(),
        };
        for i in 0..net.nodes.len() {
            net.start(i);
        }
        net
    }

    fn wall(&self, i: NodeId) -> u64 {
        (self.now as i64 + self.nodes[i].offset_ms) as u64
    }

    fn start(&mut self, i: NodeId) {
        let n = &self.nodes[i];
        let mut cfg = Config::new(n.uri.clone(), n.cluster.clone(), n.env.clone());
        cfg.tombstone_horizon_ms = self.cfg.horizon_ms;
        let core = Catalogue::new(cfg, n.durable.clone(), n.clock_floor, self.wall(i));
        self.nodes[i].core = Some(core);
    }

    /// Number of catalogues.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there are no catalogues.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The current simulated time.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Simulated milliseconds since the network was created.
    pub fn elapsed_ms(&self) -> u64 {
        self.now - EPOCH_MS
    }

    /// The physical links.
    pub fn edges(&self) -> &BTreeSet<(NodeId, NodeId)> {
        &self.edges
    }

    /// Links currently cut.
    pub fn cut_edges(&self) -> &BTreeSet<(NodeId, NodeId)> {
        &self.cut
    }

    /// A catalogue's state machine, if it is running.
    pub fn core(&self, i: NodeId) -> Option<&Catalogue> {
        self.nodes[i].core.as_ref()
    }

    /// A catalogue's URI.
    pub fn uri(&self, i: NodeId) -> &CatalogueUri {
        &self.nodes[i].uri
    }

    /// Whether a catalogue is running.
    pub fn is_up(&self, i: NodeId) -> bool {
        self.nodes[i].core.is_some()
    }

    /// The random number generator, for schedules.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// Violations found so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    fn violate(&mut self, invariant: u8, detail: String) {
        self.violations.push(Violation {
            invariant,
            at_ms: self.now - EPOCH_MS,
            detail,
        });
    }

    fn schedule(&mut self, at: u64, ev: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    /// Schedules on the directed channel `from → to`, keeping its order.
    fn schedule_fifo(&mut self, from: NodeId, to: NodeId, ev: Event) {
        let delay = self.rng.gen_range(0..=self.cfg.max_delay_ms);
        let tail = self.tail.entry((from, to)).or_insert(0);
        let at = (self.now + delay).max(*tail);
        *tail = at;
        self.schedule(at, ev);
    }

    /// Opens connections on every physical link that is not cut.
    pub fn connect_all(&mut self) {
        let edges: Vec<_> = self.edges.iter().copied().collect();
        for (a, b) in edges {
            self.connect(a, b);
        }
    }

    fn connect(&mut self, a: NodeId, b: NodeId) {
        let e = ordered(a, b);
        if self.cut.contains(&e) || self.conns.contains_key(&e) || self.refused.contains(&e) {
            return;
        }
        if !self.is_up(a) || !self.is_up(b) {
            return;
        }
        // The handshake of DESIGN §3, both ways.
        let welcome = |n: &Node| Message::Welcome {
            catalogue: n.uri.clone(),
            cluster: n.cluster.clone(),
            environment: n.env.clone(),
        };
        let (wa, wb) = (welcome(&self.nodes[a]), welcome(&self.nodes[b]));
        let va = check_welcome(
            self.nodes[a].core.as_ref().expect("up").config(),
            Some(&self.nodes[b].uri),
            &wb,
        );
        let vb = check_welcome(self.nodes[b].core.as_ref().expect("up").config(), None, &wa);
        match (&va, &vb) {
            (WelcomeVerdict::Link { .. }, WelcomeVerdict::Link { .. }) => {}
            (WelcomeVerdict::EnvMismatch { .. }, WelcomeVerdict::EnvMismatch { .. }) => {
                // Never redialled (until restart, which the sim does not model).
                self.refused.insert(e);
                return;
            }
            other => {
                self.violate(6, format!("unexpected handshake verdicts {other:?}"));
                return;
            }
        }
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        self.conns.insert(e, epoch);
        self.schedule_fifo(
            a,
            b,
            Event::Up {
                node: b,
                peer: a,
                epoch,
            },
        );
        self.schedule_fifo(
            b,
            a,
            Event::Up {
                node: a,
                peer: b,
                epoch,
            },
        );
    }

    fn disconnect(&mut self, a: NodeId, b: NodeId) {
        let e = ordered(a, b);
        let Some(epoch) = self.conns.remove(&e) else {
            return;
        };
        for (node, peer) in [(a, b), (b, a)] {
            if self.nodes[node].peers.get(&peer) == Some(&epoch) {
                let d = self.rng.gen_range(self.cfg.detect_ms / 2..=self.cfg.detect_ms);
                self.schedule(self.now + d, Event::Down { node, peer, epoch });
            }
        }
    }

    /// Cuts a physical link: the connection dies with what is in flight.
    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        let e = ordered(a, b);
        if self.edges.contains(&e) && self.cut.insert(e) {
            self.disconnect(a, b);
        }
    }

    /// Heals a cut link; the two catalogues reconnect.
    pub fn heal(&mut self, a: NodeId, b: NodeId) {
        let e = ordered(a, b);
        if self.cut.remove(&e) {
            self.connect(a, b);
        }
    }

    /// Heals every cut link and restarts every crashed catalogue.
    pub fn heal_all(&mut self) {
        for i in 0..self.nodes.len() {
            if !self.is_up(i) {
                self.restart(i);
            }
        }
        let cut: Vec<_> = self.cut.iter().copied().collect();
        for (a, b) in cut {
            self.heal(a, b);
        }
    }

    /// Crashes a catalogue: memory lost, clients and connections dropped;
    /// durable configuration and the clock high-water mark survive.
    pub fn crash(&mut self, i: NodeId) {
        let Some(core) = self.nodes[i].core.take() else {
            return;
        };
        self.nodes[i].clock_floor = core.clock();
        self.nodes[i].peers.clear();
        let ids: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, (n, _))| *n == i)
            .map(|(id, _)| *id)
            .collect();
        // The registrations die with the catalogue, but others learn that
        // only by failure detection, link by link: their withdrawal is about
        // reachability and may flicker, so the no-resurrection check covers
        // explicit removals only. Convergence still checks they are gone.
        for id in ids {
            self.clients.remove(&id);
        }
        let edges: Vec<_> = self
            .conns
            .keys()
            .filter(|(a, b)| *a == i || *b == i)
            .copied()
            .collect();
        for (a, b) in edges {
            self.disconnect(a, b);
        }
    }

    /// Restarts a crashed catalogue and reconnects its links.
    pub fn restart(&mut self, i: NodeId) {
        if self.is_up(i) {
            return;
        }
        self.start(i);
        let edges: Vec<_> = self
            .edges
            .iter()
            .filter(|(a, b)| *a == i || *b == i)
            .copied()
            .collect();
        for (a, b) in edges {
            self.connect(a, b);
        }
    }

    // ----- clients ------------------------------------------------------

    /// Connects a client to a running catalogue.
    pub fn client(&mut self, node: NodeId) -> Option<ClientId> {
        let core = self.nodes[node].core.as_mut()?;
        let id = ClientId(self.next_client);
        self.next_client += 1;
        core.client_connected(id, true);
        self.clients.insert(id, (node, SimClient::default()));
        Some(id)
    }

    /// Clients currently connected, with their catalogue.
    pub fn clients(&self) -> Vec<(ClientId, NodeId)> {
        self.clients.iter().map(|(id, (n, _))| (*id, *n)).collect()
    }

    /// Services a client has registered.
    pub fn registrations(&self, id: ClientId) -> Vec<ServiceUri> {
        self.clients
            .get(&id)
            .map(|(_, c)| c.regs.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn client_send(&mut self, id: ClientId, msg: Message) {
        let Some((node, _)) = self.clients.get(&id) else {
            return;
        };
        let node = *node;
        let wall = self.wall(node);
        let Some(core) = self.nodes[node].core.as_mut() else {
            return;
        };
        core.client_message(wall, id, msg);
        self.pump(node);
    }

    /// A client registers a service.
    pub fn register(&mut self, id: ClientId, service: &str) {
        let service = ServiceUri::parse(service).expect("valid service URI");
        if let Some((_, c)) = self.clients.get_mut(&id) {
            c.regs.insert(service.clone());
        }
        self.client_send(
            id,
            Message::RegServ {
                service,
                attrs: Attrs::default(),
            },
        );
    }

    /// A client withdraws a registration.
    pub fn unregister(&mut self, id: ClientId, service: &ServiceUri) {
        let Some((_, c)) = self.clients.get_mut(&id) else {
            return;
        };
        if !c.regs.remove(service) {
            return;
        }
        self.client_send(
            id,
            Message::UnregServ {
                service: service.clone(),
            },
        );
    }

    /// A client subscribes with a regex.
    pub fn subscribe(&mut self, id: ClientId, regex: &str) {
        if let Some((_, c)) = self.clients.get_mut(&id) {
            c.subs
                .push((regex.to_owned(), Regex::new(regex).expect("valid regex")));
        }
        self.client_send(
            id,
            Message::SubServ {
                regex: regex.to_owned(),
            },
        );
    }

    /// A client's connection drops.
    pub fn disconnect_client(&mut self, id: ClientId) {
        let Some((node, _)) = self.clients.remove(&id) else {
            return;
        };
        let wall = self.wall(node);
        if let Some(core) = self.nodes[node].core.as_mut() {
            core.client_disconnected(wall, id);
            self.pump(node);
        }
    }

    /// Writes a configuration key at a catalogue.
    pub fn set_key(&mut self, node: NodeId, key: &str, value: &str) {
        let wall = self.wall(node);
        if let Some(core) = self.nodes[node].core.as_mut() {
            core.set_key(wall, key, value).expect("valid key");
            self.pump(node);
        }
    }

    /// Deletes a configuration key at a catalogue.
    pub fn del_key(&mut self, node: NodeId, key: &str) {
        let wall = self.wall(node);
        if let Some(core) = self.nodes[node].core.as_mut() {
            core.del_key(wall, key);
            self.pump(node);
        }
    }

    // ----- running --------------------------------------------------------

    /// Handles a catalogue's outputs.
    fn pump(&mut self, node: NodeId) {
        let Some(core) = self.nodes[node].core.as_mut() else {
            return;
        };
        let outs = core.drain();
        for out in outs {
            match out {
                Output::ToPeer { peer, msg } => {
                    let Some(&to) = self.by_uri.get(&peer) else {
                        continue;
                    };
                    let e = ordered(node, to);
                    let epoch = self.nodes[node].peers.get(&to).copied();
                    if epoch.is_none() || self.conns.get(&e).copied() != epoch {
                        continue; // The connection is gone; so is the line.
                    }
                    let line = msg.encode();
                    self.lines += 1;
                    self.bytes += line.len() as u64 + 1;
                    self.schedule_fifo(
                        node,
                        to,
                        Event::Line {
                            from: node,
                            to,
                            epoch: epoch.expect("checked"),
                            line,
                        },
                    );
                }
                Output::ToClient { client, msg } => self.deliver_to_client(client, msg),
                Output::ToClientMany { client, msgs } => {
                    for msg in msgs.iter() {
                        self.deliver_to_client(client, msg.clone());
                    }
                }
                Output::CloseClient { client, .. } => self.disconnect_client(client),
                Output::Persist(op) => {
                    if let PersistOp::Key(rec) = &op {
                        self.check_key_monotonic(node, rec.key.clone(), rec.ts, rec.value.is_some());
                    }
                    self.nodes[node].durable.apply(&op);
                }
                Output::Notice(_) | Output::Webhook(_) => {}
            }
        }
    }

    fn check_key_monotonic(&mut self, node: NodeId, key: String, ts: Ts, live: bool) {
        let max = self.nodes[node].key_max.entry(key.clone()).or_insert(Ts(0));
        let prev = *max;
        *max = prev.max(ts);
        if live && ts < prev {
            self.violate(
                2,
                format!("node {node} stored key {key:?} at version {ts} after having seen version {prev}: a deleted or overwritten value came back"),
            );
        }
    }

    fn deliver_to_client(&mut self, id: ClientId, msg: Message) {
        let now = self.now;
        let Some((node, c)) = self.clients.get_mut(&id) else {
            return;
        };
        let node = *node;
        let mut resurrected = None;
        if self.trace {
            eprintln!(
                "{:>8} client {} at {node} <- {}",
                now - EPOCH_MS,
                id.0,
                msg.encode()
            );
        }
        match msg {
            Message::AddServ {
                service,
                catalogue,
                ts,
                ..
            } => {
                let key = (service.to_string(), catalogue.to_string());
                if c.deleted.get(&key).is_some_and(|&d| ts <= d) {
                    resurrected = Some(key.clone());
                }
                c.view.insert(key, ts);
            }
            Message::DelServ {
                service,
                catalogue,
                ts,
                ..
            } => {
                let key = (service.to_string(), catalogue.to_string());
                if c.view.get(&key).is_some_and(|&shown| ts > shown) {
                    c.deleted.insert(key.clone(), ts);
                }
                c.view.remove(&key);
            }
            _ => {}
        }
        if let Some((s, cat)) = resurrected {
            self.violate(
                2,
                format!(
                    "client {} at node {node} got {s} at {cat} again after it was removed",
                    id.0
                ),
            );
        }
    }

    /// Processes events up to `until`, ticking every catalogue each second.
    pub fn run_until(&mut self, until: u64) {
        loop {
            let next = self.queue.first_key_value().map(|(k, _)| k.0);
            let next_tick = self.last_tick + 1000;
            match next {
                Some(t) if t <= until && t < next_tick => {
                    let (_, ev) = self.queue.pop_first().expect("present");
                    self.now = self.now.max(t);
                    self.handle(ev);
                }
                _ if next_tick <= until => {
                    self.now = next_tick;
                    self.last_tick = next_tick;
                    for i in 0..self.nodes.len() {
                        let wall = self.wall(i);
                        if let Some(core) = self.nodes[i].core.as_mut() {
                            core.tick(wall);
                            self.pump(i);
                        }
                    }
                }
                _ => break,
            }
        }
        self.now = self.now.max(until);
    }

    /// Advances time by `ms`.
    pub fn advance(&mut self, ms: u64) {
        self.run_until(self.now + ms);
    }

    /// Runs until no message or failure detection is pending. Returns false
    /// if that did not happen within a simulated hour (a livelock).
    pub fn settle(&mut self) -> bool {
        let limit = self.now + 3_600_000;
        while let Some((&(t, _), _)) = self.queue.first_key_value() {
            if t > limit {
                self.violate(1, "messages still flowing after a simulated hour".into());
                return false;
            }
            self.run_until(t);
        }
        true
    }

    fn handle(&mut self, ev: Event) {
        if self.trace {
            let t = self.now - EPOCH_MS;
            match &ev {
                Event::Line { from, to, line, .. } => eprintln!("{t:>8} {from}->{to} {line}"),
                Event::Up { node, peer, .. } => eprintln!("{t:>8} {node}: link up to {peer}"),
                Event::Down { node, peer, .. } => eprintln!("{t:>8} {node}: link down to {peer}"),
            }
        }
        match ev {
            Event::Up { node, peer, epoch } => {
                if self.conns.get(&ordered(node, peer)) != Some(&epoch) {
                    return;
                }
                let wall = self.wall(node);
                let peer_uri = self.nodes[peer].uri.clone();
                let n = &mut self.nodes[node];
                let Some(core) = n.core.as_mut() else { return };
                n.peers.insert(peer, epoch);
                core.link_up(wall, &peer_uri);
                self.pump(node);
            }
            Event::Down { node, peer, epoch } => {
                if self.nodes[node].peers.get(&peer) != Some(&epoch) {
                    return;
                }
                self.nodes[node].peers.remove(&peer);
                let wall = self.wall(node);
                let peer_uri = self.nodes[peer].uri.clone();
                if let Some(core) = self.nodes[node].core.as_mut() {
                    core.link_down(wall, &peer_uri);
                    self.pump(node);
                }
            }
            Event::Line {
                from,
                to,
                epoch,
                line,
            } => {
                if self.conns.get(&ordered(from, to)) != Some(&epoch)
                    || self.nodes[to].peers.get(&from) != Some(&epoch)
                {
                    return;
                }
                let msg = match parse_line(line.as_bytes()) {
                    Ok(m) => m,
                    Err(e) => {
                        self.violate(0, format!("node {from} sent an unparsable line {line:?}: {e}"));
                        return;
                    }
                };
                if let Message::Error { .. } = msg {
                    self.violate(0, format!("node {from} sent node {to} an error: {line}"));
                }
                let wall = self.wall(to);
                let peer_uri = self.nodes[from].uri.clone();
                if let Some(core) = self.nodes[to].core.as_mut() {
                    core.peer_message(wall, &peer_uri, msg);
                    self.pump(to);
                }
            }
        }
    }

    // ----- invariants -----------------------------------------------------

    /// Connected components of running catalogues over live connections.
    pub fn components(&self) -> Vec<BTreeSet<NodeId>> {
        let mut seen = BTreeSet::new();
        let mut comps = Vec::new();
        for start in 0..self.nodes.len() {
            if !self.is_up(start) || !seen.insert(start) {
                continue;
            }
            let mut comp = BTreeSet::from([start]);
            let mut q = VecDeque::from([start]);
            while let Some(n) = q.pop_front() {
                for &(a, b) in self.conns.keys() {
                    let m = if a == n {
                        b
                    } else if b == n {
                        a
                    } else {
                        continue;
                    };
                    if seen.insert(m) {
                        comp.insert(m);
                        q.push_back(m);
                    }
                }
            }
            comps.push(comp);
        }
        comps
    }

    /// Checks invariants 1, 3, 4 and 6 at a quiescent moment (call
    /// [`Net::settle`] first): every catalogue shows exactly the live
    /// services of the catalogues it can reach, agrees on configuration
    /// with them, and every subscriber's view equals its catalogue's.
    pub fn check(&mut self) {
        let found = self.find_violations();
        for (inv, detail) in found {
            self.violate(inv, detail);
        }
    }

    fn find_violations(&self) -> Vec<(u8, String)> {
        let mut out = Vec::new();
        let comps = self.components();
        for comp in &comps {
            let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
            for (node, c) in self.clients.values() {
                if comp.contains(node) {
                    for s in &c.regs {
                        expected.insert((s.to_string(), self.nodes[*node].uri.to_string()));
                    }
                }
            }
            let uris: BTreeSet<CatalogueUri> = comp.iter().map(|&i| self.nodes[i].uri.clone()).collect();
            let first = *comp.first().expect("non-empty");
            let keys0 = self.core(first).expect("up").keys();
            for &i in comp {
                let core = self.core(i).expect("up");
                let shown: BTreeSet<(String, String)> = core
                    .services()
                    .map(|v| (v.service.to_string(), v.catalogue.to_string()))
                    .collect();
                if shown != expected {
                    let missing: Vec<_> = expected.difference(&shown).collect();
                    let extra: Vec<_> = shown.difference(&expected).collect();
                    let inv = if extra.iter().any(|(_, c)| !uris.iter().any(|u| u.as_str() == c)) {
                        3
                    } else {
                        1
                    };
                    out.push((
                        inv,
                        format!("node {i} shows the wrong services: missing {missing:?}, extra {extra:?}"),
                    ));
                }
                let reach = &core.topology().reachable;
                if *reach != uris {
                    out.push((
                        3,
                        format!("node {i} thinks it reaches {reach:?} but its component is {uris:?}"),
                    ));
                }
                if let Some(stray) = reach.iter().find(|u| {
                    self.by_uri
                        .get(*u)
                        .is_some_and(|&j| self.nodes[j].env != self.nodes[i].env)
                }) {
                    out.push((6, format!("node {i} reaches {stray} of another environment")));
                }
                let keys = core.keys();
                if keys != keys0 {
                    out.push((
                        1,
                        format!("node {i} configuration differs from node {first}: {keys:?} vs {keys0:?}"),
                    ));
                }
            }
        }
        // Invariant 4: snapshot plus events equals the current matching set.
        for (id, (node, c)) in &self.clients {
            if c.subs.is_empty() {
                continue;
            }
            let Some(core) = self.core(*node) else { continue };
            let expected: BTreeSet<(String, String)> = core
                .services()
                .filter(|v| c.subs.iter().any(|(_, r)| r.is_match(v.service.as_str())))
                .map(|v| (v.service.to_string(), v.catalogue.to_string()))
                .collect();
            let view: BTreeSet<(String, String)> = c.view.keys().cloned().collect();
            if expected != view {
                out.push((
                    4,
                    format!(
                        "client {} at node {node}: view {:?} but catalogue has {:?}",
                        id.0, view, expected
                    ),
                ));
            }
        }
        out
    }
}
