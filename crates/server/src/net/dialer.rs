//! Dialing configured peers: connect, check the WELCOME (DESIGN §3), run the
//! link, and redial with back-off. Later peer sources (DNS SRV, Kubernetes,
//! the beacon) feed addresses to the same loop.

use std::sync::Arc;
use std::time::Duration;

use rarangi_core::{check_welcome, WelcomeVerdict};
use rarangi_proto::{Backoff, CatalogueUri, ParseError};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::connection::{lines, read_line, run_peer, Read};
use crate::Shared;

/// A link that stayed up this long resets the back-off.
const STABLE_LINK: Duration = Duration::from_secs(30);

/// Why a dial attempt failed (retried with back-off).
#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error("cannot connect")]
    Connect(#[source] std::io::Error),
    #[error("connect timed out after 10 s")]
    ConnectTimeout,
    #[error("closed before the handshake ended")]
    Closed,
    #[error("no WELCOME within 10 s")]
    NoWelcome,
    #[error("bad WELCOME")]
    BadWelcome(#[source] ParseError),
    #[error("expected WELCOME, got {0}")]
    NotWelcome(&'static str),
    #[error("TLS handshake failed")]
    Tls(#[source] std::io::Error),
    #[error("its certificate does not name {host}, the host of the URI {peer} it claims")]
    NotNamed { peer: CatalogueUri, host: String },
}

/// Keeps a configured peer linked: dial, run, back off, repeat.
pub(crate) async fn dial_loop(addr: String, shared: Arc<Shared>, stop: CancellationToken) {
    dial_until(addr, shared, stop, CancellationToken::new()).await;
}

/// As [`dial_loop`] until `retire` is cancelled (a discovered address that
/// is no longer listed): a link already up runs until it ends, then the
/// address is not dialled again.
pub(crate) async fn dial_until(
    addr: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
    retire: CancellationToken,
) {
    let mut backoff = Backoff::links();
    let mut expected: Option<CatalogueUri> = None;
    let mut failures = 0u32;
    loop {
        if retire.is_cancelled() {
            tracing::info!(peer = %addr, "no longer discovered; not dialing it again");
            return;
        }
        let started = crate::clock::instant();
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            o = dial(&addr, expected.as_ref(), shared.clone()) => o,
        };
        match outcome {
            DialOutcome::Ended(peer) => {
                expected = Some(peer);
                failures = 0;
                if started.elapsed() > STABLE_LINK {
                    backoff.reset();
                }
            }
            DialOutcome::Failed(why) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(10) {
                    let error = crate::error_chain(&why);
                    tracing::warn!(peer = %addr, %error, attempts = failures, "cannot reach peer; retrying with back-off");
                }
            }
            DialOutcome::EnvMismatch { peer, theirs } => {
                tracing::error!(
                    peer = %addr, uri = %peer, theirs = %theirs, ours = %shared.settings.env,
                    "environment mismatch: peer {addr} is {theirs:?}, we are {:?}; not reconnecting until restart",
                    shared.settings.env
                );
                return;
            }
            DialOutcome::SelfConnection => {
                tracing::warn!(peer = %addr, "{addr} is this catalogue itself; not dialing it");
                return;
            }
            DialOutcome::WrongIdentity { expected: exp, got } => {
                tracing::warn!(peer = %addr, expected = %exp, got = %got, "a different catalogue answered; closed");
                expected = None;
            }
        }
        let delay = backoff.next_delay(rand::random());
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = retire.cancelled() => {}
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Dials a peer and runs the link while it lasts. Returns how it ended.
async fn dial(addr: &str, expected: Option<&CatalogueUri>, shared: Arc<Shared>) -> DialOutcome {
    let connect = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(addr)).await;
    let stream = match connect {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return DialOutcome::Failed(DialError::Connect(e)),
        Err(_) => return DialOutcome::Failed(DialError::ConnectTimeout),
    };
    let _ = stream.set_nodelay(true);
    let Some(tls) = &shared.tls else {
        return handshake(stream, None, expected, shared).await;
    };
    let host = super::tls::host_of(addr).to_owned();
    let stream = match tokio::time::timeout(Duration::from_secs(10), tls.connect(&host, stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return DialOutcome::Failed(DialError::Tls(e)),
        Err(_) => return DialOutcome::Failed(DialError::Tls(std::io::ErrorKind::TimedOut.into())),
    };
    let cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned());
    handshake(stream, cert, expected, shared).await
}

/// WELCOMEs exchanged on a dialed connection, then the link. With TLS,
/// `cert` is the acceptor's verified certificate: it must also name the
/// host of the URI the acceptor claims.
async fn handshake<S>(
    stream: S,
    cert: Option<rustls::pki_types::CertificateDer<'static>>,
    expected: Option<&CatalogueUri>,
    shared: Arc<Shared>,
) -> DialOutcome
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (r, mut w) = tokio::io::split(stream);
    let mut lines = lines(r, shared.settings.max_line);
    let first = match tokio::time::timeout(Duration::from_secs(10), read_line(&mut lines)).await {
        Ok(Read::Line(parsed)) => parsed,
        Ok(_) => return DialOutcome::Failed(DialError::Closed),
        Err(_) => return DialOutcome::Failed(DialError::NoWelcome),
    };
    let msg = match first {
        Ok(m) => m,
        Err(e) => return DialOutcome::Failed(DialError::BadWelcome(e)),
    };
    match check_welcome(&shared.core_config, expected, &msg) {
        WelcomeVerdict::Link { peer, .. } => {
            let host = super::tls::host_of(peer.addr());
            if cert.as_ref().is_some_and(|c| !super::tls::names_host(c, host)) {
                let host = host.to_owned();
                return DialOutcome::Failed(DialError::NotNamed { peer, host });
            }
            if w.write_all(format!("{}\n", shared.welcome.encode()).as_bytes())
                .await
                .is_err()
            {
                return DialOutcome::Failed(DialError::Closed);
            }
            run_peer(lines, w, peer.clone(), true, shared).await;
            DialOutcome::Ended(peer)
        }
        WelcomeVerdict::EnvMismatch { peer, theirs } => DialOutcome::EnvMismatch { peer, theirs },
        WelcomeVerdict::SelfConnection => DialOutcome::SelfConnection,
        WelcomeVerdict::WrongIdentity { expected, got } => DialOutcome::WrongIdentity { expected, got },
        WelcomeVerdict::NotWelcome => DialOutcome::Failed(DialError::NotWelcome(msg.kind().keyword())),
    }
}

/// How one dial attempt ended.
enum DialOutcome {
    /// A link was up and has ended.
    Ended(CatalogueUri),
    /// Could not connect or handshake.
    Failed(DialError),
    /// The peer is of another environment: never redial.
    EnvMismatch { peer: CatalogueUri, theirs: String },
    /// We dialed ourselves: never redial.
    SelfConnection,
    /// Someone else answered at that address.
    WrongIdentity {
        expected: CatalogueUri,
        got: CatalogueUri,
    },
}
