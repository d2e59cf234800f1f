//! Target `catalogue`: three honest catalogues wired in memory, driven by
//! an arbitrary sequence of inputs: clients connecting and sending lines,
//! fake peers sending replicated messages (well and ill formed, forged
//! owners, odd timestamps), links going up and down, messages delivered in
//! any interleaving, time moving both ways, ticks, configuration writes,
//! leases, hooks, webhook reports and restarts from the persisted state.
//!
//! Checks: no panic; every message a catalogue emits encodes to a line that
//! parses back to it; no input produces more than a generous number of
//! outputs; the in-memory network quiesces; and after a final heal (fake
//! peers cut, every honest pair linked, everything delivered) the honest
//! catalogues agree on the visible services, the configuration, the
//! reachable set and the leader, and every subscribed client's view
//! (snapshot plus events) equals what its catalogue shows for its regexes.

mod subscriber;
mod world;

use crate::engine::{smaller_vec, Target};
use crate::gen::{Gen, FAKE_HOSTS, HONEST_HOSTS};

/// How many honest catalogues a case wires together.
pub const NODES: usize = HONEST_HOSTS.len();

/// The start of simulated time (Unix ms).
pub const T0: u64 = 1_700_000_000_000;

/// How far simulated time may wander from [`T0`] either way: well inside
/// the tombstone horizon (60 min), so convergence is owed.
pub const TIME_WINDOW_MS: u64 = 20 * 60 * 1000;

/// The catalogue target.
#[derive(Debug, Clone, Copy)]
pub struct Catalogues {
    /// Most inputs per case.
    pub max_ops: usize,
    /// Skip the inputs that trigger known, reported bugs (see
    /// `tests/findings.rs`), so a long run can find others.
    pub avoid_known_bugs: bool,
}

impl Default for Catalogues {
    fn default() -> Self {
        Self {
            max_ops: 120,
            avoid_known_bugs: false,
        }
    }
}

/// One input to the in-memory network. Inputs that make no sense in the
/// current state (a message on a link that is down) are skipped, as a
/// driver would never produce them; so any subsequence is a valid case.
#[derive(Debug, Clone)]
#[allow(missing_docs)] // the fields say what they are
pub enum Op {
    /// A client connects to `node` in slot `slot`.
    Connect {
        node: usize,
        slot: usize,
        may_register: bool,
    },
    /// The client in `slot` disconnects.
    Disconnect { node: usize, slot: usize },
    /// The client in `slot` sends a line (dropped if it does not parse, as
    /// the driver answers those itself).
    Client { node: usize, slot: usize, line: String },
    /// A fake peer's link to `node` comes up (after WELCOME).
    FakeUp { node: usize, fake: usize },
    /// A fake peer's link to `node` goes down.
    FakeDown { node: usize, fake: usize },
    /// A fake peer sends `node` a line.
    Fake { node: usize, fake: usize, line: String },
    /// Honest catalogues `a` and `b` link (both sides).
    LinkUp { a: usize, b: usize },
    /// Their link breaks; messages in flight are lost.
    LinkDown { a: usize, b: usize },
    /// Up to `max` queued messages from `from` reach `to`.
    Deliver { from: usize, to: usize, max: usize },
    /// Simulated time moves (kept within [`TIME_WINDOW_MS`] of [`T0`]).
    Time { delta_ms: i64 },
    /// Housekeeping on `node`.
    Tick { node: usize },
    /// A configuration write on `node`.
    SetKey { node: usize, key: String, value: String },
    /// A configuration delete on `node`.
    DelKey { node: usize, key: String },
    /// An HTTP registration with a TTL.
    Lease {
        node: usize,
        service: String,
        ttl_ms: u64,
    },
    /// Its withdrawal.
    Unlease { node: usize, service: String },
    /// A webhook on an application or a service.
    PutHook {
        node: usize,
        app: bool,
        name: String,
        hook: String,
    },
    /// The driver reports webhook delivery number `pick` (modulo those
    /// pending) on `node`.
    WebhookDone { node: usize, pick: usize, ok: bool },
    /// `node` restarts from what its `Persist` outputs wrote: its links and
    /// clients drop, and a new incarnation begins.
    Restart { node: usize },
}

