//! Deterministic scenarios for the replication rules of DESIGN §4 and the
//! invariants of §7, each on an in-memory network.

use std::collections::BTreeSet;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rarangi_sim::{run_seed, Net, NetConfig, ScheduleConfig, Topology};

fn net(n: usize, topology: Topology, seed: u64, cfg: NetConfig) -> Net {
    let mut net = Net::one_environment(cfg, seed, n, topology);
    net.connect_all();
    assert!(net.settle());
    net
}

fn shown(net: &Net, node: usize) -> BTreeSet<String> {
    net.core(node)
        .expect("up")
        .services()
        .map(|v| v.service.to_string())
        .collect()
}

fn assert_clean(net: &mut Net) {
    assert!(net.settle());
    net.check();
    assert!(net.violations().is_empty(), "{:#?}", net.violations());
}

/// Seed 000's flooding: one change costs at most 2E−N+1 lines (each link
/// carries it once, except the links back towards where it came from).
#[test]
fn one_change_costs_at_most_2e_minus_n_plus_1_lines() {
    let layouts = [
        Topology::Chain,
        Topology::Ring,
        Topology::Star,
        Topology::TwoMasters { cluster_size: 5 },
        Topology::Random { extra_tenths: 10 },
    ];
    for n in [5, 20, 50] {
        for (i, topology) in layouts.into_iter().enumerate() {
            let mut net = net(n, topology, 7 + i as u64, NetConfig::default());
            let e = net.edges().len() as u64;
            let bound = 2 * e - n as u64 + 1;
            let origin = (i * 7) % n;
            let client = net.client(origin).expect("up");
            let before = net.lines;
            net.register(client, "tcp://10.0.0.1:80/orders");
            assert!(net.settle());
            let add = net.lines - before;
            for node in 0..n {
                assert!(
                    shown(&net, node).contains("tcp://10.0.0.1:80/orders"),
                    "node {node} of {topology:?}"
                );
            }
            let before = net.lines;
            net.disconnect_client(client);
            assert!(net.settle());
            let del = net.lines - before;
            for node in 0..n {
                assert!(shown(&net, node).is_empty());
            }
            let name = format!("{topology:?}");
            println!(
                "{n:>3} catalogues {name:<36} E={e:<4} bound {bound:<4} ADD_SERV {add:<4} DEL_SERV {del}"
            );
            assert!(
                add <= bound && del <= bound,
                "{topology:?} n={n}: {add}/{del} lines > bound {bound}"
            );
            assert!(add >= n as u64 - 1, "every catalogue must hear of it");
        }
    }
}

/// Re-linking after a short partition sends lines in proportion to what
/// changed, not to the size of the catalogue (the seed's baseline would
/// resend all 1,000 records).
#[test]
fn relink_sends_only_what_changed() {
    let mut net = net(3, Topology::Chain, 1, NetConfig::default());
    let owner = net.client(0).expect("up");
    for i in 0..1000 {
        net.register(
            owner,
            &format!("tcp://10.0.{}.{}:80/svc{}", i / 250, i % 250, i % 7),
        );
    }
    assert!(net.settle());
    assert_eq!(shown(&net, 2).len(), 1000);

    net.cut(1, 2);
    assert!(net.settle());
    assert!(
        shown(&net, 2).is_empty(),
        "the far side withdraws what it cannot reach"
    );
    let regs = net.registrations(owner);
    for s in regs.iter().take(50) {
        net.unregister(owner, s);
    }
    for i in 0..50 {
        net.register(owner, &format!("tcp://10.9.0.{i}:80/new"));
    }
    assert!(net.settle());
    let before = net.lines;
    net.heal(1, 2);
    assert_clean(&mut net);
    let relink = net.lines - before;
    assert_eq!(shown(&net, 2).len(), 1000);
    println!("re-link after 100 changes in a catalogue of 1000 services: {relink} lines");
    // 100 changes flooded once each way, plus the reconciliation summaries.
    assert!(relink < 400, "re-link sent {relink} lines for 100 changes");

    // Baseline for comparison: a catalogue that knows nothing gets it all.
    let before = net.lines;
    net.crash(2);
    net.restart(2);
    assert_clean(&mut net);
    let full = net.lines - before;
    println!("a restarted catalogue catching up with 1000 services: {full} lines");
    assert!(full >= 1000 && relink * 3 < full);
}

/// A catalogue partitioned for longer than the tombstone horizon comes back
/// with stale data: what was deleted meanwhile stays deleted, what was
/// written on either side meanwhile arrives.
#[test]
fn stale_side_of_a_long_partition_cannot_resurrect() {
    let cfg = NetConfig {
        horizon_ms: 10_000,
        ..NetConfig::default()
    };
    let mut net = net(4, Topology::Chain, 3, cfg);
    let svc_client = net.client(1).expect("up");
    net.register(svc_client, "tcp://10.0.0.1:80/orders");
    net.register(svc_client, "tcp://10.0.0.2:80/orders");
    net.set_key(0, "app/orders", "{\"config\":1}");
    net.set_key(1, "app/billing", "{\"config\":2}");
    let watcher = net.client(3).expect("up");
    net.subscribe(watcher, ".*");
    assert_clean(&mut net);

    // Nodes 2-3 hold the stale copies. The rest deletes while they are away.
    net.cut(1, 2);
    assert_clean(&mut net);
    let regs = net.registrations(svc_client);
    net.unregister(svc_client, &regs[0]);
    net.del_key(0, "app/orders");
    net.set_key(3, "app/search", "{\"config\":3}");
    // Far past the horizon: tombstones are collected on both sides.
    net.advance(60_000);
    assert_clean(&mut net);

    net.heal(1, 2);
    assert_clean(&mut net);
    for node in 0..4 {
        let core = net.core(node).expect("up");
        let keys: Vec<String> = core.keys().into_iter().map(|k| k.key).collect();
        assert_eq!(keys, ["app/billing", "app/search"], "node {node}");
        assert_eq!(
            shown(&net, node),
            BTreeSet::from(["tcp://10.0.0.2:80/orders".to_owned()])
        );
    }
}

