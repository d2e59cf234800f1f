//! The task that owns the core state machine: turns connection events into
//! core inputs and core outputs into writes, persistence and logs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rarangi_core::{Catalogue, ClientId, KeyRecord, Notice, Output, PersistOp, ServiceView, TopologyView};
use rarangi_proto::{Attrs, CatalogueUri, Message, ServiceUri, Ts};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::hooks::Hooks;

use crate::clock::now_ms;
use crate::conn::Handle;
use crate::store::Store;
use crate::Shared;

/// Identifies one connection.
pub(crate) type ConnId = u64;

/// What connections tell the driver.
pub(crate) enum Event {
    PeerUp {
        conn: ConnId,
        peer: CatalogueUri,
        dialed_by_me: bool,
        handle: Handle,
    },
    PeerLine {
        conn: ConnId,
        msg: Message,
    },
    PeerGone {
        conn: ConnId,
        reason: String,
    },
    ClientUp {
        conn: ConnId,
        may_register: bool,
        handle: Handle,
    },
    ClientLine {
        conn: ConnId,
        msg: Message,
    },
    ClientGone {
        conn: ConnId,
    },
    /// A request from the HTTP API.
    Api(Request),
}

/// What the HTTP API asks of the catalogue.
pub(crate) enum Request {
    Keys {
        prefix: String,
        reply: oneshot::Sender<Vec<KeyRecord>>,
    },
    /// Answered once the write is durable here.
    SetKey {
        key: String,
        value: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    DelKey {
        key: String,
        reply: oneshot::Sender<Result<bool, String>>,
    },
    /// Visible service records, all or those of one service name.
    Services {
        name: Option<String>,
        reply: oneshot::Sender<Vec<ServiceView>>,
    },
    Topology {
        reply: oneshot::Sender<TopologyView>,
    },
    /// Registers (or refreshes) an HTTP service instance with a TTL.
    Register {
        service: ServiceUri,
        attrs: Attrs,
        ttl_ms: u64,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Withdraws an HTTP service instance registered here.
    Unregister {
        service: ServiceUri,
        reply: oneshot::Sender<bool>,
    },
    /// The last change index of paths under a prefix, and the global one.
    Index {
        prefix: String,
        reply: oneshot::Sender<(u64, u64)>,
    },
    HookDone {
        marker: String,
        version: String,
        ok: bool,
    },
}

/// A change visible through the HTTP API (watches, SSE).
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) index: u64,
    pub(crate) path: String,
    pub(crate) what: &'static str,
}

/// The driver's own subscription to every service, feeding the change log.
const WATCH_CLIENT: ClientId = ClientId(u64::MAX);
/// HTTP registrations are pseudo-clients numbered down from here.
const HTTP_CLIENTS: u64 = u64::MAX - 1;

/// Most events handled before outputs are written out (see `run`).
const EVENT_BATCH: usize = 256;

struct HttpReg {
    client: ClientId,
    expires_ms: u64,
}

struct PeerConn {
    peer: CatalogueUri,
    dialed_by_me: bool,
    handle: Handle,
}

pub(crate) struct Driver {
    core: Catalogue,
    store: Store,
    shared: Arc<Shared>,
    peer_conns: HashMap<ConnId, PeerConn>,
    peers: HashMap<CatalogueUri, ConnId>,
    clients: HashMap<ConnId, Handle>,
    saved_clock: Ts,
    http_regs: BTreeMap<ServiceUri, HttpReg>,
    next_http_client: u64,
    index: u64,
    /// Last change index per configuration path and per service name (not
    /// per instance: that would cost memory for every replicated service).
    path_index: BTreeMap<String, u64>,
    /// Hashes of the paths that exist, to tell "created" from "updated".
    live_paths: HashSet<u64>,
    changes: broadcast::Sender<Change>,
    hooks: Hooks,
    /// Encoded subscription snapshots, by the core's shared slice (kept
    /// alive here, so its address is not reused while cached).
    snapshot_text: HashMap<usize, (Arc<[Message]>, Arc<str>)>,
}

impl Driver {
    pub(crate) fn new(mut core: Catalogue, store: Store, shared: Arc<Shared>) -> Self {
        let saved_clock = core.clock();
        core.client_connected(WATCH_CLIENT, false);
        core.client_message(
            crate::clock::now_ms(),
            WATCH_CLIENT,
            Message::SubServ { regex: String::new() },
        );
        core.drain();
        let live_paths = core
            .keys()
            .iter()
            .filter_map(|r| key_path(&r.key))
            .map(|p| path_hash(&p))
            .collect();
        Self {
            core,
            store,
            changes: shared.changes.clone(),
            shared,
            peer_conns: HashMap::new(),
            peers: HashMap::new(),
            clients: HashMap::new(),
            saved_clock,
            http_regs: BTreeMap::new(),
            next_http_client: HTTP_CLIENTS,
            index: 0,
            path_index: BTreeMap::new(),
            live_paths,
            hooks: Hooks::default(),
            snapshot_text: HashMap::new(),
        }
    }

