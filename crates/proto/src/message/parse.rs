//! Reading one line into a message.

use super::{Bound, Departure, Message, MessageKind};
use crate::encoding::decode_field;
use crate::error::{ErrorCode, ParseError};
use crate::names::{validate_cluster, validate_environment, validate_key};
use crate::{Attrs, CatalogueUri, ServiceUri, Ts, DEFAULT_MAX_LINE};

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
                "unknown message code {shown:?}; expected 0-{} or a keyword such as REG_SERV or SUB_SERV",
                MessageKind::MAX_CODE
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
            K::Reachable => {
                let leader = self.catalogue("leader")?;
                // The set holds at least the sender.
                let mut reachable = vec![self.catalogue("catalogue-uri")?];
                while self.fields.clone().next().is_some() {
                    reachable.push(self.catalogue("catalogue-uri")?);
                }
                Message::Reachable { leader, reachable }
            }
            K::Left => Message::Left {
                catalogue: self.catalogue("catalogue-uri")?,
                cluster: self.cluster()?,
                ts: self.ts()?,
                reason: {
                    let raw = self.raw("reason")?;
                    Departure::from_wire(raw)
                        .ok_or_else(|| self.err(format_args!("<reason> must be left, reaped or forced")))?
                },
            },
            K::ForceLeave => Message::ForceLeave {
                catalogue: self.catalogue("catalogue-uri")?,
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
