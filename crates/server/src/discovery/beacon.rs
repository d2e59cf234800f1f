//! The LAN beacon (seed 003; broadcast, never multicast, off unless
//! `--beacon`): every second one UDP datagram to each interface's IPv4
//! broadcast address on the beacon port (B+6), signed with HMAC-SHA256
//! under the `--beacon-key-file` key. Both sides of a host share the port
//! (SO_REUSEADDR and SO_REUSEPORT; broadcasts reach every socket bound to
//! it). Receivers drop oversized datagrams, bad tags, other environments,
//! their own beacons and replays of an older incarnation; each heard
//! catalogue's address is a candidate until it misses a few beacons.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rarangi_proto::CatalogueUri;
use sha2::Sha256;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Candidates, SourceError};

/// Wire version of the beacon.
const VERSION: u8 = 1;
/// Largest beacon sent or accepted, in bytes.
pub const MAX_DATAGRAM: usize = 1024;
/// Length of the HMAC-SHA256 tag.
const TAG: usize = 32;
/// Time between two beacons.
const INTERVAL: Duration = Duration::from_secs(1);
/// A catalogue not heard for this long is no longer a candidate.
const EXPIRE: Duration = Duration::from_secs(5);
/// Most catalogues remembered from beacons: a flood of forged-looking but
/// well-signed beacons (a leaked key) cannot grow memory without bound.
pub const MAX_PEERS: usize = 64;

/// What a catalogue announces, and the key.
#[derive(Clone)]
pub struct BeaconConfig {
    /// UDP port, shared by both sides.
    pub port: u16,
    /// HMAC key.
    pub key: Arc<[u8]>,
    /// Our environment; beacons of others are dropped.
    pub environment: String,
    /// Our cluster.
    pub cluster: String,
    /// Our URI; beacons carrying it are our own.
    pub uri: CatalogueUri,
    /// Changes at each start (the start time in ms): a replayed beacon of
    /// an earlier run is older and dropped.
    pub incarnation: u64,
}

/// One beacon's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beacon {
    /// Environment of the sender.
    pub environment: String,
    /// Cluster of the sender.
    pub cluster: String,
    /// The sender's catalogue URI.
    pub uri: String,
    /// The sender's incarnation.
    pub incarnation: u64,
}

/// Why a datagram is not a beacon we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BeaconError {
    /// Larger than [`MAX_DATAGRAM`], or a field too long to encode.
    #[error("too large")]
    TooLarge,
    /// Cut short, or fields that do not parse.
    #[error("malformed")]
    Malformed,
    /// An unknown version byte.
    #[error("unknown version")]
    Version,
    /// The tag does not match the key.
    #[error("bad tag (another key?)")]
    BadTag,
}

impl Beacon {
    /// The signed datagram.
    pub fn encode(&self, key: &[u8]) -> Result<Vec<u8>, BeaconError> {
        let mut out = vec![VERSION];
        for field in [&self.environment, &self.cluster, &self.uri] {
            let len = u16::try_from(field.len()).map_err(|_| BeaconError::TooLarge)?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(field.as_bytes());
        }
        out.extend_from_slice(&self.incarnation.to_be_bytes());
        out.extend_from_slice(&mac(key).chain_update(&out).finalize().into_bytes());
        if out.len() > MAX_DATAGRAM {
            return Err(BeaconError::TooLarge);
        }
        Ok(out)
    }

