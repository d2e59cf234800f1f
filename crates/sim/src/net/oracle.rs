//! The invariant oracle: the checks of DESIGN §7 and the violations found.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rarangi_core::KeyRecord;
use rarangi_proto::{CatalogueUri, Ts};

use super::clients::Record;
use super::{Net, NodeId};

/// What the simulation checks: the invariants of DESIGN §7 it exercises,
/// with their numbers there, and well-formed traffic between catalogues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Invariant {
    /// A catalogue sent a peer an unparsable line or an ERROR (no number in
    /// DESIGN §7: catalogues must simply speak the protocol to each other).
    Protocol,
    /// 1: once links are stable, every catalogue shows exactly the live
    /// services of the catalogues it can reach, and the same configuration.
    Convergence,
    /// 2: a removed service or deleted key never reappears unless it is
    /// registered or written again.
    NoResurrection,
    /// 3: services behind a partition are withdrawn, and each catalogue
    /// reaches exactly its connected component.
    PartitionVisibility,
    /// 4: a subscriber's snapshot plus events equals the catalogue's current
    /// matching set.
    Subscribers,
    /// 6: nothing crosses between environments.
    Isolation,
}

impl Invariant {
    /// Its number in DESIGN §7, if it has one.
    pub fn number(self) -> Option<u8> {
        match self {
            Invariant::Protocol => None,
            Invariant::Convergence => Some(1),
            Invariant::NoResurrection => Some(2),
            Invariant::PartitionVisibility => Some(3),
            Invariant::Subscribers => Some(4),
            Invariant::Isolation => Some(6),
        }
    }

    /// Its name in DESIGN §7.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::Protocol => "protocol",
            Invariant::Convergence => "convergence",
            Invariant::NoResurrection => "no resurrection",
            Invariant::PartitionVisibility => "partition visibility",
            Invariant::Subscribers => "subscribers",
            Invariant::Isolation => "isolation",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.number() {
            Some(n) => write!(f, "invariant {n} ({})", self.name()),
            None => write!(f, "{} error", self.name()),
        }
    }
}

/// A broken invariant, with enough context to debug it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// Simulated time.
    pub at_ms: u64,
    /// What happened.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at t={}ms: {}", self.invariant, self.at_ms, self.detail)
    }
}

/// Violations found so far, and what the checks made as things happen
/// need to remember.
#[derive(Default)]
pub(super) struct Oracle {
    violations: Vec<Violation>,
    /// Greatest configuration version ever persisted per catalogue and key.
    key_max: BTreeMap<(NodeId, String), Ts>,
}

impl Oracle {
    pub(super) fn record(&mut self, invariant: Invariant, at_ms: u64, detail: String) {
        self.violations.push(Violation {
            invariant,
            at_ms,
            detail,
        });
    }

    pub(super) fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Invariant 2 for configuration: a catalogue never stores a live value
    /// older than a version it has already persisted.
    pub(super) fn key_persisted(&mut self, node: NodeId, rec: &KeyRecord, at_ms: u64) {
        let max = self.key_max.entry((node, rec.key.clone())).or_insert(Ts(0));
        let prev = *max;
        *max = prev.max(rec.ts);
        if rec.value.is_some() && rec.ts < prev {
            self.record(
                Invariant::NoResurrection,
                at_ms,
                format!(
                    "node {node} stored key {:?} at version {} after having seen version {prev}: a deleted or overwritten value came back",
                    rec.key, rec.ts
                ),
            );
        }
    }
}

impl Net {
    /// Checks invariants 1, 3, 4 and 6 at a quiescent moment (call
    /// [`Net::settle`] first): every catalogue shows exactly the live
    /// services of the catalogues it can reach, agrees on configuration
    /// with them, and every subscriber's view equals its catalogue's.
    pub fn check(&mut self) {
        let found = self.find_violations();
        let at = self.wire.elapsed_ms();
        for (inv, detail) in found {
            self.oracle.record(inv, at, detail);
        }
    }

