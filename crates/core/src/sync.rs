//! Range-based set reconciliation for bringing a neighbour up to date.
//!
//! Items are ordered by their sort key. A SYNC message summarises the items
//! one side holds in a key range as a count and an order-independent
//! fingerprint (the wrapping sum of per-item hashes of key and version). The
//! receiver compares with its own summary: equal ranges are done; small
//! ranges are settled by sending the items the peer is not known to hold and
//! asking (SYNC_PULL) for the peer's; large ranges are split in
//! [`FANOUT`] parts and summarised back. The lines exchanged grow with the
//! number of differences times the logarithm of the catalogue size, not with
//! the catalogue size.

use std::ops::Bound as RangeBound;

use rarangi_proto::Bound;

use crate::item::{Db, Item};
use crate::sort_key::SortKey;

/// Ranges with at most this many items are settled by sending items.
pub(crate) const LEAF: u64 = 16;
/// How many parts a large differing range is split into.
pub(crate) const FANOUT: usize = 8;

/// The items in `[lo, hi)`.
pub(crate) fn range<'a>(
    db: &'a Db,
    lo: &Bound,
    hi: &Bound,
) -> impl Iterator<Item = (&'a SortKey, &'a Item)> + 'a {
    let lo = match lo {
        Bound::Unbounded => RangeBound::Unbounded,
        Bound::Key(k) => RangeBound::Included(k.as_str()),
    };
    let hi = match hi {
        Bound::Unbounded => RangeBound::Unbounded,
        Bound::Key(k) => RangeBound::Excluded(k.as_str()),
    };
    // An inverted range from a confused peer is simply empty.
    let valid = match (&lo, &hi) {
        (RangeBound::Included(l), RangeBound::Excluded(h)) => l < h,
        _ => true,
    };
    valid
        .then(|| db.range::<str, _>((lo, hi)))
        .into_iter()
        .flatten()
        .map(|(k, item)| (k, &**item))
}

/// Count and fingerprint of the items in `[lo, hi)`.
pub(crate) fn summarize(db: &Db, lo: &Bound, hi: &Bound) -> (u64, u64) {
    range(db, lo, hi).fold((0, 0), |(n, f), (k, item)| {
        (n + 1, f.wrapping_add(item.fingerprint(k)))
    })
}

/// Splits `[lo, hi)` into up to [`FANOUT`] consecutive ranges with about
/// equal numbers of items, each with its summary.
pub(crate) fn split(db: &Db, lo: &Bound, hi: &Bound) -> Vec<(Bound, Bound, u64, u64)> {
    let keys: Vec<&SortKey> = range(db, lo, hi).map(|(k, _)| k).collect();
    let per = keys.len().div_ceil(FANOUT).max(1);
    let mut cuts: Vec<Bound> = vec![lo.clone()];
    cuts.extend(
        keys.iter()
            .skip(per)
            .step_by(per)
            .map(|k| Bound::Key(k.as_str().to_owned())),
    );
    cuts.push(hi.clone());
    cuts.windows(2)
        .map(|w| {
            let (n, f) = summarize(db, &w[0], &w[1]);
            (w[0].clone(), w[1].clone(), n, f)
        })
        .collect()
}
