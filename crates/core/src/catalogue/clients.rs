//! Clients: registrations, subscriptions (snapshot, then changes to the
//! visible set) and topology followers.

use std::collections::BTreeSet;
use std::sync::Arc;

use rarangi_proto::{Attrs, ErrorCode, Message, ServiceUri};

use super::admit::MEMORY_PRESSURE;
use super::regexes::Refused;
use super::Catalogue;
use crate::item::Value;
use crate::output::{ClientId, Notice, Output};
use crate::sort_key::SortKey;

/// One client connection.
#[derive(Debug, Default)]
pub(super) struct Client {
    pub(super) may_register: Registration,
    pub(super) regs: BTreeSet<ServiceUri>,
    /// Regex sources, in subscription order; compiled in `regexes`.
    pub(super) subs: Vec<String>,
    /// Bytes charged for the regexes of `subs` (see `regexes`).
    pub(super) regex_bytes: usize,
    pub(super) follows_links: bool,
}

/// Whether a client may register services (REG_SERV), as the server
/// judged its transport (address, certificate, Unix credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// It may.
    Allowed,
    /// It may not; the rule it does not meet, said in the refusal.
    Refused(&'static str),
}

/// The registration rule of a plain-text connection (DESIGN §3).
pub const REGISTER_RULE: &str = "registrations are accepted only on the Unix socket, from loopback, \
     or from addresses allowed by --allow-register";

impl Default for Registration {
    fn default() -> Self {
        Registration::Refused(REGISTER_RULE)
    }
}

impl From<bool> for Registration {
    /// `true`: allowed; `false`: refused under the plain-text rule.
    fn from(allowed: bool) -> Self {
        if allowed {
            Registration::Allowed
        } else {
            Registration::Refused(REGISTER_RULE)
        }
    }
}

/// Snapshot lines kept cached across all regexes. Any one snapshot is
/// cached whatever its size, so repeating a subscription never builds (nor
/// the server encodes) its snapshot again; others are dropped to make room.
const SNAPSHOT_CACHE_MAX: usize = 64 * 1024;

impl Catalogue {
    pub(super) fn register(&mut self, client: ClientId, service: ServiceUri, attrs: Attrs) {
        let limit = self.cfg.limits.registrations_per_client;
        let pressure = self.memory_pressure;
        let c = self.clients.get_mut(&client).expect("caller checked");
        if let Registration::Refused(rule) = c.may_register {
            self.refuse(client, ErrorCode::NotAllowed, format!("REG_SERV refused: {rule}"));
            return;
        }
        if c.regs.len() >= limit && !c.regs.contains(&service) {
            self.refuse(
                client,
                ErrorCode::Limit,
                format!("at most {limit} registrations per connection"),
            );
            return;
        }
        if pressure && !c.regs.contains(&service) {
            return self.refuse(client, ErrorCode::Limit, MEMORY_PRESSURE.to_owned());
        }
        if let Err(e) = crate::check::parse_check(&service, &attrs) {
            return self.refuse(
                client,
                ErrorCode::BadMessage,
                format!("REG_SERV {service} refused: {e}"),
            );
        }
        if let Err(e) = self.admit_own(&service, &attrs) {
            let why = match &e {
                super::LimitError::TooLarge(size) => size.to_string(),
                other => other.to_string(),
            };
            return self.refuse(
                client,
                ErrorCode::Limit,
                format!("REG_SERV {service} refused: {why}"),
            );
        }
        let c = self.clients.get_mut(&client).expect("caller checked");
        c.regs.insert(service.clone());
        self.hold(service, attrs, |h| h.add_client(client));
    }

    pub(super) fn unregister(&mut self, client: ClientId, service: &ServiceUri) {
        let c = self.clients.get_mut(&client).expect("caller checked");
        if !c.regs.remove(service) {
            let msg = Message::error(
                ErrorCode::Other("not-found".into()),
                format!("{service} is not registered on this connection"),
            );
            self.send_client(client, msg);
            return;
        }
        self.release(client, service);
    }

    /// Drops a client's hold on a registration.
    pub(super) fn release(&mut self, client: ClientId, service: &ServiceUri) {
        self.release_with(service, |h| h.remove_client(client));
    }