    pub(crate) async fn run(mut self, mut events: mpsc::Receiver<Event>, shutdown: CancellationToken) {
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
                    let _ = self.dispatch();
                    self.run_hooks();
                    if self.core.clock() != self.saved_clock {
                        let _ = self.persist(&[]);
                    }
                }
                _ = shutdown.cancelled() => break,
            }
        }
        self.shutdown();
    }

    fn on_event(&mut self, ev: Event) {
        let now = now_ms();
        match ev {
            Event::PeerUp {
                conn,
                peer,
                dialed_by_me,
                handle,
            } => {
                if let Some(&old) = self.peers.get(&peer) {
                    let old_dialed_by_me = self.peer_conns[&old].dialed_by_me;
                    // One link per pair: the connection dialed by the lower
                    // URI survives; two from the same side: the newer one.
                    let me = &self.shared.settings.uri;
                    let lower_dials_new = if dialed_by_me { me < &peer } else { &peer < me };
                    let keep_new = old_dialed_by_me == dialed_by_me || lower_dials_new;
                    if !keep_new {
                        tracing::debug!(peer = %peer, "duplicate link; keeping the one dialed by the lower URI");
                        handle.close.cancel();
                        return;
                    }
                    self.drop_peer_conn(old, "replaced by a newer connection");
                }
                tracing::info!(peer = %peer, dialed = dialed_by_me, "link up");
                self.peers.insert(peer.clone(), conn);
                self.peer_conns.insert(
                    conn,
                    PeerConn {
                        peer: peer.clone(),
                        dialed_by_me,
                        handle,
                    },
                );
                self.core.link_up(now, &peer);
            }
            Event::PeerLine { conn, msg } => {
                if let Some(pc) = self.peer_conns.get(&conn) {
                    let peer = pc.peer.clone();
                    self.core.peer_message(now, &peer, msg);
                }
            }
            Event::PeerGone { conn, reason } => self.drop_peer_conn(conn, &reason),
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

    fn on_request(&mut self, req: Request) {
        let now = now_ms();
        match req {
            Request::Keys { prefix, reply } => {
                let keys = self
                    .core
                    .keys()
                    .into_iter()
                    .filter(|r| r.key.starts_with(&prefix))
                    .collect();
                let _ = reply.send(keys);
            }
            Request::SetKey { key, value, reply } => {
                let result = match self.core.set_key(now, &key, &value) {
                    Ok(_) => self.dispatch(),
                    Err(e) => Err(e.to_string()),
                };
                let _ = reply.send(result);
            }
            Request::DelKey { key, reply } => {
                let result = match self.core.del_key(now, &key) {
                    Some(_) => self.dispatch().map(|()| true),
                    None => Ok(false),
                };
                let _ = reply.send(result);
            }
            Request::Services { name, reply } => {
                let mut found: Vec<ServiceView> = match name {
                    Some(n) => self
                        .core
                        .services_where(|s| ServiceUri::name_of(s) == Some(n.as_str()))
                        .collect(),
                    None => self.core.services().collect(),
                };
                // Stored by owner; answered in URI order.
                found.sort_by(|a, b| (&a.service, &a.catalogue).cmp(&(&b.service, &b.catalogue)));
                let _ = reply.send(found);
            }
            Request::Topology { reply } => {
                let _ = reply.send(self.core.topology());
            }
            Request::Register {
                service,
                attrs,
                ttl_ms,
                reply,
            } => {
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
                        expires_ms: now + ttl_ms,
                    },
                );
                self.core
                    .client_message(now, client, Message::RegServ { service, attrs });
                let _ = reply.send(self.dispatch());
            }
            Request::Unregister { service, reply } => {
                let found = self.http_regs.remove(&service);
                if let Some(r) = &found {
                    self.core.client_disconnected(now, r.client);
                }
                let _ = reply.send(found.is_some());
            }
            Request::Index { prefix, reply } => {
                let prefix = index_path(&prefix).to_owned();
                let last = self
                    .path_index
                    .range(prefix.clone()..)
                    .take_while(|(p, _)| p.starts_with(&prefix))
                    .map(|(_, i)| *i)
                    .max()
                    .unwrap_or(0);
                let _ = reply.send((last, self.index));
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
    fn run_hooks(&mut self) {
        let base = self.shared.http_base.clone();
        let path_index = &self.path_index;
        let index_of = |path: &str| path_index.get(path).copied().unwrap_or(0);
        for d in self.hooks.due(&self.core, &base, now_ms(), index_of) {
            let events = self.shared.events.clone();
            tokio::spawn(async move {
                let ok = crate::hooks::post(&d.endpoint, &d.body).await;
                let done = Request::HookDone {
                    marker: d.marker,
                    version: d.version,
                    ok,
                };
                let _ = events.send(Event::Api(done)).await;
            });
        }
    }

    /// Records a change for watches and SSE.
    fn changed(&mut self, path: String, what: &'static str) {
        self.index += 1;
        self.shared
            .change_index
            .store(self.index, std::sync::atomic::Ordering::Release);
        self.path_index.insert(index_path(&path).to_owned(), self.index);
        let _ = self.changes.send(Change {
            index: self.index,
            path,
            what,
        });
    }

    fn drop_peer_conn(&mut self, conn: ConnId, reason: &str) {
        let Some(pc) = self.peer_conns.remove(&conn) else {
            return;
        };
        pc.handle.close.cancel();
        if self.peers.get(&pc.peer) == Some(&conn) {
            self.peers.remove(&pc.peer);
            tracing::warn!(peer = %pc.peer, reason, "link down");
            self.core.link_down(now_ms(), &pc.peer);
        }
    }

    /// Drops connections whose readers stopped reading.
    fn drop_stalled(&mut self) {
        let clients: Vec<(ConnId, String)> = self
            .clients
            .iter()
            .filter_map(|(c, h)| h.stalled().map(|why| (*c, why)))
            .collect();
        for (conn, why) in clients {
            self.drop_client(conn, &format!("client cannot keep up: {why}"));
        }
        let peers: Vec<(ConnId, String)> = self
            .peer_conns
            .iter()
            .filter_map(|(c, p)| p.handle.stalled().map(|why| (*c, why)))
            .collect();
        for (conn, why) in peers {
            self.drop_peer_conn(conn, &format!("peer is not reading: {why}"));
        }
    }

    fn drop_client(&mut self, conn: ConnId, reason: &str) {
        if let Some(h) = self.clients.remove(&conn) {
            tracing::warn!(client = conn, reason, "closing client connection");
            h.close.cancel();
            self.core.client_disconnected(now_ms(), ClientId(conn));
        }
    }

    /// Carries out the core's outputs until there are none left. Err if
    /// durable writes failed.
    fn dispatch(&mut self) -> Result<(), String> {
        let mut persist = Vec::new();
        let mut changes = Vec::new();
        loop {
            let outs = self.core.drain();
            if outs.is_empty() {
                break;
            }
            for out in outs {
                match out {
                    Output::ToPeer { peer, msg } => {
                        let Some(&conn) = self.peers.get(&peer) else {
                            continue;
                        };
                        if let Err(why) = self.peer_conns[&conn].handle.send(msg.encode()) {
                            self.drop_peer_conn(conn, &format!("peer is not reading: {why}"));
                        }
                    }
                    Output::ToClient { client, msg } if client == WATCH_CLIENT => {
                        if let Some(c) = service_change(&msg) {
                            changes.push(c);
                        }
                    }
                    Output::ToClient { client, msg } if client.0 >= self.next_http_client => {
                        if let Message::Error { code, text } = msg {
                            tracing::warn!(%code, text, "HTTP registration refused");
                        }
                    }
                    Output::ToClient { client, msg } => {
                        let Some(h) = self.clients.get(&client.0) else {
                            continue;
                        };
                        if let Err(why) = h.send(msg.encode()) {
                            self.drop_client(client.0, &format!("client cannot keep up: {why}"));
                        }
                    }
                    Output::ToClientMany { client, msgs } if client == WATCH_CLIENT => {
                        changes.extend(msgs.iter().filter_map(service_change));
                    }
                    Output::ToClientMany { client, .. } if client.0 >= self.next_http_client => {}
                    Output::ToClientMany { client, msgs } => {
                        if !self.clients.contains_key(&client.0) {
                            continue;
                        }
                        let text = self.snapshot_text(msgs.clone());
                        if let Err(why) = self.clients[&client.0].send_block(text, msgs.len()) {
                            self.drop_client(client.0, &format!("client cannot keep up: {why}"));
                        }
                    }
                    Output::Persist(op) => {
                        if let PersistOp::Key(rec) = &op {
                            if let Some(path) = key_path(&rec.key) {
                                changes.push((path, rec.value.is_some()));
                            }
                        }
                        persist.push(op);
                    }
                    Output::Notice(n) => log_notice(&n),
                    // Webhooks still run from `hooks.rs` until the driver is rewired.
                    Output::Webhook(_) => {}
                }
            }
        }
        let result = if persist.is_empty() {
            Ok(())
        } else {
            self.persist(&persist)
        };
        let any = !changes.is_empty();
        for (path, live) in changes {
            let hash = path_hash(&path);
            let what = match (self.live_paths.contains(&hash), live) {
                (_, false) => "deleted",
                (false, true) => "created",
                (true, true) => "updated",
            };
            if live {
                self.live_paths.insert(hash);
            } else {
                self.live_paths.remove(&hash);
            }
            self.changed(path, what);
        }
        if any {
            self.run_hooks();
        }
        result
    }

    fn persist(&mut self, ops: &[PersistOp]) -> Result<(), String> {
        let clock = self.core.clock();
        let result = tokio::task::block_in_place(|| self.store.apply(ops, clock));
        match result {
            Ok(()) => {
                self.saved_clock = clock;
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "could not write the store");
                Err(e.to_string())
            }
        }
    }

    /// Withdraws our services and tells the peers before the links close.
    fn shutdown(&mut self) {
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
        for (_, pc) in self.peer_conns.drain() {
            pc.handle.close.cancel();
        }
        self.peers.clear();
        let _ = self.persist(&[]);
    }
}

/// The API path of a configuration key, if it has one.
fn key_path(key: &str) -> Option<String> {
    if let Some(name) = key.strip_prefix("app/") {
        return Some(format!("/app/{name}"));
    }
    let rest = key.strip_prefix("hook/")?;
    let mut p = rest.splitn(3, '/');
    let (kind, name, hook) = (p.next()?, p.next()?, p.next()?);
    Some(format!("/{kind}/{name}/web-hooks/{hook}"))
}

/// The API path of a service instance: `/srv/NAME/HOST`.
/// Where a path's change index is kept: a service instance's index is its
/// service name's (`/srv/NAME/HOST` → `/srv/NAME`), so a blocking query on
/// an instance may also return when a sibling instance changed, and one on a
/// service's web-hooks when the service changed.
fn index_path(path: &str) -> &str {
    match path.strip_prefix("/srv/") {
        Some(rest) => match rest.find('/') {
            Some(i) => &path[..5 + i],
            None => path,
        },
        None => path,
    }
}

/// A stable 64-bit hash of a path (collisions only mislabel created/updated).
fn path_hash(path: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    h.finish()
}

fn instance_path(service: &ServiceUri) -> String {
    format!("/srv/{}/{}", service.name(), service.instance())
}

/// Snapshots whose encoding is kept (each at most the core's snapshot cache
/// limit of lines).
const SNAPSHOT_TEXTS: usize = 256;

impl Driver {
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
        // Held by the core's cache too (strong count above 2 with the
        // output's copy): worth keeping.
        if Arc::strong_count(&msgs) > 2 {
            if self.snapshot_text.len() >= SNAPSHOT_TEXTS {
                // Forget snapshots the core no longer holds.
                self.snapshot_text.retain(|_, (m, _)| Arc::strong_count(m) > 1);
                if self.snapshot_text.len() >= SNAPSHOT_TEXTS {
                    self.snapshot_text.clear();
                }
            }
            self.snapshot_text.insert(id, (msgs, text.clone()));
        }
        text
    }
}

