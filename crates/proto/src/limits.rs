//! The size rules every catalogue applies alike (DESIGN §9): every item
//! that can be accepted can be replicated over every link.
//!
//! An item is measured by its encoded replication line (percent-encoding
//! triples control bytes, spaces and `%`, so the raw size says little).
//! The rules are protocol constants, not settings: a catalogue refuses from
//! a peer exactly what it would refuse from a client, and every link reads
//! lines of [`PEER_MAX_LINE`], twice the largest item, whatever
//! `--max-line` (the client limit) says.

use crate::{Message, DEFAULT_MAX_LINE};

/// Longest encoded replication line of any item (SET_KEY and the rest),
/// in bytes without the LF: 2 MiB.
pub const MAX_ITEM_LINE: usize = 2 << 20;

/// Longest line every catalogue link accepts, whatever the local
/// `--max-line`: the item limit with as much again to spare (4 MiB), so a
/// receiver's limit is never below the largest item a sender accepts.
pub const PEER_MAX_LINE: usize = 2 * MAX_ITEM_LINE;

/// Longest encoded ADD_SERV line (64 KiB): services go to subscribers too,
/// which read lines of [`DEFAULT_MAX_LINE`] by default.
pub const MAX_SERVICE_LINE: usize = DEFAULT_MAX_LINE;

/// Most attributes one service may carry.
pub const MAX_ATTRS: usize = 64;

/// Configuration documents of at most this many bytes (512 KiB) always
/// fit [`MAX_ITEM_LINE`], whatever they contain; larger ones fit while
/// their encoded form does.
pub const DOCUMENT_GUARANTEED: usize = 512 * 1024;

// Links read twice the largest item: room to spare.
const _: () = assert!(PEER_MAX_LINE >= 2 * MAX_ITEM_LINE);

/// An item over a size rule: answered with `2 limit ...` or HTTP 413.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TooLarge {
    /// The encoded replication line is too long.
    #[error("its {kind} line would take {size} bytes, over the limit of {limit} bytes (control bytes, spaces and % count three times once encoded)")]
    Line {
        /// The replication message (`ADD_SERV`, `SET_KEY`).
        kind: &'static str,
        /// The encoded line's length.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A service with too many attributes.
    #[error("{count} attributes, over the limit of {limit} per service")]
    Attrs {
        /// Attributes given.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

/// Checks a replication message against the size rules. Before an item has
/// a version, pass [`crate::Ts::MAX`] so the check holds for any version.
pub fn check_item(msg: &Message) -> Result<(), TooLarge> {
    let limit = match msg {
        Message::AddServ { attrs, .. } => {
            if attrs.0.len() > MAX_ATTRS {
                return Err(TooLarge::Attrs {
                    count: attrs.0.len(),
                    limit: MAX_ATTRS,
                });
            }
            MAX_SERVICE_LINE
        }
        _ => MAX_ITEM_LINE,
    };
    let size = msg.encoded_len();
    if size > limit {
        return Err(TooLarge::Line {
            kind: msg.kind().keyword(),
            size,
            limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attrs, CatalogueUri, ServiceUri, Ts, MAX_URI_LEN};

    fn widest_catalogue() -> CatalogueUri {
        let host = "h".repeat(MAX_URI_LEN - "x-tvnetcs://:65535/".len());
        CatalogueUri::from_addr(&format!("{host}:65535")).unwrap()
    }

    fn set_key(value: String) -> Message {
        Message::SetKey {
            key: "k".repeat(1024),
            origin: widest_catalogue(),
            ts: Ts::MAX,
            value,
        }
    }

    #[test]
    fn encoded_len_is_the_length_of_the_line() {
        let msgs = [
            crate::parse_line(b"5 tcp://h:1/a%25b x-tvnetcs://c:1/ eu 12 zone=a%26b&w=1").unwrap(),
            set_key("{\"a\": \"\\u0001\x01 %\"}".into()),
            Message::Heartbeat,
        ];
        for m in msgs {
            assert_eq!(m.encoded_len(), m.encode().len(), "{m:?}");
        }
    }

    #[test]
    fn any_guaranteed_document_fits_even_if_every_byte_is_escaped() {
        let worst = "\u{1}".repeat(DOCUMENT_GUARANTEED);
        let msg = set_key(worst);
        assert!(msg.encoded_len() > 3 * DOCUMENT_GUARANTEED);
        check_item(&msg).unwrap();
        let over = set_key("x".repeat(MAX_ITEM_LINE));
        let e = check_item(&over).unwrap_err();
        assert!(e.to_string().contains("limit of 2097152 bytes"), "{e}");
    }

    #[test]
    fn services_are_bounded_in_attributes_and_line() {
        let service = ServiceUri::parse("tcp://h:1/orders").unwrap();
        let add = |attrs: Attrs| Message::AddServ {
            service: service.clone(),
            catalogue: widest_catalogue(),
            cluster: "c".repeat(64),
            ts: Ts::MAX,
            attrs,
        };
        let many: Attrs = (0..=MAX_ATTRS).map(|i| (format!("k{i}"), "v")).collect();
        assert!(matches!(
            check_item(&add(many)),
            Err(TooLarge::Attrs { count: 65, .. })
        ));
        // 22 KiB of control bytes in one attribute: 66 KiB encoded, so
        // over 64 KiB.
        let control: Attrs = [("x", "\u{1}".repeat(22 * 1024))].into_iter().collect();
        assert!(matches!(
            check_item(&add(control)),
            Err(TooLarge::Line { kind: "ADD_SERV", .. })
        ));
        let fine: Attrs = (0..MAX_ATTRS)
            .map(|i| (format!("k{i}"), "v".repeat(100)))
            .collect();
        check_item(&add(fine)).unwrap();
    }
}
