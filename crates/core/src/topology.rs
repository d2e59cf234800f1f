//! The effective link topology, the catalogues reachable over it, and the
//! leader (the lowest reachable URI, DESIGN §4).
//!
//! Links are held once, as an adjacency map; the list of links is read
//! from it. Reachability is kept incrementally: a link into an unreachable
//! part extends the reachable set by a search of that part only, and a
//! full search runs (at [`Topology::refresh`]) only when a link between two
//! reachable catalogues went down.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;

use rarangi_proto::CatalogueUri;

/// What changed since the last [`Topology::refresh`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Change {
    /// Catalogues that became unreachable.
    pub(crate) lost: Vec<CatalogueUri>,
    /// Catalogues that became reachable.
    pub(crate) regained: Vec<CatalogueUri>,
    /// The new leader, if it changed.
    pub(crate) leader: Option<CatalogueUri>,
}

impl Change {
    /// Every catalogue whose reachability changed.
    pub(crate) fn catalogues(&self) -> impl Iterator<Item = &CatalogueUri> {
        self.lost.iter().chain(&self.regained)
    }
}

/// Links, reachable set and leader as one catalogue sees them.
#[derive(Debug, Clone)]
pub(crate) struct Topology {
    me: CatalogueUri,
    /// Each effective link, in both directions.
    adj: BTreeMap<CatalogueUri, BTreeSet<CatalogueUri>>,
    /// Catalogues reachable from `me`, `me` included.
    reachable: BTreeSet<CatalogueUri>,
    /// Made reachable incrementally since the last refresh.
    regained: Vec<CatalogueUri>,
    /// A link between two reachable catalogues went down: a full search is
    /// due at the next refresh.
    dirty: bool,
    /// The leader last reported, to detect changes only.
    reported_leader: CatalogueUri,
}

impl Topology {
    /// A catalogue alone.
    pub(crate) fn new(me: CatalogueUri) -> Self {
        Self {
            adj: BTreeMap::new(),
            reachable: BTreeSet::from([me.clone()]),
            regained: Vec::new(),
            dirty: true,
            reported_leader: me.clone(),
            me,
        }
    }

    /// Sets the effective state of the link between `a` and `b`; false if
    /// it already was in that state.
    pub(crate) fn set_link(&mut self, a: &CatalogueUri, b: &CatalogueUri, up: bool) -> bool {
        if up == self.has_link(a, b) {
            return false;
        }
        if up {
            self.adj.entry(a.clone()).or_default().insert(b.clone());
            self.adj.entry(b.clone()).or_default().insert(a.clone());
        } else {
            for (x, y) in [(a, b), (b, a)] {
                if let Some(n) = self.adj.get_mut(x) {
                    n.remove(y);
                    if n.is_empty() {
                        self.adj.remove(x);
                    }
                }
            }
        }
        let (ra, rb) = (self.reachable.contains(a), self.reachable.contains(b));
        if up && ra != rb {
            // A link into an unreachable part: everything behind it joins.
            let start = if ra { b } else { a };
            let found = reachable_from(start, &self.adj, &self.reachable);
            self.reachable.extend(found.iter().cloned());
            self.regained.extend(found);
        } else if !up && ra && rb {
            // Possibly cut off something: a full search at refresh.
            self.dirty = true;
        }
        true
    }

    /// Whether the link between `a` and `b` is in the topology.
    pub(crate) fn has_link(&self, a: &CatalogueUri, b: &CatalogueUri) -> bool {
        self.adj.get(a).is_some_and(|n| n.contains(b))
    }

    /// Every link once, as (lower, higher) URI, in order.
    pub(crate) fn links(&self) -> impl Iterator<Item = (&CatalogueUri, &CatalogueUri)> {
        self.adj.iter().flat_map(|(a, ns)| {
            ns.range::<CatalogueUri, _>((Bound::Excluded(a), Bound::Unbounded))
                .map(move |b| (a, b))
        })
    }

    /// The catalogues reachable from this one, itself included.
    pub(crate) fn reachable(&self) -> &BTreeSet<CatalogueUri> {
        &self.reachable
    }

    /// Whether `c` is reachable from this catalogue.
    pub(crate) fn is_reachable(&self, c: &CatalogueUri) -> bool {
        self.reachable.contains(c)
    }

    /// The lowest reachable URI.
    pub(crate) fn leader(&self) -> &CatalogueUri {
        // The reachable set always holds `me`.
        self.reachable.first().unwrap_or(&self.me)
    }

    /// Settles reachability after a batch of link changes; what changed
    /// since the last refresh, or None.
    pub(crate) fn refresh(&mut self) -> Option<Change> {
        if !self.dirty && self.regained.is_empty() {
            return None;
        }
        let mut regained = std::mem::take(&mut self.regained);
        let mut lost = Vec::new();
        if std::mem::take(&mut self.dirty) {
            let reachable = reachable_from(&self.me, &self.adj, &BTreeSet::new());
            // Added incrementally and gone again in the same batch: never
            // reported, so not lost either.
            lost = self
                .reachable
                .difference(&reachable)
                .filter(|c| !regained.contains(c))
                .cloned()
                .collect();
            regained.retain(|c| reachable.contains(c));
            regained.extend(reachable.difference(&self.reachable).cloned());
            self.reachable = reachable;
        }
        let leader = (*self.leader() != self.reported_leader).then(|| self.leader().clone());
        if let Some(l) = &leader {
            self.reported_leader = l.clone();
        }
        let change = Change {
            lost,
            regained,
            leader,
        };
        (change != Change::default()).then_some(change)
    }
}

