//! A peer link's life: handshake, reconciliation rounds, up, down; and
//! the effective link set it feeds.

use rarangi_proto::{Bound, CatalogueUri, Message, Ts};

use super::replicate::service_owner;
use super::Catalogue;
use crate::item::{PeerId, Value};
use crate::sort_key::SortKey;
use crate::sync;

/// A neighbour catalogue with a connection up.
#[derive(Debug)]
pub(super) struct Peer {
    /// Send-once bookkeeping identity of this connection.
    pub(super) id: PeerId,
    pub(super) state: PeerState,
}

/// The life of a link: the peer's CATALOGUE record opens reconciliation;
/// the link joins the topology (ADD_LINK) only once reconciliation is done,
/// so nobody sees the far side's services before its deletes have arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PeerState {
    /// WELCOME exchanged; waiting for the peer's CATALOGUE record.
    Handshake,
    /// Reconciling; `asked` is true when we sent SYNC or SYNC_PULL since
    /// our last SYNC_MARK. Changes are flooded to the peer already.
    Syncing { asked: bool },
    /// In the topology.
    Up,
}

impl Catalogue {
    /// A connection passed WELCOME: a fresh peer (replacing any older
    /// connection to it) that gets our incarnation record first.
    pub(super) fn open_peer(&mut self, peer: &CatalogueUri) {
        if self.peers.contains_key(peer) {
            self.drop_peer(peer);
        }
        let id = self.next_peer;
        self.next_peer = self.next_peer.wrapping_add(1);
        self.peers.insert(
            peer.clone(),
            Peer {
                id,
                state: PeerState::Handshake,
            },
        );
        let key = SortKey::catalogue(&self.cfg.uri);
        if let Some(item) = self.db.get_mut(&key) {
            item.mark_known(id);
            let msg = item.message(&key);
            self.send_peer(peer, msg);
        }
    }

    /// The peer's CATALOGUE record arrived: reconcile. The lower URI opens
    /// with a summary of everything; rounds end with SYNC_MARK.
    pub(super) fn start_sync(&mut self, peer: &CatalogueUri) {
        self.set_state(peer, PeerState::Syncing { asked: false });
        if self.cfg.uri < *peer {
            let (count, fingerprint) = sync::summarize(&self.db, &Bound::Unbounded, &Bound::Unbounded);
            self.send_peer(
                peer,
                Message::Sync {
                    lo: Bound::Unbounded,
                    hi: Bound::Unbounded,
                    count,
                    fingerprint,
                },
            );
            self.note_asked(peer);
            self.send_mark(peer);
        }
    }

