//! One connection: WELCOME, classification (catalogue or client), a reader
//! that turns lines into driver events, and a writer fed by a watched queue.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rarangi_core::{check_welcome, WelcomeVerdict};
use rarangi_proto::codec::{CodecError, LineCodec};
use rarangi_proto::{CatalogueUri, ErrorCode, Message, ParseError};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::Origin;
use crate::driver::Event;
use crate::Shared;

/// Lines queued for a peer catalogue before the link is dropped.
const PEER_QUEUE: usize = 256 * 1024;

/// The driver's handle on a connection: an unbounded queue whose backlog
/// and progress the driver watches, so a reader that is slow but moving
/// (a big snapshot) is served and one that is stuck is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Handle {
    tx: mpsc::UnboundedSender<Out>,
    pub(crate) close: CancellationToken,
    pending: Arc<AtomicUsize>,
    progress_ms: Arc<AtomicU64>,
    limit: usize,
}

/// What a connection's writer is given.
#[derive(Debug)]
enum Out {
    /// One line, without its newline.
    Line(String),
    /// Several lines, each with its newline, shared between connections:
    /// a subscription snapshot encoded once.
    Block(Arc<str>, usize),
}

impl Out {
    fn lines(&self) -> usize {
        match self {
            Out::Line(_) => 1,
            Out::Block(_, n) => *n,
        }
    }
}

/// How long a connection over its backlog limit may go without writing
/// anything before it is dropped.
const STALL_MS: u64 = 1000;
/// A backlog this many times the limit is dropped even if moving.
const HARD_FACTOR: usize = 64;

/// Why a line could not be queued: the caller closes the connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// The reader is stuck or far behind.
    #[error("{pending} lines queued, nothing written for {idle_ms} ms")]
    Stalled { pending: usize, idle_ms: u64 },
    /// The connection's writer is gone.
    #[error("connection closed")]
    Closed,
}

impl Handle {
    /// Queues a line.
    pub(crate) fn send(&self, line: String) -> Result<(), SendError> {
        self.queue(Out::Line(line))
    }

    /// Queues `lines` lines already encoded, each ending in a newline.
    pub(crate) fn send_block(&self, text: Arc<str>, lines: usize) -> Result<(), SendError> {
        self.queue(Out::Block(text, lines))
    }

    fn queue(&self, out: Out) -> Result<(), SendError> {
        self.pending.fetch_add(out.lines(), Ordering::Relaxed);
        self.stalled().map_or(Ok(()), Err)?;
        self.tx.send(out).map_err(|_| SendError::Closed)
    }

    /// Why this connection should be dropped, if it should: over its
    /// backlog limit with no progress for a while, or far over it.
    pub(crate) fn stalled(&self) -> Option<SendError> {
        let pending = self.pending.load(Ordering::Relaxed);
        if pending <= self.limit {
            return None;
        }
        let idle_ms = crate::clock::now_ms().saturating_sub(self.progress_ms.load(Ordering::Relaxed));
        (idle_ms >= STALL_MS || pending > self.limit.saturating_mul(HARD_FACTOR))
            .then_some(SendError::Stalled { pending, idle_ms })
    }
}

/// A connection's incoming lines.
pub(super) type Lines<R> = FramedRead<R, LineCodec>;

/// Frames `r` into lines of at most `max` bytes.
pub(super) fn lines<R: AsyncRead>(r: R, max: usize) -> Lines<R> {
    FramedRead::new(r, LineCodec::new(max))
}

/// What reading one line gave.
pub(super) enum Read {
    Line(Result<Message, ParseError>),
    TooLong,
    Closed,
}

/// The next line.
pub(super) async fn read_line<R: AsyncRead + Unpin>(lines: &mut Lines<R>) -> Read {
    match lines.next().await {
        Some(Ok(parsed)) => Read::Line(parsed),
        Some(Err(CodecError::TooLong { .. })) => Read::TooLong,
        Some(Err(_)) | None => Read::Closed,
    }
}

fn too_long(max: usize) -> String {
    Message::error(
        ErrorCode::LineTooLong,
        format!("line exceeds the limit of {max} bytes; closing"),
    )
    .encode()
}