    fn find_violations(&self) -> Vec<(Invariant, String)> {
        let mut out = Vec::new();
        for comp in &self.components() {
            self.check_component(comp, &mut out);
        }
        self.check_subscribers(&mut out);
        out
    }

    /// Invariants 1, 3 and 6 within one connected component.
    fn check_component(&self, comp: &BTreeSet<NodeId>, out: &mut Vec<(Invariant, String)>) {
        let mut expected: BTreeSet<Record> = BTreeSet::new();
        for (node, regs) in self.clients.registered() {
            if comp.contains(&node) {
                // A critical instance (failed watchdog check) is withdrawn.
                let core = self.core(node).expect("up");
                for s in regs.iter().filter(|s| core.is_critical(s) != Some(true)) {
                    expected.insert((s.to_string(), self.uri(node).to_string()));
                }
            }
        }
        let uris: BTreeSet<CatalogueUri> = comp.iter().map(|&i| self.uri(i).clone()).collect();
        let first = *comp.first().expect("non-empty");
        let keys0 = self.core(first).expect("up").keys();
        for &i in comp {
            let core = self.core(i).expect("up");
            let shown: BTreeSet<Record> = core
                .services()
                .map(|v| (v.service.to_string(), v.catalogue.to_string()))
                .collect();
            if shown != expected {
                let missing: Vec<_> = expected.difference(&shown).collect();
                let extra: Vec<_> = shown.difference(&expected).collect();
                // Showing a service of a catalogue outside the component is
                // a partition not noticed; anything else is not converging.
                let inv = if extra.iter().any(|(_, c)| !uris.iter().any(|u| u.as_str() == c)) {
                    Invariant::PartitionVisibility
                } else {
                    Invariant::Convergence
                };
                out.push((
                    inv,
                    format!("node {i} shows the wrong services: missing {missing:?}, extra {extra:?}"),
                ));
            }
            let reach = &core.topology().reachable;
            if *reach != uris {
                out.push((
                    Invariant::PartitionVisibility,
                    format!("node {i} thinks it reaches {reach:?} but its component is {uris:?}"),
                ));
            }
            if let Some(stray) = reach.iter().find(|u| {
                self.wire
                    .node_of(u)
                    .is_some_and(|j| self.wire.env(j) != self.wire.env(i))
            }) {
                out.push((
                    Invariant::Isolation,
                    format!("node {i} reaches {stray} of another environment"),
                ));
            }
            let keys = core.keys();
            if keys != keys0 {
                out.push((
                    Invariant::Convergence,
                    format!("node {i} configuration differs from node {first}: {keys:?} vs {keys0:?}"),
                ));
            }
        }
    }

    /// Invariant 4: snapshot plus events equals the current matching set.
    fn check_subscribers(&self, out: &mut Vec<(Invariant, String)>) {
        for (id, node, c) in self.clients.subscribers() {
            let Some(core) = self.core(node) else { continue };
            let expected: BTreeSet<Record> = core
                .services()
                .filter(|v| c.matches(v.service.as_str()))
                .map(|v| (v.service.to_string(), v.catalogue.to_string()))
                .collect();
            let view: BTreeSet<Record> = c.shown().cloned().collect();
            if expected != view {
                out.push((
                    Invariant::Subscribers,
                    format!(
                        "client {} at node {node}: view {:?} but catalogue has {:?}",
                        id.0, view, expected
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_violation_names_its_invariant_and_design_number() {
        let v = Violation {
            invariant: Invariant::NoResurrection,
            at_ms: 1500,
            detail: "x came back".into(),
        };
        assert_eq!(
            v.to_string(),
            "invariant 2 (no resurrection) at t=1500ms: x came back"
        );
        let v = Violation {
            invariant: Invariant::Protocol,
            ..v
        };
        assert_eq!(v.to_string(), "protocol error at t=1500ms: x came back");
    }
}
