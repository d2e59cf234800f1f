//! The Rarangi line protocol: messages, codec, percent-encoding, URIs and
//! hybrid logical clock timestamps.
//!
//! Pure data and parsing: no I/O, no async runtime, no wall clock. The daemon
//! reads lines from sockets and hands them to [`parse_line`]; the core state
//! machine speaks [`Message`] values; [`Message::encode`] turns them back into
//! lines.

#![forbid(unsafe_code)]

mod attrs;
mod backoff;
#[cfg(feature = "codec")]
pub mod codec;
mod encoding;
mod error;
pub mod instance;
pub mod limits;
mod message;
mod names;
mod ts;
mod uri;
pub mod wellknown;

pub use attrs::Attrs;
pub use backoff::Backoff;
pub use encoding::{decode_field, encode_field};
pub use error::{ErrorCode, ParseError};
pub use limits::{check_item, TooLarge, MAX_ITEM_LINE, PEER_MAX_LINE};
pub use message::{parse_line, parse_line_with_limit, Bound, Departure, Message, MessageKind};
pub use names::{validate_cluster, validate_environment, validate_key, NameError};
pub use ts::{Hlc, SkewError, Ts};
pub use uri::{locality, nearest_first, CatalogueUri, ServiceUri, UriError, MAX_URI_LEN};

/// Default maximum length of one line in bytes, excluding the LF (DESIGN §2).
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;
