//! Accept loops for the line-protocol listeners, and the back-off every
//! accept loop (HTTP too) uses when accepting fails.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rarangi_proto::{ErrorCode, Message};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio_util::sync::CancellationToken;

use super::connection::accepted;
use super::limits::Refusal;
use super::{Credentials, Origin};
use crate::Shared;

/// A listening socket of the line protocol.
pub(crate) enum Listener {
    /// The TCP port.
    Tcp(TcpListener),
    /// The Unix socket.
    Unix(UnixListener),
}

impl Listener {
    /// Accepts one connection and starts serving it (or refuses it, over a
    /// connection cap).
    async fn accept_one(&self, shared: &Arc<Shared>) -> std::io::Result<()> {
        match self {
            Listener::Tcp(l) => {
                let (s, addr) = l.accept().await?;
                match shared.gate.admit(addr.ip(), true) {
                    Ok(permit) => {
                        let _ = s.set_nodelay(true);
                        match &shared.tls {
                            None => {
                                let conn = accepted(
                                    s,
                                    Origin::Tcp(addr),
                                    Credentials::Plain,
                                    Some(permit),
                                    shared.clone(),
                                );
                                tokio::spawn(conn);
                            }
                            Some(_) => {
                                tokio::spawn(handshake(s, addr, permit, shared.clone()));
                            }
                        }
                    }
                    Err(why) => refuse_line(&s, &why),
                }
            }
            // The Unix socket is not capped: local services and operators
            // must get in when remote clients have taken their share.
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                let who = s.peer_cred().ok().map(|c| (c.uid(), c.gid()));
                tokio::spawn(accepted(
                    s,
                    Origin::Unix,
                    Credentials::Local(who),
                    None,
                    shared.clone(),
                ));
            }
        }
        Ok(())
    }

    /// Accepts a waiting connection and closes it at once.
    async fn shed(&self) -> std::io::Result<()> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(drop),
            Listener::Unix(l) => l.accept().await.map(drop),
        }
    }
}

/// Runs the TLS handshake of an accepted connection (within the handshake
/// timeout), then serves it with the certificate it presented. A client
/// speaking plain text or holding a certificate of another CA is refused
/// here, and logged with its address.
async fn handshake(
    s: TcpStream,
    addr: std::net::SocketAddr,
    permit: super::limits::Permit,
    shared: Arc<Shared>,
) {
    let Some(tls) = &shared.tls else { return };
    let timeout = shared.settings.handshake_timeout;
    let stream = match tokio::time::timeout(timeout, tls.accept(s)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::warn!(peer = %addr, error = %e, "refused a connection: TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::warn!(peer = %addr, "refused a connection: no TLS handshake within {} ms", timeout.as_millis());
            return;
        }
    };
    let cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned());
    accepted(
        stream,
        Origin::Tcp(addr),
        Credentials::Tls(cert),
        Some(permit),
        shared,
    )
    .await;
}

/// Tells a refused line-protocol connection why, without waiting on it.
fn refuse_line(s: &TcpStream, why: &Refusal) {
    tracing::debug!(reason = %why, "refused a connection");
    let line = format!("{}\n", Message::error(ErrorCode::Limit, why.to_string()).encode());
    let _ = s.try_write(line.as_bytes());
}

/// Accepts connections until `stop`.
pub(crate) async fn accept_loop(listener: Listener, shared: Arc<Shared>, stop: CancellationToken) {
    let what = match listener {
        Listener::Tcp(_) => "line protocol",
        Listener::Unix(_) => "Unix socket",
    };
    let mut errors = AcceptErrors::new(what);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept_one(&shared) => r,
        };
        match accepted {
            Ok(()) => errors.ok(),
            Err(e) => errors.failed(&e, || listener.shed()).await,
        }
    }
}

/// Shortest and longest pause after a failed accept.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Failed accepts (out of descriptors, say): back off instead of spinning,
/// log once per burst, and keep a spare descriptor to give up for a moment
/// so the connection waiting in the backlog can be accepted and closed
/// rather than fail every accept after it.
pub(crate) struct AcceptErrors {
    what: &'static str,
    errors: u64,
    delay: Duration,
    spare: Option<std::fs::File>,
}

impl AcceptErrors {
    /// For the listener named `what` (in logs).
    pub(crate) fn new(what: &'static str) -> Self {
        Self {
            what,
            errors: 0,
            delay: BACKOFF_MIN,
            spare: spare(),
        }
    }

    /// An accept succeeded: a burst of errors, if any, has ended.
    pub(crate) fn ok(&mut self) {
        if self.errors > 0 {
            tracing::info!(listener = self.what, errors = self.errors, "accepting again");
            self.errors = 0;
            self.delay = BACKOFF_MIN;
        }
    }

    /// An accept failed with `e`; `shed` accepts one connection and closes it.
    pub(crate) async fn failed<F>(&mut self, e: &std::io::Error, shed: impl FnOnce() -> F)
    where
        F: Future<Output = std::io::Result<()>>,
    {
        self.errors += 1;
        if self.errors == 1 {
            tracing::warn!(listener = self.what, error = %e, "accept failed; backing off (logged once per burst)");
        }
        let errno = rustix::io::Errno::from_io_error(e);
        if matches!(errno, Some(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE)) {
            if let Some(held) = self.spare.take() {
                drop(held);
                let _ = tokio::time::timeout(BACKOFF_MIN, shed()).await;
                self.spare = spare();
            }
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
    }
}

fn spare() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// Binds the Unix socket, taking over a stale one; why not (logged) if
/// that is impossible: registration still works from loopback.
pub(crate) fn bind_unix(path: &Path) -> Result<UnixListener, String> {
    let none = |why: String| {
        tracing::warn!(path = %path.display(), "no Unix socket: {why} (registration still works from loopback)");
        why
    };
    if let Some(dir) = path.parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return Err(none(format!(
                "cannot create its directory {}: {e}",
                dir.display()
            )));
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(none("another catalogue owns it".to_owned()));
        }
        let _ = std::fs::remove_file(path);
    }
    UnixListener::bind(path).map_err(|e| none(e.to_string()))
}
