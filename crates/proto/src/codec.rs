//! Line framing for tokio (feature `codec`): one message per LF-terminated
//! line, a CR before the LF ignored, lines over the limit refused. The
//! daemon's connections and the client library both read and write through
//! [`LineCodec`].

use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::{parse_line_with_limit, Message, ParseError};

/// Why a connection's framing failed; the connection cannot go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A line longer than the limit (answer `2 line-too-long` and close).
    #[error("line exceeds the limit of {max} bytes")]
    TooLong {
        /// The limit, in bytes without the line ending.
        max: usize,
    },
    /// The socket failed.
    #[error("connection failed")]
    Io(#[from] std::io::Error),
}

/// Decodes lines into messages (a line that does not parse is an item, so
/// the caller can answer it and go on) and encodes messages as lines.
#[derive(Debug, Clone)]
pub struct LineCodec {
    max: usize,
    /// How far the buffer was already searched for a LF.
    searched: usize,
    /// Discarding the rest of an over-long line.
    discarding: bool,
}

impl LineCodec {
    /// Lines of at most `max` bytes (without the CR LF).
    pub fn new(max: usize) -> Self {
        Self {
            max,
            searched: 0,
            discarding: false,
        }
    }

    /// The line limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The next raw line, without its line ending.
    pub fn decode_line(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, CodecError> {
        loop {
            // A CR may precede the LF, so a line may take max + 1 bytes.
            let limit = self.max.saturating_add(2).min(buf.len());
            match buf[self.searched..limit].iter().position(|b| *b == b'\n') {
                Some(i) => {
                    let end = self.searched + i;
                    self.searched = 0;
                    let mut line = buf.split_to(end + 1);
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    line.truncate(end);
                    if line.last() == Some(&b'\r') {
                        line.truncate(end - 1);
                    }
                    if line.len() > self.max {
                        return Err(CodecError::TooLong { max: self.max });
                    }
                    return Ok(Some(line));
                }
                None if buf.len() > self.max.saturating_add(1) => {
                    buf.clear();
                    self.searched = 0;
                    self.discarding = true;
                    return Err(CodecError::TooLong { max: self.max });
                }
                None => {
                    self.searched = limit;
                    return Ok(None);
                }
            }
        }
    }
}

impl Decoder for LineCodec {
    type Item = Result<Message, ParseError>;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, CodecError> {
        Ok(self
            .decode_line(buf)?
            .map(|line| parse_line_with_limit(&line, self.max)))
    }
}

impl Encoder<&Message> for LineCodec {
    type Error = CodecError;

    fn encode(&mut self, msg: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        let line = msg.encode();
        dst.reserve(line.len() + 1);
        dst.put_slice(line.as_bytes());
        dst.put_u8(b'\n');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_lines_strips_cr_and_refuses_long_ones() {
        let mut c = LineCodec::new(8);
        let mut buf = BytesMut::from(&b"1\r\n1\n12345678\r\n123"[..]);
        assert!(matches!(c.decode(&mut buf), Ok(Some(Ok(Message::Heartbeat)))));
        assert!(matches!(c.decode(&mut buf), Ok(Some(Ok(Message::Heartbeat)))));
        assert_eq!(c.decode_line(&mut buf).unwrap().unwrap(), &b"12345678"[..]);
        assert!(c.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"4567890");
        assert!(matches!(c.decode(&mut buf), Err(CodecError::TooLong { max: 8 })));
        buf.extend_from_slice(b"tail\n1\n");
        assert!(matches!(c.decode(&mut buf), Ok(Some(Ok(Message::Heartbeat)))));
        let mut out = BytesMut::new();
        c.encode(&Message::Heartbeat, &mut out).unwrap();
        assert_eq!(&out[..], b"1\n");
        let mut bad = BytesMut::from(&b"zzz\n"[..]);
        assert!(matches!(c.decode(&mut bad), Ok(Some(Err(_)))));
    }
}
