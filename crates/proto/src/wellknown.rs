//! Well-known ports and socket paths (DESIGN §1), shared by the daemon,
//! the client library and the command line so they agree with no
//! configuration.

use std::path::PathBuf;

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

/// What the default paths depend on: the effective user and its XDG
/// variables. Root uses the system directories; anyone else their own, even
/// where the system directories exist (root may have run once there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDirs {
    /// The effective user id.
    pub euid: u32,
    /// `$XDG_RUNTIME_DIR`.
    pub runtime_dir: Option<PathBuf>,
    /// `$XDG_STATE_HOME`.
    pub state_home: Option<PathBuf>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// The system's temporary directory.
    pub temp_dir: PathBuf,
}

impl UserDirs {
    /// This process's effective user and environment.
    pub fn current() -> Self {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            euid: rustix::process::geteuid().as_raw(),
            runtime_dir: var("XDG_RUNTIME_DIR"),
            state_home: var("XDG_STATE_HOME"),
            home: var("HOME"),
            temp_dir: std::env::temp_dir(),
        }
    }

    /// Directory of the Unix sockets: `/run/rarangi` for root, else
    /// `$XDG_RUNTIME_DIR/rarangi`, else `TMP/rarangi-UID`.
    pub fn socket_dir(&self) -> PathBuf {
        if self.euid == 0 {
            return PathBuf::from("/run/rarangi");
        }
        match &self.runtime_dir {
            Some(d) => d.join("rarangi"),
            None => self.temp_dir.join(format!("rarangi-{}", self.euid)),
        }
    }

    /// Directory of durable state: `/var/lib/rarangi` for root, else
    /// `$XDG_STATE_HOME/rarangi`, else `~/.local/state/rarangi`, else
    /// `TMP/rarangi-UID/state`.
    pub fn state_dir(&self) -> PathBuf {
        if self.euid == 0 {
            return PathBuf::from("/var/lib/rarangi");
        }
        match (&self.state_home, &self.home) {
            (Some(s), _) => s.join("rarangi"),
            (None, Some(h)) => h.join(".local/state/rarangi"),
            (None, None) => self.temp_dir.join(format!("rarangi-{}", self.euid)).join("state"),
        }
    }

    /// The default Unix socket of a side: `SOCKET_DIR/ENV-SIDE.sock`.
    pub fn unix_socket(&self, environment: &str, side: Side) -> PathBuf {
        self.socket_dir()
            .join(format!("{environment}-{}.sock", side.as_str()))
    }

    /// The default data directory of a side: `STATE_DIR/ENV-SIDE`.
    pub fn data_dir(&self, environment: &str, side: Side) -> PathBuf {
        self.state_dir().join(format!("{environment}-{}", side.as_str()))
    }
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
    }

    #[test]
    fn default_paths_follow_the_effective_user() {
        let user = UserDirs {
            euid: 1000,
            runtime_dir: Some("/run/user/1000".into()),
            state_home: None,
            home: Some("/home/u".into()),
            temp_dir: "/tmp".into(),
        };
        assert_eq!(
            user.unix_socket("staging", Side::B),
            PathBuf::from("/run/user/1000/rarangi/staging-b.sock")
        );
        assert_eq!(
            user.data_dir("staging", Side::B),
            PathBuf::from("/home/u/.local/state/rarangi/staging-b")
        );
        let xdg = UserDirs {
            state_home: Some("/s".into()),
            ..user.clone()
        };
        assert_eq!(
            xdg.data_dir("testing", Side::A),
            PathBuf::from("/s/rarangi/testing-a")
        );
        let bare = UserDirs {
            euid: 7,
            temp_dir: "/tmp".into(),
            ..UserDirs::default()
        };
        assert_eq!(
            bare.unix_socket("production", Side::A),
            PathBuf::from("/tmp/rarangi-7/production-a.sock")
        );
        assert_eq!(
            bare.data_dir("production", Side::A),
            PathBuf::from("/tmp/rarangi-7/state/production-a")
        );
        // Root uses the system directories whatever its variables say.
        let root = UserDirs { euid: 0, ..xdg };
        assert_eq!(
            root.unix_socket("staging", Side::A),
            PathBuf::from("/run/rarangi/staging-a.sock")
        );
        assert_eq!(
            root.data_dir("staging", Side::A),
            PathBuf::from("/var/lib/rarangi/staging-a")
        );
    }
}
