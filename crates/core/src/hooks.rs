//! Webhook decisions (Nesoi). Hook registrations and delivery markers are
//! configuration keys ([`ConfigKey`]), so they replicate and survive
//! restarts. The leader compares each hooked resource's version with the
//! hook's marker and, when they differ, asks its driver for a delivery
//! ([`crate::Output::Webhook`]); only after the driver reports success is
//! the new marker written. A leader that dies mid-retry leaves the old
//! marker behind, so the next leader delivers: at least once, and nothing
//! when nothing changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::catalogue::ServiceView;
use crate::config_key::ConfigKey;

/// The version of a resource that does not exist (and of a hook never
/// delivered).
pub const ABSENT_VERSION: &str = "absent";
/// The first retry waits this long after a failed delivery...
const RETRY_FIRST_MS: u64 = 500;
/// ...doubling up to this.
const RETRY_MAX_MS: u64 = 30_000;

/// What happened to a hooked resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// It exists and did not before.
    Created,
    /// It changed.
    Updated,
    /// It no longer exists.
    Deleted,
}

impl What {
    /// The word in the notification body.
    pub fn as_str(self) -> &'static str {
        match self {
            What::Created => "created",
            What::Updated => "updated",
            What::Deleted => "deleted",
        }
    }

    /// The change from the version last delivered to the current one; None
    /// when they are equal.
    pub fn between(last: &str, current: &str) -> Option<What> {
        match (last, current) {
            (l, c) if l == c => None,
            (_, ABSENT_VERSION) => Some(What::Deleted),
            (ABSENT_VERSION, _) => Some(What::Created),
            _ => Some(What::Updated),
        }
    }
}

/// One notification to POST: `{"name", "what", "uri"}` to `endpoint`,
/// where `uri` is the HTTP API's base followed by `path`. Report the result
/// with [`crate::Catalogue::webhook_done`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The hook's delivery marker.
    pub marker: ConfigKey,
    /// The resource version being delivered.
    pub version: String,
    /// Where to POST.
    pub endpoint: String,
    /// The hook's name, for the body.
    pub name: String,
    /// What happened.
    pub what: What,
    /// The resource's API path, `/KIND/NAME`.
    pub path: String,
}