    fn set_state(&mut self, peer: &CatalogueUri, state: PeerState) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.state = state;
        }
    }

    /// Ends a round: if we asked for anything the peer answers in another
    /// round; otherwise we hold all the peer has and reconciliation is done.
    fn send_mark(&mut self, peer: &CatalogueUri) {
        let Some(PeerState::Syncing { asked }) = self.peers.get(peer).map(|p| p.state) else {
            return;
        };
        self.send_peer(peer, Message::SyncMark { last: !asked });
        if asked {
            self.set_state(peer, PeerState::Syncing { asked: false });
        } else {
            self.link_established(peer);
        }
    }

    pub(super) fn on_mark(&mut self, peer: &CatalogueUri, last: bool) {
        if last {
            if let Some(PeerState::Syncing { .. }) = self.peers.get(peer).map(|p| p.state) {
                self.link_established(peer);
            }
        } else {
            self.send_mark(peer);
        }
    }

    fn link_established(&mut self, peer: &CatalogueUri) {
        self.set_state(peer, PeerState::Up);
        let ts = self.mint(self.link_value(peer, true));
        let (a, b) = ordered(&self.cfg.uri, peer);
        self.set_link(&a, &b, true, ts);
    }

    /// The connection to `peer` is gone: the link is down. A link that was
    /// up is withdrawn; so is one that others claimed up while ours was
    /// still in its handshake (we keep such a claim then, not yet sure
    /// either way — see `truth`), or it would stay up everywhere else.
    pub(super) fn drop_peer(&mut self, peer: &CatalogueUri) {
        let Some(p) = self.peers.remove(peer) else {
            return;
        };
        let (key, _) = self.link_value(peer, false);
        let claimed_up = self
            .db
            .get(&key)
            .is_some_and(|i| matches!(i.value, Value::Link { up: true, .. }));
        if p.state == PeerState::Up || claimed_up {
            let ts = self.mint(self.link_value(peer, false));
            let (a, b) = ordered(&self.cfg.uri, peer);
            self.set_link(&a, &b, false, ts);
        }
    }

    pub(super) fn note_asked(&mut self, peer: &CatalogueUri) {
        if let Some(p) = self.peers.get_mut(peer) {
            if let PeerState::Syncing { asked } = &mut p.state {
                *asked = true;
            }
        }
    }

    /// Records a change of a link's effective state and tells topology
    /// followers; reachability settles at the end of the input.
    pub(super) fn set_link(&mut self, a: &CatalogueUri, b: &CatalogueUri, up: bool, ts: Ts) {
        if !self.topology.set_link(a, b, up) {
            return;
        }
        let (a, b) = (a.clone(), b.clone());
        self.notify_link_followers(if up {
            Message::AddLink { a, b, ts }
        } else {
            Message::DelLink { a, b, ts }
        });
    }

    /// Whether a link item counts in the topology: up, and newer than both
    /// ends' incarnations. (Ours follow our connections instead.)
    pub(super) fn link_effective(&self, a: &CatalogueUri, b: &CatalogueUri, up: bool, ts: Ts) -> bool {
        up && ts >= self.incarnation_of(a) && ts >= self.incarnation_of(b)
    }

    /// Our link to `peer` as an item.
    pub(super) fn link_value(&self, peer: &CatalogueUri, up: bool) -> (SortKey, Value) {
        let (a, b) = ordered(&self.cfg.uri, peer);
        (SortKey::link(&a, &b), Value::Link { a, b, up })
    }

    /// The version of the link item a–b (a < b), for topology followers.
    pub(super) fn link_ts(&self, a: &CatalogueUri, b: &CatalogueUri) -> Ts {
        self.db
            .get(&SortKey::link(a, b))
            .map_or(self.hlc.last(), |i| i.ts)
    }

    pub(super) fn on_sync(
        &mut self,
        peer: &CatalogueUri,
        pid: PeerId,
        lo: Bound,
        hi: Bound,
        count: u64,
        fp: u64,
    ) {
        let (n, f) = sync::summarize(&self.db, &lo, &hi);
        if (n, f) == (count, fp) {
            return;
        }
        self.note_asked(peer);
        if n <= sync::LEAF || count <= sync::LEAF {
            self.on_pull(peer, pid, &lo, &hi);
            self.send_peer(peer, Message::SyncPull { lo, hi });
        } else {
            for (lo, hi, count, fingerprint) in sync::split(&self.db, &lo, &hi) {
                self.send_peer(
                    peer,
                    Message::Sync {
                        lo,
                        hi,
                        count,
                        fingerprint,
                    },
                );
            }
        }
    }

    /// Sends the items in a range that the peer is not known to hold.
    pub(super) fn on_pull(&mut self, peer: &CatalogueUri, pid: PeerId, lo: &Bound, hi: &Bound) {
        let keys: Vec<SortKey> = sync::range(&self.db, lo, hi)
            .filter(|(_, i)| !i.is_known_by(pid))
            .map(|(k, _)| k.clone())
            .collect();
        // Keys come in order, so one owner's services are consecutive.
        let mut owner_sent: Option<CatalogueUri> = None;
        for k in keys {
            let item = self.db.get_mut(&k).expect("key from range");
            item.mark_known(pid);
            let msg = item.message(&k);
            if let Some(owner) = service_owner(&item.value) {
                if owner_sent.as_ref() != Some(owner) {
                    let owner = owner.clone();
                    self.owner_record_first(peer, pid, &owner);
                    owner_sent = Some(owner);
                }
            }
            self.send_peer(peer, msg);
        }
    }
}

/// The pair in link order (lower URI first).
fn ordered(x: &CatalogueUri, y: &CatalogueUri) -> (CatalogueUri, CatalogueUri) {
    if x < y {
        (x.clone(), y.clone())
    } else {
        (y.clone(), x.clone())
    }
}
