//! One connection: WELCOME, classification (catalogue or client), a reader
//! that turns lines into driver events, and a writer fed by a bounded queue.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rarangi_core::{check_welcome, WelcomeVerdict};
use rarangi_proto::{parse_line, CatalogueUri, ErrorCode, Message};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, FramedRead};
use tokio_util::sync::CancellationToken;

use crate::driver::Event;
use crate::Shared;

/// Lines queued for a client before it counts as too slow.
pub(crate) const CLIENT_QUEUE: usize = 16 * 1024;
/// Lines queued for a peer catalogue before the link is dropped.
pub(crate) const PEER_QUEUE: usize = 256 * 1024;

/// Where a connection came from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin {
    Unix,
    Tcp(SocketAddr),
}

/// The driver's handle on a connection.
#[derive(Debug)]
pub(crate) struct Handle {
    pub(crate) tx: mpsc::Sender<String>,
    pub(crate) close: CancellationToken,
}

type Lines<R> = FramedRead<R, AnyDelimiterCodec>;

fn lines<R: AsyncRead>(r: R, max: usize) -> Lines<R> {
    FramedRead::new(
        r,
        AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), Vec::new(), max),
    )
}

/// What reading one line gave.
enum Read {
    Line(Vec<u8>),
    TooLong,
    Closed,
}

async fn read_line<R: AsyncRead + Unpin>(lines: &mut Lines<R>) -> Read {
    match lines.next().await {
        Some(Ok(b)) => Read::Line(b.to_vec()),
        Some(Err(AnyDelimiterCodecError::MaxChunkLengthExceeded)) => Read::TooLong,
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
pub(crate) async fn accepted<S>(stream: S, origin: Origin, shared: Arc<Shared>)
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
        Read::Line(b) => b,
        Read::TooLong => {
            let _ = w
                .write_all(format!("{}\n", too_long(shared.settings.max_line)).as_bytes())
                .await;
            return;
        }
        Read::Closed => return,
    };
    let parsed = parse_line(&first);
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
    let may_register = match origin {
        Origin::Unix => true,
        Origin::Tcp(addr) => {
            let ip = match addr.ip() {
                std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(std::net::IpAddr::V6(v6), Into::into),
                v4 => v4,
            };
            ip.is_loopback() || shared.settings.allow_register.iter().any(|n| n.contains(&ip))
        }
    };
    run_client(lines, w, parsed, may_register, shared).await;
}