/// A digest of one service's instances ([`ABSENT_VERSION`] when none): changes when
/// an instance comes, goes or is re-registered anywhere.
pub fn services_version<'a>(instances: impl IntoIterator<Item = &'a ServiceView>) -> String {
    let mut items: Vec<String> = instances
        .into_iter()
        .map(|v| format!("{} {} {}", v.service, v.catalogue, v.ts))
        .collect();
    if items.is_empty() {
        return ABSENT_VERSION.into();
    }
    items.sort();
    // FNV-1a: stable across processes and versions.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in items.join("\n").bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The endpoint and name of a stored hook (JSON `{"endpoint", "name"}`);
/// None if it has no endpoint. The name defaults to the hook's key name.
pub(crate) fn parse_spec(json: &str, hook: &str) -> Option<(String, String)> {
    let spec: serde_json::Value = serde_json::from_str(json).ok()?;
    let endpoint = spec.get("endpoint")?.as_str()?.to_owned();
    let name = spec.get("name").and_then(|n| n.as_str()).unwrap_or(hook);
    Some((endpoint, name.to_owned()))
}

/// The leader's delivery bookkeeping (not replicated: a new leader starts
/// from the markers).
#[derive(Debug, Default)]
pub(crate) struct HookState {
    inflight: BTreeSet<ConfigKey>,
    /// Marker → (next attempt at, the wait after that one fails).
    retry: BTreeMap<ConfigKey, (u64, u64)>,
    /// Service name → its version: computing one scans every service, so it
    /// is kept until that service's visible instances change.
    srv_versions: HashMap<String, String>,
    /// Something hooks may watch changed since the last pass.
    dirty: bool,
    /// We led at the last pass.
    leading: bool,
}

impl HookState {
    /// A configuration key changed, or time passed (retries may be due).
    pub(crate) fn note_change(&mut self) {
        self.dirty = true;
    }

    /// The visible instances of the service `uri` changed.
    pub(crate) fn service_changed(&mut self, uri: &str) {
        self.dirty = true;
        if !self.srv_versions.is_empty() {
            if let Some(name) = rarangi_proto::ServiceUri::name_of(uri) {
                self.srv_versions.remove(name);
            }
        }
    }

    /// Whether a pass is needed: only on the leader, and only when
    /// something changed or we just became the leader.
    pub(crate) fn pass_needed(&mut self, leading: bool) -> bool {
        let became = leading && !self.leading;
        self.leading = leading;
        let needed = leading && (self.dirty || became);
        if needed {
            self.dirty = false;
        }
        needed
    }

    /// A delivery for `marker` is under way or waits for its retry time.
    pub(crate) fn waiting(&self, marker: &ConfigKey, now_ms: u64) -> bool {
        self.inflight.contains(marker) || self.retry.get(marker).is_some_and(|(at, _)| *at > now_ms)
    }

    pub(crate) fn start(&mut self, marker: ConfigKey) {
        self.inflight.insert(marker);
    }

    /// Records an attempt's result; true if the marker should be written.
    /// A failure schedules the next attempt (500 ms, doubling to 30 s).
    pub(crate) fn finished(&mut self, marker: &ConfigKey, ok: bool, now_ms: u64) -> bool {
        self.inflight.remove(marker);
        if ok {
            self.retry.remove(marker);
            return true;
        }
        let wait = self.retry.get(marker).map_or(RETRY_FIRST_MS, |(_, w)| *w);
        let next = wait.saturating_mul(2).min(RETRY_MAX_MS);
        self.retry
            .insert(marker.clone(), (now_ms.saturating_add(wait), next));
        false
    }

    /// The hook was deleted: forget its retry state.
    pub(crate) fn forget(&mut self, marker: &ConfigKey) {
        self.inflight.remove(marker);
        self.retry.remove(marker);
    }

    /// The cached version of a service, if still current.
    pub(crate) fn srv_version(&self, name: &str) -> Option<&String> {
        self.srv_versions.get(name)
    }

    pub(crate) fn cache_srv_version(&mut self, name: &str, version: String) {
        self.srv_versions.insert(name.to_owned(), version);
    }

    /// Keeps cached versions only of services still hooked.
    pub(crate) fn retain_srv(&mut self, hooked: impl Fn(&str) -> bool) {
        self.srv_versions.retain(|name, _| hooked(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_key::HookKind;

    fn marker() -> ConfigKey {
        ConfigKey::HookState {
            kind: HookKind::App,
            name: "a".into(),
            hook: "h".into(),
        }
    }

    #[test]
    fn what_changed() {
        assert_eq!(What::between("1", "1"), None);
        assert_eq!(What::between(ABSENT_VERSION, ABSENT_VERSION), None);
        assert_eq!(What::between(ABSENT_VERSION, "1"), Some(What::Created));
        assert_eq!(What::between("1", "2"), Some(What::Updated));
        assert_eq!(What::between("1", ABSENT_VERSION), Some(What::Deleted));
    }

    #[test]
    fn retries_back_off_from_half_a_second_to_thirty() {
        let mut s = HookState::default();
        let m = marker();
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..9 {
            s.start(m.clone());
            assert!(s.waiting(&m, now));
            assert!(!s.finished(&m, false, now));
            let at = s.retry[&m].0;
            waits.push(at - now);
            assert!(s.waiting(&m, at - 1) && !s.waiting(&m, at));
            now = at;
        }
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]
        );
        assert!(s.finished(&m, true, now));
        assert!(!s.waiting(&m, now));
        s.finished(&m, false, now);
        assert_eq!(s.retry[&m].0 - now, 500, "success resets the back-off");
    }

    #[test]
    fn passes_run_on_the_leader_after_changes() {
        let mut s = HookState::default();
        assert!(!s.pass_needed(false));
        assert!(s.pass_needed(true), "just became the leader");
        assert!(!s.pass_needed(true), "nothing changed");
        s.note_change();
        assert!(!s.pass_needed(false), "not the leader");
        assert!(s.pass_needed(true), "leader again");
    }

    #[test]
    fn service_versions_follow_their_service() {
        let mut s = HookState::default();
        s.cache_srv_version("orders", "v1".into());
        s.cache_srv_version("billing", "v2".into());
        s.service_changed("tcp://h:1/orders");
        assert_eq!(s.srv_version("orders"), None);
        assert_eq!(s.srv_version("billing").map(String::as_str), Some("v2"));
        s.retain_srv(|n| n != "billing");
        assert_eq!(s.srv_version("billing"), None);
    }

    #[test]
    fn specs() {
        assert_eq!(
            parse_spec(r#"{"endpoint":"http://h/x","name":"n"}"#, "h"),
            Some(("http://h/x".into(), "n".into()))
        );
        assert_eq!(parse_spec(r#"{"endpoint":"http://h/x"}"#, "h").unwrap().1, "h");
        assert_eq!(parse_spec(r#"{"name":"n"}"#, "h"), None);
        assert_eq!(parse_spec("not json", "h"), None);
    }
}
