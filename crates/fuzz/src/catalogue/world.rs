//! The in-memory network a catalogue case runs in, and its checks.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rarangi_core::{Catalogue, ClientId, Config, Delivery, Durable, HookKind, Notice, Output};
use rarangi_proto::{parse_line, Attrs, CatalogueUri, Message, ServiceUri, Ts};

use super::subscriber::Subscriber;
use super::{Catalogues, Op, NODES, T0, TIME_WINDOW_MS};
use crate::gen::{FAKE_HOSTS, HONEST_HOSTS};

/// Messages one input may cause before it counts as an output explosion:
/// a fixed allowance plus a share per input so far (a snapshot or a
/// reconciliation round legitimately grows with the database).
fn output_bound(step: usize) -> usize {
    4096 + 64 * step
}

/// Deliveries the final heal may take before the network counts as
/// never quiescing.
const HEAL_DELIVERIES: usize = 1_000_000;

struct Node {
    cat: Catalogue,
    /// What its `Persist` outputs wrote, for a restart.
    durable: Durable,
    /// Client slot → connection id, while connected.
    slots: [Option<ClientId>; 4],
    /// What each connected client believes.
    views: BTreeMap<ClientId, Subscriber>,
    /// Fake peers whose link to this node is up.
    fakes: BTreeSet<usize>,
    /// Webhook deliveries not yet reported back.
    webhooks: Vec<Delivery>,
}

struct World {
    nodes: Vec<Node>,
    uris: Vec<CatalogueUri>,
    fake_uris: Vec<CatalogueUri>,
    now: u64,
    max_now: u64,
    next_client: u64,
    /// Honest links that are up, as (lower index, higher index).
    links: BTreeSet<(usize, usize)>,
    /// In-flight messages per direction, `queues[from][to]`.
    queues: Vec<Vec<VecDeque<Message>>>,
    step: usize,
    /// An honest catalogue dropped another's item for clock skew (time
    /// went back): by design (PROTOCOL.md) it is not resent until the
    /// link reconnects.
    honest_skew: bool,
    /// Whether to skip inputs that trigger known bugs.
    avoid_known_bugs: bool,
}

/// Runs one case; panics when a check fails.
pub(super) fn run(ops: &[Op], target: &Catalogues) {
    let mut w = World::new();
    w.avoid_known_bugs = target.avoid_known_bugs;
    for op in ops {
        w.step += 1;
        w.apply(op);
    }
    w.heal_and_compare();
}

fn config(uri: &CatalogueUri) -> Config {
    Config::new(uri.clone(), "eu", "production")
}

fn parse(line: &str) -> Option<Message> {
    parse_line(line.as_bytes()).ok()
}