    /// Checks the tag, then parses.
    pub fn decode(datagram: &[u8], key: &[u8]) -> Result<Self, BeaconError> {
        if datagram.len() > MAX_DATAGRAM {
            return Err(BeaconError::TooLarge);
        }
        let body_len = datagram.len().checked_sub(TAG).ok_or(BeaconError::Malformed)?;
        let (body, tag) = datagram.split_at(body_len);
        mac(key)
            .chain_update(body)
            .verify_slice(tag)
            .map_err(|_| BeaconError::BadTag)?;
        let (&version, mut rest) = body.split_first().ok_or(BeaconError::Malformed)?;
        if version != VERSION {
            return Err(BeaconError::Version);
        }
        let mut field = || -> Result<String, BeaconError> {
            let (len, tail) = rest.split_at_checked(2).ok_or(BeaconError::Malformed)?;
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let (text, tail) = tail.split_at_checked(len).ok_or(BeaconError::Malformed)?;
            rest = tail;
            String::from_utf8(text.to_vec()).map_err(|_| BeaconError::Malformed)
        };
        let (environment, cluster, uri) = (field()?, field()?, field()?);
        let incarnation = <[u8; 8]>::try_from(rest).map_err(|_| BeaconError::Malformed)?;
        Ok(Self {
            environment,
            cluster,
            uri,
            incarnation: u64::from_be_bytes(incarnation),
        })
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// Opens the beacon port, shared with the other side of the host.
pub fn bind(port: u16) -> Result<UdpSocket, SourceError> {
    let err = |source| SourceError::Socket { port, source };
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_reuse_port(true).map_err(err)?;
    socket.set_broadcast(true).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    socket.bind(&addr.into()).map_err(err)?;
    UdpSocket::from_std(socket.into()).map_err(err)
}

/// Runs the beacon: binds, then [`serve`]s.
pub async fn run(
    cfg: BeaconConfig,
    out: watch::Sender<Candidates>,
    stop: CancellationToken,
) -> Result<(), SourceError> {
    let socket = bind(cfg.port)?;
    serve(socket, cfg, out, stop).await;
    Ok(())
}

/// A catalogue heard from.
struct Heard {
    addr: SocketAddr,
    incarnation: u64,
    seen: Instant,
}

/// Sends our beacon every second and hears others' on `socket` until `stop`.
pub async fn serve(
    socket: UdpSocket,
    cfg: BeaconConfig,
    out: watch::Sender<Candidates>,
    stop: CancellationToken,
) {
    let ours = Beacon {
        environment: cfg.environment.clone(),
        cluster: cfg.cluster.clone(),
        uri: cfg.uri.as_str().to_owned(),
        incarnation: cfg.incarnation,
    };
    let datagram = match ours.encode(&cfg.key) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::error!(error = %e, uri = %cfg.uri, "cannot send beacons: the URI is too long for one datagram; only listening");
            None
        }
    };
    let mut heard: HashMap<String, Heard> = HashMap::new();
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // One byte more than the largest beacon, to tell an oversized one.
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut full_warned = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                if let Some(d) = &datagram {
                    for to in broadcast_addresses() {
                        if let Err(e) = socket.send_to(d, SocketAddr::new(IpAddr::V4(to), cfg.port)).await {
                            tracing::debug!(to = %to, error = %e, "cannot send a beacon");
                        }
                    }
                }
                let now = crate::clock::instant();
                heard.retain(|uri, h| {
                    let keep = now.duration_since(h.seen) < EXPIRE;
                    if !keep {
                        tracing::info!(uri = %uri, "beacon: no longer heard");
                    }
                    keep
                });
            }
            got = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = got else { continue };
                match accept(&buf[..n], from, &cfg) {
                    Ok((uri, addr, incarnation)) => {
                        let seen = crate::clock::instant();
                        let full = heard.len() >= MAX_PEERS;
                        match heard.get_mut(&uri) {
                            Some(h) if incarnation < h.incarnation => {}
                            Some(h) => *h = Heard { addr, incarnation, seen },
                            None if full => {
                                if !full_warned {
                                    tracing::warn!(max = MAX_PEERS, uri = %uri, "beacon: too many catalogues heard; ignoring new ones");
                                    full_warned = true;
                                }
                            }
                            None => {
                                tracing::info!(uri = %uri, addr = %addr, "beacon: heard a catalogue");
                                heard.insert(uri, Heard { addr, incarnation, seen });
                            }
                        }
                    }
                    Err(why) => tracing::debug!(from = %from, why, "beacon dropped"),
                }
            }
        }
        let now: Candidates = heard.values().map(|h| h.addr).collect();
        out.send_if_modified(|current| {
            let changed = *current != now;
            *current = now;
            changed
        });
    }
}

/// A datagram's catalogue (URI, address to dial, incarnation), if it is a
/// valid beacon of another catalogue of our environment.
fn accept(
    datagram: &[u8],
    from: SocketAddr,
    cfg: &BeaconConfig,
) -> Result<(String, SocketAddr, u64), &'static str> {
    let beacon = Beacon::decode(datagram, &cfg.key).map_err(|e| match e {
        BeaconError::TooLarge => "too large",
        BeaconError::BadTag => "bad tag",
        _ => "malformed",
    })?;
    if beacon.environment != cfg.environment {
        return Err("another environment");
    }
    if beacon.uri == cfg.uri.as_str() {
        return Err("our own");
    }
    let uri = CatalogueUri::parse(&beacon.uri).map_err(|_| "bad URI")?;
    // The URI's host:port; a host name is taken to be where it came from.
    let addr = uri.addr().parse::<SocketAddr>().or_else(|_| {
        let port = uri
            .addr()
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok());
        port.map(|p| SocketAddr::new(from.ip(), p)).ok_or("bad URI")
    })?;
    Ok((beacon.uri, addr, beacon.incarnation))
}

/// The IPv4 broadcast address of every interface that has one.
fn broadcast_addresses() -> Vec<Ipv4Addr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let v4 =
        |s: Option<nix::sys::socket::SockaddrStorage>| s.and_then(|s| s.as_sockaddr_in().map(|s| s.ip()));
    let mut out: Vec<Ipv4Addr> = addrs
        .filter(|a| a.flags.contains(nix::net::if_::InterfaceFlags::IFF_BROADCAST))
        .filter_map(|a| {
            // An address added without `brd` has none: derive it.
            v4(a.broadcast).filter(|b| !b.is_unspecified()).or_else(|| {
                let (ip, mask) = (v4(a.address)?, v4(a.netmask)?);
                (u32::from(mask) < u32::MAX).then(|| Ipv4Addr::from(u32::from(ip) | !u32::from(mask)))
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
#[path = "beacon_tests.rs"]
mod tests;
