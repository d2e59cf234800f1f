//! The one-line wire form of a message.

use std::fmt::Write as _;

use super::{Bound, Message};
use crate::encoding::encode_into;
use crate::{Attrs, Ts};

impl Message {
    /// The wire form, without the trailing LF; always the numeric code.
    pub fn encode(&self) -> String {
        let mut w = LineWriter(String::with_capacity(64));
        let _ = write!(w.0, "{}", self.kind().code());
        match self {
            Message::Welcome {
                catalogue,
                cluster,
                environment,
            } => {
                w.field(catalogue.as_str());
                w.field(cluster);
                w.field(environment);
            }
            Message::Heartbeat | Message::SubLink | Message::UnsubLink => {}
            Message::Error { code, text } => {
                w.field(code.as_str());
                if !text.is_empty() {
                    for word in text.split(' ') {
                        w.field(word);
                    }
                }
            }
            Message::AddLink { a, b, ts } | Message::DelLink { a, b, ts } => {
                w.field(a.as_str());
                w.field(b.as_str());
                w.ts(*ts);
            }
            Message::AddServ {
                service,
                catalogue,
                cluster,
                ts,
                attrs,
            } => {
                w.field(service.as_str());
                w.field(catalogue.as_str());
                w.field(cluster);
                w.ts(*ts);
                w.attrs(attrs);
            }
            Message::DelServ {
                service,
                catalogue,
                cluster,
                ts,
            } => {
                w.field(service.as_str());
                w.field(catalogue.as_str());
                w.field(cluster);
                w.ts(*ts);
            }
            Message::RegServ { service, attrs } => {
                w.field(service.as_str());
                w.attrs(attrs);
            }
            Message::SubServ { regex } | Message::UnsubServ { regex } => w.field(regex),
            Message::SetKey {
                key,
                origin,
                ts,
                value,
            } => {
                w.field(key);
                w.field(origin.as_str());
                w.ts(*ts);
                w.field(value);
            }
            Message::DelKey { key, origin, ts } => {
                w.field(key);
                w.field(origin.as_str());
                w.ts(*ts);
            }
            Message::UnregServ { service } => w.field(service.as_str()),
            Message::Catalogue {
                catalogue,
                cluster,
                ts,
            } => {
                w.field(catalogue.as_str());
                w.field(cluster);
                w.ts(*ts);
            }
            Message::Sync {
                lo,
                hi,
                count,
                fingerprint,
            } => {
                w.bound(lo);
                w.bound(hi);
                let _ = write!(w.0, " {count} {fingerprint}");
            }
            Message::SyncPull { lo, hi } => {
                w.bound(lo);
                w.bound(hi);
            }
            Message::SyncMark { last } => {
                let _ = write!(w.0, " {}", u8::from(*last));
            }
            Message::Reachable { leader, reachable } => {
                w.field(leader.as_str());
                for c in reachable {
                    w.field(c.as_str());
                }
            }
        }
        w.0
    }
}

struct LineWriter(String);

impl LineWriter {
    fn field(&mut self, s: &str) {
        self.0.push(' ');
        encode_into(&mut self.0, s, |_| false);
    }
    fn ts(&mut self, ts: Ts) {
        let _ = write!(self.0, " {}", ts.0);
    }
    fn attrs(&mut self, attrs: &Attrs) {
        if !attrs.is_empty() {
            self.0.push(' ');
            self.0.push_str(&attrs.encode());
        }
    }
    fn bound(&mut self, b: &Bound) {
        match b {
            Bound::Unbounded => self.0.push_str(" -"),
            // A key that is literally "-" must not read as unbounded.
            Bound::Key(k) => {
                self.0.push(' ');
                encode_into(&mut self.0, k, |c| k == "-" && c == b'-');
            }
        }
    }
}
