//! The messages of DESIGN §2 and their one-line wire form.

use std::fmt::Write as _;

use crate::encoding::{decode_field, encode_into};
use crate::error::{ErrorCode, ParseError};
use crate::names::{validate_cluster, validate_environment, validate_key};
use crate::{Attrs, CatalogueUri, ServiceUri, Ts, DEFAULT_MAX_LINE};

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
}

const KINDS: [(MessageKind, &str); 19] = [
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

    /// True for messages only catalogues may send each other.
    pub fn is_catalogue_only(self) -> bool {
        use MessageKind::*;
        matches!(
            self,
            Welcome
                | AddLink
                | DelLink
                | AddServ
                | DelServ
                | SetKey
                | DelKey
                | Catalogue
                | Sync
                | SyncPull
                | SyncMark
        )
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
        }
    }

    /// Shorthand for an ERROR message.
    pub fn error(code: ErrorCode, text: impl Into<String>) -> Self {
        Message::Error {
            code,
            text: text.into(),
        }
    }

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

/// Parses one line (with or without its LF; a CR before the LF is ignored)
/// using the default maximum length.
pub fn parse_line(line: &[u8]) -> Result<Message, ParseError> {
    parse_line_with_limit(line, DEFAULT_MAX_LINE)
}

/// Parses one line, refusing lines longer than `max_len` bytes.
pub fn parse_line_with_limit(line: &[u8], max_len: usize) -> Result<Message, ParseError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > max_len {
        return Err(ParseError::new(
            ErrorCode::LineTooLong,
            format!(
                "line of {} bytes exceeds the limit of {max_len} bytes",
                line.len()
            ),
        ));
    }
    let line = std::str::from_utf8(line)
        .map_err(|_| ParseError::new(ErrorCode::BadMessage, "line is not valid UTF-8"))?;
    let mut fields = line.split(' ');
    let first = fields.next().unwrap_or("");
    let kind = MessageKind::from_field(first).ok_or_else(|| {
        let shown: String = first.chars().take(40).collect();
        ParseError::new(
            ErrorCode::BadMessage,
            format!(
                "unknown message code {shown:?}; expected 0-18 or a keyword such as REG_SERV or SUB_SERV"
            ),
        )
    })?;
    let mut r = FieldReader { kind, fields };
    let msg = r.message()?;
    r.finish()?;
    Ok(msg)
}

struct FieldReader<'a> {
    kind: MessageKind,
    fields: std::str::Split<'a, char>,
}

impl<'a> FieldReader<'a> {
    fn err(&self, what: impl std::fmt::Display) -> ParseError {
        ParseError::new(
            ErrorCode::BadMessage,
            format!("{} ({}): {what}", self.kind.keyword(), self.kind.code()),
        )
    }

