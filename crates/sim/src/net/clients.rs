//! Simulated clients: what each one registered and subscribed to, and what
//! it believes the catalogue holds from what it was sent.

use std::collections::{BTreeMap, BTreeSet};

use rarangi_core::ClientId;
use rarangi_proto::{Attrs, Message, ServiceUri, Ts};
use regex::Regex;

use super::oracle::Invariant;
use super::{Net, NodeId};

/// A service record as clients and checks see it: (service URI, catalogue
/// URI).
pub(super) type Record = (String, String);

/// One client connection's registrations, subscriptions and beliefs.
#[derive(Default)]
pub(super) struct SimClient {
    regs: BTreeSet<ServiceUri>,
    subs: Vec<Regex>,
    /// Records shown, with the version of the last ADD_SERV.
    view: BTreeMap<Record, Ts>,
    /// Records this client saw deleted (not just withdrawn), with the
    /// version of the delete: a DEL_SERV newer than the last ADD_SERV.
    deleted: BTreeMap<Record, Ts>,
}

impl SimClient {
    /// Whether one of its subscriptions matches a service URI.
    pub(super) fn matches(&self, service: &str) -> bool {
        self.subs.iter().any(|r| r.is_match(service))
    }

    /// The records it was shown and not told are gone.
    pub(super) fn shown(&self) -> impl Iterator<Item = &Record> {
        self.view.keys()
    }

    /// Updates what it believes from one message. Returns a record it had
    /// seen deleted and was now shown again at a version not newer than the
    /// delete.
    fn receive(&mut self, msg: &Message) -> Option<Record> {
        match msg {
            Message::AddServ {
                service,
                catalogue,
                ts,
                ..
            } => {
                let key = (service.to_string(), catalogue.to_string());
                let resurrected = self.deleted.get(&key).is_some_and(|d| ts <= d);
                self.view.insert(key.clone(), *ts);
                resurrected.then_some(key)
            }
            Message::DelServ {
                service,
                catalogue,
                ts,
                ..
            } => {
                let key = (service.to_string(), catalogue.to_string());
                if self.view.get(&key).is_some_and(|shown| ts > shown) {
                    self.deleted.insert(key.clone(), *ts);
                }
                self.view.remove(&key);
                None
            }
            _ => None,
        }
    }
}

/// Every connected client, with the catalogue it is connected to.
#[derive(Default)]
pub(super) struct Clients {
    by_id: BTreeMap<ClientId, (NodeId, SimClient)>,
    /// Ids handed out so far; ids start at 1.
    issued: u64,
}

impl Clients {
    /// Each client's catalogue and the services it registered.
    pub(super) fn registered(&self) -> impl Iterator<Item = (NodeId, &BTreeSet<ServiceUri>)> {
        self.by_id.values().map(|(n, c)| (*n, &c.regs))
    }

    /// Clients with at least one subscription.
    pub(super) fn subscribers(&self) -> impl Iterator<Item = (ClientId, NodeId, &SimClient)> {
        self.by_id
            .iter()
            .filter(|(_, (_, c))| !c.subs.is_empty())
            .map(|(id, (n, c))| (*id, *n, c))
    }

    /// Forgets the clients of a crashed catalogue. Their registrations die
    /// with it, but others learn that only by failure detection, link by
    /// link: their withdrawal is about reachability and may flicker, so the
    /// no-resurrection check covers explicit removals only. Convergence
    /// still checks they are gone.
    pub(super) fn drop_node(&mut self, node: NodeId) {
        self.by_id.retain(|_, (n, _)| *n != node);
    }

    fn node(&self, id: ClientId) -> Option<NodeId> {
        self.by_id.get(&id).map(|(n, _)| *n)
    }

    fn get_mut(&mut self, id: ClientId) -> Option<&mut SimClient> {
        self.by_id.get_mut(&id).map(|(_, c)| c)
    }
}

impl Net {
    /// Connects a client to a running catalogue.
    pub fn client(&mut self, node: NodeId) -> Option<ClientId> {
        let id = ClientId(self.clients.issued + 1);
        if !self.wire.input(node, |core, _| core.client_connected(id, true)) {
            return None;
        }
        self.clients.issued += 1;
        self.clients.by_id.insert(id, (node, SimClient::default()));
        Some(id)
    }

    /// Clients currently connected, with their catalogue.
    pub fn clients(&self) -> Vec<(ClientId, NodeId)> {
        self.clients.by_id.iter().map(|(id, (n, _))| (*id, *n)).collect()
    }

    /// Services a client has registered.
    pub fn registrations(&self, id: ClientId) -> Vec<ServiceUri> {
        self.clients
            .by_id
            .get(&id)
            .map(|(_, c)| c.regs.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn client_send(&mut self, id: ClientId, msg: Message) {
        let Some(node) = self.clients.node(id) else {
            return;
        };
        self.input(node, |core, wall| core.client_message(wall, id, msg));
    }

    /// A client registers a service.
    pub fn register(&mut self, id: ClientId, service: &str) {
        self.register_with(id, service, Attrs::default());
    }

    /// A client registers a service with attributes (a watchdog check, say).
    pub fn register_with(&mut self, id: ClientId, service: &str, attrs: Attrs) {
        let service = ServiceUri::parse(service).expect("valid service URI");
        if let Some(c) = self.clients.get_mut(id) {
            c.regs.insert(service.clone());
        }
        self.client_send(id, Message::RegServ { service, attrs });
    }

    /// A watchdog probe of `service` at `node` (where it registered) passed
    /// or failed.
    pub fn probe(&mut self, node: NodeId, service: &str, ok: bool) {
        let service = ServiceUri::parse(service).expect("valid service URI");
        self.input(node, |core, wall| {
            core.probe(wall, &service, ok);
        });
    }

    /// A client withdraws a registration.
    pub fn unregister(&mut self, id: ClientId, service: &ServiceUri) {
        let Some(c) = self.clients.get_mut(id) else {
            return;
        };
        if !c.regs.remove(service) {
            return;
        }
        self.client_send(
            id,
            Message::UnregServ {
                service: service.clone(),
            },
        );
    }

    /// A client subscribes with a regex.
    pub fn subscribe(&mut self, id: ClientId, regex: &str) {
        if let Some(c) = self.clients.get_mut(id) {
            c.subs.push(Regex::new(regex).expect("valid regex"));
        }
        self.client_send(
            id,
            Message::SubServ {
                regex: regex.to_owned(),
            },
        );
    }

    /// A client's connection drops.
    pub fn disconnect_client(&mut self, id: ClientId) {
        let Some((node, _)) = self.clients.by_id.remove(&id) else {
            return;
        };
        self.input(node, |core, wall| core.client_disconnected(wall, id));
    }

    /// A catalogue sends a client a message: the client updates what it
    /// believes, and a record it saw deleted must not come back.
    pub(super) fn deliver_to_client(&mut self, id: ClientId, msg: &Message) {
        let Some((node, c)) = self.clients.by_id.get_mut(&id) else {
            return;
        };
        let node = *node;
        let resurrected = c.receive(msg);
        self.wire
            .trace(format_args!("client {} at {node} <- {}", id.0, msg.encode()));
        if let Some((s, cat)) = resurrected {
            self.oracle.record(
                Invariant::NoResurrection,
                self.wire.elapsed_ms(),
                format!(
                    "client {} at node {node} got {s} at {cat} again after it was removed",
                    id.0
                ),
            );
        }
    }
}
