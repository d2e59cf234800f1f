//! Benchmarks on the in-memory network: flooding cost, re-link traffic,
//! convergence of large networks.

use rarangi_sim::{Net, NetConfig, Topology};

/// `n` catalogues of development linked as `topology` lays out (seeded).
pub fn net(n: usize, topology: Topology, cfg: NetConfig, seed: u64) -> Net {
    Net::one_environment(cfg, seed, n, topology)
}

/// Lines for one registration against the bound 2E−N+1.
pub struct FloodRow {
    /// Catalogues.
    pub n: usize,
    /// Layout name.
    pub layout: String,
    /// Links E.
    pub edges: usize,
    /// 2E−N+1.
    pub bound: u64,
    /// Lines the registration took.
    pub lines: u64,
}

/// Lines one registration takes to reach every catalogue of a formed network.
pub fn flooding(n: usize, topology: Topology) -> FloodRow {
    let mut net = net(n, topology, NetConfig::default(), 1);
    net.connect_all();
    net.settle();
    let c = net.client(0).expect("up");
    let before = net.lines;
    net.register(c, "tcp://10.0.0.1:80/bench");
    net.settle();
    let e = net.edges().len();
    FloodRow {
        n,
        layout: layout_name(topology),
        edges: e,
        bound: 2 * e as u64 - n as u64 + 1,
        lines: net.lines - before,
    }
}

/// A layout's name in the tables.
pub fn layout_name(t: Topology) -> String {
    match t {
        Topology::Chain => "chain".into(),
        Topology::Ring => "ring".into(),
        Topology::Star => "star".into(),
        Topology::TwoMasters { cluster_size } => format!("two-masters/{cluster_size}"),
        Topology::Random { .. } => "random deg~3".into(),
    }
}

/// Re-link after a short partition during which `changes` happened.
pub struct RelinkRow {
    /// Services held.
    pub services: usize,
    /// Changes made during the partition.
    pub changes: usize,
    /// Lines sent when the link came back.
    pub relink_lines: u64,
    /// Bytes sent when the link came back.
    pub relink_bytes: u64,
    /// Bytes of a full copy of the catalogue.
    pub full_bytes: u64,
}

/// Two catalogues: a partition, `changes` on one side, then the re-link.
pub fn relink(services: usize, changes: usize) -> RelinkRow {
    let cfg = NetConfig {
        detect_ms: 500,
        max_delay_ms: 1,
        max_clock_offset_ms: 0,
        ..NetConfig::default()
    };
    let mut net = net(2, Topology::Chain, cfg, 2);
    net.connect_all();
    let mut clients = Vec::new();
    for i in 0..services {
        if i % 1000 == 0 {
            clients.push(net.client(0).expect("up"));
        }
        let c = *clients.last().expect("a client");
        net.register(
            c,
            &format!(
                "tcp://10.{}.{}.{}:80/svc{}",
                i / 65536,
                i / 256 % 256,
                i % 256,
                i % 13
            ),
        );
    }
    net.settle();
    let before_full = net.bytes;
    // The cost of a full copy, for comparison: what a restarted peer gets.
    net.crash(1);
    net.restart(1);
    net.settle();
    let full_bytes = net.bytes - before_full;
    net.cut(0, 1);
    net.advance(1000);
    let regs = net.registrations(clients[0]);
    for s in regs.iter().take(changes / 2) {
        net.unregister(clients[0], s);
    }
    for i in 0..changes - changes / 2 {
        net.register(clients[0], &format!("tcp://10.200.0.{i}:80/new"));
    }
    net.settle();
    let (l0, b0) = (net.lines, net.bytes);
    net.heal(0, 1);
    net.settle();
    RelinkRow {
        services,
        changes,
        relink_lines: net.lines - l0,
        relink_bytes: net.bytes - b0,
        full_bytes,
    }
}

/// A large network: lines and simulated time to form, then for one change.
pub struct LargeRow {
    /// Catalogues.
    pub n: usize,
    /// Links.
    pub edges: usize,
    /// Lines to form the network.
    pub form_lines: u64,
    /// Simulated ms to form it.
    pub form_ms: u64,
    /// Lines for one registration.
    pub change_lines: u64,
    /// Simulated ms for it to reach everyone.
    pub change_ms: u64,
    /// Resident memory of this process with the network formed (KiB).
    pub rss_kib: u64,
}

/// Forms a random network of `n` catalogues, then makes one change.
pub fn large(n: usize) -> LargeRow {
    let cfg = NetConfig {
        max_delay_ms: 1,
        max_clock_offset_ms: 0,
        ..NetConfig::default()
    };
    let mut net = net(n, Topology::Random { extra_tenths: 5 }, cfg, 3);
    let t0 = net.now();
    net.connect_all();
    net.settle();
    let (form_lines, form_ms) = (net.lines, net.now() - t0);
    let c = net.client(0).expect("up");
    let (l0, t1) = (net.lines, net.now());
    net.register(c, "tcp://10.0.0.1:80/bench");
    net.settle();
    LargeRow {
        n,
        edges: net.edges().len(),
        form_lines,
        form_ms,
        change_lines: net.lines - l0,
        change_ms: net.now() - t1,
        rss_kib: crate::os::proc_stats(std::process::id()).0,
    }
}