/// Partition visibility: services behind a cut are withdrawn from
/// subscribers, and come back on heal without re-registering.
#[test]
fn partition_withdraws_and_heal_restores() {
    let mut net = net(5, Topology::Chain, 4, NetConfig::default());
    let svc = net.client(0).expect("up");
    net.register(svc, "tcp://10.0.0.1:80/orders");
    let watcher = net.client(4).expect("up");
    net.subscribe(watcher, "orders");
    assert_clean(&mut net);
    assert_eq!(shown(&net, 4).len(), 1);

    net.cut(2, 3);
    assert_clean(&mut net);
    assert!(shown(&net, 4).is_empty());
    assert_eq!(shown(&net, 2).len(), 1);
    let topo = net.core(4).expect("up").topology();
    assert_eq!(topo.reachable.len(), 2, "node 4 reaches itself and node 3");
    assert_eq!(&topo.leader, net.uri(3), "lowest reachable URI leads");

    net.heal(2, 3);
    assert_clean(&mut net);
    assert_eq!(shown(&net, 4).len(), 1);
}

/// A crashed catalogue's services vanish everywhere; after a restart its
/// old records never come back, and services re-registered there appear.
#[test]
fn crash_and_restart_of_an_owner() {
    let mut net = net(4, Topology::Ring, 5, NetConfig::default());
    let svc = net.client(1).expect("up");
    net.register(svc, "tcp://10.0.0.1:80/orders");
    let watcher = net.client(3).expect("up");
    net.subscribe(watcher, ".*");
    assert_clean(&mut net);
    net.crash(1);
    assert_clean(&mut net);
    assert!(shown(&net, 3).is_empty());
    net.restart(1);
    assert_clean(&mut net);
    assert!(
        shown(&net, 3).is_empty(),
        "the old incarnation's services stay gone"
    );
    let again = net.client(1).expect("up");
    net.register(again, "tcp://10.0.0.1:80/orders");
    assert_clean(&mut net);
    assert_eq!(shown(&net, 3).len(), 1);
}

/// Environments never mix, even on shared wires.
#[test]
fn environments_never_mix() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let edges = Topology::Chain.edges(4, &mut rng);
    let nodes: Vec<(String, String)> = ["production", "production", "staging", "staging"]
        .iter()
        .map(|e| (e.to_string(), "c0".to_string()))
        .collect();
    let mut net = Net::new(NetConfig::default(), rng, &nodes, edges);
    net.connect_all();
    let p = net.client(0).expect("up");
    net.register(p, "tcp://10.0.0.1:80/orders");
    let s = net.client(3).expect("up");
    net.register(s, "tcp://10.0.0.2:80/orders");
    net.set_key(1, "app/orders", "{}");
    assert_clean(&mut net);
    assert_eq!(
        shown(&net, 1),
        BTreeSet::from(["tcp://10.0.0.1:80/orders".to_owned()])
    );
    assert_eq!(
        shown(&net, 2),
        BTreeSet::from(["tcp://10.0.0.2:80/orders".to_owned()])
    );
    assert!(net.core(2).expect("up").keys().is_empty());
    assert_eq!(net.core(2).expect("up").topology().reachable.len(), 2);
}

/// Full random schedules at the largest size the issue asks for.
#[test]
fn fifty_catalogue_schedules() {
    let cfg = ScheduleConfig {
        min_nodes: 40,
        max_nodes: 50,
        steps: 150,
        ..ScheduleConfig::default()
    };
    for seed in 0..6 {
        let out = run_seed(10_000 + seed, &cfg);
        assert!(
            out.violations.is_empty(),
            "seed {}: {:#?}",
            out.seed,
            out.violations
        );
    }
}

/// Watchdog checks (DESIGN §11): a critical instance is withdrawn at every
/// catalogue, also across a partition that heals meanwhile, and returns
/// without re-registering once its probes pass.
#[test]
fn critical_instances_are_withdrawn_everywhere_and_return() {
    let mut net = net(6, Topology::Ring, 11, NetConfig::default());
    let svc = "tcp://10.0.0.7:80/orders";
    let client = net.client(0).expect("up");
    let attrs = rarangi_proto::Attrs::parse("check=tcp&check-fails=2&check-passes=1").unwrap();
    net.register_with(client, svc, attrs);
    assert_clean(&mut net);
    assert!((0..6).all(|i| shown(&net, i).contains(svc)));
    net.probe(0, svc, false);
    net.probe(0, svc, false);
    assert_clean(&mut net);
    assert!((0..6).all(|i| shown(&net, i).is_empty()), "withdrawn everywhere");
    net.cut(2, 3);
    net.probe(0, svc, true);
    net.advance(10);
    net.heal(2, 3);
    assert_clean(&mut net);
    assert!((0..6).all(|i| shown(&net, i).contains(svc)), "back everywhere");
}
