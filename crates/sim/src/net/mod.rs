//! The simulated network: a facade over the transport (`transport`), the
//! simulated clients (`clients`) and the invariant oracle (`oracle`). It
//! carries each catalogue's outputs to the wires, the clients and the
//! durable store.

use std::collections::BTreeSet;
use std::fmt;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rarangi_core::{Catalogue, Output, PersistOp};
use rarangi_proto::CatalogueUri;

use crate::Topology;

mod clients;
mod oracle;
mod transport;

pub use oracle::{Invariant, Violation};

use clients::Clients;
use oracle::Oracle;
use transport::{Step, Transport};

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
    /// Catalogues unreachable this long are reaped.
    pub reap_after_ms: u64,
    /// Wall clocks differ by up to this much either way.
    pub max_clock_offset_ms: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            horizon_ms: 20_000,
            max_delay_ms: 30,
            detect_ms: 5_000,
            // Longer than the horizon: some pauses reap crashed or
            // partitioned catalogues, which then come back as new
            // incarnations.
            reap_after_ms: 45_000,
            max_clock_offset_ms: 5_000,
        }
    }
}

/// Settling gives up (a livelock) after this much simulated time.
const SETTLE_LIMIT_MS: u64 = 3_600_000;

/// The simulated network.
pub struct Net {
    wire: Transport,
    clients: Clients,
    oracle: Oracle,
    /// Catalogue-to-catalogue lines sent.
    pub lines: u64,
    /// Catalogue-to-catalogue bytes sent (with LF).
    pub bytes: u64,
}

impl Net {
    /// A network of catalogues `(environment, cluster)` with the given
    /// physical links; nothing is connected until [`Net::connect_all`].
    pub fn new(
        cfg: NetConfig,
        rng: ChaCha8Rng,
        nodes: &[(String, String)],
        edges: BTreeSet<(NodeId, NodeId)>,
    ) -> Self {
        Self {
            wire: Transport::new(cfg, rng, nodes, edges),
            clients: Clients::default(),
            oracle: Oracle::default(),
            lines: 0,
            bytes: 0,
        }
    }

