//! One connection: WELCOME, classification (catalogue or client) within
//! the handshake timeout, a reader that turns lines into driver events, and
//! a writer fed by a watched queue (`queue.rs`).

use std::sync::Arc;

use futures::StreamExt;
use rarangi_core::{check_welcome, Registration, WelcomeVerdict};
use rarangi_proto::codec::{CodecError, LineCodec};
use rarangi_proto::{CatalogueUri, ErrorCode, Message, MessageKind, ParseError};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::FramedRead;

use super::limits::{Permit, Refusal};
use super::queue::{spawn_writer, Budget};
use super::{Credentials, Origin};
use crate::driver::Event;
use crate::Shared;

/// Lines queued for a peer catalogue before the link is dropped.
const PEER_QUEUE: usize = 256 * 1024;

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
        Some(Ok(parsed)) => {
            if let Ok(msg) = &parsed {
                crate::metrics::metrics().received.count(msg.kind(), 0);
            }
            Read::Line(parsed)
        }
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

/// Serves an accepted connection: we speak first. `permit` is its place
/// under the connection caps (None on the Unix socket), held while it
/// lasts; one admitted beyond the total cap may only become a peer link.
/// `creds` say who the transport vouches for: they decide who may link
/// and who may register.
pub(super) async fn accepted<S>(
    stream: S,
    origin: Origin,
    creds: Credentials,
    permit: Option<Permit>,
    shared: Arc<Shared>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, mut w) = tokio::io::split(stream);
    let mut lines = lines(r, shared.settings.max_line);
    crate::metrics::metrics()
        .sent
        .count(MessageKind::Welcome, shared.welcome.encode().len() + 1);
    let timeout = shared.settings.handshake_timeout;
    let handshake = async {
        w.write_all(format!("{}\n", shared.welcome.encode()).as_bytes())
            .await
            .ok()?;
        Some(read_line(&mut lines).await)
    };
    let first = match tokio::time::timeout(timeout, handshake).await {
        Ok(Some(Read::Line(parsed))) => parsed,
        Ok(Some(Read::TooLong)) => {
            say_and_close(&mut w, too_long(shared.settings.max_line)).await;
            return;
        }
        Ok(Some(Read::Closed) | None) => return,
        Err(_) => {
            let text = format!("no first line within {} ms; closing", timeout.as_millis());
            tracing::debug!(?origin, "{text}");
            say_and_close(&mut w, Message::error(ErrorCode::Limit, text).encode()).await;
            return;
        }
    };
    let parsed = first;
    let overflow = permit.as_ref().is_some_and(Permit::is_overflow);
    if overflow && !matches!(parsed, Ok(Message::Welcome { .. })) {
        let why = Refusal::Total {
            limit: shared.gate.total(),
        };
        say_and_close(&mut w, Message::error(ErrorCode::Limit, why.to_string()).encode()).await;
        return;
    }
    if let Ok(msg @ Message::Welcome { .. }) = &parsed {
        match check_welcome(&shared.core_config, None, msg) {
            WelcomeVerdict::Link { peer, .. } => {
                if let Err(why) = may_link(origin, &creds, &peer, &shared.settings.peer_allow) {
                    tracing::warn!(?origin, claimed = %peer, "refused a catalogue link: {why}");
                    let refusal = Message::error(ErrorCode::NotAllowed, why).encode();
                    say_and_close(&mut w, refusal).await;
                    return;
                }
                run_peer(lines, w, peer, false, shared).await;
            }
            WelcomeVerdict::EnvMismatch { peer, theirs } => {
                let text = format!(
                    "environment mismatch: {peer} is {theirs:?}, this catalogue is {:?}; not linking",
                    shared.settings.env
                );
                // The same phrase as the dialing side's, so either log finds it.
                tracing::error!(
                    peer = %peer, from = %origin, theirs = %theirs, ours = %shared.settings.env,
                    "environment mismatch: refused a link from {peer} ({theirs:?}), this catalogue is {:?}",
                    shared.settings.env
                );
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
    let may_register = match &creds {
        Credentials::Plain => may_register(origin, &shared.settings.allow_register).into(),
        // Over TLS the certificate, not the address, decides.
        Credentials::Tls(cert) => crate::access::tls_registration(cert.is_some()),
        Credentials::Local(who) if local_may_register(*who, &shared.settings) => Registration::Allowed,
        Credentials::Local(_) => Registration::Refused(crate::access::REGISTER_RULE_LOCAL),
    };
    run_client(lines, w, parsed, origin, may_register, shared).await;
    drop(permit);
}

/// Registrations and withdrawals at debug, with the client's address (the
/// driver logs refusals the same way).
fn log_client_line(origin: Origin, conn: u64, msg: &Message) {
    match msg {
        Message::RegServ { service, .. } => {
            tracing::debug!(client = %origin, conn, service = %service, "registration")
        }
        Message::UnregServ { service } => {
            tracing::debug!(client = %origin, conn, service = %service, "withdrawal")
        }
        _ => {}
    }
}

/// Writes a last line to a connection being closed, without waiting long
/// on a reader that does not read.
async fn say_and_close<W: AsyncWrite + Unpin>(w: &mut W, line: String) {
    let say = async {
        w.write_all(format!("{line}\n").as_bytes()).await?;
        w.flush().await
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), say).await;
}

/// REG_SERV is accepted on the Unix socket, from loopback, and from the
/// networks of `--allow-register` (DESIGN §3).
fn may_register(origin: Origin, allow: &[ipnet::IpNet]) -> bool {
    match origin {
        Origin::Unix => true,
        Origin::Tcp(addr) => crate::access::may_register(addr.ip(), allow),
    }
}

/// Whether a connection that sent a WELCOME claiming `peer` may link: over
/// TLS its certificate must name the host of the URI it claims (so no
/// catalogue can speak as another); in plain text its address must be in
/// `--peer-allow`, when given.
fn may_link(
    origin: Origin,
    creds: &Credentials,
    peer: &CatalogueUri,
    allow: &[ipnet::IpNet],
) -> Result<(), String> {
    match (creds, origin) {
        (Credentials::Tls(None), _) => Err("a catalogue link needs a certificate signed by the CA".into()),
        (Credentials::Tls(Some(cert)), _) => {
            let host = super::tls::host_of(peer.addr());
            if super::tls::names_host(cert, host) {
                Ok(())
            } else {
                Err(format!(
                    "the certificate does not name {host}, the host of {peer}"
                ))
            }
        }
        (Credentials::Plain, Origin::Tcp(addr)) if !allow.is_empty() => {
            let ip = canonical(addr.ip());
            if allow.iter().any(|n| n.contains(&ip)) {
                Ok(())
            } else {
                Err(format!("{ip} is not in --peer-allow"))
            }
        }
        _ => Ok(()),
    }
}

/// On the Unix socket, `--register-uid`/`--register-gid` (when given) say
/// who may register; unknown credentials may not, then.
fn local_may_register(who: Option<(u32, u32)>, settings: &crate::Settings) -> bool {
    if settings.register_uid.is_empty() && settings.register_gid.is_empty() {
        return true;
    }
    who.is_some_and(|(uid, gid)| settings.register_uid.contains(&uid) || settings.register_gid.contains(&gid))
}

/// An IPv4 address mapped into IPv6 as the IPv4 address.
fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(std::net::IpAddr::V6(v6), Into::into),
        v4 => v4,
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
    let budget = Budget {
        lines: PEER_QUEUE,
        bytes: shared.settings.peer_queue_bytes,
        // A peer that does not read is a dead peer.
        idle: Some(shared.settings.dead_after),
    };
    let handle = spawn_writer(w, budget, Some(shared.settings.heartbeat), peer.as_str(), &shared);
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
    origin: Origin,
    may_register: Registration,
    shared: Arc<Shared>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let budget = Budget {
        lines: shared.settings.client_queue,
        bytes: shared.settings.client_queue_bytes,
        idle: None,
    };
    let handle = spawn_writer(w, budget, None, &origin.to_string(), &shared);
    let _open = crate::metrics::metrics().client_open();
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
                log_client_line(origin, conn, &msg);
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

    #[test]
    fn who_may_link() {
        let peer = CatalogueUri::from_addr("10.1.2.3:4790").unwrap();
        let tcp = |a: &str| Origin::Tcp(a.parse().unwrap());
        let allow: Vec<ipnet::IpNet> = vec!["10.1.0.0/16".parse().unwrap()];
        assert!(may_link(tcp("10.9.0.1:5"), &Credentials::Plain, &peer, &[]).is_ok());
        assert!(may_link(tcp("10.1.0.1:5"), &Credentials::Plain, &peer, &allow).is_ok());
        assert!(may_link(tcp("[::ffff:10.1.0.1]:5"), &Credentials::Plain, &peer, &allow).is_ok());
        assert!(may_link(tcp("10.9.0.1:5"), &Credentials::Plain, &peer, &allow).is_err());
        // Over TLS, no certificate: never a peer, whatever the address.
        assert!(may_link(tcp("10.1.0.1:5"), &Credentials::Tls(None), &peer, &[]).is_err());
    }

    #[test]
    fn who_may_register_locally() {
        let mut s = crate::settings::ServeArgs {
            env: Some("development".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert!(local_may_register(Some((1000, 1000)), &s));
        assert!(local_may_register(None, &s));
        s.register_uid = vec![0];
        s.register_gid = vec![50];
        assert!(local_may_register(Some((0, 0)), &s));
        assert!(local_may_register(Some((1000, 50)), &s));
        assert!(!local_may_register(Some((1000, 1000)), &s));
        assert!(!local_may_register(None, &s));
    }
}
