//! The task that owns the core state machine: connection events and API
//! writes come in as [`Event`]s, become core inputs, and the core's outputs
//! become writes to connections, store commits and log lines
//! (`dispatch.rs`). After each batch it publishes the read model
//! (`view.rs`) that every HTTP read uses.
//!
//! Storage (`store.rs`): a local configuration write is made durable
//! before the core applies and floods it; a replicated one the store
//! cannot take is put back to what the store holds. A failed commit puts
//! configuration in a read-only alarm until a probe on a later tick finds
//! the store writable again (see `alarm.rs`).

mod alarm;
mod changes;
mod dispatch;
mod memory;
mod probes;
pub(crate) mod view;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rarangi_core::{
    Catalogue, ClientId, ConfigKey, HookKind, KeyError, LeaseError, PreparedWrite, Registered, Written,
};
use rarangi_proto::{Attrs, CatalogueUri, Message, ServiceUri, Ts};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub(crate) use changes::{index_path, Change};
use changes::{key_path, ChangeLog};
use memory::MemoryGuard;
use view::View;

use crate::clock::now_ms;
use crate::net::Handle;
use crate::store::{Store, StoreError};
use crate::Shared;

/// Identifies one connection.
pub(crate) type ConnId = u64;

/// What connections and the HTTP API tell the driver.
pub(crate) enum Event {
    /// A catalogue link passed the WELCOME check.
    PeerUp {
        conn: ConnId,
        peer: CatalogueUri,
        dialed_by_me: bool,
        handle: Handle,
    },
    /// A line on a catalogue link.
    PeerLine {
        conn: ConnId,
        peer: CatalogueUri,
        msg: Message,
    },
    /// A catalogue link ended.
    PeerGone {
        conn: ConnId,
        peer: CatalogueUri,
        reason: String,
    },
    /// A client connected.
    ClientUp {
        conn: ConnId,
        may_register: rarangi_core::Registration,
        handle: Handle,
    },
    /// A line from a client.
    ClientLine { conn: ConnId, msg: Message },
    /// A client went away.
    ClientGone { conn: ConnId },
    /// A write from the HTTP API (reads use the published view).
    Api(Request),
    /// A watchdog probe's result (`crate::health`).
    Probe { service: ServiceUri, ok: bool },
}

