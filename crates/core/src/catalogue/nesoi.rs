//! The configuration API's writes and the webhooks (see `crate::hooks`):
//! writes report what they did, and the leader emits the deliveries due.

use rarangi_proto::ServiceUri;

use super::{Catalogue, KeyError};
use crate::config_key::{ConfigKey, HookKind, KeyWrite, Written};
use crate::hooks::{self, Delivery, What, ABSENT_VERSION};
use crate::output::Output;

impl Catalogue {
    /// Writes a configuration key locally (then replicates it), reporting
    /// whether it was created or replaced. The driver acknowledges once the
    /// `Persist` output is durable.
    pub fn write_key(&mut self, now_ms: u64, key: &str, value: &str) -> Result<KeyWrite, KeyError> {
        rarangi_proto::validate_key(key)?;
        self.admit_key(key, value)?;
        self.now_ms = now_ms;
        let written = if self.key(key).is_some() {
            Written::Updated
        } else {
            Written::Created
        };
        let ts = self.mint(self.key_entry(key, Some(value.to_owned())));
        self.refresh();
        Ok(KeyWrite { ts, written })
    }

    /// Registers (or replaces) a web-hook on `/KIND/NAME`. `spec_json` is
    /// the stored document (`{"name", "endpoint"}`). Its marker is first
    /// set to the resource's current version, so only changes from now on
    /// are reported.
    pub fn put_hook(
        &mut self,
        now_ms: u64,
        kind: HookKind,
        name: &str,
        hook: &str,
        spec_json: &str,
    ) -> Result<Written, KeyError> {
        let key = hook_key(kind, name, hook);
        let marker = key.marker().expect("a hook has a marker").to_key();
        let key = key.to_key();
        // Both valid before either is written.
        rarangi_proto::validate_key(&key)?;
        rarangi_proto::validate_key(&marker)?;
        self.admit_key(&key, spec_json)?;
        let version = self.resource_version(kind, name);
        self.write_key(now_ms, &marker, &version)?;
        Ok(self.write_key(now_ms, &key, spec_json)?.written)
    }

    /// Deletes a web-hook and its marker; false if there was no such hook.
    pub fn del_hook(&mut self, now_ms: u64, kind: HookKind, name: &str, hook: &str) -> bool {
        let key = hook_key(kind, name, hook);
        let marker = key.marker().expect("a hook has a marker");
        let existed = self.del_key(now_ms, &key.to_key()).is_some();
        self.del_key(now_ms, &marker.to_key());
        self.hooks.forget(&marker);
        existed
    }

    /// The driver's report on a [`Delivery`]: on success the marker records
    /// `version` (replicated, so no leader sends it again); on failure the
    /// delivery is retried with back-off from a later [`Self::tick`].
    pub fn webhook_done(&mut self, now_ms: u64, marker: &ConfigKey, version: &str, ok: bool) {
        if !self.hooks.finished(marker, ok, now_ms) {
            return;
        }
        // A hook deleted meanwhile keeps no marker.
        let hook_live = marker.hook().is_some_and(|h| self.key(&h.to_key()).is_some());
        if hook_live {
            let _ = self.write_key(now_ms, &marker.to_key(), version);
        }
    }

    /// The version of a hooked resource: an application's record version,
    /// or a digest of a service's visible instances; [`ABSENT_VERSION`] when there
    /// is none.
    pub fn resource_version(&self, kind: HookKind, name: &str) -> String {
        match kind {
            HookKind::App => self
                .key(
                    &ConfigKey::App {
                        name: name.to_owned(),
                    }
                    .to_key(),
                )
                .map_or_else(|| ABSENT_VERSION.into(), |r| r.ts.to_string()),
            HookKind::Srv => {
                let instances: Vec<_> = self
                    .services_where(|s| ServiceUri::name_of(s) == Some(name))
                    .collect();
                hooks::services_version(&instances)
            }
        }
    }

    /// On the leader, after changes (or a tick), emits the deliveries due:
    /// hooks whose resource version differs from their marker and that are
    /// neither in flight nor waiting for a retry.
    pub(super) fn run_hooks(&mut self) {
        let leading = *self.leader() == self.cfg.uri;
        if !self.hooks.pass_needed(leading) {
            return;
        }
        let hooks: Vec<(ConfigKey, String)> = self
            .keys_with_prefix(ConfigKey::HOOKS_PREFIX)
            .into_iter()
            .filter_map(|r| Some((ConfigKey::parse(&r.key)?, r.value?)))
            .collect();
        self.hooks.retain_srv(|n| {
            hooks
                .iter()
                .any(|(k, _)| matches!(k, ConfigKey::Hook { kind: HookKind::Srv, name, .. } if name == n))
        });
        let now = self.now_ms;
        for (key, spec) in hooks {
            let ConfigKey::Hook { kind, name, hook } = &key else {
                continue;
            };
            let marker = key.marker().expect("a hook has a marker");
            if self.hooks.waiting(&marker, now) {
                continue;
            }
            let version = match (kind, self.hooks.srv_version(name)) {
                (HookKind::Srv, Some(v)) => v.clone(),
                _ => {
                    let v = self.resource_version(*kind, name);
                    if *kind == HookKind::Srv {
                        self.hooks.cache_srv_version(name, v.clone());
                    }
                    v
                }
            };
            let last = self
                .key(&marker.to_key())
                .and_then(|r| r.value)
                .unwrap_or_else(|| ABSENT_VERSION.to_owned());
            let Some(what) = What::between(&last, &version) else {
                continue;
            };
            let Some((endpoint, hook_name)) = hooks::parse_spec(&spec, hook) else {
                continue;
            };
            self.hooks.start(marker.clone());
            self.out.push(Output::Webhook(Delivery {
                path: key.resource_path(),
                marker,
                version,
                endpoint,
                name: hook_name,
                what,
            }));
        }
    }
}

fn hook_key(kind: HookKind, name: &str, hook: &str) -> ConfigKey {
    ConfigKey::Hook {
        kind,
        name: name.to_owned(),
        hook: hook.to_owned(),
    }
}