/// Serves an accepted connection: we speak first.
pub(super) async fn accepted<S>(stream: S, origin: Origin, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, mut w) = tokio::io::split(stream);
    let mut lines = lines(r, shared.settings.max_line);
    if w.write_all(format!("{}\n", shared.welcome.encode()).as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let first = match read_line(&mut lines).await {
        Read::Line(parsed) => parsed,
        Read::TooLong => {
            let _ = w
                .write_all(format!("{}\n", too_long(shared.settings.max_line)).as_bytes())
                .await;
            return;
        }
        Read::Closed => return,
    };
    let parsed = first;
    if let Ok(msg @ Message::Welcome { .. }) = &parsed {
        match check_welcome(&shared.core_config, None, msg) {
            WelcomeVerdict::Link { peer, .. } => {
                run_peer(lines, w, peer, false, shared).await;
            }
            WelcomeVerdict::EnvMismatch { peer, theirs } => {
                let text = format!(
                    "environment mismatch: {peer} is {theirs:?}, this catalogue is {:?}; not linking",
                    shared.settings.env
                );
                tracing::error!(peer = %peer, theirs = %theirs, ours = %shared.settings.env, "refused a catalogue of another environment");
                let _ = w
                    .write_all(
                        format!("{}\n", Message::error(ErrorCode::EnvMismatch, text).encode()).as_bytes(),
                    )
                    .await;
            }
            WelcomeVerdict::SelfConnection => tracing::debug!("closed a connection from ourselves"),
            WelcomeVerdict::WrongIdentity { .. } | WelcomeVerdict::NotWelcome => {}
        }
        return;
    }
    let may_register = may_register(origin, &shared.settings.allow_register);
    run_client(lines, w, parsed, may_register, shared).await;
}

/// REG_SERV is accepted on the Unix socket, from loopback, and from the
/// networks of `--allow-register` (DESIGN §3).
fn may_register(origin: Origin, allow: &[ipnet::IpNet]) -> bool {
    match origin {
        Origin::Unix => true,
        Origin::Tcp(addr) => {
            let ip = match addr.ip() {
                std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(std::net::IpAddr::V6(v6), Into::into),
                v4 => v4,
            };
            ip.is_loopback() || allow.iter().any(|n| n.contains(&ip))
        }
    }
}

/// The writer half: drains the queue, sends heartbeats on idle links, and
/// on close writes what is still queued before shutting down.
async fn writer<W: AsyncWrite + Unpin>(
    w: W,
    mut rx: mpsc::UnboundedReceiver<Out>,
    heartbeat: Option<Duration>,
    close: CancellationToken,
    progress: (Arc<AtomicUsize>, Arc<AtomicU64>),
    _done: mpsc::Sender<()>,
) {
    let mut w = BufWriter::new(w);
    let mut beat = tokio::time::interval(heartbeat.unwrap_or(Duration::from_secs(3600)));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await;
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(line) => match write_batch(&mut w, line, &mut rx).await {
                    Ok(n) => {
                        progress.0.fetch_sub(n, Ordering::Relaxed);
                        progress.1.store(crate::clock::now_ms(), Ordering::Relaxed);
                    }
                    Err(_) => break,
                },
                None => break,
            },
            _ = beat.tick(), if heartbeat.is_some() => {
                if w.write_all(b"1\n").await.is_err() || w.flush().await.is_err() {
                    break;
                }
            }
            _ = close.cancelled() => {
                while let Ok(out) = rx.try_recv() {
                    if write_out(&mut w, &out).await.is_err() {
                        break;
                    }
                }
                break;
            }
        }
    }
    let _ = w.flush().await;
    let _ = w.shutdown().await;
    close.cancel();
}

/// Writes a line and whatever else is queued (up to a batch), flushes, and
/// returns how many lines went out.
async fn write_batch<W: AsyncWrite + Unpin>(
    w: &mut BufWriter<W>,
    first: Out,
    rx: &mut mpsc::UnboundedReceiver<Out>,
) -> std::io::Result<usize> {
    let mut n = write_out(w, &first).await?;
    while n < 1024 {
        let Ok(out) = rx.try_recv() else { break };
        n += write_out(w, &out).await?;
    }
    w.flush().await?;
    Ok(n)
}

/// Writes one queued item; returns how many lines it held.
async fn write_out<W: AsyncWrite + Unpin>(w: &mut BufWriter<W>, out: &Out) -> std::io::Result<usize> {
    match out {
        Out::Line(line) => {
            w.write_all(line.as_bytes()).await?;
            w.write_all(b"\n").await?;
        }
        Out::Block(text, _) => w.write_all(text.as_bytes()).await?,
    }
    Ok(out.lines())
}

fn spawn_writer<W: AsyncWrite + Unpin + Send + 'static>(
    w: W,
    queue: usize,
    heartbeat: Option<Duration>,
    shared: &Shared,
) -> Handle {
    let (tx, rx) = mpsc::unbounded_channel();
    let close = CancellationToken::new();
    let pending = Arc::new(AtomicUsize::new(0));
    let progress_ms = Arc::new(AtomicU64::new(crate::clock::now_ms()));
    let progress = (pending.clone(), progress_ms.clone());
    tokio::spawn(writer(
        w,
        rx,
        heartbeat,
        close.clone(),
        progress,
        shared.writers_done.clone(),
    ));
    Handle {
        tx,
        close,
        pending,
        progress_ms,
        limit: queue,
    }
}

