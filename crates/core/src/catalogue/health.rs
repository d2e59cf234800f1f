//! Watchdog checks of own registrations (DESIGN §11): the core decides,
//! the server only probes.
//!
//! A registration whose attributes declare a check (`crate::check`) gets a
//! [`Watch`]. The server asks which probes are due ([`Catalogue::due_probes`],
//! and when the next one is, [`Catalogue::next_probe_ms`]), runs them, and
//! reports each result ([`Catalogue::probe`]). `fails` consecutive failures
//! make the instance critical: its record is withdrawn everywhere exactly
//! as a deregistration would (a DEL_SERV flooded) while its holders stay
//! (connections, leases) parked in the watch. `passes` consecutive passes
//! re-announce it with a new version. An instance whose health changes more
//! than `flap_limit` times within `flap_window_ms` is held critical for
//! `hold_down_ms` (`crate::config::Flap`).
//!
//! Parked registrations are out of `own`, so the owner-authority rules and
//! a re-incarnation (which re-issue what `own` holds) keep them withdrawn.
//! Instances start healthy: a registration is announced at once and its
//! first probe is due immediately.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rarangi_proto::{Attrs, ServiceUri};

use super::Catalogue;
use crate::check::{parse_check, Check};
use crate::config::Flap;
use crate::lease::OwnReg;
use crate::output::Notice;

/// A probe the server should run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The instance.
    pub service: ServiceUri,
    /// What to probe, and its timeout.
    pub check: Check,
}

/// What a probe result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Now critical (held down until the given time if flapping).
    Critical(Option<u64>),
    /// Healthy again.
    Healthy,
    /// Would have been healthy, but flaps: held critical until then.
    HeldDown(u64),
}

/// The health of one checked registration.
#[derive(Debug)]
pub(crate) struct Watch {
    check: Check,
    critical: bool,
    fail_streak: u32,
    pass_streak: u32,
    /// When the health changed, within the flap window (at most
    /// `flap_limit + 1` entries).
    changes: VecDeque<u64>,
    /// Held critical until then (flap damping); 0 when not held.
    held_until: u64,
    next_due: u64,
    /// The registration while critical (out of `own`).
    parked: Option<OwnReg>,
}

impl Watch {
    fn new(check: Check) -> Self {
        Self {
            check,
            critical: false,
            fail_streak: 0,
            pass_streak: 0,
            changes: VecDeque::new(),
            held_until: 0,
            next_due: 0,
            parked: None,
        }
    }

    /// Applies one probe result at `now`.
    fn record(&mut self, ok: bool, now: u64, flap: &Flap) -> Option<Change> {
        if ok {
            self.pass_streak = self.pass_streak.saturating_add(1);
            self.fail_streak = 0;
        } else {
            self.fail_streak = self.fail_streak.saturating_add(1);
            self.pass_streak = 0;
        }
        let to_critical = if self.critical {
            !(self.pass_streak >= self.check.passes && now >= self.held_until)
        } else {
            self.fail_streak >= self.check.fails
        };
        if to_critical == self.critical {
            return None;
        }
        let since = now.saturating_sub(flap.flap_window_ms);
        while self.changes.front().is_some_and(|t| *t < since) {
            self.changes.pop_front();
        }
        self.changes.push_back(now);
        if self.changes.len() > flap.flap_limit as usize {
            self.changes.clear();
            self.held_until = now.saturating_add(flap.hold_down_ms);
            if self.critical {
                return Some(Change::HeldDown(self.held_until));
            }
            self.critical = true;
            return Some(Change::Critical(Some(self.held_until)));
        }
        self.critical = to_critical;
        Some(if to_critical {
            Change::Critical(None)
        } else {
            Change::Healthy
        })
    }
}

/// Every watch, and when each is next due.
#[derive(Debug, Default)]
pub(super) struct Watches {
    by_service: BTreeMap<ServiceUri, Watch>,
    due: BTreeSet<(u64, ServiceUri)>,
}

impl Watches {
    fn schedule(&mut self, service: &ServiceUri, at: u64) {
        if let Some(w) = self.by_service.get_mut(service) {
            self.due.remove(&(w.next_due, service.clone()));
            w.next_due = at;
            self.due.insert((at, service.clone()));
        }
    }