impl Target for Catalogues {
    type Input = Vec<Op>;

    fn name(&self) -> &'static str {
        "catalogue"
    }

    fn generate(&self, g: &mut Gen) -> Vec<Op> {
        let n = 1 + g.below(self.max_ops);
        let mut ops = Vec::with_capacity(n + NODES * NODES);
        // Usually start meshed, so replication is exercised from the start.
        if g.chance(3, 4) {
            for a in 0..NODES {
                for b in a + 1..NODES {
                    ops.push(Op::LinkUp { a, b });
                }
            }
        }
        ops.extend((0..n).map(|_| op(g)));
        ops
    }

    fn check(&self, input: &Vec<Op>) {
        world::run(input, self);
    }

    fn smaller(&self, input: &Vec<Op>) -> Vec<Vec<Op>> {
        smaller_vec(input)
    }
}

/// Draws one input.
fn op(g: &mut Gen) -> Op {
    let node = g.below(NODES);
    let slot = g.below(4);
    let fake = g.below(FAKE_HOSTS.len());
    let other = |g: &mut Gen| (node + 1 + g.below(NODES - 1)) % NODES;
    // A rough "now" for timestamps; the world re-bases nothing, so some
    // fall outside the skew bound on purpose.
    let now = T0 + g.range(0, TIME_WINDOW_MS);
    match g.below(100) {
        0..=5 => Op::Connect {
            node,
            slot,
            may_register: g.chance(7, 8),
        },
        6..=8 => Op::Disconnect { node, slot },
        9..=27 => Op::Client {
            node,
            slot,
            line: client_line(g, now),
        },
        28..=30 => Op::FakeUp { node, fake },
        31 => Op::FakeDown { node, fake },
        32..=49 => Op::Fake {
            node,
            fake,
            line: if g.chance(15, 16) {
                g.message(now).encode()
            } else {
                g.text(30)
            },
        },
        50..=52 => Op::LinkUp { a: node, b: other(g) },
        53..=54 => Op::LinkDown { a: node, b: other(g) },
        55..=72 => Op::Deliver {
            from: node,
            to: other(g),
            max: 1 + g.below(8),
        },
        73..=77 => Op::Time {
            delta_ms: match g.below(4) {
                0 => -(g.range(0, 120_000) as i64),
                1 => g.range(0, 10 * 60_000) as i64,
                _ => g.range(0, 5_000) as i64,
            },
        },
        78..=81 => Op::Tick { node },
        82..=85 => Op::SetKey {
            node,
            key: g.key(),
            value: g.value(),
        },
        86..=87 => Op::DelKey { node, key: g.key() },
        88..=91 => Op::Lease {
            node,
            service: g.service().as_str().to_owned(),
            ttl_ms: match g.below(4) {
                0 => g.u64(),
                1 => 0,
                _ => g.range(1, 120_000),
            },
        },
        92..=93 => Op::Unlease {
            node,
            service: g.service().as_str().to_owned(),
        },
        94..=95 => Op::PutHook {
            node,
            app: g.chance(1, 2),
            name: if g.chance(1, 2) {
                "a".into()
            } else {
                "orders".into()
            },
            hook: g.pick(&["h1", "h2"]).to_owned(),
        },
        96..=98 => Op::WebhookDone {
            node,
            pick: g.below(8),
            ok: g.chance(2, 3),
        },
        _ => Op::Restart { node },
    }
}

/// A line a client might send: mostly the client verbs, sometimes a
/// catalogue-only message or junk.
fn client_line(g: &mut Gen, now: u64) -> String {
    use rarangi_proto::Message;
    let msg = match g.below(10) {
        0..=2 => Message::RegServ {
            service: g.service(),
            attrs: g.attrs(),
        },
        3..=4 => Message::SubServ { regex: g.regex() },
        5 => Message::UnregServ { service: g.service() },
        6 => Message::UnsubServ { regex: g.regex() },
        7 => {
            if g.chance(1, 2) {
                Message::SubLink
            } else {
                Message::UnsubLink
            }
        }
        8 => return g.text(30),
        _ => g.message(now),
    };
    msg.encode()
}