    pub(super) fn subscribe(&mut self, client: ClientId, source: String) {
        if self.memory_pressure && !self.clients[&client].subs.contains(&source) {
            return self.refuse(client, ErrorCode::Limit, MEMORY_PRESSURE.to_owned());
        }
        let limits = &self.cfg.limits;
        if source.len() > limits.regex_len {
            let d = format!(
                "regex of {} bytes exceeds the limit of {} bytes",
                source.len(),
                limits.regex_len
            );
            return self.refuse(client, ErrorCode::Limit, d);
        }
        let max_subs = limits.subscriptions_per_client;
        let c = self.clients.get(&client).expect("caller checked");
        let room = if c.subs.contains(&source) {
            usize::MAX
        } else if c.subs.len() >= max_subs {
            return self.refuse(
                client,
                ErrorCode::Limit,
                format!("at most {max_subs} subscriptions per connection"),
            );
        } else {
            limits.regex_bytes_per_client.saturating_sub(c.regex_bytes)
        };
        let cost = match self.regexes.prepare(&source, limits, room) {
            Ok(cost) => cost,
            Err(Refused::Limit(text)) => return self.refuse(client, ErrorCode::Limit, text),
            Err(Refused::Bad(text)) => return self.refuse(client, ErrorCode::BadRegex, text),
        };
        let c = self.clients.get_mut(&client).expect("caller checked");
        if room != usize::MAX {
            c.subs.push(source.clone());
            c.regex_bytes += cost;
        }
        let gen = self.services_gen;
        let compiled = self.regexes.get(&source).expect("compiled above");
        let cached = compiled
            .snapshot
            .as_ref()
            .filter(|(g, _)| *g == gen)
            .map(|(_, m)| m.clone());
        let snapshot = match cached {
            Some(s) => s,
            None => {
                let regex = &compiled.regex;
                let fresh: Arc<[Message]> = self
                    .services_where(|s| regex.is_match(s))
                    .map(|v| v.add_message())
                    .collect();
                self.regexes
                    .cache_snapshot(&source, gen, &fresh, SNAPSHOT_CACHE_MAX);
                fresh
            }
        };
        let compiled = self.regexes.get_mut(&source).expect("compiled above");
        compiled.users.insert(client);
        if !snapshot.is_empty() {
            self.out.push(Output::ToClientMany {
                client,
                msgs: snapshot,
            });
        }
        self.send_client(client, Message::SubServ { regex: source });
    }

    pub(super) fn unsubscribe(&mut self, client: ClientId, source: String) {
        let c = self.clients.get_mut(&client).expect("caller checked");
        let before = c.subs.len();
        c.subs.retain(|s| *s != source);
        let msg = if c.subs.len() < before {
            self.release_regex(client, &source);
            Message::UnsubServ { regex: source }
        } else {
            Message::error(
                ErrorCode::Other("not-found".into()),
                format!("no subscription {source:?} on this connection"),
            )
        };
        self.send_client(client, msg);
    }

    /// `client` no longer uses the regex `source`; it stays compiled (with
    /// its snapshot) for the next subscriber while the budget allows.
    pub(super) fn release_regex(&mut self, client: ClientId, source: &str) {
        let cost = self.regexes.release(client, source);
        if let Some(c) = self.clients.get_mut(&client) {
            c.regex_bytes = c.regex_bytes.saturating_sub(cost);
        }
    }

    /// SUB_LINK: the topology snapshot (catalogue records, links, what is
    /// reachable and the leader), the echo, then changes as they happen.
    pub(super) fn follow_links(&mut self, client: ClientId) {
        if let Some(c) = self.clients.get_mut(&client) {
            c.follows_links = true;
        }
        let mut msgs: Vec<Message> = self
            .catalogues
            .iter()
            .map(|(u, (ts, cluster))| Message::Catalogue {
                catalogue: u.clone(),
                cluster: cluster.clone(),
                ts: *ts,
            })
            .collect();
        msgs.extend(self.live_links().map(|(a, b)| Message::AddLink {
            a: a.clone(),
            b: b.clone(),
            ts: self.link_ts(a, b),
        }));
        msgs.push(self.reachable_message());
        for m in msgs {
            self.send_client(client, m);
        }
        self.send_client(client, Message::SubLink);
    }

    /// REACHABLE: the leader and the reachable set as computed here.
    pub(super) fn reachable_message(&self) -> Message {
        Message::Reachable {
            leader: self.topology.leader().clone(),
            reachable: self.live_reachable().cloned().collect(),
        }
    }

    pub(super) fn refuse(&mut self, client: ClientId, code: ErrorCode, detail: String) {
        self.notice(Notice::ClientRefused {
            client,
            detail: detail.clone(),
        });
        self.send_client(client, Message::error(code, detail));
    }

    /// Tells subscribers when a service item became visible, changed
    /// while visible, or stopped being visible.
    pub(super) fn recheck_service(&mut self, key: SortKey) {
        let Some(item) = self.db.get(&key) else {
            return; // forgotten: `forget` told subscribers
        };
        let visible = match &item.value {
            Value::Service {
                catalogue,
                attrs: Some(_),
                ..
            } => self.topology.is_reachable(catalogue) && item.ts >= self.incarnation_of(catalogue),
            _ => false,
        };
        let msg = match (item.shown, visible) {
            (false, false) => None,
            (true, true) if !item.fresh => None,
            (_, true) => Some(item.message(&key)),
            (true, false) => Some(item.value.del_serv(&key, item.ts)),
        };
        let item = self.db.get_mut(&key).expect("present");
        item.shown = visible;
        item.fresh = false;
        if let Some(msg) = msg {
            self.notify_subscribers(&key.service_text(), msg);
        }
    }

    /// A service became visible, changed or stopped being visible: tells
    /// the matching subscribers, and cached snapshots are stale.
    pub(super) fn notify_subscribers(&mut self, service: &str, msg: Message) {
        self.services_gen += 1;
        self.hooks.service_changed(service);
        // Each regex in use is tested once, however many clients share it.
        let targets: BTreeSet<ClientId> = self
            .regexes
            .in_use()
            .filter(|c| c.regex.is_match(service))
            .flat_map(|c| c.users.iter().copied())
            .collect();
        for id in targets {
            self.send_client(id, msg.clone());
        }
    }

    pub(super) fn notify_link_followers(&mut self, msg: Message) {
        let targets: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, c)| c.follows_links)
            .map(|(id, _)| *id)
            .collect();
        for id in targets {
            self.send_client(id, msg.clone());
        }
    }
}
