//! Accept loops for the line-protocol listeners.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;

use super::connection::accepted;
use super::Origin;
use crate::Shared;

/// A listening socket of the line protocol.
pub(crate) enum Listener {
    /// The TCP port.
    Tcp(TcpListener),
    /// The Unix socket.
    Unix(UnixListener),
}

impl Listener {
    /// Accepts one connection and starts serving it.
    async fn accept_one(&self, shared: &Arc<Shared>) -> std::io::Result<()> {
        match self {
            Listener::Tcp(l) => {
                let (s, addr) = l.accept().await?;
                let _ = s.set_nodelay(true);
                tokio::spawn(accepted(s, Origin::Tcp(addr), shared.clone()));
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                tokio::spawn(accepted(s, Origin::Unix, shared.clone()));
            }
        }
        Ok(())
    }
}

/// Accepts connections until `stop`.
pub(crate) async fn accept_loop(listener: Listener, shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept_one(&shared) => r,
        };
        if let Err(e) = accepted {
            // Out of file descriptors, say: wait instead of spinning.
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Binds the Unix socket, taking over a stale one; None (logged) if that
/// is impossible: registration still works from loopback.
pub(crate) fn bind_unix(path: &Path) -> Option<UnixListener> {
    if let Some(dir) = path.parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!(path = %path.display(), error = %e, "no Unix socket (registration still works from loopback)");
            return None;
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            tracing::warn!(path = %path.display(), "another catalogue owns this Unix socket; not using it");
            return None;
        }
        let _ = std::fs::remove_file(path);
    }
    match UnixListener::bind(path) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "no Unix socket (registration still works from loopback)");
            None
        }
    }
}
