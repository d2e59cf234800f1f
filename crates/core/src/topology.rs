//! Reachability over the known link topology.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rarangi_proto::CatalogueUri;

/// The catalogues reachable from `me` over `links` (including `me`).
pub(crate) fn reachable(
    me: &CatalogueUri,
    links: &BTreeSet<(CatalogueUri, CatalogueUri)>,
) -> BTreeSet<CatalogueUri> {
    let mut adj: BTreeMap<&CatalogueUri, Vec<&CatalogueUri>> = BTreeMap::new();
    for (a, b) in links {
        adj.entry(a).or_default().push(b);
        adj.entry(b).or_default().push(a);
    }
    let mut seen = BTreeSet::from([me.clone()]);
    let mut queue = VecDeque::from([me]);
    while let Some(n) = queue.pop_front() {
        for &m in adj.get(n).into_iter().flatten() {
            if seen.insert(m.clone()) {
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
        let links = BTreeSet::from([(u("a"), u("b")), (u("b"), u("c")), (u("d"), u("e"))]);
        let r = reachable(&u("c"), &links);
        assert_eq!(r, BTreeSet::from([u("a"), u("b"), u("c")]));
        assert_eq!(reachable(&u("z"), &links), BTreeSet::from([u("z")]));
    }
}
