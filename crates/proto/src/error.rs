//! ERROR codes and parse failures.

use std::fmt;

/// The short kebab-case word that opens an ERROR message (DESIGN §2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The line could not be parsed, or the message is unknown.
    BadMessage,
    /// The peer belongs to another environment.
    EnvMismatch,
    /// The line exceeded the maximum length; the connection is closed.
    LineTooLong,
    /// A SUB_SERV regular expression did not compile.
    BadRegex,
    /// The sender may not send this message on this connection.
    NotAllowed,
    /// A per-connection limit was reached.
    Limit,
    /// A timestamp was too far ahead of the local clock.
    ClockSkew,
    /// A catalogue or service URI was malformed.
    BadUri,
    /// Any other code received from a peer (kept so it can be logged).
    Other(String),
}

impl ErrorCode {
    /// The wire form of the code.
    pub fn as_str(&self) -> &str {
        match self {
            Self::BadMessage => "bad-message",
            Self::EnvMismatch => "env-mismatch",
            Self::LineTooLong => "line-too-long",
            Self::BadRegex => "bad-regex",
            Self::NotAllowed => "not-allowed",
            Self::Limit => "limit",
            Self::ClockSkew => "clock-skew",
            Self::BadUri => "bad-uri",
            Self::Other(s) => s,
        }
    }

    /// Parses the wire form; unknown words become [`ErrorCode::Other`].
    pub fn from_wire(s: &str) -> Self {
        match s {
            "bad-message" => Self::BadMessage,
            "env-mismatch" => Self::EnvMismatch,
            "line-too-long" => Self::LineTooLong,
            "bad-regex" => Self::BadRegex,
            "not-allowed" => Self::NotAllowed,
            "limit" => Self::Limit,
            "clock-skew" => Self::ClockSkew,
            "bad-uri" => Self::BadUri,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a line was refused, with the ERROR code and text to send back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {text}")]
pub struct ParseError {
    /// The ERROR code to answer with.
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub text: String,
}

impl ParseError {
    /// A parse error with the given code and text.
    pub fn new(code: ErrorCode, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
        }
    }

    /// The ERROR message to send to whoever sent the bad line.
    pub fn to_message(&self) -> crate::Message {
        crate::Message::Error {
            code: self.code.clone(),
            text: self.text.clone(),
        }
    }
}
