//! Reachability over the known link topology.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rarangi_proto::CatalogueUri;

/// The catalogues reachable from `start` over the adjacency map, not
/// entering `known` (already reachable), `start` included.
pub(crate) fn reachable_from(
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

    #[test]
    fn components() {
        let mut adj: BTreeMap<CatalogueUri, BTreeSet<CatalogueUri>> = BTreeMap::new();
        for (a, b) in [("a", "b"), ("b", "c"), ("d", "e")] {
            adj.entry(u(a)).or_default().insert(u(b));
            adj.entry(u(b)).or_default().insert(u(a));
        }
        let none = BTreeSet::new();
        assert_eq!(
            reachable_from(&u("c"), &adj, &none),
            BTreeSet::from([u("a"), u("b"), u("c")])
        );
        assert_eq!(reachable_from(&u("z"), &adj, &none), BTreeSet::from([u("z")]));
        // Searching from b while a is known stops at a.
        assert_eq!(
            reachable_from(&u("b"), &adj, &BTreeSet::from([u("a")])),
            BTreeSet::from([u("b"), u("c")])
        );
    }
}