/// The catalogues reachable from `start` over the adjacency map, not
/// entering `known` (already reachable), `start` included.
fn reachable_from(
    start: &CatalogueUri,
    adj: &BTreeMap<CatalogueUri, BTreeSet<CatalogueUri>>,
    known: &BTreeSet<CatalogueUri>,
) -> BTreeSet<CatalogueUri> {
    let mut seen = BTreeSet::from([start.clone()]);
    let mut queue = VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for m in adj.get(n).into_iter().flatten() {
            if !known.contains(m) && seen.insert(m.clone()) {
                queue.push_back(m);
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> CatalogueUri {
        CatalogueUri::from_addr(&format!("{s}:1")).unwrap()
    }

    fn set(names: &[&str]) -> BTreeSet<CatalogueUri> {
        names.iter().map(|n| u(n)).collect()
    }

    #[test]
    fn components() {
        let mut adj: BTreeMap<CatalogueUri, BTreeSet<CatalogueUri>> = BTreeMap::new();
        for (a, b) in [("a", "b"), ("b", "c"), ("d", "e")] {
            adj.entry(u(a)).or_default().insert(u(b));
            adj.entry(u(b)).or_default().insert(u(a));
        }
        let none = BTreeSet::new();
        assert_eq!(reachable_from(&u("c"), &adj, &none), set(&["a", "b", "c"]));
        assert_eq!(reachable_from(&u("z"), &adj, &none), set(&["z"]));
        // Searching from b while a is known stops at a.
        assert_eq!(reachable_from(&u("b"), &adj, &set(&["a"])), set(&["b", "c"]));
    }

    #[test]
    fn links_are_listed_once_from_the_adjacency() {
        let mut t = Topology::new(u("m"));
        assert!(t.set_link(&u("a"), &u("b"), true));
        assert!(!t.set_link(&u("a"), &u("b"), true), "already up");
        assert!(t.set_link(&u("b"), &u("c"), true));
        let links: Vec<_> = t.links().map(|(a, b)| (a.clone(), b.clone())).collect();
        assert_eq!(links, [(u("a"), u("b")), (u("b"), u("c"))]);
        assert!(t.set_link(&u("a"), &u("b"), false));
        assert!(!t.set_link(&u("a"), &u("b"), false), "already down");
        assert_eq!(t.links().count(), 1);
        assert!(!t.has_link(&u("a"), &u("b")));
        assert!(t.has_link(&u("c"), &u("b")));
    }

    #[test]
    fn a_new_link_extends_reachability_and_the_leader_follows() {
        let mut t = Topology::new(u("m"));
        assert_eq!(t.refresh(), None, "alone, nothing changed");
        t.set_link(&u("m"), &u("x"), true);
        t.set_link(&u("a"), &u("x"), true);
        assert_eq!(t.leader(), &u("a"), "derived from the reachable set at once");
        let change = t.refresh().expect("a change");
        assert_eq!(change.lost, []);
        assert_eq!(
            change.regained.iter().cloned().collect::<BTreeSet<_>>(),
            set(&["a", "x"])
        );
        assert_eq!(change.leader, Some(u("a")));
        assert_eq!(t.refresh(), None, "reported once");
        assert_eq!(t.reachable(), &set(&["a", "m", "x"]));
    }

    #[test]
    fn a_cut_is_found_by_the_full_search() {
        let mut t = Topology::new(u("m"));
        t.set_link(&u("m"), &u("x"), true);
        t.set_link(&u("a"), &u("x"), true);
        t.refresh();
        t.set_link(&u("m"), &u("x"), false);
        assert!(t.is_reachable(&u("a")), "settled at refresh only");
        let change = t.refresh().expect("a change");
        assert_eq!(change.lost, [u("a"), u("x")]);
        assert_eq!(change.regained, []);
        assert_eq!(change.leader, Some(u("m")));
        assert_eq!(t.reachable(), &set(&["m"]));
        assert_eq!(t.links().count(), 1, "the far side's link stays known");
    }

    #[test]
    fn up_and_down_in_one_batch_reports_nothing() {
        let mut t = Topology::new(u("m"));
        t.refresh();
        t.set_link(&u("m"), &u("x"), true);
        t.set_link(&u("m"), &u("x"), false);
        assert_eq!(t.refresh(), None);
        assert_eq!(t.reachable(), &set(&["m"]));
    }

    #[test]
    fn a_link_outside_our_component_changes_nothing_reachable() {
        let mut t = Topology::new(u("m"));
        t.refresh();
        t.set_link(&u("a"), &u("b"), true);
        t.set_link(&u("a"), &u("b"), false);
        assert_eq!(t.refresh(), None);
        assert_eq!(t.leader(), &u("m"));
    }
}
