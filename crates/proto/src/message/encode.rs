//! The one-line wire form of a message.

use std::fmt::{self, Write};

use super::{Bound, Message};
use crate::encoding::encode_into;
use crate::{Attrs, Ts};

impl Message {
    /// The wire form, without the trailing LF; always the numeric code.
    pub fn encode(&self) -> String {
        let mut w = LineWriter(String::with_capacity(64));
        self.write_to(&mut w);
        w.0
    }

    /// The length in bytes of [`Message::encode`]'s line, without building
    /// it (the size rules of [`crate::limits`] measure every item).
    pub fn encoded_len(&self) -> usize {
        let mut w = LineWriter(Counter(0));
        self.write_to(&mut w);
        w.0 .0
    }

    fn write_to<W: Write>(&self, w: &mut LineWriter<W>) {
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
            Message::Left {
                catalogue,
                cluster,
                ts,
                reason,
            } => {
                w.field(catalogue.as_str());
                w.field(cluster);
                w.ts(*ts);
                w.field(reason.as_str());
            }
            Message::ForceLeave { catalogue } => w.field(catalogue.as_str()),
        }
    }
}

/// Counts the bytes written instead of keeping them.
struct Counter(usize);

impl Write for Counter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// Writes fields to a `String` or a [`Counter`]; neither can fail, so
/// write results are ignored.
struct LineWriter<W>(W);

impl<W: Write> LineWriter<W> {
    fn field(&mut self, s: &str) {
        let _ = self.0.write_str(" ");
        encode_into(&mut self.0, s, |_| false);
    }
    fn ts(&mut self, ts: Ts) {
        let _ = write!(self.0, " {}", ts.0);
    }
    fn attrs(&mut self, attrs: &Attrs) {
        if !attrs.is_empty() {
            let _ = self.0.write_str(" ");
            attrs.encode_into(&mut self.0);
        }
    }
    fn bound(&mut self, b: &Bound) {
        match b {
            Bound::Unbounded => {
                let _ = self.0.write_str(" -");
            }
            // A key that is literally "-" must not read as unbounded.
            Bound::Key(k) => {
                let _ = self.0.write_str(" ");
                encode_into(&mut self.0, k, |c| k == "-" && c == b'-');
            }
        }
    }
}
