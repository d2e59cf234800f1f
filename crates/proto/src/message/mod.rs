//! The messages of DESIGN §2 and their one-line wire form.

mod encode;
mod parse;
#[cfg(test)]
mod tests;

pub use parse::{parse_line, parse_line_with_limit};

use crate::error::ErrorCode;
use crate::{Attrs, CatalogueUri, ServiceUri, Ts};

/// One end of a key range in a SYNC message: a key, or unbounded (`-`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bound {
    /// No bound (the start or the end of the key space).
    Unbounded,
    /// A key of the catalogue's item ordering.
    Key(String),
}

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `0 WELCOME catalogue-uri cluster environment`: first line of every catalogue.
    Welcome {
        /// The sender's identity.
        catalogue: CatalogueUri,
        /// The sender's cluster.
        cluster: String,
        /// The sender's environment.
        environment: String,
    },
    /// `1 HEARTBEAT`.
    Heartbeat,
    /// `2 ERROR code text...`.
    Error {
        /// The short kebab-case code.
        code: ErrorCode,
        /// Free text for a person.
        text: String,
    },
    /// `3 ADD_LINK a b ts`: a catalogue link is up (a < b).
    AddLink {
        /// Lower end.
        a: CatalogueUri,
        /// Higher end.
        b: CatalogueUri,
        /// Version.
        ts: Ts,
    },
    /// `4 DEL_LINK a b ts`: a catalogue link is down (a < b).
    DelLink {
        /// Lower end.
        a: CatalogueUri,
        /// Higher end.
        b: CatalogueUri,
        /// Version.
        ts: Ts,
    },
    /// `5 ADD_SERV service catalogue cluster ts [attrs]`.
    AddServ {
        /// The service URI.
        service: ServiceUri,
        /// The catalogue it is registered at (its owner).
        catalogue: CatalogueUri,
        /// That catalogue's cluster.
        cluster: String,
        /// Version.
        ts: Ts,
        /// Metadata.
        attrs: Attrs,
    },
    /// `6 DEL_SERV service catalogue cluster ts`.
    DelServ {
        /// The service URI.
        service: ServiceUri,
        /// The catalogue it was registered at.
        catalogue: CatalogueUri,
        /// That catalogue's cluster.
        cluster: String,
        /// Version.
        ts: Ts,
    },
    /// `7 REG_SERV service [attrs]`: a service registers with its catalogue.
    RegServ {
        /// The service URI.
        service: ServiceUri,
        /// Metadata.
        attrs: Attrs,
    },
    /// `8 SUB_SERV regex`: subscribe; echoed back as the end-of-snapshot marker.
    SubServ {
        /// Regular expression matched against the decoded service URI.
        regex: String,
    },
    /// `9 SET_KEY key origin ts value`: a configuration write.
    SetKey {
        /// The configuration key.
        key: String,
        /// The catalogue that wrote it.
        origin: CatalogueUri,
        /// Version.
        ts: Ts,
        /// The value (JSON text for Nesoi documents).
        value: String,
    },
    /// `10 DEL_KEY key origin ts`: a configuration delete.
    DelKey {
        /// The configuration key.
        key: String,
        /// The catalogue that deleted it.
        origin: CatalogueUri,
        /// Version.
        ts: Ts,
    },
    /// `11 UNREG_SERV service`: withdraw one registration.
    UnregServ {
        /// The service URI.
        service: ServiceUri,
    },
    /// `12 UNSUB_SERV regex`: drop a subscription; echoed back.
    UnsubServ {
        /// The regex given to SUB_SERV.
        regex: String,
    },
    /// `13 SUB_LINK`: follow the link topology; echoed after the snapshot.
    SubLink,
    /// `14 UNSUB_LINK`: stop following the topology; echoed back.
    UnsubLink,
    /// `15 CATALOGUE catalogue cluster ts`: a catalogue's incarnation record.
    Catalogue {
        /// The catalogue.
        catalogue: CatalogueUri,
        /// Its cluster.
        cluster: String,
        /// The incarnation: the first timestamp it issued since it started.
        ts: Ts,
    },
    /// `16 SYNC lo hi count fingerprint`: range summary for anti-entropy.
    Sync {
        /// Inclusive lower bound.
        lo: Bound,
        /// Exclusive upper bound.
        hi: Bound,
        /// Items the sender holds in the range.
        count: u64,
        /// Order-independent hash of those items and their versions.
        fingerprint: u64,
    },
    /// `17 SYNC_PULL lo hi`: send me your items in this range that I lack.
    SyncPull {
        /// Inclusive lower bound.
        lo: Bound,
        /// Exclusive upper bound.
        hi: Bound,
    },
    /// `18 SYNC_MARK final`: end of one reconciliation round; `final` (1)
    /// says the sender needs nothing more, so the link is in sync.
    SyncMark {
        /// True when reconciliation is complete.
        last: bool,
    },
    /// `19 REACHABLE leader catalogue...`: what the sending catalogue
    /// computed from the links it knows, for SUB_LINK followers.
    Reachable {
        /// The lowest reachable URI (sends webhooks).
        leader: CatalogueUri,
        /// Every reachable catalogue, the sender and the leader included,
        /// in URI order.
        reachable: Vec<CatalogueUri>,
    },
    /// `20 LEFT catalogue cluster ts reason`: the catalogue is gone from
    /// the network (a departed incarnation record, newer than the one it
    /// replaces): drop it, its links and its services.
    Left {
        /// The catalogue that departed.
        catalogue: CatalogueUri,
        /// Its cluster.
        cluster: String,
        /// The departure's version, newer than the incarnation it ends.
        ts: Ts,
        /// Why it departed.
        reason: Departure,
    },
    /// `21 FORCE_LEAVE catalogue`: a client asks its catalogue to remove an
    /// unreachable catalogue now rather than after `--reap-after`; echoed
    /// back when done.
    ForceLeave {
        /// The catalogue to remove.
        catalogue: CatalogueUri,
    },
}

