//! The task that owns the core state machine: connection events and API
//! writes come in as [`Event`]s, become core inputs, and the core's outputs
//! become writes to connections, store commits and log lines
//! (`dispatch.rs`). After each batch it publishes the read model
//! (`view.rs`) that every HTTP read uses.

mod changes;
mod dispatch;
pub(crate) mod view;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rarangi_core::{Catalogue, ClientId};
use rarangi_proto::{Attrs, CatalogueUri, Message, NameError, ServiceUri, Ts};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub(crate) use changes::{index_path, Change};
use changes::{key_path, ChangeLog};
use view::View;

use crate::clock::now_ms;
use crate::net::Handle;
use crate::store::{Store, StoreError};
use crate::webhook::Hooks;
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
        may_register: bool,
        handle: Handle,
    },
    /// A line from a client.
    ClientLine { conn: ConnId, msg: Message },
    /// A client went away.
    ClientGone { conn: ConnId },
    /// A write from the HTTP API (reads use the published view).
    Api(Request),
}

/// Why a write was not applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum WriteError {
    /// The store could not commit it.
    #[error("not stored")]
    Store(#[source] StoreError),
    /// The key breaks the naming rule.
    #[error("invalid key")]
    Name(#[source] NameError),
}

/// A write, answered once durable here and visible in the published view.
pub(crate) enum Request {
    /// Sets a configuration key; answers whether it was created.
    SetKey {
        key: String,
        value: String,
        reply: oneshot::Sender<Result<bool, WriteError>>,
    },
    /// Deletes a configuration key; answers whether it existed.
    DelKey {
        key: String,
        reply: oneshot::Sender<Result<bool, WriteError>>,
    },
    /// Registers (or refreshes) an HTTP service instance with a TTL;
    /// answers whether it was created.
    // The lease branch replaces the pseudo-clients behind this with
    // `Catalogue::lease`.
    Register {
        service: ServiceUri,
        attrs: Attrs,
        ttl_ms: u64,
        reply: oneshot::Sender<Result<bool, WriteError>>,
    },
    /// Withdraws an HTTP service instance registered here.
    Unregister {
        service: ServiceUri,
        reply: oneshot::Sender<bool>,
    },
    /// A webhook delivery's result.
    HookDone {
        marker: String,
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
/// HTTP registrations are pseudo-clients numbered down from here.
const HTTP_CLIENTS: u64 = u64::MAX - 1;

/// Most events handled before outputs are written out (see `run`).
const EVENT_BATCH: usize = 256;

struct HttpReg {
    client: ClientId,
    expires_ms: u64,
}

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
    http_regs: BTreeMap<ServiceUri, HttpReg>,
    next_http_client: u64,
    log: ChangeLog,
    /// The working copy of the read model; cloned (O(1)) to publish.
    view: View,
    view_tx: watch::Sender<Arc<View>>,
    /// Peer events since the last publish may have changed the topology.
    topology_dirty: bool,
    /// Cluster names shared by the view's instances.
    clusters: HashMap<String, Arc<str>>,
    hooks: Hooks,
    /// Encoded subscription snapshots, by the core's shared slice (kept
    /// alive here, so its address is not reused while cached).
    snapshot_text: HashMap<usize, (Arc<[Message]>, Arc<str>)>,
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
        let mut driver = Self {
            core,
            store,
            shared,
            peers: HashMap::new(),
            clients: HashMap::new(),
            saved_clock,
            http_regs: BTreeMap::new(),
            next_http_client: HTTP_CLIENTS,
            log,
            view,
            view_tx,
            topology_dirty: false,
            clusters: HashMap::new(),
            hooks: Hooks::default(),
            snapshot_text: HashMap::new(),
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
                    self.expire_http_regs();
                    self.core.tick(now_ms());
                    self.topology_dirty = true;
                    let _ = self.dispatch();
                    self.run_hooks();
                    if self.core.clock() != self.saved_clock {
                        let _ = self.persist(&[]);
                    }
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
                    if !matches!(
                        msg,
                        Message::AddServ { .. }
                            | Message::DelServ { .. }
                            | Message::SetKey { .. }
                            | Message::DelKey { .. }
                    ) {
                        self.topology_dirty = true;
                    }
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
                    self.core.client_message(now, ClientId(conn), msg);
                }
            }
            Event::ClientGone { conn } => {
                if self.clients.remove(&conn).is_some() {
                    self.core.client_disconnected(now, ClientId(conn));
                }
            }
            Event::Api(req) => self.on_request(req),
        }
    }

    fn peer_up(&mut self, now: u64, conn: ConnId, peer: CatalogueUri, dialed_by_me: bool, handle: Handle) {
        if let Some(old) = self.peers.get(&peer) {
            // One link per pair: the connection dialed by the lower URI
            // survives; two from the same side: the newer one.
            // The tie-break branch moves this rule into the core.
            let me = &self.shared.settings.uri;
            let lower_dials_new = if dialed_by_me { me < &peer } else { &peer < me };
            let keep_new = old.dialed_by_me == dialed_by_me || lower_dials_new;
            if !keep_new {
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
                let created = self.core.key(&key).is_none_or(|r| r.value.is_none());
                let result = match self.core.set_key(now, &key, &value) {
                    Ok(_) => self.dispatch().map(|()| created).map_err(WriteError::Store),
                    Err(e) => Err(WriteError::Name(e)),
                };
                let _ = reply.send(result);
            }
            Request::DelKey { key, reply } => {
                let result = match self.core.del_key(now, &key) {
                    Some(_) => self.dispatch().map(|()| true).map_err(WriteError::Store),
                    None => Ok(false),
                };
                let _ = reply.send(result);
            }
            Request::Register {
                service,
                attrs,
                ttl_ms,
                reply,
            } => {
                let existed = self.http_regs.contains_key(&service)
                    || self.view.instances(service.name()).any(|i| i.service == service);
                let client = match self.http_regs.get(&service) {
                    Some(r) => r.client,
                    None => {
                        let c = ClientId(self.next_http_client);
                        self.next_http_client -= 1;
                        self.core.client_connected(c, true);
                        c
                    }
                };
                self.http_regs.insert(
                    service.clone(),
                    HttpReg {
                        client,
                        // Bounded at the API; saturating all the same.
                        expires_ms: now.saturating_add(ttl_ms),
                    },
                );
                self.core
                    .client_message(now, client, Message::RegServ { service, attrs });
                let _ = reply.send(self.dispatch().map(|()| !existed).map_err(WriteError::Store));
            }
            Request::Unregister { service, reply } => {
                let found = self.http_regs.remove(&service);
                if let Some(r) = &found {
                    self.core.client_disconnected(now, r.client);
                    let _ = self.dispatch();
                }
                let _ = reply.send(found.is_some());
            }
            Request::HookDone { marker, version, ok } => {
                if self.hooks.finished(&marker, ok, now) {
                    let _ = self.core.set_key(now, &marker, &version);
                } else {
                    tracing::warn!(hook = %marker, "webhook delivery failed; will retry");
                }
            }
        }
    }

    /// Removes HTTP registrations whose TTL lapsed.
    fn expire_http_regs(&mut self) {
        let now = now_ms();
        let expired: Vec<ServiceUri> = self
            .http_regs
            .iter()
            .filter(|(_, r)| r.expires_ms <= now)
            .map(|(s, _)| s.clone())
            .collect();
        for s in expired {
            if let Some(r) = self.http_regs.remove(&s) {
                tracing::info!(service = %s, "HTTP registration expired (TTL)");
                self.core.client_disconnected(now, r.client);
            }
        }
    }

    /// Starts the webhook deliveries that are due (only on the leader).
    // The webhook branch turns this into core `Output`s.
    fn run_hooks(&mut self) {
        let base = self.shared.http_base.clone();
        let view = &self.view;
        let index_of = |path: &str| view.last_change_of(path);
        for d in self.hooks.due(view, &base, now_ms(), index_of) {
            let events = self.shared.events.clone();
            tokio::spawn(async move {
                let ok = crate::webhook::post(&d.endpoint, &d.body).await;
                let done = Request::HookDone {
                    marker: d.marker,
                    version: d.version,
                    ok,
                };
                let _ = events.send(Event::Api(done)).await;
            });
        }
    }

    /// Closes the link to `peer` if `conn` is still its connection.
    fn drop_peer(&mut self, peer: &CatalogueUri, conn: ConnId, reason: &str) {
        if self.peers.get(peer).is_none_or(|l| l.conn != conn) {
            return;
        }
        if let Some(link) = self.peers.remove(peer) {
            link.handle.close.cancel();
            tracing::warn!(peer = %peer, reason, "link down");
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
            self.drop_client(conn, &format!("client cannot keep up: {why}"));
        }
        let peers: Vec<(CatalogueUri, ConnId, String)> = self
            .peers
            .iter()
            .filter_map(|(p, l)| l.handle.stalled().map(|why| (p.clone(), l.conn, why.to_string())))
            .collect();
        for (peer, conn, why) in peers {
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
        let regs: Vec<ClientId> = self.http_regs.values().map(|r| r.client).collect();
        for c in regs {
            self.core.client_disconnected(now, c);
        }
        let _ = self.dispatch();
        for (_, h) in self.clients.drain() {
            h.close.cancel();
        }
        for (_, link) in self.peers.drain() {
            link.handle.close.cancel();
        }
        self.persist(&[]).map_err(DriverError::Store)
    }
}