    /// `n` catalogues of one environment laid out as `topology` (its
    /// wires and clusters), with randomness seeded by `seed`; nothing is
    /// connected until [`Net::connect_all`].
    pub fn one_environment(cfg: NetConfig, seed: u64, n: usize, topology: Topology) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let edges = topology.edges(n, &mut rng);
        let nodes: Vec<(String, String)> = (0..n)
            .map(|i| ("development".to_owned(), topology.cluster(i)))
            .collect();
        Self::new(cfg, rng, &nodes, edges)
    }

    /// Number of catalogues.
    pub fn len(&self) -> usize {
        self.wire.len()
    }

    /// True when there are no catalogues.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current simulated time.
    pub fn now(&self) -> u64 {
        self.wire.now()
    }

    /// Simulated milliseconds since the network was created.
    pub fn elapsed_ms(&self) -> u64 {
        self.wire.elapsed_ms()
    }

    /// The physical links.
    pub fn edges(&self) -> &BTreeSet<(NodeId, NodeId)> {
        self.wire.edges()
    }

    /// Links currently cut.
    pub fn cut_edges(&self) -> &BTreeSet<(NodeId, NodeId)> {
        self.wire.cut_edges()
    }

    /// A catalogue's state machine, if it is running.
    pub fn core(&self, i: NodeId) -> Option<&Catalogue> {
        self.wire.core(i)
    }

    /// A catalogue's URI.
    pub fn uri(&self, i: NodeId) -> &CatalogueUri {
        self.wire.uri(i)
    }

    /// Whether a catalogue is running.
    pub fn is_up(&self, i: NodeId) -> bool {
        self.wire.is_up(i)
    }

    /// The random number generator, for schedules.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        self.wire.rng()
    }

    /// Violations found so far.
    pub fn violations(&self) -> &[Violation] {
        self.oracle.violations()
    }

    /// Connected components of running catalogues over live connections.
    pub fn components(&self) -> Vec<BTreeSet<NodeId>> {
        self.wire.components()
    }

    /// Prints one trace line stamped with the simulated time, when
    /// `RARANGI_TRACE` is set.
    pub(crate) fn trace(&self, what: fmt::Arguments<'_>) {
        self.wire.trace(what);
    }

    /// Opens connections on every physical link that is not cut.
    pub fn connect_all(&mut self) {
        self.wire.connect_all(&mut self.oracle);
    }

    /// Cuts a physical link: the connection dies with what is in flight.
    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.wire.cut(a, b);
    }

    /// Heals a cut link; the two catalogues reconnect.
    pub fn heal(&mut self, a: NodeId, b: NodeId) {
        self.wire.heal(a, b, &mut self.oracle);
    }

    /// Heals every cut link and restarts every crashed catalogue.
    pub fn heal_all(&mut self) {
        self.wire.heal_all(&mut self.oracle);
    }

    /// Crashes a catalogue: memory lost, clients and connections dropped;
    /// durable configuration and the clock high-water mark survive.
    pub fn crash(&mut self, i: NodeId) {
        if self.wire.crash(i) {
            self.clients.drop_node(i);
        }
    }

    /// Stops a catalogue gracefully: it announces that it leaves, its
    /// lines are delivered, then its connections close as in a crash.
    pub fn leave(&mut self, i: NodeId) {
        self.input(i, |core, wall| core.leave(wall));
        let by = self.wire.delivered_by(i);
        self.run_until(by);
        self.crash(i);
    }

    /// After a final heal: every catalogue knows exactly the catalogues of
    /// its component (those that left or were reaped came back as new
    /// incarnations; none is left over).
    pub fn check_catalogues(&mut self) {
        let at = self.elapsed_ms();
        for i in 0..self.len() {
            let Some(core) = self.core(i) else { continue };
            let known: BTreeSet<CatalogueUri> = core.topology().catalogues.into_keys().collect();
            let want: BTreeSet<CatalogueUri> = self
                .components()
                .into_iter()
                .find(|c| c.contains(&i))
                .into_iter()
                .flatten()
                .map(|j| self.uri(j).clone())
                .collect();
            if known != want {
                self.oracle.record(
                    Invariant::Convergence,
                    at,
                    format!("node {i} knows catalogues {known:?}, want {want:?}"),
                );
            }
        }
    }

    /// Restarts a crashed catalogue and reconnects its links.
    pub fn restart(&mut self, i: NodeId) {
        self.wire.restart(i, &mut self.oracle);
    }

    /// Writes a configuration key at a catalogue.
    pub fn set_key(&mut self, node: NodeId, key: &str, value: &str) {
        self.input(node, |core, wall| {
            core.set_key(wall, key, value).expect("valid key");
        });
    }

    /// Deletes a configuration key at a catalogue.
    pub fn del_key(&mut self, node: NodeId, key: &str) {
        self.input(node, |core, wall| {
            core.del_key(wall, key);
        });
    }

    /// Processes events up to `until`, ticking every catalogue each second.
    pub fn run_until(&mut self, until: u64) {
        while let Some(step) = self.wire.next_step(until) {
            match step {
                Step::Event(ev) => {
                    if let Some(node) = self.wire.deliver(ev, &mut self.oracle) {
                        self.pump(node);
                    }
                }
                Step::Tick => {
                    for i in 0..self.len() {
                        self.input(i, |core, wall| core.tick(wall));
                    }
                }
            }
        }
    }

    /// Advances time by `ms`.
    pub fn advance(&mut self, ms: u64) {
        self.run_until(self.now() + ms);
    }

    /// Runs until no message or failure detection is pending. Returns false
    /// if that did not happen within a simulated hour (a livelock).
    pub fn settle(&mut self) -> bool {
        let limit = self.now() + SETTLE_LIMIT_MS;
        while let Some(t) = self.wire.next_event_at() {
            if t > limit {
                self.oracle.record(
                    Invariant::Convergence,
                    self.elapsed_ms(),
                    "messages still flowing after a simulated hour".into(),
                );
                return false;
            }
            self.run_until(t);
        }
        true
    }

    /// Gives a running catalogue an input at its wall clock, then handles
    /// its outputs.
    fn input(&mut self, node: NodeId, f: impl FnOnce(&mut Catalogue, u64)) {
        if self.wire.input(node, f) {
            self.pump(node);
        }
    }

    /// Handles a catalogue's outputs.
    fn pump(&mut self, node: NodeId) {
        let Some(outs) = self.wire.drain(node) else {
            return;
        };
        for out in outs {
            match out {
                Output::ToPeer { peer, msg } => {
                    if let Some(len) = self.wire.send(node, &peer, &msg) {
                        self.lines += 1;
                        self.bytes += len as u64 + 1;
                    }
                }
                Output::Persist(op) => {
                    if let PersistOp::Key(rec) = &op {
                        let at = self.elapsed_ms();
                        self.oracle.key_persisted(node, rec, at);
                    }
                    self.wire.persist(node, &op);
                }
                // Client messages; notices are for an operator's log, and
                // the core never asks to close a client.
                other => {
                    if let Some((client, msgs)) = other.client_messages() {
                        for msg in msgs {
                            self.deliver_to_client(client, msg);
                        }
                    }
                }
            }
        }
    }
}