/// Why a catalogue departed (the `reason` field of LEFT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Departure {
    /// It stopped gracefully and said so itself.
    Left,
    /// It was unreachable for longer than `--reap-after`.
    Reaped,
    /// An operator removed it (`rarangi force-leave`).
    Forced,
}

impl Departure {
    /// The wire word.
    pub fn as_str(self) -> &'static str {
        match self {
            Departure::Left => "left",
            Departure::Reaped => "reaped",
            Departure::Forced => "forced",
        }
    }

    /// Parses the wire word.
    pub fn from_wire(s: &str) -> Option<Self> {
        [Departure::Left, Departure::Reaped, Departure::Forced]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// The kind of a message: its numeric code and keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum MessageKind {
    Welcome = 0,
    Heartbeat = 1,
    Error = 2,
    AddLink = 3,
    DelLink = 4,
    AddServ = 5,
    DelServ = 6,
    RegServ = 7,
    SubServ = 8,
    SetKey = 9,
    DelKey = 10,
    UnregServ = 11,
    UnsubServ = 12,
    SubLink = 13,
    UnsubLink = 14,
    Catalogue = 15,
    Sync = 16,
    SyncPull = 17,
    SyncMark = 18,
    Reachable = 19,
    Left = 20,
    ForceLeave = 21,
}

const KINDS: [(MessageKind, &str); 22] = [
    (MessageKind::Welcome, "WELCOME"),
    (MessageKind::Heartbeat, "HEARTBEAT"),
    (MessageKind::Error, "ERROR"),
    (MessageKind::AddLink, "ADD_LINK"),
    (MessageKind::DelLink, "DEL_LINK"),
    (MessageKind::AddServ, "ADD_SERV"),
    (MessageKind::DelServ, "DEL_SERV"),
    (MessageKind::RegServ, "REG_SERV"),
    (MessageKind::SubServ, "SUB_SERV"),
    (MessageKind::SetKey, "SET_KEY"),
    (MessageKind::DelKey, "DEL_KEY"),
    (MessageKind::UnregServ, "UNREG_SERV"),
    (MessageKind::UnsubServ, "UNSUB_SERV"),
    (MessageKind::SubLink, "SUB_LINK"),
    (MessageKind::UnsubLink, "UNSUB_LINK"),
    (MessageKind::Catalogue, "CATALOGUE"),
    (MessageKind::Sync, "SYNC"),
    (MessageKind::SyncPull, "SYNC_PULL"),
    (MessageKind::SyncMark, "SYNC_MARK"),
    (MessageKind::Reachable, "REACHABLE"),
    (MessageKind::Left, "LEFT"),
    (MessageKind::ForceLeave, "FORCE_LEAVE"),
];

impl MessageKind {
    /// The numeric wire code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The keyword accepted from people at a terminal.
    pub fn keyword(self) -> &'static str {
        KINDS[usize::from(self.code())].1
    }

    /// The greatest code in use.
    pub const MAX_CODE: u8 = KINDS.len() as u8 - 1;

    /// Looks up a first field: a decimal code or a keyword (any case).
    pub fn from_field(field: &str) -> Option<Self> {
        if let Ok(n) = field.parse::<usize>() {
            return KINDS.get(n).map(|k| k.0);
        }
        KINDS
            .iter()
            .find(|(_, kw)| kw.eq_ignore_ascii_case(field))
            .map(|k| k.0)
    }
}

impl Message {
    /// This message's kind.
    pub fn kind(&self) -> MessageKind {
        use MessageKind as K;
        match self {
            Message::Welcome { .. } => K::Welcome,
            Message::Heartbeat => K::Heartbeat,
            Message::Error { .. } => K::Error,
            Message::AddLink { .. } => K::AddLink,
            Message::DelLink { .. } => K::DelLink,
            Message::AddServ { .. } => K::AddServ,
            Message::DelServ { .. } => K::DelServ,
            Message::RegServ { .. } => K::RegServ,
            Message::SubServ { .. } => K::SubServ,
            Message::SetKey { .. } => K::SetKey,
            Message::DelKey { .. } => K::DelKey,
            Message::UnregServ { .. } => K::UnregServ,
            Message::UnsubServ { .. } => K::UnsubServ,
            Message::SubLink => K::SubLink,
            Message::UnsubLink => K::UnsubLink,
            Message::Catalogue { .. } => K::Catalogue,
            Message::Sync { .. } => K::Sync,
            Message::SyncPull { .. } => K::SyncPull,
            Message::SyncMark { .. } => K::SyncMark,
            Message::Reachable { .. } => K::Reachable,
            Message::Left { .. } => K::Left,
            Message::ForceLeave { .. } => K::ForceLeave,
        }
    }

    /// Shorthand for an ERROR message.
    pub fn error(code: ErrorCode, text: impl Into<String>) -> Self {
        Message::Error {
            code,
            text: text.into(),
        }
    }
}
