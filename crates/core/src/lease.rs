//! Own registrations and what keeps them alive.
//!
//! A service registered here lives while it has a holder: a client
//! connection that sent REG_SERV, or a lease (an HTTP registration with a
//! TTL, refreshed by the service). A watchdog check is not a holder: it
//! parks a critical registration with its holders (`catalogue/health.rs`). Holders are not durable: they end with the catalogue's
//! incarnation, like connections.

use rarangi_proto::Attrs;

use crate::output::ClientId;
use crate::LimitError;

/// The longest lease accepted: 24 hours.
pub const MAX_LEASE_MS: u64 = 24 * 60 * 60 * 1000;

/// A lease that cannot be granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// A TTL of zero would expire at once.
    #[error("the TTL must be positive")]
    ZeroTtl,
    /// Longer than [`MAX_LEASE_MS`].
    #[error("a TTL of {ttl_ms} ms is longer than the limit of {max_ms} ms (24 h)")]
    TooLong {
        /// The TTL asked for.
        ttl_ms: u64,
        /// The limit.
        max_ms: u64,
    },
    /// The registration is too large, or the catalogue is full.
    #[error("registration refused")]
    Limit(#[source] LimitError),
    /// A watchdog check attribute is malformed or out of bounds.
    #[error("bad check")]
    Check(#[source] crate::check::CheckError),
}

/// What a lease did to the registration (the HTTP API answers 201 or 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// No record of this service URI was visible here before.
    Created,
    /// A new version was issued (attributes changed, or the URI was
    /// visible only from another catalogue).
    Updated,
    /// Same registration; only the lease was extended.
    Refreshed,
}

/// When a lease of `ttl_ms` taken at `now_ms` lapses.
pub(crate) fn deadline(now_ms: u64, ttl_ms: u64) -> Result<u64, LeaseError> {
    match ttl_ms {
        0 => Err(LeaseError::ZeroTtl),
        t if t > MAX_LEASE_MS => Err(LeaseError::TooLong {
            ttl_ms: t,
            max_ms: MAX_LEASE_MS,
        }),
        t => Ok(now_ms.saturating_add(t)),
    }
}

/// What keeps one own registration alive.
#[derive(Debug, Default)]
pub(crate) struct Holders {
    clients: Vec<ClientId>,
    /// When the lease lapses, if there is one.
    lease_until: Option<u64>,
}

impl Holders {
    /// No holder left: the registration ends.
    pub(crate) fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.lease_until.is_none()
    }

    pub(crate) fn add_client(&mut self, client: ClientId) {
        if !self.clients.contains(&client) {
            self.clients.push(client);
        }
    }

    pub(crate) fn remove_client(&mut self, client: ClientId) {
        self.clients.retain(|c| *c != client);
    }

    pub(crate) fn set_lease(&mut self, until: u64) {
        self.lease_until = Some(until);
    }

    pub(crate) fn end_lease(&mut self) {
        self.lease_until = None;
    }

    pub(crate) fn lease_until(&self) -> Option<u64> {
        self.lease_until
    }

    /// The lease lapsed at `now_ms` (a deadline equal to now has lapsed).
    pub(crate) fn lease_lapsed(&self, now_ms: u64) -> bool {
        self.lease_until.is_some_and(|t| t <= now_ms)
    }
}

/// A service registered at this catalogue.
#[derive(Debug, Default)]
pub(crate) struct OwnReg {
    pub(crate) holders: Holders,
    pub(crate) attrs: Attrs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_bounded_and_never_overflow() {
        assert_eq!(deadline(10, 0), Err(LeaseError::ZeroTtl));
        assert_eq!(deadline(10, 5), Ok(15));
        assert_eq!(deadline(10, MAX_LEASE_MS), Ok(10 + MAX_LEASE_MS));
        let e = deadline(10, 18_446_744_073_709_551).unwrap_err();
        assert!(e.to_string().contains("86400000 ms"), "{e}");
        assert_eq!(deadline(u64::MAX - 1, 5), Ok(u64::MAX));
    }

    #[test]
    fn a_registration_lives_while_any_holder_does() {
        let mut h = Holders::default();
        assert!(h.is_empty());
        h.add_client(ClientId(1));
        h.add_client(ClientId(1));
        h.set_lease(100);
        h.remove_client(ClientId(1));
        assert!(!h.is_empty(), "the lease still holds it");
        assert!(!h.lease_lapsed(99) && h.lease_lapsed(100));
        h.end_lease();
        assert!(h.is_empty());
    }
}