    /// The registration parked while `service` is critical.
    pub(super) fn parked_mut(&mut self, service: &ServiceUri) -> Option<&mut OwnReg> {
        self.by_service.get_mut(service)?.parked.as_mut()
    }

    /// Registrations parked while critical.
    pub(super) fn parked(&self) -> impl Iterator<Item = (&ServiceUri, &OwnReg)> + '_ {
        self.by_service
            .iter()
            .filter_map(|(s, w)| Some((s, w.parked.as_ref()?)))
    }

    /// Forgets the watch on `service` (the registration ended).
    pub(super) fn remove(&mut self, service: &ServiceUri) -> Option<Watch> {
        let w = self.by_service.remove(service)?;
        self.due.remove(&(w.next_due, service.clone()));
        Some(w)
    }
}

impl Catalogue {
    /// The result of one probe of `service` (from a [`Probe`]): applies
    /// the thresholds and flap damping, and withdraws or re-announces the
    /// instance. False if `service` has no check here (any more).
    pub fn probe(&mut self, now_ms: u64, service: &ServiceUri, ok: bool) -> bool {
        let flap = self.cfg.flap.clone();
        let Some(w) = self.health.by_service.get_mut(service) else {
            return false;
        };
        self.now_ms = now_ms;
        match w.record(ok, now_ms, &flap) {
            None => {}
            Some(Change::Critical(held_until)) => {
                if let Some(reg) = self.own.remove(service) {
                    let w = self.health.by_service.get_mut(service).expect("present");
                    w.parked = Some(reg);
                    self.mint(self.service_value(service, None));
                }
                self.notice(Notice::Critical {
                    service: service.clone(),
                    held_until,
                });
            }
            Some(Change::HeldDown(until)) => self.notice(Notice::Critical {
                service: service.clone(),
                held_until: Some(until),
            }),
            Some(Change::Healthy) => {
                self.unpark(service);
                self.notice(Notice::Healthy {
                    service: service.clone(),
                });
            }
        }
        self.refresh();
        true
    }

    /// The probes due at `now_ms`; each is scheduled again one interval
    /// later (from now, if the caller fell behind by more than that).
    pub fn due_probes(&mut self, now_ms: u64) -> Vec<Probe> {
        let mut probes = Vec::new();
        while let Some((due, service)) = self.health.due.first().cloned() {
            if due > now_ms {
                break;
            }
            let Some(w) = self.health.by_service.get(&service) else {
                self.health.due.pop_first();
                continue;
            };
            let interval = w.check.interval_ms;
            probes.push(Probe {
                service: service.clone(),
                check: w.check.clone(),
            });
            let next = due.saturating_add(interval);
            let next = if next > now_ms {
                next
            } else {
                now_ms.saturating_add(interval)
            };
            self.health.schedule(&service, next);
        }
        probes
    }

    /// When the next probe is due (Unix ms), if any service is checked.
    pub fn next_probe_ms(&self) -> Option<u64> {
        self.health.due.first().map(|(t, _)| *t)
    }

    /// Whether `service`, registered here with a check, is critical
    /// (withdrawn); None if it has no check here.
    pub fn is_critical(&self, service: &ServiceUri) -> Option<bool> {
        self.health.by_service.get(service).map(|w| w.critical)
    }

    /// Starts, updates or stops the watch on an own registration after its
    /// attributes were set (they were checked on the way in). A parked
    /// registration whose check was removed comes back.
    pub(super) fn watch_attrs(&mut self, service: &ServiceUri, attrs: &Attrs) {
        let Some(check) = parse_check(service, attrs).ok().flatten() else {
            self.unpark(service);
            self.health.remove(service);
            return;
        };
        let now = self.now_ms.max(1);
        let w = self
            .health
            .by_service
            .entry(service.clone())
            .or_insert_with(|| Watch::new(check.clone()));
        // A new watch (never scheduled) or a new check is probed at once.
        if w.next_due == 0 || w.check != check {
            w.check = check;
            self.health.schedule(service, now);
        }
    }

    /// Puts a parked registration back and re-announces it.
    fn unpark(&mut self, service: &ServiceUri) {
        let Some(w) = self.health.by_service.get_mut(service) else {
            return;
        };
        w.critical = false;
        if let Some(reg) = w.parked.take() {
            let attrs = reg.attrs.clone();
            self.own.insert(service.clone(), reg);
            self.mint(self.service_value(service, Some(attrs)));
        }
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
