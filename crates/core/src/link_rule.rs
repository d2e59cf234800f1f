//! At most one live link per pair of catalogues (DESIGN §3): when both
//! dial each other, each end must keep the same connection without asking
//! the other.

use rarangi_proto::CatalogueUri;

/// Whether a new connection to `peer` replaces the one already up.
///
/// Two connections dialed from opposite ends: the one dialed by the lower
/// URI survives, which both ends compute alike whatever order they saw the
/// connections in. Two from the same end: the newer one (the dialer gave up
/// on the older).
pub fn keep_new_link(
    me: &CatalogueUri,
    peer: &CatalogueUri,
    old_dialed_by_me: bool,
    new_dialed_by_me: bool,
) -> bool {
    if old_dialed_by_me == new_dialed_by_me {
        return true;
    }
    // The new connection was dialed by the lower URI.
    if new_dialed_by_me {
        me < peer
    } else {
        peer < me
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(addr: &str) -> CatalogueUri {
        CatalogueUri::from_addr(addr).unwrap()
    }

    /// The connection an end keeps after seeing `first` then `second`, each
    /// named by the catalogue that dialed it.
    fn survivor<'a>(
        me: &CatalogueUri,
        peer: &CatalogueUri,
        first: &'a CatalogueUri,
        second: &'a CatalogueUri,
    ) -> &'a CatalogueUri {
        if keep_new_link(me, peer, first == me, second == me) {
            second
        } else {
            first
        }
    }

    #[test]
    fn both_ends_keep_the_connection_dialed_by_the_lower_uri() {
        let (lo, hi) = (uri("a:1"), uri("b:1"));
        // Every order each end may see the two connections in.
        for (x_first_at_lo, x_first_at_hi) in [(true, true), (true, false), (false, true), (false, false)] {
            let (x, y) = (&lo, &hi); // x dialed by lo, y by hi
            let at_lo = if x_first_at_lo {
                survivor(&lo, &hi, x, y)
            } else {
                survivor(&lo, &hi, y, x)
            };
            let at_hi = if x_first_at_hi {
                survivor(&hi, &lo, x, y)
            } else {
                survivor(&hi, &lo, y, x)
            };
            assert_eq!(at_lo, at_hi, "both ends agree");
            assert_eq!(at_lo, &lo, "the lower URI's connection survives");
        }
    }

    #[test]
    fn two_connections_from_one_end_keep_the_newer() {
        let (lo, hi) = (uri("a:1"), uri("b:1"));
        for (me, peer) in [(&lo, &hi), (&hi, &lo)] {
            for mine in [true, false] {
                assert!(keep_new_link(me, peer, mine, mine));
            }
        }
    }

    #[test]
    fn every_combination_matches_the_rule() {
        let (lo, hi) = (uri("a:1"), uri("b:1"));
        for (me, peer) in [(&lo, &hi), (&hi, &lo)] {
            for old in [true, false] {
                for new in [true, false] {
                    let new_dialer = if new { me } else { peer };
                    let expected = old == new || new_dialer == &lo;
                    assert_eq!(keep_new_link(me, peer, old, new), expected, "{me} {old} {new}");
                }
            }
        }
    }
}
