//! Well-known ports and socket paths (DESIGN §1), shared by the daemon,
//! the client library and the command line so they agree with no
//! configuration.

use std::path::{Path, PathBuf};

/// Which of the two catalogues of an environment on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The first catalogue (base port).
    A,
    /// The second catalogue (base port + 1).
    B,
}

impl Side {
    /// Both sides, A first: the order clients try them in.
    pub const BOTH: [Side; 2] = [Side::A, Side::B];

    /// "a" or "b".
    pub fn as_str(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }

    fn offset(self) -> u16 {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

/// The base port of a well-known environment: production 4760, staging
/// 4770, testing 4780, development 4790. Other environments have none.
pub fn base_port(environment: &str) -> Option<u16> {
    match environment {
        "production" => Some(4760),
        "staging" => Some(4770),
        "testing" => Some(4780),
        "development" => Some(4790),
        _ => None,
    }
}

/// The line-protocol port of a side (B, B+1).
pub fn line_port(environment: &str, side: Side) -> Option<u16> {
    base_port(environment).map(|b| b + side.offset())
}

/// The HTTP API port of a side (B+2, B+3).
pub fn http_port(environment: &str, side: Side) -> Option<u16> {
    base_port(environment).map(|b| b + 2 + side.offset())
}

/// The DNS port of a side (B+4, B+5).
pub fn dns_port(environment: &str, side: Side) -> Option<u16> {
    base_port(environment).map(|b| b + 4 + side.offset())
}

/// The default Unix socket of a side: `$XDG_RUNTIME_DIR/rarangi/ENV-SIDE.sock`
/// when a runtime directory is given, else `/run/rarangi/ENV-SIDE.sock`.
pub fn unix_socket_path(runtime_dir: Option<&Path>, environment: &str, side: Side) -> PathBuf {
    let dir = runtime_dir.map_or_else(|| PathBuf::from("/run/rarangi"), |d| d.join("rarangi"));
    dir.join(format!("{environment}-{}.sock", side.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(line_port("production", Side::A), Some(4760));
        assert_eq!(line_port("development", Side::B), Some(4791));
        assert_eq!(http_port("staging", Side::A), Some(4772));
        assert_eq!(dns_port("testing", Side::B), Some(4785));
        assert_eq!(line_port("qa-2", Side::A), None);
        assert_eq!(
            unix_socket_path(Some(Path::new("/run/user/1000")), "staging", Side::B),
            PathBuf::from("/run/user/1000/rarangi/staging-b.sock")
        );
    }
}
