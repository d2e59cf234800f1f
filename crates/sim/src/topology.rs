//! Topologies to build simulated networks from.

use std::collections::BTreeSet;

use rand::Rng;

/// A shape of catalogue links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// 0-1-2-...-n.
    Chain,
    /// A chain closed into a cycle.
    Ring,
    /// Node 0 linked to every other.
    Star,
    /// Seed 001's layout: clusters of `cluster_size` where every catalogue
    /// links to the cluster's two masters, and all masters are fully meshed.
    TwoMasters {
        /// Catalogues per cluster (at least 2).
        cluster_size: usize,
    },
    /// A random spanning tree plus `extra` random edges per node on average
    /// (in tenths: 10 means one extra edge per node).
    Random {
        /// Extra edges per node, in tenths.
        extra_tenths: u32,
    },
}

impl Topology {
    /// The undirected edges (i < j) for `n` nodes.
    pub fn edges(self, n: usize, rng: &mut impl Rng) -> BTreeSet<(usize, usize)> {
        let mut e = BTreeSet::new();
        let mut add = |a: usize, b: usize| {
            if a != b {
                e.insert((a.min(b), a.max(b)));
            }
        };
        match self {
            Topology::Chain => (1..n).for_each(|i| add(i - 1, i)),
            Topology::Ring => {
                (1..n).for_each(|i| add(i - 1, i));
                if n > 2 {
                    add(n - 1, 0);
                }
            }
            Topology::Star => (1..n).for_each(|i| add(0, i)),
            Topology::TwoMasters { cluster_size } => {
                let size = cluster_size.max(2);
                let masters: Vec<usize> = (0..n).filter(|i| i % size < 2).collect();
                for &a in &masters {
                    for &b in &masters {
                        add(a, b);
                    }
                }
                for i in 0..n {
                    let base = i - i % size;
                    for m in [base, base + 1] {
                        if m < n {
                            add(i, m);
                        }
                    }
                }
            }
            Topology::Random { extra_tenths } => {
                for i in 1..n {
                    let j = rng.gen_range(0..i);
                    add(i, j);
                }
                let extra = n * extra_tenths as usize / 10;
                for _ in 0..extra {
                    if n > 1 {
                        add(rng.gen_range(0..n), rng.gen_range(0..n));
                    }
                }
            }
        }
        e
    }

    /// The cluster of node `i` (two-masters layouts have several).
    pub fn cluster(self, i: usize) -> String {
        match self {
            Topology::TwoMasters { cluster_size } => format!("c{}", i / cluster_size.max(2)),
            _ => "c0".to_owned(),
        }
    }
}
