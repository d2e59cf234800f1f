//! Percent-encoding of protocol fields (RFC 3986 style `%XX`).
//!
//! Only what would break the framing is escaped: control bytes, space, DEL
//! and `%` itself, so URIs and most values stay readable on the wire.
//! Non-ASCII UTF-8 passes through unchanged.

use std::fmt;

use crate::error::{ErrorCode, ParseError};

/// Whether `b` must be escaped in a plain field.
fn must_escape(b: u8) -> bool {
    b <= b' ' || b == 0x7f || b == b'%'
}

/// Appends `s` to `out`, escaping what the framing rules or `extra` name.
/// Runs that need no escaping (usually the whole field) are copied at once.
/// `out` may be a `String` or a counter ([`crate::limits`] measures lines
/// with the same code that writes them).
pub(crate) fn encode_into<W: fmt::Write>(out: &mut W, s: &str, extra: impl Fn(u8) -> bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        // Escaped bytes are ASCII, so `i` is always a char boundary here.
        if b.is_ascii() && (must_escape(b) || extra(b)) {
            let escape = [b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]];
            // Writing to a String or a counter cannot fail.
            let _ = out.write_str(&s[run..i]);
            let _ = out.write_str(std::str::from_utf8(&escape).expect("ASCII"));
            run = i + 1;
        }
    }
    let _ = out.write_str(&s[run..]);
}

/// Percent-encodes one field so it contains no space, CR, LF or bare `%`.
pub fn encode_field(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    encode_into(&mut out, s, |_| false);
    out
}

/// Decodes one percent-encoded field; the result must be valid UTF-8.
pub fn decode_field(field: &str) -> Result<String, ParseError> {
    if !field.contains('%') {
        return Ok(field.to_owned());
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(|| bad_escape(field))?;
            let hi = hex_val(hex[0]).ok_or_else(|| bad_escape(field))?;
            let lo = hex_val(hex[1]).ok_or_else(|| bad_escape(field))?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        ParseError::new(
            ErrorCode::BadMessage,
            format!("field {field:?} decodes to invalid UTF-8"),
        )
    })
}

fn bad_escape(field: &str) -> ParseError {
    ParseError::new(
        ErrorCode::BadMessage,
        format!("bad percent-escape in field {field:?} (expected %XX with two hex digits)"),
    )
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_only_framing_bytes() {
        assert_eq!(encode_field("tcp://h:1/a b%c\r\n"), "tcp://h:1/a%20b%25c%0D%0A");
        assert_eq!(encode_field("héllo wörld"), "héllo%20wörld");
        assert_eq!(decode_field("a%20b%2fc").unwrap(), "a b/c");
    }

    #[test]
    fn rejects_bad_escapes() {
        for bad in ["%", "%2", "%zz", "a%g0", "%ff"] {
            assert!(decode_field(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn roundtrip(s in ".*") {
            let enc = encode_field(&s);
            prop_assert!(!enc.contains(' ') && !enc.contains('\n') && !enc.contains('\r'));
            prop_assert_eq!(decode_field(&enc).unwrap(), s);
        }
    }
}
