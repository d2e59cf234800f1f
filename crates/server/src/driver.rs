//! The task that owns the core state machine: turns connection events into
//! core inputs and core outputs into writes, persistence and logs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rarangi_core::{Catalogue, ClientId, Notice, Output, PersistOp};
use rarangi_proto::{CatalogueUri, Message, Ts};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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
}

impl Driver {
    pub(crate) fn new(core: Catalogue, store: Store, shared: Arc<Shared>) -> Self {
        let saved_clock = core.clock();
        Self {
            core,
            store,
            shared,
            peer_conns: HashMap::new(),
            peers: HashMap::new(),
            clients: HashMap::new(),
            saved_clock,
        }
    }

    pub(crate) async fn run(mut self, mut events: mpsc::Receiver<Event>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => self.on_event(ev),
                    None => break,
                },
                _ = tick.tick() => {
                    self.drop_stalled();
                    self.core.tick(now_ms());
                    self.dispatch();
                    if self.core.clock() != self.saved_clock {
                        self.persist(&[]);
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
        }
        self.dispatch();
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

    /// Carries out the core's outputs until there are none left.
    fn dispatch(&mut self) {
        let mut persist = Vec::new();
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
                    Output::ToClient { client, msg } => {
                        let Some(h) = self.clients.get(&client.0) else {
                            continue;
                        };
                        if let Err(why) = h.send(msg.encode()) {
                            self.drop_client(client.0, &format!("client cannot keep up: {why}"));
                        }
                    }
                    Output::CloseClient { client, reason } => self.drop_client(client.0, &reason),
                    Output::Persist(op) => persist.push(op),
                    Output::Notice(n) => log_notice(&n),
                }
            }
        }
        if !persist.is_empty() {
            self.persist(&persist);
        }
    }

    fn persist(&mut self, ops: &[PersistOp]) {
        let clock = self.core.clock();
        let result = tokio::task::block_in_place(|| self.store.apply(ops, clock));
        match result {
            Ok(()) => self.saved_clock = clock,
            Err(e) => tracing::error!(error = %e, "could not write the store"),
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
        self.dispatch();
        for (_, h) in self.clients.drain() {
            h.close.cancel();
        }
        for (_, pc) in self.peer_conns.drain() {
            pc.handle.close.cancel();
        }
        self.peers.clear();
        self.persist(&[]);
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