/// A linked peer catalogue: heartbeats out, dead-after in.
pub(super) async fn run_peer<R, W>(
    mut lines: Lines<R>,
    w: W,
    peer: CatalogueUri,
    dialed_by_me: bool,
    shared: Arc<Shared>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    // Links read lines up to the protocol's peer limit whatever --max-line
    // says (rarangi_proto::limits); the codec holds no partial line here.
    *lines.decoder_mut() = LineCodec::new(rarangi_proto::PEER_MAX_LINE);
    let handle = spawn_writer(w, PEER_QUEUE, Some(shared.settings.heartbeat), &shared);
    let close = handle.close.clone();
    let tx = handle.clone();
    let conn = shared.next_conn();
    if shared
        .events
        .send(Event::PeerUp {
            conn,
            peer: peer.clone(),
            dialed_by_me,
            handle,
        })
        .await
        .is_err()
    {
        return;
    }
    let dead_after = shared.settings.dead_after;
    let reason = loop {
        let next = tokio::select! {
            _ = close.cancelled() => break "closed".to_owned(),
            r = tokio::time::timeout(dead_after, read_line(&mut lines)) => r,
        };
        match next {
            Err(_) => break format!("nothing received for {} ms", dead_after.as_millis()),
            Ok(Read::Closed) => break "connection closed".to_owned(),
            Ok(Read::TooLong) => {
                let _ = tx.send(too_long(rarangi_proto::PEER_MAX_LINE));
                break "peer sent an over-long line".to_owned();
            }
            Ok(Read::Line(parsed)) => match parsed {
                Ok(msg) => {
                    let line = Event::PeerLine {
                        conn,
                        peer: peer.clone(),
                        msg,
                    };
                    if shared.events.send(line).await.is_err() {
                        break "shutting down".to_owned();
                    }
                }
                Err(e) => {
                    tracing::warn!(peer = %peer, error = %e, "bad line from peer");
                    let _ = tx.send(e.to_message().encode());
                }
            },
        }
    };
    close.cancel();
    let _ = shared.events.send(Event::PeerGone { conn, peer, reason }).await;
}

/// A client connection: services and subscribers.
async fn run_client<R, W>(
    mut lines: Lines<R>,
    w: W,
    first: Result<Message, ParseError>,
    may_register: bool,
    shared: Arc<Shared>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let handle = spawn_writer(w, shared.settings.client_queue, None, &shared);
    let close = handle.close.clone();
    let tx = handle.clone();
    let conn = shared.next_conn();
    if shared
        .events
        .send(Event::ClientUp {
            conn,
            may_register,
            handle,
        })
        .await
        .is_err()
    {
        return;
    }
    let mut next = Some(first);
    loop {
        let parsed = match next.take() {
            Some(p) => p,
            None => {
                let read = tokio::select! {
                    _ = close.cancelled() => break,
                    r = read_line(&mut lines) => r,
                };
                match read {
                    Read::Line(parsed) => parsed,
                    Read::Closed => break,
                    Read::TooLong => {
                        let _ = tx.send(too_long(shared.settings.max_line));
                        break;
                    }
                }
            }
        };
        match parsed {
            Ok(Message::Welcome {
                environment,
                catalogue,
                ..
            }) => {
                // A catalogue's WELCOME after a client's first line, or a
                // client pretending to be one: refuse, loudly if foreign.
                let (code, text) = if environment != shared.settings.env {
                    (
                        ErrorCode::EnvMismatch,
                        format!(
                            "{catalogue} is {environment:?}, this catalogue is {:?}",
                            shared.settings.env
                        ),
                    )
                } else {
                    (
                        ErrorCode::NotAllowed,
                        "WELCOME must be the first line of a catalogue link".to_owned(),
                    )
                };
                let _ = tx.send(Message::error(code, text).encode());
                break;
            }
            Ok(msg) => {
                if shared.events.send(Event::ClientLine { conn, msg }).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                if tx.send(e.to_message().encode()).is_err() {
                    break;
                }
            }
        }
    }
    close.cancel();
    let _ = shared.events.send(Event::ClientGone { conn }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_register() {
        let allow: Vec<ipnet::IpNet> = vec!["10.1.0.0/16".parse().unwrap()];
        let tcp = |a: &str| Origin::Tcp(a.parse().unwrap());
        assert!(may_register(Origin::Unix, &[]));
        assert!(may_register(tcp("127.0.0.1:5"), &[]));
        assert!(may_register(tcp("[::1]:5"), &[]));
        assert!(may_register(tcp("[::ffff:127.0.0.1]:5"), &[]));
        assert!(!may_register(tcp("10.1.2.3:5"), &[]));
        assert!(may_register(tcp("10.1.2.3:5"), &allow));
        assert!(!may_register(tcp("10.2.0.1:5"), &allow));
        assert!(!may_register(tcp("[::ffff:10.2.0.1]:5"), &allow));
    }
}