fn service_change(msg: &Message) -> Option<(String, bool)> {
    match msg {
        Message::AddServ { service, .. } => Some((instance_path(service), true)),
        Message::DelServ { service, .. } => Some((instance_path(service), false)),
        _ => None,
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
        Notice::Leader(l) => tracing::info!(leader = %l, "leader changed"),
        Notice::ClockSkew { peer, detail } => tracing::error!(peer = %peer, detail, "clock skew"),
        Notice::PeerProtocol { peer, detail } => {
            tracing::warn!(peer = %peer, detail, "protocol problem on link")
        }
        Notice::ClientRefused { client, detail } => {
            tracing::warn!(client = client.0, detail, "refused client request")
        }
        Notice::StaleRefused { key } => {
            tracing::info!(item = %key, "refused a stale copy of a collected delete")
        }
        _ => tracing::info!(?n, "notice"),
    }
}

#[cfg(test)]
mod tests {
    use super::index_path;

    #[test]
    fn instances_share_their_service_names_index() {
        assert_eq!(index_path("/srv/orders/10.0.0.1:80"), "/srv/orders");
        assert_eq!(index_path("/srv/orders/web-hooks/h1"), "/srv/orders");
        assert_eq!(index_path("/srv/orders"), "/srv/orders");
        assert_eq!(index_path("/srv"), "/srv");
        assert_eq!(index_path("/app/db/web-hooks/h1"), "/app/db/web-hooks/h1");
    }
}
