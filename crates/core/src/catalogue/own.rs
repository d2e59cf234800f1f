//! Own registrations: held by client connections and by leases (see
//! `crate::lease`); the last holder out deletes the record. A critical
//! registration (a failed watchdog check, see `health`) is parked out of
//! `own` with its holders until it is healthy again.

use rarangi_proto::{Attrs, ServiceUri};

use super::Catalogue;
use crate::check::parse_check;
use crate::lease::{self, Holders, LeaseError, Registered};
use crate::output::Notice;
use crate::sort_key::SortKey;

impl Catalogue {
    /// Registers `service` here for `ttl_ms` (an HTTP registration), or
    /// extends and updates its lease. It is withdrawn by [`Self::tick`] once
    /// the TTL lapses unless leased again, by [`Self::unlease`], or never
    /// while a connection also holds it.
    pub fn lease(
        &mut self,
        now_ms: u64,
        service: ServiceUri,
        attrs: Attrs,
        ttl_ms: u64,
    ) -> Result<Registered, LeaseError> {
        let until = lease::deadline(now_ms, ttl_ms)?;
        parse_check(&service, &attrs).map_err(LeaseError::Check)?;
        self.admit_own(&service, &attrs).map_err(LeaseError::Limit)?;
        self.now_ms = now_ms;
        let visible = self.visible_anywhere(&service);
        let changed = self.hold(service, attrs, |h| h.set_lease(until));
        self.refresh();
        Ok(match (visible, changed) {
            (false, _) => Registered::Created,
            (true, true) => Registered::Updated,
            (true, false) => Registered::Refreshed,
        })
    }

    /// Ends the lease on `service`; false if it had none. The record goes
    /// unless a connection still holds it.
    pub fn unlease(&mut self, now_ms: u64, service: &ServiceUri) -> bool {
        if !self.is_leased(service) {
            return false;
        }
        self.now_ms = now_ms;
        self.release_with(service, Holders::end_lease);
        self.refresh();
        true
    }

    /// Whether `service` is leased here.
    pub fn is_leased(&self, service: &ServiceUri) -> bool {
        self.regs()
            .any(|(s, r)| s == service && r.holders.lease_until().is_some())
    }

    /// The leases held here and when each lapses (Unix ms), in URI order.
    pub fn leases(&self) -> impl Iterator<Item = (&ServiceUri, u64)> + '_ {
        self.regs()
            .filter_map(|(s, r)| Some((s, r.holders.lease_until()?)))
    }

    /// Withdraws leases that lapsed (from `tick`). Own registrations are
    /// few next to the replicated ones, so a scan each tick is cheap.
    pub(super) fn expire_leases(&mut self, now_ms: u64) {
        let lapsed: Vec<ServiceUri> = self
            .regs()
            .filter(|(_, r)| r.holders.lease_lapsed(now_ms))
            .map(|(s, _)| s.clone())
            .collect();
        for service in lapsed {
            self.release_with(&service, Holders::end_lease);
            self.notice(Notice::LeaseExpired { service });
        }
    }

    /// Adds a holder to a registration (creating it) and records its
    /// attributes; a new version is issued when it is new or they changed.
    /// Returns whether it was.
    pub(super) fn hold(&mut self, service: ServiceUri, attrs: Attrs, add: impl FnOnce(&mut Holders)) -> bool {
        if let Some(reg) = self.health.parked_mut(&service) {
            // Critical: held, but withdrawn until healthy (or unchecked).
            add(&mut reg.holders);
            reg.attrs = attrs.clone();
            self.watch_attrs(&service, &attrs);
            return false;
        }
        let reg = self.own.entry(service.clone()).or_default();
        let changed = reg.holders.is_empty() || reg.attrs != attrs;
        add(&mut reg.holders);
        reg.attrs = attrs.clone();
        if changed {
            self.mint(self.service_value(&service, Some(attrs.clone())));
        }
        self.watch_attrs(&service, &attrs);
        changed
    }

    /// Drops one holder of a registration; the last one out deletes it.
    pub(super) fn release_with(&mut self, service: &ServiceUri, drop: impl FnOnce(&mut Holders)) {
        if let Some(reg) = self.health.parked_mut(service) {
            drop(&mut reg.holders);
            if reg.holders.is_empty() {
                self.health.remove(service); // already withdrawn
            }
            return;
        }
        let Some(reg) = self.own.get_mut(service) else {
            return;
        };
        drop(&mut reg.holders);
        if reg.holders.is_empty() {
            self.own.remove(service);
            self.health.remove(service);
            self.mint(self.service_value(service, None));
        }
    }

    /// Every own registration: live ones, then those parked while critical.
    fn regs(&self) -> impl Iterator<Item = (&ServiceUri, &crate::lease::OwnReg)> + '_ {
        self.own.iter().chain(self.health.parked())
    }

    /// Whether a record of this URI is visible here, registered at any
    /// catalogue: one lookup per known catalogue, no scan.
    fn visible_anywhere(&self, service: &ServiceUri) -> bool {
        self.catalogues.keys().any(|c| {
            let key = SortKey::service(c, service);
            self.db.get(&key).is_some_and(|i| i.shown)
        })
    }
}