impl World {
    fn new() -> Self {
        let uris: Vec<CatalogueUri> = HONEST_HOSTS
            .iter()
            .map(|h| CatalogueUri::from_addr(h).expect("valid host"))
            .collect();
        let nodes = uris
            .iter()
            .map(|u| Node {
                cat: Catalogue::new(config(u), Durable::default(), Ts(0), T0),
                durable: Durable::default(),
                slots: [None; 4],
                views: BTreeMap::new(),
                fakes: BTreeSet::new(),
                webhooks: Vec::new(),
            })
            .collect();
        Self {
            nodes,
            uris,
            fake_uris: FAKE_HOSTS
                .iter()
                .map(|h| CatalogueUri::from_addr(h).expect("valid host"))
                .collect(),
            now: T0,
            max_now: T0,
            next_client: 1,
            links: BTreeSet::new(),
            queues: vec![vec![VecDeque::new(); NODES]; NODES],
            step: 0,
            honest_skew: false,
            avoid_known_bugs: false,
        }
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now;
        match op {
            &Op::Connect {
                node,
                slot,
                may_register,
            } => {
                if self.nodes[node].slots[slot].is_none() {
                    let id = ClientId(self.next_client);
                    self.next_client += 1;
                    self.nodes[node].slots[slot] = Some(id);
                    self.nodes[node].views.insert(id, Subscriber::default());
                    self.nodes[node].cat.client_connected(id, may_register);
                    self.settle(node);
                }
            }
            &Op::Disconnect { node, slot } => {
                if let Some(id) = self.nodes[node].slots[slot].take() {
                    self.nodes[node].views.remove(&id);
                    self.nodes[node].cat.client_disconnected(now, id);
                    self.settle(node);
                }
            }
            Op::Client { node, slot, line } => {
                if let (Some(id), Some(msg)) = (self.nodes[*node].slots[*slot], parse(line)) {
                    self.nodes[*node].cat.client_message(now, id, msg);
                    self.settle(*node);
                }
            }
            &Op::FakeUp { node, fake } => {
                if self.nodes[node].fakes.insert(fake) {
                    let peer = self.fake_uris[fake].clone();
                    self.nodes[node].cat.link_up(now, &peer);
                    self.settle(node);
                }
            }
            &Op::FakeDown { node, fake } => self.fake_down(node, fake),
            Op::Fake { node, fake, line } => {
                let msg = parse(line).filter(|m| !(self.avoid_known_bugs && self.phantom_link(m)));
                if let (true, Some(msg)) = (self.nodes[*node].fakes.contains(fake), msg) {
                    let peer = self.fake_uris[*fake].clone();
                    self.nodes[*node].cat.peer_message(now, &peer, msg);
                    self.settle(*node);
                }
            }
            &Op::LinkUp { a, b } => self.link_up(a, b),
            &Op::LinkDown { a, b } => self.link_down(a, b),
            &Op::Deliver { from, to, max } => {
                for _ in 0..max {
                    if !self.deliver(from, to) {
                        break;
                    }
                }
            }
            &Op::Time { delta_ms } => {
                let t = self.now.saturating_add_signed(delta_ms);
                self.now = t.clamp(T0 - TIME_WINDOW_MS, T0 + TIME_WINDOW_MS);
                self.max_now = self.max_now.max(self.now);
            }
            &Op::Tick { node } => {
                self.nodes[node].cat.tick(now);
                self.settle(node);
            }
            Op::SetKey { node, key, value } => {
                let _ = self.nodes[*node].cat.set_key(now, key, value);
                self.settle(*node);
            }
            Op::DelKey { node, key } => {
                let _ = self.nodes[*node].cat.del_key(now, key);
                self.settle(*node);
            }
            Op::Lease {
                node,
                service,
                ttl_ms,
            } => {
                if let Ok(s) = ServiceUri::parse(service) {
                    let _ = self.nodes[*node].cat.lease(now, s, Attrs::default(), *ttl_ms);
                    self.settle(*node);
                }
            }
            Op::Unlease { node, service } => {
                if let Ok(s) = ServiceUri::parse(service) {
                    self.nodes[*node].cat.unlease(now, &s);
                    self.settle(*node);
                }
            }
            Op::PutHook {
                node,
                app,
                name,
                hook,
            } => {
                let kind = if *app { HookKind::App } else { HookKind::Srv };
                let spec = format!("{{\"name\":\"{hook}\",\"endpoint\":\"http://127.0.0.1:9/\"}}");
                let _ = self.nodes[*node].cat.put_hook(now, kind, name, hook, &spec);
                self.settle(*node);
            }
            &Op::Restart { node } => self.restart(node),
            &Op::WebhookDone { node, pick, ok } => {
                let pending = &mut self.nodes[node].webhooks;
                if !pending.is_empty() {
                    let d = pending.remove(pick % pending.len());
                    self.nodes[node].cat.webhook_done(now, &d.marker, &d.version, ok);
                    self.settle(node);
                }
            }
        }
    }

    /// Known bug (tests/findings.rs): an ADD_LINK naming an honest
    /// catalogue that reaches it (from the fake or flooded by another
    /// catalogue) while its connection to the other end is mid-handshake
    /// is kept and never refuted. Which it meets depends on later inputs,
    /// so every forged ADD_LINK naming an honest catalogue is avoided.
    fn phantom_link(&self, msg: &Message) -> bool {
        matches!(msg, Message::AddLink { a, b, .. } if self.uris.contains(a) || self.uris.contains(b))
    }

