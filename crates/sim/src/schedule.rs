//! Random fault schedules over a simulated network.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Net, NetConfig, Topology, Violation};

/// Shape of one random schedule.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// Fewest catalogues.
    pub min_nodes: usize,
    /// Most catalogues.
    pub max_nodes: usize,
    /// Random actions per schedule.
    pub steps: usize,
    /// Network knobs.
    pub net: NetConfig,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            min_nodes: 2,
            max_nodes: 12,
            steps: 150,
            net: NetConfig::default(),
        }
    }
}

/// The result of one seed.
#[derive(Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Catalogues simulated.
    pub nodes: usize,
    /// Topology used.
    pub topology: Topology,
    /// Catalogue-to-catalogue lines sent.
    pub lines: u64,
    /// Invariant violations (empty when the seed passed).
    pub violations: Vec<Violation>,
    /// The actions taken, for replaying by hand.
    pub log: Vec<String>,
}

const NAMES: [&str; 4] = ["orders", "billing", "search", "auth"];
const REGEXES: [&str; 4] = [".*", "orders", "/(billing|search)$", "^tcp://n1"];
const KEYS: [&str; 3] = ["app/orders", "app/billing", "hook/app/orders/a"];

/// Runs one random schedule: a network of random size and shape, random
/// registrations, subscriptions, configuration writes, cuts, heals,
/// crashes, graceful leaves, restarts and pauses (some longer than the
/// tombstone horizon and the reaping delay),
/// with invariants checked at quiet moments and after a final heal.
pub fn run_seed(seed: u64, cfg: &ScheduleConfig) -> Outcome {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = rng.gen_range(cfg.min_nodes..=cfg.max_nodes);
    let topology = *[
        Topology::Chain,
        Topology::Ring,
        Topology::Star,
        Topology::TwoMasters { cluster_size: 3 },
        Topology::Random { extra_tenths: 5 },
    ]
    .choose(&mut rng)
    .expect("non-empty");
    let edges = topology.edges(n, &mut rng);
    // A few seeds mix in a second environment on the same wires.
    let two_envs = rng.gen_bool(0.15);
    let nodes: Vec<(String, String)> = (0..n)
        .map(|i| {
            let env = if two_envs && i % 4 == 3 {
                "staging"
            } else {
                "development"
            };
            (env.to_owned(), topology.cluster(i))
        })
        .collect();
    let mut net = Net::new(cfg.net.clone(), rng, &nodes, edges);
    let mut log = vec![format!("{n} nodes, {topology:?}, two environments: {two_envs}")];
    net.connect_all();
    net.settle();
    let mut serial = 0;
    for _ in 0..cfg.steps {
        if let Some(l) = log.last() {
            net.trace(format_args!("## {l}"));
        }
        let action = net.rng().gen_range(0..100);
        let node = net.rng().gen_range(0..n);
        match action {
            0..=24 => {
                let clients: Vec<_> = net.clients().into_iter().filter(|(_, c)| *c == node).collect();
                let id = match clients.choose(net.rng()) {
                    Some((id, _)) if net.rng().gen_bool(0.6) => Some(*id),
                    _ => net.client(node),
                };
                if let Some(id) = id {
                    serial += 1;
                    let name = NAMES[serial % NAMES.len()];
                    let s = format!("tcp://n{node}-{serial}:80/{name}");
                    log.push(format!("register {s} client {}", id.0));
                    net.register(id, &s);
                }
            }
            25..=31 => {
                let clients = net.clients();
                if let Some(&(id, _)) = clients.choose(net.rng()) {
                    let regs = net.registrations(id);
                    if let Some(s) = regs.choose(net.rng()).cloned() {
                        log.push(format!("unregister {s}"));
                        net.unregister(id, &s);
                    }
                }
            }
            32..=39 => {
                let clients = net.clients();
                if let Some(&(id, _)) = clients.choose(net.rng()) {
                    log.push(format!("disconnect client {}", id.0));
                    net.disconnect_client(id);
                }
            }
            40..=47 => {
                if let Some(id) = net.client(node) {
                    let r = REGEXES[net.rng().gen_range(0..REGEXES.len())];
                    log.push(format!("subscribe {r:?} at node {node}"));
                    net.subscribe(id, r);
                }
            }
            48..=55 => {
                let k = KEYS[net.rng().gen_range(0..KEYS.len())];
                if net.rng().gen_bool(0.7) {
                    let v = format!("{{\"v\":{}}}", net.rng().gen_range(0..1000));
                    log.push(format!("set {k}={v} at node {node}"));
                    net.set_key(node, k, &v);
                } else {
                    log.push(format!("delete {k} at node {node}"));
                    net.del_key(node, k);
                }
            }
            56..=63 => {
                let edges: Vec<_> = net.edges().iter().copied().collect();
                if let Some(&(a, b)) = edges.choose(net.rng()) {
                    log.push(format!("cut {a}-{b}"));
                    net.cut(a, b);
                }
            }
            64..=69 => {
                let cut: Vec<_> = net.cut_edges().iter().copied().collect();
                if let Some(&(a, b)) = cut.choose(net.rng()) {
                    log.push(format!("heal {a}-{b}"));
                    net.heal(a, b);
                }
            }
            70..=72 => {
                log.push(format!("crash {node}"));
                net.crash(node);
            }
            73 => {
                log.push(format!("leave {node}"));
                net.leave(node);
            }
            74..=78 => {
                log.push(format!("restart {node}"));
                net.restart(node);
            }
            79..=92 => {
                let ms = net.rng().gen_range(0..3_000);
                net.advance(ms);
            }
            93..=95 => {
                // Longer than the tombstone horizon: collection happens.
                let ms = cfg.net.horizon_ms + net.rng().gen_range(0..cfg.net.horizon_ms);
                log.push(format!("pause {ms} ms"));
                net.advance(ms);
            }
            _ => {
                log.push("checkpoint".into());
                net.settle();
                net.check();
            }
        }
    }
    log.push("heal everything".into());
    net.heal_all();
    net.settle();
    net.check();
    net.check_catalogues();
    Outcome {
        seed,
        nodes: n,
        topology,
        lines: net.lines,
        violations: net.violations().to_vec(),
        log,
    }
}