    fn raw(&mut self, name: &str) -> Result<&'a str, ParseError> {
        self.fields
            .next()
            .ok_or_else(|| self.err(format_args!("missing field <{name}>")))
    }

    fn text(&mut self, name: &str) -> Result<String, ParseError> {
        let raw = self.raw(name)?;
        decode_field(raw).map_err(|e| self.err(format_args!("<{name}>: {}", e.text)))
    }

    fn catalogue(&mut self, name: &str) -> Result<CatalogueUri, ParseError> {
        let s = self.text(name)?;
        CatalogueUri::parse(&s).map_err(|e| ParseError::new(ErrorCode::BadUri, e.to_string()))
    }

    fn service(&mut self) -> Result<ServiceUri, ParseError> {
        let s = self.text("service-uri")?;
        ServiceUri::parse(&s).map_err(|e| ParseError::new(ErrorCode::BadUri, e.to_string()))
    }

    fn cluster(&mut self) -> Result<String, ParseError> {
        let s = self.text("cluster")?;
        validate_cluster(&s).map_err(|e| self.err(e))?;
        Ok(s)
    }

    fn key(&mut self) -> Result<String, ParseError> {
        let s = self.text("key")?;
        validate_key(&s).map_err(|e| self.err(e))?;
        Ok(s)
    }

    fn number(&mut self, name: &str) -> Result<u64, ParseError> {
        let raw = self.raw(name)?;
        if raw.is_empty() || raw.len() > 20 || !raw.bytes().all(|c| c.is_ascii_digit()) {
            return Err(self.err(format_args!("<{name}> must be a decimal number, got {raw:?}")));
        }
        raw.parse()
            .map_err(|_| self.err(format_args!("<{name}> out of range: {raw}")))
    }

    fn ts(&mut self) -> Result<Ts, ParseError> {
        self.number("ts").map(Ts)
    }

    fn attrs(&mut self) -> Result<Attrs, ParseError> {
        match self.fields.next() {
            None => Ok(Attrs::default()),
            Some(raw) => Attrs::parse(raw).map_err(|e| self.err(format_args!("<attrs>: {}", e.text))),
        }
    }

    fn bound(&mut self, name: &str) -> Result<Bound, ParseError> {
        if self.raw_peek_is_dash() {
            self.fields.next();
            return Ok(Bound::Unbounded);
        }
        self.text(name).map(Bound::Key)
    }

    fn raw_peek_is_dash(&self) -> bool {
        self.fields.clone().next() == Some("-")
    }

    fn pair(&mut self) -> Result<(CatalogueUri, CatalogueUri), ParseError> {
        let a = self.catalogue("catalogue-a")?;
        let b = self.catalogue("catalogue-b")?;
        if a == b {
            return Err(self.err("a link needs two different catalogues"));
        }
        // Receivers normalise the order (DESIGN §2).
        Ok(if a < b { (a, b) } else { (b, a) })
    }

    fn message(&mut self) -> Result<Message, ParseError> {
        use MessageKind as K;
        Ok(match self.kind {
            K::Welcome => {
                let catalogue = self.catalogue("catalogue-uri")?;
                let cluster = self.cluster()?;
                let environment = self.text("environment")?;
                validate_environment(&environment).map_err(|e| self.err(e))?;
                Message::Welcome {
                    catalogue,
                    cluster,
                    environment,
                }
            }
            K::Heartbeat => Message::Heartbeat,
            K::SubLink => Message::SubLink,
            K::UnsubLink => Message::UnsubLink,
            K::Error => {
                let code = ErrorCode::from_wire(&self.text("code")?);
                let mut words = Vec::new();
                for raw in self.fields.by_ref() {
                    words.push(decode_field(raw)?);
                }
                Message::Error {
                    code,
                    text: words.join(" "),
                }
            }
            K::AddLink | K::DelLink => {
                let (a, b) = self.pair()?;
                let ts = self.ts()?;
                if self.kind == K::AddLink {
                    Message::AddLink { a, b, ts }
                } else {
                    Message::DelLink { a, b, ts }
                }
            }
            K::AddServ => Message::AddServ {
                service: self.service()?,
                catalogue: self.catalogue("catalogue-uri")?,
                cluster: self.cluster()?,
                ts: self.ts()?,
                attrs: self.attrs()?,
            },
            K::DelServ => Message::DelServ {
                service: self.service()?,
                catalogue: self.catalogue("catalogue-uri")?,
                cluster: self.cluster()?,
                ts: self.ts()?,
            },
            K::RegServ => Message::RegServ {
                service: self.service()?,
                attrs: self.attrs()?,
            },
            K::SubServ | K::UnsubServ => {
                // A missing regex means "everything", for people at a terminal.
                let regex = match self.fields.next() {
                    None => String::new(),
                    Some(raw) => {
                        decode_field(raw).map_err(|e| self.err(format_args!("<regex>: {}", e.text)))?
                    }
                };
                if self.kind == K::SubServ {
                    Message::SubServ { regex }
                } else {
                    Message::UnsubServ { regex }
                }
            }
            K::SetKey => Message::SetKey {
                key: self.key()?,
                origin: self.catalogue("origin-catalogue")?,
                ts: self.ts()?,
                value: self.text("value")?,
            },
            K::DelKey => Message::DelKey {
                key: self.key()?,
                origin: self.catalogue("origin-catalogue")?,
                ts: self.ts()?,
            },
            K::UnregServ => Message::UnregServ {
                service: self.service()?,
            },
            K::Catalogue => Message::Catalogue {
                catalogue: self.catalogue("catalogue-uri")?,
                cluster: self.cluster()?,
                ts: self.ts()?,
            },
            K::Sync => Message::Sync {
                lo: self.bound("lo")?,
                hi: self.bound("hi")?,
                count: self.number("count")?,
                fingerprint: self.number("fingerprint")?,
            },
            K::SyncPull => Message::SyncPull {
                lo: self.bound("lo")?,
                hi: self.bound("hi")?,
            },
            K::SyncMark => match self.raw("final")? {
                "0" => Message::SyncMark { last: false },
                "1" => Message::SyncMark { last: true },
                other => return Err(self.err(format_args!("<final> must be 0 or 1, got {other:?}"))),
            },
        })
    }

    fn finish(&mut self) -> Result<(), ParseError> {
        match self.fields.next() {
            None => Ok(()),
            Some(extra) => {
                let shown: String = extra.chars().take(40).collect();
                Err(self.err(format_args!("unexpected extra field {shown:?}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(s: &str) -> CatalogueUri {
        CatalogueUri::from_addr(s).unwrap()
    }

    #[test]
    fn seed_examples_parse() {
        let m = parse_line(b"0 x-tvnetcs://h1:4760/ eu production\r\n").unwrap();
        assert_eq!(
            m,
            Message::Welcome {
                catalogue: cat("h1:4760"),
                cluster: "eu".into(),
                environment: "production".into()
            }
        );
        let m =
            parse_line(b"add_serv tcp://10.1.2.3:8080/orders x-tvnetcs://h1:4760/ eu 42 weight=10").unwrap();
        assert_eq!(m.kind(), MessageKind::AddServ);
        assert_eq!(
            m.encode(),
            "5 tcp://10.1.2.3:8080/orders x-tvnetcs://h1:4760/ eu 42 weight=10"
        );
    }

    #[test]
    fn link_ends_are_normalised() {
        let m = parse_line(b"3 x-tvnetcs://b:1/ x-tvnetcs://a:1/ 7").unwrap();
        assert_eq!(
            m,
            Message::AddLink {
                a: cat("a:1"),
                b: cat("b:1"),
                ts: Ts(7)
            }
        );
    }

    #[test]
    fn errors_say_what_to_send() {
        let e = parse_line(b"99 x").unwrap_err();
        assert_eq!(e.code, ErrorCode::BadMessage);
        let e = parse_line(b"7 tcp://h:1").unwrap_err();
        assert_eq!(e.code, ErrorCode::BadUri);
        assert!(e.text.contains("first segment"), "{}", e.text);
        let e = parse_line(b"7").unwrap_err();
        assert!(e.text.contains("missing field <service-uri>"), "{}", e.text);
        let e = parse_line_with_limit(&[b'1'; 100], 10).unwrap_err();
        assert_eq!(e.code, ErrorCode::LineTooLong);
        let e = parse_line(b"1 extra").unwrap_err();
        assert!(e.text.contains("extra field"));
        let e = parse_line(b"5 tcp://h:1/x x-tvnetcs://h:1/ c 1x").unwrap_err();
        assert!(e.text.contains("decimal"));
    }

    #[test]
    fn error_text_roundtrips_with_spaces() {
        let m = Message::error(ErrorCode::Limit, "too many  subscriptions (64)");
        assert_eq!(parse_line(m.encode().as_bytes()).unwrap(), m);
    }

    #[test]
    fn sync_bounds() {
        let m = Message::Sync {
            lo: Bound::Unbounded,
            hi: Bound::Key("-".into()),
            count: 3,
            fingerprint: u64::MAX,
        };
        assert_eq!(m.encode(), format!("16 - %2D 3 {}", u64::MAX));
        assert_eq!(parse_line(m.encode().as_bytes()).unwrap(), m);
    }
}