    fn link_down(&mut self, a: usize, b: usize) {
        let (a, b) = (a.min(b), a.max(b));
        if self.links.remove(&(a, b)) {
            self.queues[a][b].clear();
            self.queues[b][a].clear();
            for (x, y) in [(a, b), (b, a)] {
                let peer = self.uris[y].clone();
                self.nodes[x].cat.link_down(self.now, &peer);
                self.settle(x);
            }
        }
    }

    /// A crash and restart: peers see the links drop; the process state
    /// (clients, fake links, pending webhooks) is gone; the catalogue
    /// starts again from its durable state and its clock's high-water mark.
    fn restart(&mut self, node: usize) {
        for other in 0..NODES {
            self.link_down(node, other);
        }
        let n = &mut self.nodes[node];
        let floor = n.cat.clock();
        n.cat = Catalogue::new(config(&self.uris[node]), n.durable.clone(), floor, self.now);
        n.slots = [None; 4];
        n.views.clear();
        n.fakes.clear();
        n.webhooks.clear();
        self.settle(node);
    }

    fn link_up(&mut self, a: usize, b: usize) {
        let (a, b) = (a.min(b), a.max(b));
        if a != b && self.links.insert((a, b)) {
            for (x, y) in [(a, b), (b, a)] {
                let peer = self.uris[y].clone();
                self.nodes[x].cat.link_up(self.now, &peer);
                self.settle(x);
            }
        }
    }

    fn fake_down(&mut self, node: usize, fake: usize) {
        if self.nodes[node].fakes.remove(&fake) {
            let peer = self.fake_uris[fake].clone();
            self.nodes[node].cat.link_down(self.now, &peer);
            self.settle(node);
        }
    }

    /// Delivers the oldest message from `from` to `to`; false if none.
    fn deliver(&mut self, from: usize, to: usize) -> bool {
        let Some(msg) = self.queues[from][to].pop_front() else {
            return false;
        };
        let peer = self.uris[from].clone();
        self.nodes[to].cat.peer_message(self.now, &peer, msg);
        self.settle(to);
        true
    }

    /// Drains `node`'s outputs after one input: checks them and routes
    /// messages to honest peers.
    fn settle(&mut self, node: usize) {
        let outs = self.nodes[node].cat.drain();
        let mut messages = 0;
        for out in outs {
            if let Some((client, msgs)) = out.client_messages() {
                assert!(
                    self.nodes[node].slots.contains(&Some(client)),
                    "{} sent {} to client {client:?}, which is not connected",
                    self.uris[node],
                    msgs.first().map(Message::encode).unwrap_or_default()
                );
                messages += msgs.len();
                msgs.iter().for_each(round_trips);
                if let Some(view) = self.nodes[node].views.get_mut(&client) {
                    msgs.iter().for_each(|m| view.receive(m));
                }
                continue;
            }
            match out {
                Output::ToPeer { peer, msg } => {
                    messages += 1;
                    round_trips(&msg);
                    let honest = self.uris.iter().position(|u| *u == peer);
                    let linked = match honest {
                        Some(to) => self.links.contains(&(node.min(to), node.max(to))),
                        None => {
                            let fake = self.fake_uris.iter().position(|u| *u == peer);
                            fake.is_some_and(|f| self.nodes[node].fakes.contains(&f))
                        }
                    };
                    assert!(
                        linked,
                        "{} sent {} to {peer}, which it has no link to",
                        self.uris[node],
                        msg.encode()
                    );
                    // Messages to fake peers are dropped: they answer
                    // with whatever the generator says.
                    if let Some(to) = honest {
                        self.queues[node][to].push_back(msg);
                    }
                }
                Output::Webhook(d) => {
                    messages += 1;
                    self.nodes[node].webhooks.push(d);
                }
                Output::Persist(op) => {
                    messages += 1;
                    self.nodes[node].durable.apply(&op);
                }
                Output::Notice(Notice::ClockSkew { peer, .. }) => {
                    messages += 1;
                    self.honest_skew |= self.uris.contains(&peer);
                }
                _ => messages += 1,
            }
        }
        let bound = output_bound(self.step);
        assert!(
            messages <= bound,
            "output explosion: one input to {} produced {messages} outputs (bound {bound}) at step {}",
            self.uris[node],
            self.step
        );
        // Pending webhooks are a driver's queue: bounded as well.
        assert!(
            self.nodes[node].webhooks.len() <= bound,
            "webhook explosion: {} pending deliveries at {}",
            self.nodes[node].webhooks.len(),
            self.uris[node]
        );
    }