/// The writer half: drains the queue, sends heartbeats on idle links, and
/// on close writes what is still queued before shutting down.
async fn writer<W: AsyncWrite + Unpin>(
    w: W,
    mut rx: mpsc::Receiver<String>,
    heartbeat: Option<Duration>,
    close: CancellationToken,
    _done: mpsc::Sender<()>,
) {
    let mut w = BufWriter::new(w);
    let mut beat = tokio::time::interval(heartbeat.unwrap_or(Duration::from_secs(3600)));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await;
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(line) => {
                    if write_batch(&mut w, line, &mut rx).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            _ = beat.tick(), if heartbeat.is_some() => {
                if w.write_all(b"1\n").await.is_err() || w.flush().await.is_err() {
                    break;
                }
            }
            _ = close.cancelled() => {
                while let Ok(line) = rx.try_recv() {
                    if w.write_all(line.as_bytes()).await.is_err() || w.write_all(b"\n").await.is_err() {
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

async fn write_batch<W: AsyncWrite + Unpin>(
    w: &mut BufWriter<W>,
    first: String,
    rx: &mut mpsc::Receiver<String>,
) -> std::io::Result<()> {
    w.write_all(first.as_bytes()).await?;
    w.write_all(b"\n").await?;
    while let Ok(line) = rx.try_recv() {
        w.write_all(line.as_bytes()).await?;
        w.write_all(b"\n").await?;
    }
    w.flush().await
}

fn spawn_writer<W: AsyncWrite + Unpin + Send + 'static>(
    w: W,
    queue: usize,
    heartbeat: Option<Duration>,
    shared: &Shared,
) -> Handle {
    let (tx, rx) = mpsc::channel(queue);
    let close = CancellationToken::new();
    tokio::spawn(writer(
        w,
        rx,
        heartbeat,
        close.clone(),
        shared.writers_done.clone(),
    ));
    Handle { tx, close }
}

/// A linked peer catalogue: heartbeats out, dead-after in.
pub(crate) async fn run_peer<R, W>(
    mut lines: Lines<R>,
    w: W,
    peer: CatalogueUri,
    dialed_by_me: bool,
    shared: Arc<Shared>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let handle = spawn_writer(w, PEER_QUEUE, Some(shared.settings.heartbeat), &shared);
    let close = handle.close.clone();
    let tx = handle.tx.clone();
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
                let _ = tx.try_send(too_long(shared.settings.max_line));
                break "peer sent an over-long line".to_owned();
            }
            Ok(Read::Line(b)) => match parse_line(&b) {
                Ok(msg) => {
                    if shared.events.send(Event::PeerLine { conn, msg }).await.is_err() {
                        break "shutting down".to_owned();
                    }
                }
                Err(e) => {
                    tracing::warn!(peer = %peer, error = %e, "bad line from peer");
                    let _ = tx.try_send(e.to_message().encode());
                }
            },
        }
    };
    close.cancel();
    let _ = shared.events.send(Event::PeerGone { conn, reason }).await;
}

/// A client connection: services and subscribers.
async fn run_client<R, W>(
    mut lines: Lines<R>,
    w: W,
    first: Result<Message, rarangi_proto::ParseError>,
    may_register: bool,
    shared: Arc<Shared>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let handle = spawn_writer(w, CLIENT_QUEUE, None, &shared);
    let close = handle.close.clone();
    let tx = handle.tx.clone();
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
                    Read::Line(b) => parse_line(&b),
                    Read::Closed => break,
                    Read::TooLong => {
                        let _ = tx.try_send(too_long(shared.settings.max_line));
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
                let _ = tx.try_send(Message::error(code, text).encode());
                break;
            }
            Ok(msg) => {
                if shared.events.send(Event::ClientLine { conn, msg }).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                if tx.try_send(e.to_message().encode()).is_err() {
                    break;
                }
            }
        }
    }
    close.cancel();
    let _ = shared.events.send(Event::ClientGone { conn }).await;
}

/// Dials a peer and runs the link while it lasts. Returns how it ended.
pub(crate) async fn dial(addr: &str, expected: Option<&CatalogueUri>, shared: Arc<Shared>) -> DialOutcome {
    let connect = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(addr)).await;
    let stream = match connect {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return DialOutcome::Failed(e.to_string()),
        Err(_) => return DialOutcome::Failed("connect timed out after 10 s".into()),
    };
    let _ = stream.set_nodelay(true);
    let (r, mut w) = tokio::io::split(stream);
    let mut lines = lines(r, shared.settings.max_line);
    let first = match tokio::time::timeout(Duration::from_secs(10), read_line(&mut lines)).await {
        Ok(Read::Line(b)) => b,
        Ok(_) => return DialOutcome::Failed("closed before WELCOME".into()),
        Err(_) => return DialOutcome::Failed("no WELCOME within 10 s".into()),
    };
    let msg = match parse_line(&first) {
        Ok(m) => m,
        Err(e) => return DialOutcome::Failed(format!("bad WELCOME: {e}")),
    };
    match check_welcome(&shared.core_config, expected, &msg) {
        WelcomeVerdict::Link { peer, .. } => {
            if w.write_all(format!("{}\n", shared.welcome.encode()).as_bytes())
                .await
                .is_err()
            {
                return DialOutcome::Failed("closed during handshake".into());
            }
            run_peer(lines, w, peer.clone(), true, shared).await;
            DialOutcome::Ended(peer)
        }
        WelcomeVerdict::EnvMismatch { peer, theirs } => DialOutcome::EnvMismatch { peer, theirs },
        WelcomeVerdict::SelfConnection => DialOutcome::SelfConnection,
        WelcomeVerdict::WrongIdentity { expected, got } => DialOutcome::WrongIdentity { expected, got },
        WelcomeVerdict::NotWelcome => {
            DialOutcome::Failed(format!("expected WELCOME, got {}", msg.kind().keyword()))
        }
    }
}

/// How one dial attempt ended.
pub(crate) enum DialOutcome {
    /// A link was up and has ended.
    Ended(CatalogueUri),
    /// Could not connect or handshake.
    Failed(String),
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
