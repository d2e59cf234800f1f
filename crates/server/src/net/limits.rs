//! Connection caps and the descriptor reserve: client connections (line
//! protocol and HTTP together) are counted in total and per address, and
//! the total stays below the descriptor limit minus a reserve, so peer
//! links, the dialer, the store and the Unix socket keep working when
//! clients take every descriptor they are allowed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::settings::Settings;

/// Descriptors kept for peer links, the dialer, the store, webhooks and
/// the Unix socket (at least this many; an eighth of the limit if more).
const RESERVE_MIN: u64 = 64;
/// Line-protocol connections admitted beyond the total cap, for their
/// handshake only: a catalogue's WELCOME makes them a peer link, anything
/// else is refused. New peers can link while clients fill their share.
const OVERFLOW: usize = 16;

/// Why a connection was not admitted (the text is sent to it).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// Too many connections from its address.
    #[error("too many connections from {ip} (at most {limit} per address); closing")]
    PerIp { ip: IpAddr, limit: usize },
    /// Too many connections in total.
    #[error("too many connections (at most {limit}); closing")]
    Total { limit: usize },
}

/// Counts of admitted connections.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    overflow: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// The caps, shared by the line-protocol listener and the HTTP server.
#[derive(Debug)]
pub(crate) struct Gate {
    total: usize,
    per_ip: Option<usize>,
    counts: Mutex<Counts>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Permit {
    gate: Arc<Gate>,
    ip: IpAddr,
    overflow: bool,
}

impl Permit {
    /// Admitted beyond the total cap, for a catalogue's handshake only.
    pub(crate) fn is_overflow(&self) -> bool {
        self.overflow
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.gate.counts.lock().unwrap_or_else(|e| e.into_inner());
        if self.overflow {
            c.overflow -= 1;
        } else {
            c.total -= 1;
        }
        if let Some(n) = c.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.by_ip.remove(&self.ip);
            }
        }
    }
}

impl Gate {
    /// Caps from the settings and the descriptor limit (`nofile`, the soft
    /// RLIMIT_NOFILE; None if unknown or unlimited).
    pub(crate) fn new(settings: &Settings, nofile: Option<u64>) -> Self {
        let by_fds = nofile.map(|n| usize::try_from(n.saturating_sub(reserve(n))).unwrap_or(usize::MAX));
        let total = match (settings.max_connections, by_fds) {
            (Some(m), Some(f)) if m > f => {
                tracing::warn!(
                    max_connections = m,
                    descriptors = nofile,
                    "--max-connections is above the descriptor limit minus its reserve; using {f}"
                );
                f
            }
            (Some(m), _) => m,
            (None, Some(f)) => f,
            (None, None) => usize::MAX,
        };
        Self {
            total: total.max(1),
            per_ip: settings.max_connections_per_ip,
            counts: Mutex::default(),
        }
    }

    /// The total cap on client connections.
    pub(crate) fn total(&self) -> usize {
        self.total
    }

    /// Admits a connection from `ip`, or says why not. `overflow`: the
    /// caller can use a connection admitted beyond the total cap (the line
    /// protocol, for peers' handshakes).
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, overflow: bool) -> Result<Permit, Refusal> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let from_ip = c.by_ip.get(&ip).copied().unwrap_or(0);
        if let Some(limit) = self.per_ip {
            if from_ip >= limit {
                return Err(Refusal::PerIp { ip, limit });
            }
        }
        let over = c.total >= self.total;
        if over && !(overflow && c.overflow < OVERFLOW) {
            return Err(Refusal::Total { limit: self.total });
        }
        if over {
            c.overflow += 1;
        } else {
            c.total += 1;
        }
        *c.by_ip.entry(ip).or_default() += 1;
        Ok(Permit {
            gate: self.clone(),
            ip,
            overflow: over,
        })
    }
}

/// Descriptors kept back from clients when the limit is `nofile`.
fn reserve(nofile: u64) -> u64 {
    (nofile / 8).max(RESERVE_MIN)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the soft
/// limit now in force (None when unlimited or unknown); logged either way.
pub(crate) fn raise_nofile() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let before = getrlimit(Resource::Nofile);
    let mut now = before.current;
    if before.current != before.maximum && before.maximum.is_some() {
        let raised = Rlimit {
            current: before.maximum,
            maximum: before.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => now = before.maximum,
            Err(e) => {
                tracing::warn!(error = %e, soft = before.current, hard = before.maximum, "cannot raise the descriptor limit")
            }
        }
    }
    match now {
        Some(n) => tracing::info!(
            descriptors = n,
            reserve = reserve(n),
            "descriptor limit (soft RLIMIT_NOFILE, raised to the hard limit)"
        ),
        None => tracing::info!("descriptor limit: unlimited"),
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(total: usize, per_ip: Option<usize>) -> Arc<Gate> {
        Arc::new(Gate {
            total,
            per_ip,
            counts: Mutex::default(),
        })
    }

    #[test]
    fn per_address_cap_leaves_other_addresses_alone() {
        let g = gate(100, Some(2));
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.9".parse().unwrap(), "127.0.0.1".parse().unwrap());
        let held = [g.admit(a, false).unwrap(), g.admit(a, false).unwrap()];
        assert!(matches!(g.admit(a, true), Err(Refusal::PerIp { limit: 2, .. })));
        let other = g.admit(b, false).unwrap();
        drop(held);
        let again = g.admit(a, false).unwrap();
        drop((other, again));
        assert_eq!(g.counts.lock().unwrap().total, 0);
        assert!(g.counts.lock().unwrap().by_ip.is_empty());
    }

    #[test]
    fn beyond_the_total_only_a_few_handshakes_get_in() {
        let g = gate(3, None);
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let held: Vec<Permit> = (0..3).map(|_| g.admit(ip, false).unwrap()).collect();
        assert!(held.iter().all(|p| !p.is_overflow()));
        assert!(matches!(g.admit(ip, false), Err(Refusal::Total { limit: 3 })));
        let extra: Vec<Permit> = (0..OVERFLOW).map(|_| g.admit(ip, true).unwrap()).collect();
        assert!(extra.iter().all(Permit::is_overflow));
        assert!(g.admit(ip, true).is_err());
        drop(extra);
        assert!(g.admit(ip, true).unwrap().is_overflow());
    }

    #[test]
    fn the_reserve_grows_with_the_limit() {
        assert_eq!(reserve(512), 64);
        assert_eq!(reserve(1 << 20), 1 << 17);
    }
}