    /// Cuts the fake peers, links every honest pair, delivers everything,
    /// then checks that the honest catalogues agree.
    fn heal_and_compare(&mut self) {
        self.now = self.max_now + 1;
        for node in 0..NODES {
            for fake in 0..self.fake_uris.len() {
                self.fake_down(node, fake);
            }
        }
        for node in 0..NODES {
            self.nodes[node].cat.tick(self.now);
            self.settle(node);
        }
        self.link_all();
        self.pump();
        if self.honest_skew && self.disagreement().is_some() {
            // Items dropped for skew come back with a reconnection, which
            // runs anti-entropy again, now that every clock is past them.
            for a in 0..NODES {
                for b in a + 1..NODES {
                    self.link_down(a, b);
                }
            }
            self.link_all();
            self.pump();
        }
        if let Some(d) = self.disagreement() {
            panic!("{d}");
        }
    }

    fn link_all(&mut self) {
        for a in 0..NODES {
            for b in a + 1..NODES {
                self.link_up(a, b);
            }
        }
    }

    /// Delivers until no message is in flight.
    fn pump(&mut self) {
        let mut delivered = 0;
        loop {
            let mut moved = false;
            for from in 0..NODES {
                for to in 0..NODES {
                    while self.deliver(from, to) {
                        moved = true;
                        delivered += 1;
                        assert!(
                            delivered <= HEAL_DELIVERIES,
                            "the network never quiesces after the heal ({delivered} deliveries)"
                        );
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// How the honest catalogues differ, if they do.
    fn disagreement(&self) -> Option<String> {
        let first = &self.nodes[0].cat;
        for (i, node) in self.nodes.iter().enumerate().skip(1) {
            let (a, b) = (first, &node.cat);
            let (sa, sb): (Vec<_>, Vec<_>) = (a.services().collect(), b.services().collect());
            if sa != sb {
                return Some(format!(
                    "n0 and n{i} disagree on services after the heal:\n n0: {sa:?}\n n{i}: {sb:?}"
                ));
            }
            let (ka, kb) = (a.keys(), b.keys());
            if ka != kb {
                return Some(format!(
                    "n0 and n{i} disagree on configuration after the heal:\n n0: {ka:?}\n n{i}: {kb:?}"
                ));
            }
            let (ta, tb) = (a.topology(), b.topology());
            if (&ta.reachable, &ta.leader) != (&tb.reachable, &tb.leader) {
                return Some(format!(
                    "n0 and n{i} disagree on reachability after the heal:\n n0: {:?} leader {}\n n{i}: {:?} leader {}",
                    ta.reachable, ta.leader, tb.reachable, tb.leader
                ));
            }
        }
        self.nodes
            .iter()
            .flat_map(|n| n.views.values().map(|v| v.disagreement(&n.cat)))
            .find_map(|d| d)
    }
}

/// Every message a catalogue emits must survive the wire unchanged.
fn round_trips(msg: &Message) {
    let line = msg.encode();
    assert_eq!(
        parse_line(line.as_bytes()).as_ref(),
        Ok(msg),
        "emitted message does not survive the wire: {line:?}"
    );
}
