//! What the state machine asks its driver to do.

use rarangi_proto::{CatalogueUri, Message, Ts};
use std::sync::Arc;

use crate::hooks::Delivery;
use crate::item::KeyRecord;

/// Identifies one client connection; chosen by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

/// One action for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a message on the link to a peer catalogue.
    ToPeer {
        /// The peer.
        peer: CatalogueUri,
        /// The message.
        msg: Message,
    },
    /// Send a message to a client connection.
    ToClient {
        /// The client.
        client: ClientId,
        /// The message.
        msg: Message,
    },
    /// Send several messages to a client, in order: a subscription's
    /// snapshot. The slice is shared with the state machine's cache, so a
    /// driver may cache its encoding while the slice is alive.
    ToClientMany {
        /// The client.
        client: ClientId,
        /// The messages.
        msgs: Arc<[Message]>,
    },
    /// Write durable state before acknowledging anything that depends on it.
    Persist(PersistOp),
    /// Something an operator should see in the log.
    Notice(Notice),
    /// POST a webhook notification, then report the result with
    /// [`crate::Catalogue::webhook_done`] (emitted by the leader only).
    Webhook(Delivery),
}

impl Output {
    /// The client and the messages for it, in order, of a `ToClient` or
    /// `ToClientMany`.
    pub fn client_messages(&self) -> Option<(ClientId, &[Message])> {
        match self {
            Output::ToClient { client, msg } => Some((*client, std::slice::from_ref(msg))),
            Output::ToClientMany { client, msgs } => Some((*client, msgs)),
            _ => None,
        }
    }
}

/// A change to the durable state (configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersistOp {
    /// Store (or replace) a configuration record, live or tombstone.
    Key(KeyRecord),
    /// A tombstone was collected: stop replicating it, but keep its key and
    /// version so an older copy arriving later is refused.
    Collect {
        /// The key.
        key: String,
        /// The collected delete's version.
        ts: Ts,
    },
}

/// Durable state restored at start-up: what the [`PersistOp`]s wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Durable {
    /// Configuration records, live and tombstones.
    pub keys: Vec<KeyRecord>,
    /// Collected deletes: key and version.
    pub collected: Vec<(String, Ts)>,
}

impl Durable {
    /// Applies one persist operation, as a store would.
    pub fn apply(&mut self, op: &PersistOp) {
        match op {
            PersistOp::Key(rec) => {
                self.collected.retain(|(k, _)| *k != rec.key);
                match self.keys.iter_mut().find(|r| r.key == rec.key) {
                    Some(r) => *r = rec.clone(),
                    None => self.keys.push(rec.clone()),
                }
            }
            PersistOp::Collect { key, ts } => {
                self.keys.retain(|r| r.key != *key);
                self.collected.retain(|(k, _)| k != key);
                self.collected.push((key.clone(), *ts));
            }
        }
    }
}

/// Events worth logging.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// The set of reachable catalogues changed.
    Reachability {
        /// Catalogues that became unreachable (a partition or a crash).
        lost: Vec<CatalogueUri>,
        /// Catalogues that were lost and became reachable again (one
        /// reachable for the first time, say at the first link, is not).
        regained: Vec<CatalogueUri>,
    },
    /// A catalogue departed: it left gracefully, was reaped after
    /// `reap_after_ms` unreachable, or was removed by force-leave. Its
    /// links and services are gone; this is not a partition.
    Left {
        /// The catalogue.
        catalogue: CatalogueUri,
        /// Why.
        reason: rarangi_proto::Departure,
    },
    /// The leader (lowest reachable URI) changed.
    Leader(CatalogueUri),
    /// A peer sent a timestamp too far in the future; the message was dropped.
    ClockSkew {
        /// The peer.
        peer: CatalogueUri,
        /// Details.
        detail: String,
    },
    /// A peer sent an ERROR or a message it should not have.
    PeerProtocol {
        /// The peer.
        peer: CatalogueUri,
        /// Details.
        detail: String,
    },
    /// A client was refused something (registration not allowed, limits).
    ClientRefused {
        /// The client.
        client: ClientId,
        /// Details.
        detail: String,
    },
    /// A version older than the collection horizon was refused and deleted
    /// again, so a collected delete cannot be undone.
    StaleRefused {
        /// The item key.
        key: String,
    },
    /// A peer's item was refused (over a size rule or a cap, or a service
    /// of a catalogue with no record here): not stored; the link stays up.
    ItemRefused {
        /// The peer.
        peer: CatalogueUri,
        /// What and why.
        detail: String,
    },
    /// A lease lapsed: the service registered with a TTL was withdrawn.
    LeaseExpired {
        /// The service.
        service: rarangi_proto::ServiceUri,
    },
    /// A watchdog check failed: the instance is withdrawn everywhere (its
    /// registration is kept), held so until `held_until` if it flaps.
    Critical {
        /// The service.
        service: rarangi_proto::ServiceUri,
        /// Flap damping holds it critical until then (Unix ms).
        held_until: Option<u64>,
    },
    /// A critical instance passed its check again and is re-announced.
    Healthy {
        /// The service.
        service: rarangi_proto::ServiceUri,
    },
}
