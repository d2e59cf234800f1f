//! The tombstone collection horizon: how a collected delete is kept from
//! being undone by an old copy that arrives later.
//!
//! A catalogue that collects a tombstone raises its *floor* to that
//! tombstone's timestamp. It also remembers, per origin, the greatest
//! timestamp it has ever seen from that origin. An incoming version of an
//! item it does not hold is refused when it is at or below the floor *and*
//! at or below what was already seen from its origin: such a version was
//! seen before (or superseded) and then deleted and collected. A version from
//! an origin newer than anything seen from it (written on the far side of a
//! long partition, say) is new, and accepted.

use std::collections::HashMap;

use rarangi_proto::{CatalogueUri, Ts};

#[derive(Debug, Default, Clone)]
pub(crate) struct Horizon {
    pub(crate) floor: Ts,
    pub(crate) seen: HashMap<CatalogueUri, Ts>,
}

impl Horizon {
    /// Whether a version of an item not held locally must be refused.
    pub(crate) fn refuses(&self, origin: &CatalogueUri, ts: Ts) -> bool {
        ts <= self.floor && self.seen.get(origin).is_some_and(|&s| ts <= s)
    }

    /// Records a version seen from `origin`; true if that raised the mark.
    pub(crate) fn note_seen(&mut self, origin: &CatalogueUri, ts: Ts) -> bool {
        match self.seen.get_mut(origin) {
            Some(s) if *s >= ts => false,
            Some(s) => {
                *s = ts;
                true
            }
            None => {
                self.seen.insert(origin.clone(), ts);
                true
            }
        }
    }
}
