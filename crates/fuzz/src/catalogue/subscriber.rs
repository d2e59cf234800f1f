//! What a subscribed client believes from the messages it was sent, to
//! compare with its catalogue once the network is quiet.

use std::collections::BTreeSet;

use rarangi_core::{Catalogue, Limits};
use rarangi_proto::Message;
use regex::{Regex, RegexBuilder};

/// A visible record as a client tells them apart: (service, catalogue).
type Record = (String, String);

/// One client connection's subscriptions and view.
#[derive(Debug, Default)]
pub(super) struct Subscriber {
    /// Subscriptions the catalogue confirmed (echoed SUB_SERV).
    subs: Vec<String>,
    /// It dropped a subscription: UNSUB_SERV sends no DEL_SERV for what
    /// only that one showed, so its view may keep such records.
    unsubscribed: bool,
    /// Records shown and not since deleted.
    view: BTreeSet<Record>,
}

impl Subscriber {
    /// Updates the view from one message sent to the client.
    pub(super) fn receive(&mut self, msg: &Message) {
        match msg {
            Message::SubServ { regex } => self.subs.push(regex.clone()),
            Message::UnsubServ { .. } => self.unsubscribed = true,
            Message::AddServ {
                service, catalogue, ..
            } => {
                self.view.insert((service.to_string(), catalogue.to_string()));
            }
            Message::DelServ {
                service, catalogue, ..
            } => {
                self.view.remove(&(service.to_string(), catalogue.to_string()));
            }
            _ => {}
        }
    }

    /// How this client's view differs from what `cat` shows for its
    /// subscriptions, if it does (clients that unsubscribed are skipped).
    pub(super) fn disagreement(&self, cat: &Catalogue) -> Option<String> {
        if self.subs.is_empty() || self.unsubscribed {
            return None;
        }
        let size = Limits::default().regex_compiled_size;
        let regexes: Vec<Regex> = self
            .subs
            .iter()
            .filter_map(|s| RegexBuilder::new(s).size_limit(size).build().ok())
            .collect();
        let expected: BTreeSet<Record> = cat
            .services()
            .filter(|v| regexes.iter().any(|r| r.is_match(v.service.as_str())))
            .map(|v| (v.service.to_string(), v.catalogue.to_string()))
            .collect();
        (expected != self.view).then(|| {
            format!(
                "a subscriber to {:?} at {} believes {:?} but the catalogue shows {:?}",
                self.subs,
                cat.config().uri,
                self.view,
                expected
            )
        })
    }
}
