//! The in-memory transport: catalogues, wires between them, connections
//! with epochs, delays that keep each direction in order, cuts, heals,
//! crashes and restarts, the event queue and the simulated clock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rarangi_core::{check_welcome, Catalogue, Config, Durable, Output, PersistOp, WelcomeVerdict};
use rarangi_proto::{parse_line, CatalogueUri, Message, Ts};

use super::oracle::{Invariant, Oracle};
use super::{NetConfig, NodeId};

/// Simulated time starts here, so catalogues see plausible wall clocks.
const EPOCH_MS: u64 = 1_700_000_000_000;

/// Catalogues are ticked this often.
const TICK_MS: u64 = 1000;

/// One simulated catalogue and what survives its crashes.
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
}

/// Something that happens at a scheduled simulated time.
pub(super) enum Event {
    /// A line arrives on a connection.
    Line {
        from: NodeId,
        to: NodeId,
        epoch: u64,
        line: String,
    },
    /// A catalogue learns its connection to `peer` is up.
    Up { node: NodeId, peer: NodeId, epoch: u64 },
    /// A catalogue notices its connection to `peer` died.
    Down { node: NodeId, peer: NodeId, epoch: u64 },
}

/// What [`Transport::next_step`] found to do before the deadline.
pub(super) enum Step {
    /// An event is due.
    Event(Event),
    /// Every catalogue's timer is due.
    Tick,
}

/// The wires and the catalogues on them.
pub(super) struct Transport {
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
    last_tick: u64,
    trace: bool,
}

