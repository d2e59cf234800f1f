//! What can go wrong while running catalogues for a test or a benchmark.

use std::fmt;
use std::path::PathBuf;

/// A harness failure, with its cause.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The binary could not be run.
    #[error("start {} (build it: cargo build --release -p rarangi)", bin.display())]
    Spawn {
        /// The binary tried.
        bin: PathBuf,
        /// Why it could not run.
        #[source]
        source: std::io::Error,
    },
    /// The catalogue did not accept connections before the deadline.
    #[error("catalogue {addr} did not start; its log:\n{log}")]
    NotStarted {
        /// Its line-protocol address.
        addr: String,
        /// What it logged.
        log: String,
    },
    /// The catalogue exited while starting.
    #[error("catalogue {addr} exited at start ({status}); its log:\n{log}")]
    Exited {
        /// Its line-protocol address.
        addr: String,
        /// How it exited.
        status: std::process::ExitStatus,
        /// What it logged.
        log: String,
    },
    /// The catalogue is not running (killed or stopped).
    #[error("catalogue {addr} is not running")]
    NotRunning {
        /// Its line-protocol address.
        addr: String,
    },
    /// A file, socket or process operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A system command (`ip`, `iptables`) failed.
    #[error("{what} failed: {detail}")]
    Command {
        /// The command line.
        what: String,
        /// Its exit status and what it wrote to stderr.
        detail: String,
    },
    /// Network namespaces cannot be made here (not root, no `ip` or
    /// `iptables`, no CAP_NET_ADMIN): tests that need them skip.
    #[error("network namespaces are not available here: {0}")]
    Unsupported(String),
    /// The catalogue refused or broke a line-protocol exchange.
    #[error("line protocol: {0}")]
    Client(#[from] rarangi_client::Error),
    /// The catalogue closed a connection in the middle of an answer.
    #[error("the catalogue closed the connection before the end of the snapshot")]
    Closed,
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

// Tests `unwrap()` these: show the message, with the log's line breaks.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)?;
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}
