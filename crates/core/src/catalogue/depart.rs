//! Departures: a catalogue that leaves gracefully, one reaped after
//! `reap_after_ms` unreachable, one removed by force-leave. All three are
//! the same replicated fact: a departed incarnation record (LEFT), newer
//! than the incarnation it ends, so the catalogue's links and services
//! (all older) are purged everywhere and stale copies of them are refused.
//! A restart is a newer incarnation and is welcome again; a catalogue that
//! hears of its own departure while alive starts a newer one (owner
//! authority), so a departure never blocks a return. The departure is a
//! tombstone: collected after the horizon, which then refuses older copies.

use rarangi_proto::{CatalogueUri, Departure, ErrorCode, Message, Ts};

use super::{Catalogue, Registration};
use crate::horizon::Horizon;
use crate::item::Value;
use crate::output::ClientId;
use crate::sort_key::SortKey;

impl Catalogue {
    /// This catalogue is stopping gracefully: tell the peers it leaves, so
    /// they drop it at once instead of seeing a partition. Call before
    /// closing the links and send what [`Catalogue::drain`] returns.
    pub fn leave(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        let me = self.cfg.uri.clone();
        self.depart(&me, Departure::Left);
        self.refresh();
    }

    /// Catalogues that departed and whose departure is still remembered
    /// (until collected with the other tombstones), with why.
    pub fn departed(&self) -> impl Iterator<Item = (&CatalogueUri, Departure)> {
        self.departed.iter().map(|(u, (_, d))| (u, *d))
    }

    /// Mints and floods the departure of `uri`.
    pub(super) fn depart(&mut self, uri: &CatalogueUri, reason: Departure) {
        let cluster = match self.catalogues.get(uri) {
            Some((_, c)) => c.clone(),
            None => return,
        };
        let value = Value::Catalogue {
            uri: uri.clone(),
            cluster,
            left: Some(reason),
        };
        self.mint((SortKey::catalogue(uri), value));
    }

    /// FORCE_LEAVE from a client: remove an unreachable catalogue now.
    /// Refused for this catalogue and for reachable ones: a catalogue that
    /// hears of its own departure starts a new incarnation at once, so
    /// removing a live one cannot stick (stop it instead: it leaves).
    pub(super) fn force_leave(&mut self, client: ClientId, uri: CatalogueUri) {
        let rule = match self.clients.get(&client).map(|c| &c.may_register) {
            Some(Registration::Allowed) => None,
            Some(Registration::Refused(rule)) => Some(*rule),
            None => Some("a connected client"),
        };
        let refusal = if let Some(rule) = rule {
            Some(format!(
                "force-leave {uri}: not allowed from this connection (the rule of REG_SERV: {rule})"
            ))
        } else if uri == self.cfg.uri {
            Some(format!(
                "force-leave {uri}: that is this catalogue; stop it (SIGTERM) and it leaves by itself"
            ))
        } else if !self.catalogues.contains_key(&uri) {
            Some(format!(
                "force-leave {uri}: no such catalogue here (never known, or gone already)"
            ))
        } else if self.topology.is_reachable(&uri) {
            Some(format!(
                "force-leave {uri}: it is reachable from here, and a live catalogue answers its removal with a new incarnation at once; stop it (SIGTERM) to make it leave"
            ))
        } else {
            None
        };
        if let Some(detail) = refusal {
            return self.refuse(client, ErrorCode::NotAllowed, detail);
        }
        self.depart(&uri, Departure::Forced);
        self.send_client(client, Message::ForceLeave { catalogue: uri });
    }

    /// Tracks since when each known catalogue has been unreachable and,
    /// on the leader only (one departure per component, not one per
    /// catalogue), reaps those unreachable for `reap_after_ms`.
    pub(super) fn reap(&mut self, now_ms: u64) {
        let mut due = Vec::new();
        for uri in self.catalogues.keys() {
            if *uri == self.cfg.uri || self.topology.is_reachable(uri) {
                self.unreachable_since.remove(uri);
                continue;
            }
            let since = *self.unreachable_since.entry(uri.clone()).or_insert(now_ms);
            if now_ms.saturating_sub(since) >= self.cfg.reap_after_ms {
                due.push(uri.clone());
            }
        }
        if *self.topology.leader() != self.cfg.uri {
            return;
        }
        for uri in due {
            self.depart(&uri, Departure::Reaped);
        }
    }

    /// A departure was collected: forget the catalogue entirely, and let
    /// the horizon refuse any older copy of its records from now on.
    pub(super) fn collect_departure(
        horizon: &mut Horizon,
        departed: &mut std::collections::BTreeMap<CatalogueUri, (Ts, Departure)>,
        uri: &CatalogueUri,
        ts: Ts,
    ) {
        if departed.get(uri).is_some_and(|d| d.0 == ts) {
            departed.remove(uri);
        }
        horizon.floor = horizon.floor.max(ts);
        horizon.note_seen(uri, ts);
    }
}
