//! Carrying out the core's outputs: store commits first, then lines to
//! connections and log lines; then the change log, the view and its
//! publication.

use std::collections::BTreeSet;
use std::sync::Arc;

use rarangi_core::{Notice, Output, PersistOp};
use rarangi_proto::{Attrs, Departure, Message};

use super::changes::{instance_path, key_path};
use super::view::Instance;
use super::{Driver, WriteError, WATCH_CLIENT};
use crate::store::StoreError;

/// Snapshots whose encoding is kept (each at most the core's snapshot cache
/// limit of lines).
const SNAPSHOT_TEXTS: usize = 256;

/// What a batch changed in the read model, applied in order.
pub(super) enum Seen {
    Service(Message),
    Key(rarangi_core::KeyRecord),
    Collected(String),
}

impl Driver {
    /// Carries out the core's outputs until there are none left, then
    /// publishes the view. Err if durable writes failed.
    pub(super) fn dispatch(&mut self) -> Result<(), WriteError> {
        self.dispatch_with(Vec::new())
    }

    /// [`Self::dispatch`], with changes already made durable (a committed
    /// write) for the view. Each round's records are committed before any
    /// of its lines leave, so nothing is replicated or shown that is not on
    /// disk; records the store refused are put back in the core and their
    /// lines dropped.
    pub(super) fn dispatch_with(&mut self, mut seen: Vec<Seen>) -> Result<(), WriteError> {
        let mut result = Ok(());
        loop {
            let outs = self.core.drain();
            if outs.is_empty() {
                break;
            }
            let ops: Vec<PersistOp> = outs
                .iter()
                .filter_map(|o| match o {
                    Output::Persist(op) => Some(op.clone()),
                    _ => None,
                })
                .collect();
            let mut failed = BTreeSet::new();
            if !ops.is_empty() {
                if let Err(e) = self.persist(&ops) {
                    // A collected delete that is not stored stays a
                    // tombstone on disk, collected again at the next start:
                    // both refuse older copies, so only records go back.
                    failed = ops
                        .iter()
                        .filter_map(|op| match op {
                            PersistOp::Key(rec) => Some(rec.key.clone()),
                            PersistOp::Collect { .. } => None,
                        })
                        .collect();
                    self.restore(&failed);
                    result = Err(e);
                }
            }
            for out in outs {
                self.output(out, &failed, &mut seen);
            }
        }
        let any = !seen.is_empty();
        for s in seen {
            self.apply(s);
        }
        self.publish(any);
        result
    }

    fn output(&mut self, out: Output, failed: &BTreeSet<String>, seen: &mut Vec<Seen>) {
        match out {
            Output::ToPeer { msg, .. } if is_failed(&msg, failed) => {}
            Output::ToPeer { peer, msg } => {
                let Some(link) = self.peers.get(&peer) else {
                    return;
                };
                if let Err(why) = link.handle.send(msg.encode()) {
                    let conn = link.conn;
                    self.drop_peer(&peer, conn, &format!("peer is not reading: {why}"));
                }
            }
            Output::ToClient { client, msg } if client == WATCH_CLIENT => seen.push(Seen::Service(msg)),
            Output::ToClient { client, msg } => {
                let Some(h) = self.clients.get(&client.0) else {
                    return;
                };
                if let Err(why) = h.send(msg.encode()) {
                    self.drop_client(client.0, &format!("client cannot keep up: {why}"));
                }
            }
            Output::ToClientMany { client, msgs } if client == WATCH_CLIENT => {
                seen.extend(msgs.iter().cloned().map(Seen::Service));
            }
            Output::ToClientMany { client, msgs } => {
                if !self.clients.contains_key(&client.0) {
                    return;
                }
                let lines = msgs.len();
                let text = self.snapshot_text(msgs);
                let sent = self.clients.get(&client.0).map(|h| h.send_block(text, lines));
                if let Some(Err(why)) = sent {
                    self.drop_client(client.0, &format!("client cannot keep up: {why}"));
                }
            }
            Output::Webhook(d) => self.deliver(d),
            Output::Persist(op) => match op {
                PersistOp::Key(rec) if failed.contains(&rec.key) => {}
                PersistOp::Key(rec) => seen.push(Seen::Key(rec)),
                PersistOp::Collect { key, .. } => seen.push(Seen::Collected(key)),
            },
            // One peer whose clock runs ahead must not drag every clock
            // forward: its ERROR is queued, then the link is dropped.
            Output::Notice(Notice::ClockSkew { peer, detail }) => {
                if let Some(conn) = self.peers.get(&peer).map(|l| l.conn) {
                    self.drop_peer(&peer, conn, &format!("clock skew: {detail}"));
                }
            }
            // At debug (clients can make many), with who was refused.
            Output::Notice(Notice::ClientRefused { client, detail }) => {
                let who = self.clients.get(&client.0).map(|h| h.who.clone());
                tracing::debug!(client = %who.as_deref().unwrap_or("gone"), conn = client.0, detail, "refused client request");
            }
            Output::Notice(n) => log_notice(&n),
        }
    }