/// Why a write was not applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum WriteError {
    /// The store could not commit it; nothing of it was applied, and
    /// configuration is read-only until the store can write again.
    #[error("not stored, configuration is read-only until the store can write again")]
    Store(#[source] StoreError),
    /// Configuration is read-only: the store failed (the alarm says why).
    #[error("configuration is read-only: {0}")]
    ReadOnly(String),
    /// The key breaks the naming rule, or the document is too large.
    #[error("refused")]
    Key(#[source] KeyError),
    /// The lease asked for is not allowed.
    #[error("invalid lease")]
    Lease(#[source] LeaseError),
}

/// A write, answered once durable here and visible in the published view.
pub(crate) enum Request {
    /// Sets a configuration key; answers whether it was created.
    SetKey {
        key: ConfigKey,
        value: String,
        reply: oneshot::Sender<Result<Written, WriteError>>,
    },
    /// Deletes a configuration key; answers whether it existed.
    DelKey {
        key: ConfigKey,
        reply: oneshot::Sender<Result<bool, WriteError>>,
    },
    /// Registers (or replaces) a web-hook on `/KIND/NAME`; the core starts
    /// it from the resource's current version.
    PutHook {
        kind: HookKind,
        name: String,
        hook: String,
        spec: String,
        reply: oneshot::Sender<Result<Written, WriteError>>,
    },
    /// Deletes a web-hook and its delivery marker; answers whether it existed.
    DelHook {
        kind: HookKind,
        name: String,
        hook: String,
        reply: oneshot::Sender<Result<bool, WriteError>>,
    },
    /// Leases (or refreshes) an HTTP service instance for a TTL.
    Register {
        service: ServiceUri,
        attrs: Attrs,
        ttl_ms: u64,
        reply: oneshot::Sender<Result<Registered, WriteError>>,
    },
    /// Withdraws an HTTP service instance registered here.
    Unregister {
        service: ServiceUri,
        reply: oneshot::Sender<bool>,
    },
    /// A webhook delivery's result.
    HookDone {
        marker: ConfigKey,
        version: String,
        ok: bool,
    },
}

/// Why the driver stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum DriverError {
    /// The clock's high-water mark could not be saved at shutdown.
    #[error("could not save the clock at shutdown")]
    Store(#[source] StoreError),
}

/// The driver's own subscription to every service, feeding the change log
/// and the view.
const WATCH_CLIENT: ClientId = ClientId(u64::MAX);

/// Most events handled before outputs are written out (see `run`).
const EVENT_BATCH: usize = 256;

/// The live link to one peer catalogue.
struct PeerLink {
    conn: ConnId,
    dialed_by_me: bool,
    handle: Handle,
}

/// The driver: the core and everything the core's outputs need.
pub(crate) struct Driver {
    core: Catalogue,
    store: Store,
    shared: Arc<Shared>,
    /// One entry per linked peer; connection events carry the peer, so a
    /// stale connection id simply finds no match.
    peers: HashMap<CatalogueUri, PeerLink>,
    clients: HashMap<ConnId, Handle>,
    saved_clock: Ts,
    log: ChangeLog,
    /// The working copy of the read model; cloned (O(1)) to publish.
    view: View,
    view_tx: watch::Sender<Arc<View>>,
    /// Peer events since the last publish may have changed the topology.
    topology_dirty: bool,
    /// Cluster names shared by the view's instances.
    clusters: HashMap<String, Arc<str>>,
    /// Encoded subscription snapshots, by the core's shared slice (kept
    /// alive here, so its address is not reused while cached).
    snapshot_text: HashMap<usize, (Arc<[Message]>, Arc<str>)>,
    /// Why configuration is read-only (the store failed); None when
    /// writable.
    alarm: Option<String>,
    /// Peers' configuration was refused or put back during the alarm: the
    /// links reconcile again once it clears.
    resync: bool,
    /// Refuses new registrations and subscriptions beyond a resident size.
    memory: MemoryGuard,
    /// Runs the watchdog probes the core asks for.
    prober: crate::health::Prober,
}

impl Driver {
    /// A driver around a loaded core; the view starts from its state.
    pub(crate) fn new(
        mut core: Catalogue,
        store: Store,
        shared: Arc<Shared>,
        view_tx: watch::Sender<Arc<View>>,
    ) -> Self {
        let saved_clock = core.clock();
        let mut view = View::new(core.topology());
        for rec in core.keys() {
            view.put_key(rec);
        }
        let live = core.keys().into_iter().filter_map(|r| key_path(&r.key));
        let log = ChangeLog::new(live, shared.changes.clone());
        core.client_connected(WATCH_CLIENT, false);
        let memory = MemoryGuard::new(shared.settings.memory_limit);
        let prober = crate::health::Prober::new(shared.settings.probe_concurrency, shared.events.clone());
        let mut driver = Self {
            core,
            store,
            shared,
            peers: HashMap::new(),
            clients: HashMap::new(),
            saved_clock,
            log,
            view,
            view_tx,
            topology_dirty: false,
            clusters: HashMap::new(),
            snapshot_text: HashMap::new(),
            alarm: None,
            resync: false,
            memory,
            prober,
        };
        // The subscription's snapshot is empty at start (no peers yet);
        // dispatching it keeps one path for every output.
        driver
            .core
            .client_message(now_ms(), WATCH_CLIENT, Message::SubServ { regex: String::new() });
        let _ = driver.dispatch();
        driver
    }

    /// Runs until shutdown; an error means the process should exit non-zero.
    pub(crate) async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        shutdown: CancellationToken,
    ) -> Result<(), DriverError> {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => {
                        self.on_event(ev);
                        // Handle what is already queued before writing
                        // out, so each connection is woken once per batch
                        // rather than once per line.
                        for _ in 1..EVENT_BATCH {
                            let Ok(ev) = events.try_recv() else { break };
                            self.on_event(ev);
                        }
                        let _ = self.dispatch();
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    self.drop_stalled();
                    if let Some(short) = self.memory.check() {
                        self.core.set_memory_pressure(short);
                    }
                    self.core.tick(now_ms());
                    self.topology_dirty = true;
                    let _ = self.dispatch();
                    if self.alarm.is_some() {
                        self.probe_store();
                    } else if self.core.clock() != self.saved_clock {
                        let _ = self.persist(&[]);
                    }
                }
                _ = self.probes_due() => {
                    self.start_probes();
                    let _ = self.dispatch();
                }
                _ = shutdown.cancelled() => break,
            }
        }
        self.shutdown()
    }

    fn on_event(&mut self, ev: Event) {
        let now = now_ms();
        match ev {
            Event::PeerUp {
                conn,
                peer,
                dialed_by_me,
                handle,
            } => self.peer_up(now, conn, peer, dialed_by_me, handle),
            Event::PeerLine { conn, peer, msg } => {
                if self.peers.get(&peer).is_some_and(|l| l.conn == conn) {
                    if self.alarm.is_some() && matches!(msg, Message::SetKey { .. } | Message::DelKey { .. })
                    {
                        // Not applied when it cannot be stored; it comes
                        // back when the links reconcile after the alarm.
                        self.resync = true;
                        return;
                    }
                    if !matches!(
                        msg,
                        Message::AddServ { .. }
                            | Message::DelServ { .. }
                            | Message::SetKey { .. }
                            | Message::DelKey { .. }
                    ) {
                        self.topology_dirty = true;
                    }
                    crate::metrics::metrics().arrived(&msg, now);
                    self.core.peer_message(now, &peer, msg);
                }
            }
            Event::PeerGone { conn, peer, reason } => self.drop_peer(&peer, conn, &reason),
            Event::ClientUp {
                conn,
                may_register,
                handle,
            } => {
                self.clients.insert(conn, handle);
                self.core.client_connected(ClientId(conn), may_register);
            }
            Event::ClientLine { conn, msg } => {
                if self.clients.contains_key(&conn) {
                    self.topology_dirty |= matches!(msg, Message::ForceLeave { .. });
                    self.core.client_message(now, ClientId(conn), msg);
                }
            }
            Event::ClientGone { conn } => {
                if self.clients.remove(&conn).is_some() {
                    self.core.client_disconnected(now, ClientId(conn));
                }
            }
            Event::Api(req) => self.on_request(req),
            Event::Probe { service, ok } => {
                crate::metrics::metrics().probed(ok);
                self.core.probe(now, &service, ok);
            }
        }
    }

    fn peer_up(&mut self, now: u64, conn: ConnId, peer: CatalogueUri, dialed_by_me: bool, handle: Handle) {
        if let Some(old) = self.peers.get(&peer) {
            let me = &self.shared.settings.uri;
            if !rarangi_core::keep_new_link(me, &peer, old.dialed_by_me, dialed_by_me) {
                tracing::debug!(peer = %peer, "duplicate link; keeping the one dialed by the lower URI");
                handle.close.cancel();
                return;
            }
            let old_conn = old.conn;
            self.drop_peer(&peer, old_conn, "replaced by a newer connection");
        }
        tracing::info!(peer = %peer, dialed = dialed_by_me, "link up");
        self.peers.insert(
            peer.clone(),
            PeerLink {
                conn,
                dialed_by_me,
                handle,
            },
        );
        self.topology_dirty = true;
        self.core.link_up(now, &peer);
    }

    fn on_request(&mut self, req: Request) {
        let now = now_ms();
        match req {
            Request::SetKey { key, value, reply } => {
                let existed = self.write(|core| {
                    core.prepare_key_write(now, &key.to_key(), &value)
                        .map_err(WriteError::Key)
                });
                let _ = reply.send(existed.map(written));
            }
            Request::DelKey { key, reply } => {
                let existed = self.write(|core| Ok(core.prepare_key_delete(now, &key.to_key())));
                let _ = reply.send(existed);
            }
            Request::PutHook {
                kind,
                name,
                hook,
                spec,
                reply,
            } => {
                let existed = self.write(|core| {
                    core.prepare_put_hook(now, kind, &name, &hook, &spec)
                        .map_err(WriteError::Key)
                });
                let _ = reply.send(existed.map(written));
            }
            Request::DelHook {
                kind,
                name,
                hook,
                reply,
            } => {
                let existed = self.write(|core| Ok(core.prepare_del_hook(now, kind, &name, &hook)));
                let _ = reply.send(existed);
            }
            Request::Register {
                service,
                attrs,
                ttl_ms,
                reply,
            } => {
                // Leases are not stored: they answer whatever the store does.
                let leased = self.core.lease(now, service, attrs, ttl_ms);
                let _ = self.dispatch();
                let _ = reply.send(leased.map_err(WriteError::Lease));
            }
            Request::Unregister { service, reply } => {
                let found = self.core.unlease(now, &service);
                let _ = self.dispatch();
                let _ = reply.send(found);
            }
            Request::HookDone { marker, version, ok } => {
                if !ok {
                    // webhook.rs logged why, at a decaying rate.
                    tracing::debug!(hook = %marker, "webhook delivery failed; will retry");
                }
                let _ = self.dispatch();
                let Some(prepared) = self.core.prepare_webhook_done(now, &marker, &version, ok) else {
                    return;
                };
                if self.write(|_| Ok(prepared)).is_err() {
                    // The marker could not be stored: retried, so the
                    // hook hears of the change at least once.
                    let _ = self.core.prepare_webhook_done(now, &marker, &version, false);
                }
            }
        }
    }

    /// Carries out a local configuration write: the core prepares it, the
    /// store makes it durable, then the core applies and floods it and the
    /// view shows it. When the store fails nothing of it is applied
    /// anywhere. Answers whether the key asked for existed.
    fn write(
        &mut self,
        prepare: impl FnOnce(&mut Catalogue) -> Result<PreparedWrite, WriteError>,
    ) -> Result<bool, WriteError> {
        // Earlier inputs' records go to disk first, so an older version
        // never lands after this one.
        self.dispatch()?;
        let prepared = prepare(&mut self.core)?;
        let existed = prepared.existed();
        if !prepared.records().is_empty() {
            self.persist(&prepared.persist_ops())?;
        }
        let seen = prepared
            .records()
            .iter()
            .cloned()
            .map(dispatch::Seen::Key)
            .collect();
        self.core.commit_write(prepared);
        // Durable already: a later failure elsewhere does not undo it.
        let _ = self.dispatch_with(seen);
        Ok(existed)
    }

    /// POSTs a webhook notification the core decided on, off the driver
    /// task, and reports the result back as an event.
    fn deliver(&self, d: rarangi_core::Delivery) {
        let body = serde_json::json!({
            "name": d.name,
            "what": d.what.as_str(),
            "uri": format!("{}{}", self.shared.http_base, d.path),
        })
        .to_string();
        let events = self.shared.events.clone();
        let webhooks = self.shared.webhooks.clone();
        tokio::spawn(async move {
            let ok = webhooks.post(&d.endpoint, &body).await;
            let done = Request::HookDone {
                marker: d.marker,
                version: d.version,
                ok,
            };
            let _ = events.send(Event::Api(done)).await;
        });
    }

    /// Closes the link to `peer` if `conn` is still its connection.
    fn drop_peer(&mut self, peer: &CatalogueUri, conn: ConnId, reason: &str) {
        if self.peers.get(peer).is_none_or(|l| l.conn != conn) {
            return;
        }
        if let Some(link) = self.peers.remove(peer) {
            link.handle.close.cancel();
            tracing::warn!(peer = %peer, reason, "link down");
            crate::metrics::metrics().link_flaps.inc();
            self.topology_dirty = true;
            self.core.link_down(now_ms(), peer);
        }
    }

    /// Drops connections whose readers stopped reading.
    fn drop_stalled(&mut self) {
        let clients: Vec<(ConnId, String)> = self
            .clients
            .iter()
            .filter_map(|(c, h)| h.stalled().map(|why| (*c, why.to_string())))
            .collect();
        for (conn, why) in clients {
            crate::metrics::metrics().dropped("client");
            self.drop_client(conn, &format!("client cannot keep up: {why}"));
        }
        let peers: Vec<(CatalogueUri, ConnId, String)> = self
            .peers
            .iter()
            .filter_map(|(p, l)| l.handle.stalled().map(|why| (p.clone(), l.conn, why.to_string())))
            .collect();
        for (peer, conn, why) in peers {
            crate::metrics::metrics().dropped("peer");
            self.drop_peer(&peer, conn, &format!("peer is not reading: {why}"));
        }
    }

    fn drop_client(&mut self, conn: ConnId, reason: &str) {
        if let Some(h) = self.clients.remove(&conn) {
            tracing::warn!(client = conn, reason, "closing client connection");
            h.close.cancel();
            self.core.client_disconnected(now_ms(), ClientId(conn));
        }
    }

    /// Withdraws our services and tells the peers before the links close.
    fn shutdown(mut self) -> Result<(), DriverError> {
        tracing::info!("shutting down: withdrawing registrations and closing links");
        let now = now_ms();
        let clients: Vec<ConnId> = self.clients.keys().copied().collect();
        for conn in clients {
            self.core.client_disconnected(now, ClientId(conn));
        }
        let leased: Vec<ServiceUri> = self.core.leases().map(|(s, _)| s.clone()).collect();
        for service in leased {
            self.core.unlease(now, &service);
        }
        // A planned stop is not a partition: the peers drop us at once.
        self.core.leave(now);
        let _ = self.dispatch();
        for (_, h) in self.clients.drain() {
            h.close.cancel();
        }
        for (_, link) in self.peers.drain() {
            link.handle.close.cancel();
        }
        if self.alarm.is_some() {
            let _ = self.store.reopen();
        }
        self.store_write(&[]).map_err(DriverError::Store)
    }
}

/// A set's answer from whether the key existed.
fn written(existed: bool) -> Written {
    if existed {
        Written::Updated
    } else {
        Written::Created
    }
}