fn ordered(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

/// The links of `set` that have `i` at one end.
fn touching(set: impl IntoIterator<Item = (NodeId, NodeId)>, i: NodeId) -> Vec<(NodeId, NodeId)> {
    set.into_iter().filter(|&(a, b)| a == i || b == i).collect()
}

impl Transport {
    /// Catalogues `(environment, cluster)` on the given wires, all started
    /// and none connected.
    pub(super) fn new(
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
            });
        }
        let mut t = Self {
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
            last_tick: EPOCH_MS,
            trace: std::env::var_os("RARANGI_TRACE").is_some(),
        };
        for i in 0..t.nodes.len() {
            t.start(i);
        }
        t
    }

    /// Prints one trace line stamped with the simulated time, when
    /// `RARANGI_TRACE` is set.
    pub(super) fn trace(&self, what: fmt::Arguments<'_>) {
        if self.trace {
            eprintln!("{:>8} {what}", self.elapsed_ms());
        }
    }

    /// A catalogue's wall clock: simulated time plus its offset.
    fn wall(&self, i: NodeId) -> u64 {
        (self.now as i64 + self.nodes[i].offset_ms) as u64
    }

    fn start(&mut self, i: NodeId) {
        let n = &self.nodes[i];
        let mut cfg = Config::new(n.uri.clone(), n.cluster.clone(), n.env.clone());
        cfg.tombstone_horizon_ms = self.cfg.horizon_ms;
        cfg.reap_after_ms = self.cfg.reap_after_ms;
        let core = Catalogue::new(cfg, n.durable.clone(), n.clock_floor, self.wall(i));
        self.nodes[i].core = Some(core);
    }

    pub(super) fn len(&self) -> usize {
        self.nodes.len()
    }

    pub(super) fn now(&self) -> u64 {
        self.now
    }

    pub(super) fn elapsed_ms(&self) -> u64 {
        self.now - EPOCH_MS
    }

    pub(super) fn edges(&self) -> &BTreeSet<(NodeId, NodeId)> {
        &self.edges
    }

    pub(super) fn cut_edges(&self) -> &BTreeSet<(NodeId, NodeId)> {
        &self.cut
    }

    pub(super) fn core(&self, i: NodeId) -> Option<&Catalogue> {
        self.nodes[i].core.as_ref()
    }

    pub(super) fn uri(&self, i: NodeId) -> &CatalogueUri {
        &self.nodes[i].uri
    }

    pub(super) fn env(&self, i: NodeId) -> &str {
        &self.nodes[i].env
    }

    pub(super) fn node_of(&self, uri: &CatalogueUri) -> Option<NodeId> {
        self.by_uri.get(uri).copied()
    }

    pub(super) fn is_up(&self, i: NodeId) -> bool {
        self.nodes[i].core.is_some()
    }

    pub(super) fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// Gives a running catalogue an input at its wall clock. Returns false
    /// (and does nothing) when it is down.
    pub(super) fn input(&mut self, i: NodeId, f: impl FnOnce(&mut Catalogue, u64)) -> bool {
        let wall = self.wall(i);
        match self.nodes[i].core.as_mut() {
            Some(core) => {
                f(core, wall);
                true
            }
            None => false,
        }
    }

    /// What a running catalogue asks its driver to do.
    pub(super) fn drain(&mut self, i: NodeId) -> Option<Vec<Output>> {
        self.nodes[i].core.as_mut().map(Catalogue::drain)
    }

    /// Writes to a catalogue's durable store (it survives crashes).
    pub(super) fn persist(&mut self, i: NodeId, op: &PersistOp) {
        self.nodes[i].durable.apply(op);
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

    /// When every line `from` has sent so far will have arrived.
    pub(super) fn delivered_by(&self, from: NodeId) -> u64 {
        self.tail
            .iter()
            .filter(|((f, _), _)| *f == from)
            .map(|(_, at)| *at)
            .max()
            .unwrap_or(self.now)
            .max(self.now)
    }

    /// Puts a message from `from` on its live connection to `peer`.
    /// Returns the length of the line sent (without LF), or None when there
    /// is no such connection: the line is lost with it.
    pub(super) fn send(&mut self, from: NodeId, peer: &CatalogueUri, msg: &Message) -> Option<usize> {
        let to = self.node_of(peer)?;
        let epoch = *self.nodes[from].peers.get(&to)?;
        if self.conns.get(&ordered(from, to)) != Some(&epoch) {
            return None;
        }
        let line = msg.encode();
        let len = line.len();
        self.schedule_fifo(
            from,
            to,
            Event::Line {
                from,
                to,
                epoch,
                line,
            },
        );
        Some(len)
    }

    /// Opens connections on every physical link that is not cut.
    pub(super) fn connect_all(&mut self, oracle: &mut Oracle) {
        let edges: Vec<_> = self.edges.iter().copied().collect();
        for (a, b) in edges {
            self.connect(a, b, oracle);
        }
    }

    fn connect(&mut self, a: NodeId, b: NodeId, oracle: &mut Oracle) {
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
                oracle.record(
                    Invariant::Isolation,
                    self.elapsed_ms(),
                    format!("unexpected handshake verdicts {other:?}"),
                );
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
    pub(super) fn cut(&mut self, a: NodeId, b: NodeId) {
        let e = ordered(a, b);
        if self.edges.contains(&e) && self.cut.insert(e) {
            self.disconnect(a, b);
        }
    }

    /// Heals a cut link; the two catalogues reconnect.
    pub(super) fn heal(&mut self, a: NodeId, b: NodeId, oracle: &mut Oracle) {
        let e = ordered(a, b);
        if self.cut.remove(&e) {
            self.connect(a, b, oracle);
        }
    }

    /// Heals every cut link and restarts every crashed catalogue.
    pub(super) fn heal_all(&mut self, oracle: &mut Oracle) {
        for i in 0..self.nodes.len() {
            self.restart(i, oracle);
        }
        let cut: Vec<_> = self.cut.iter().copied().collect();
        for (a, b) in cut {
            self.heal(a, b, oracle);
        }
    }

    /// Crashes a catalogue: memory and connections lost; durable
    /// configuration and the clock high-water mark survive. Returns false if
    /// it was already down.
    pub(super) fn crash(&mut self, i: NodeId) -> bool {
        let Some(core) = self.nodes[i].core.take() else {
            return false;
        };
        self.nodes[i].clock_floor = core.clock();
        self.nodes[i].peers.clear();
        for (a, b) in touching(self.conns.keys().copied(), i) {
            self.disconnect(a, b);
        }
        true
    }

    /// Restarts a crashed catalogue and reconnects its links.
    pub(super) fn restart(&mut self, i: NodeId, oracle: &mut Oracle) {
        if self.is_up(i) {
            return;
        }
        self.start(i);
        for (a, b) in touching(self.edges.iter().copied(), i) {
            self.connect(a, b, oracle);
        }
    }

    /// Takes the next thing to happen no later than `until`, advancing the
    /// clock to it; None when nothing is due (the clock is then `until`).
    pub(super) fn next_step(&mut self, until: u64) -> Option<Step> {
        let next = self.queue.first_key_value().map(|(k, _)| k.0);
        let next_tick = self.last_tick + TICK_MS;
        match next {
            Some(t) if t <= until && t < next_tick => {
                let (_, ev) = self.queue.pop_first().expect("present");
                self.now = self.now.max(t);
                Some(Step::Event(ev))
            }
            _ if next_tick <= until => {
                self.now = next_tick;
                self.last_tick = next_tick;
                Some(Step::Tick)
            }
            _ => {
                self.now = self.now.max(until);
                None
            }
        }
    }

    /// When the next event is due, if any is pending.
    pub(super) fn next_event_at(&self) -> Option<u64> {
        self.queue.first_key_value().map(|(&(t, _), _)| t)
    }

    /// Hands an event to its catalogue. Returns the catalogue that got an
    /// input (its outputs are to be handled), if any.
    pub(super) fn deliver(&mut self, ev: Event, oracle: &mut Oracle) -> Option<NodeId> {
        match &ev {
            Event::Line { from, to, line, .. } => self.trace(format_args!("{from}->{to} {line}")),
            Event::Up { node, peer, .. } => self.trace(format_args!("{node}: link up to {peer}")),
            Event::Down { node, peer, .. } => self.trace(format_args!("{node}: link down to {peer}")),
        }
        match ev {
            Event::Up { node, peer, epoch } => {
                if self.conns.get(&ordered(node, peer)) != Some(&epoch) || !self.is_up(node) {
                    return None;
                }
                self.nodes[node].peers.insert(peer, epoch);
                let peer_uri = self.nodes[peer].uri.clone();
                self.input(node, |core, wall| core.link_up(wall, &peer_uri));
                Some(node)
            }
            Event::Down { node, peer, epoch } => {
                if self.nodes[node].peers.get(&peer) != Some(&epoch) {
                    return None;
                }
                self.nodes[node].peers.remove(&peer);
                let peer_uri = self.nodes[peer].uri.clone();
                self.input(node, |core, wall| core.link_down(wall, &peer_uri))
                    .then_some(node)
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
                    return None;
                }
                let at = self.elapsed_ms();
                let msg = match parse_line(line.as_bytes()) {
                    Ok(m) => m,
                    Err(e) => {
                        let detail = format!("node {from} sent an unparsable line {line:?}: {e}");
                        oracle.record(Invariant::Protocol, at, detail);
                        return None;
                    }
                };
                if let Message::Error { .. } = msg {
                    let detail = format!("node {from} sent node {to} an error: {line}");
                    oracle.record(Invariant::Protocol, at, detail);
                }
                let peer_uri = self.nodes[from].uri.clone();
                self.input(to, |core, wall| core.peer_message(wall, &peer_uri, msg))
                    .then_some(to)
            }
        }
    }

    /// Connected components of running catalogues over live connections.
    pub(super) fn components(&self) -> Vec<BTreeSet<NodeId>> {
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
}