    /// Applies one change to the working view and the change log.
    fn apply(&mut self, seen: Seen) {
        match seen {
            Seen::Service(Message::AddServ {
                service,
                catalogue,
                cluster,
                ts,
                attrs,
            }) => {
                let path = instance_path(&service, &attrs);
                let cluster = match self.clusters.get(&cluster) {
                    Some(c) => c.clone(),
                    None => {
                        let c: Arc<str> = cluster.as_str().into();
                        self.clusters.insert(cluster, c.clone());
                        c
                    }
                };
                self.view
                    .put_instance(Instance::new(service, catalogue, cluster, attrs, ts));
                self.log.record(&mut self.view, path, true);
            }
            Seen::Service(Message::DelServ {
                service, catalogue, ..
            }) => {
                let path = match self.view.remove_instance(&service, &catalogue) {
                    Some(gone) => instance_path(&service, gone.attrs()),
                    None => instance_path(&service, &Attrs::default()),
                };
                self.log.record(&mut self.view, path, false);
            }
            // The watch subscription's end-of-snapshot marker.
            Seen::Service(_) => {}
            Seen::Key(rec) => {
                let path = key_path(&rec.key);
                let live = rec.value.is_some();
                self.view.put_key(rec);
                if let Some(path) = path {
                    self.log.record(&mut self.view, path, live);
                }
            }
            Seen::Collected(key) => self.view.remove_key(&key),
        }
    }

    /// Publishes the view if anything in it may have changed.
    pub(super) fn publish(&mut self, changed: bool) {
        let mut changed = changed;
        if self.topology_dirty {
            self.topology_dirty = false;
            let topology = self.core.topology();
            if *self.view.topology != topology {
                self.view.topology = Arc::new(topology);
                changed = true;
            }
        }
        if changed {
            self.view_tx.send_replace(Arc::new(self.view.clone()));
        }
    }

    /// Commits `ops` and the clock mark; refused without trying while
    /// configuration is read-only.
    pub(super) fn persist(&mut self, ops: &[PersistOp]) -> Result<(), WriteError> {
        if let Some(alarm) = &self.alarm {
            return Err(WriteError::ReadOnly(alarm.clone()));
        }
        self.store_write(ops).map_err(WriteError::Store)
    }

    /// Commits `ops` and the clock mark; a failure raises the alarm.
    pub(super) fn store_write(&mut self, ops: &[PersistOp]) -> Result<(), StoreError> {
        let clock = self.core.clock();
        let started = crate::clock::instant();
        let result = tokio::task::block_in_place(|| self.store.apply(ops, clock));
        crate::metrics::metrics().committed(started.elapsed(), result.is_ok());
        match result {
            Ok(()) => {
                self.saved_clock = clock;
                Ok(())
            }
            Err(e) => {
                self.raise_alarm(&e);
                Err(e)
            }
        }
    }

    /// The encoded lines of a snapshot, encoded once while the core keeps
    /// the same snapshot cached (until the next visible change).
    fn snapshot_text(&mut self, msgs: Arc<[Message]>) -> Arc<str> {
        let id = Arc::as_ptr(&msgs).cast::<Message>() as usize;
        if let Some((_, text)) = self.snapshot_text.get(&id) {
            return text.clone();
        }
        let mut text = String::new();
        for m in msgs.iter() {
            text.push_str(&m.encode());
            text.push('\n');
        }
        let text: Arc<str> = text.into();
        // Held by the core's cache too (strong count above 1 besides ours):
        // worth keeping.
        if Arc::strong_count(&msgs) > 1 {
            // Forget snapshots the core no longer holds: they may be large,
            // and only the core's cache bounds how many are kept.
            self.snapshot_text.retain(|_, (m, _)| Arc::strong_count(m) > 1);
            if self.snapshot_text.len() >= SNAPSHOT_TEXTS {
                self.snapshot_text.clear();
            }
            self.snapshot_text.insert(id, (msgs, text.clone()));
        }
        text
    }
}

/// A replication line carrying a configuration record that was not stored.
fn is_failed(msg: &Message, failed: &BTreeSet<String>) -> bool {
    match msg {
        Message::SetKey { key, .. } | Message::DelKey { key, .. } => failed.contains(key),
        _ => false,
    }
}

fn log_notice(n: &Notice) {
    match n {
        Notice::Reachability { lost, regained } => {
            if !lost.is_empty() {
                let names: Vec<String> = lost.iter().map(ToString::to_string).collect();
                tracing::warn!(unreachable = %names.join(" "), "partition: catalogues became unreachable; their services are withdrawn");
            }
            if !regained.is_empty() {
                let names: Vec<String> = regained.iter().map(ToString::to_string).collect();
                tracing::info!(reachable = %names.join(" "), "catalogues reachable again");
            }
        }
        Notice::Left { catalogue, reason } => match reason {
            Departure::Left => tracing::info!(
                catalogue = %catalogue,
                "catalogue left: it stopped gracefully; dropped from the topology, its services are withdrawn"
            ),
            Departure::Reaped => tracing::warn!(
                catalogue = %catalogue,
                "catalogue reaped: unreachable for longer than --reap-after; removed from the topology with its links and services"
            ),
            Departure::Forced => tracing::warn!(
                catalogue = %catalogue,
                "catalogue removed by force-leave; dropped from the topology with its links and services"
            ),
        },
        Notice::Leader(l) => tracing::info!(leader = %l, "leader changed"),
        Notice::PeerProtocol { peer, detail } => {
            tracing::warn!(peer = %peer, detail, "protocol problem on link")
        }
        Notice::StaleRefused { key } => {
            tracing::info!(item = %key, "refused a stale copy of a collected delete")
        }
        Notice::ItemRefused { peer, detail } => {
            tracing::warn!(peer = %peer, detail, "refused an item from a peer; the link stays up")
        }
        Notice::LeaseExpired { service } => {
            tracing::info!(service = %service, "HTTP registration expired (TTL)")
        }
        Notice::Critical { service, held_until } => {
            tracing::warn!(service = %service, held_until_ms = ?held_until, "health check failing: instance critical, withdrawn everywhere")
        }
        Notice::Healthy { service } => {
            tracing::info!(service = %service, "health check passing again: instance re-announced")
        }
        _ => tracing::info!(?n, "notice"),
    }
}
