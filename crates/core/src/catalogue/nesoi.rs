//! The configuration API's writes and the webhooks (see `crate::hooks`):
//! writes report what they did, and the leader emits the deliveries due.
//!
//! A daemon writes in two phases so that nothing it could not store is
//! served or replicated: `prepare_*` validates and versions a write
//! ([`PreparedWrite`]), the daemon commits its records to disk, then
//! [`Catalogue::commit_write`] applies and floods them. The one-call forms
//! (`write_key`, `put_hook`, ...) do both and emit `Persist` outputs, for
//! drivers whose store cannot fail (the simulation, tests).

use rarangi_proto::{ServiceUri, Ts};

use super::{Catalogue, KeyError};
use crate::config_key::{ConfigKey, HookKind, KeyWrite, Written};
use crate::hooks::{self, Delivery, What, ABSENT_VERSION};
use crate::item::{Item, KeyRecord};
use crate::output::{Durable, Output, PersistOp};
use crate::sort_key::SortKey;

/// A local configuration write, validated and versioned but not yet
/// applied: the driver makes [`PreparedWrite::records`] durable, then
/// applies it with [`Catalogue::commit_write`] before any other input.
/// Dropping it (the store failed) changes nothing but the clock, which
/// only moves forward.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a prepared write changes nothing until it is committed"]
pub struct PreparedWrite {
    /// In the order they are applied and flooded (a hook's marker before
    /// the hook, so no leader reports the hook's past).
    records: Vec<KeyRecord>,
    /// Index in `records` of the key asked for, if it is written.
    main: Option<usize>,
    /// The key asked for was live before.
    existed: bool,
    /// Delivery bookkeeping to forget on commit (a deleted hook's marker).
    forget: Option<ConfigKey>,
}

impl PreparedWrite {
    /// The records to make durable, each as a [`PersistOp::Key`], in
    /// order; empty when the write changes nothing (a delete of nothing).
    pub fn records(&self) -> &[KeyRecord] {
        &self.records
    }

    /// The records as persist operations, for the store.
    pub fn persist_ops(&self) -> Vec<PersistOp> {
        self.records.iter().cloned().map(PersistOp::Key).collect()
    }

    /// Whether the key asked for was live before: a set replaces rather
    /// than creates; a delete had something to delete.
    pub fn existed(&self) -> bool {
        self.existed
    }

    /// Created or updated, for a set.
    pub fn written(&self) -> Written {
        if self.existed {
            Written::Updated
        } else {
            Written::Created
        }
    }

    /// The version the key asked for gets; None if it is not written.
    pub fn ts(&self) -> Option<Ts> {
        self.main.map(|i| self.records[i].ts)
    }
}

impl Catalogue {
    /// Writes a configuration key locally (then replicates it), reporting
    /// whether it was created or replaced; the `Persist` output must be
    /// durable before the write is acknowledged. A daemon that must not
    /// apply what it could not store uses [`Self::prepare_key_write`] and
    /// [`Self::commit_write`] instead.
    pub fn write_key(&mut self, now_ms: u64, key: &str, value: &str) -> Result<KeyWrite, KeyError> {
        let prepared = self.prepare_key_write(now_ms, key, value)?;
        let ts = prepared.ts().expect("a set writes its key");
        let written = prepared.written();
        self.apply_write(prepared, true);
        Ok(KeyWrite { ts, written })
    }

    /// Validates and versions a configuration write without applying it
    /// (see [`PreparedWrite`]).
    pub fn prepare_key_write(
        &mut self,
        now_ms: u64,
        key: &str,
        value: &str,
    ) -> Result<PreparedWrite, KeyError> {
        rarangi_proto::validate_key(key)?;
        self.admit_key(key, value)?;
        self.now_ms = now_ms;
        let existed = self.key(key).is_some();
        let rec = self.version_record(key, Some(value));
        Ok(PreparedWrite {
            records: vec![rec],
            main: Some(0),
            existed,
            forget: None,
        })
    }

    /// Versions the delete of a configuration key without applying it;
    /// it writes nothing when the key is not live.
    pub fn prepare_key_delete(&mut self, now_ms: u64, key: &str) -> PreparedWrite {
        self.now_ms = now_ms;
        let existed = self.key(key).is_some();
        let records = if existed {
            vec![self.version_record(key, None)]
        } else {
            Vec::new()
        };
        PreparedWrite {
            main: existed.then_some(0),
            records,
            existed,
            forget: None,
        }
    }

    /// Applies a prepared write whose records are durable: stores them,
    /// floods them to the peers and settles what depends on them. No
    /// `Persist` output: they were persisted already.
    pub fn commit_write(&mut self, prepared: PreparedWrite) {
        self.apply_write(prepared, false);
    }

    pub(super) fn apply_write(&mut self, prepared: PreparedWrite, persist: bool) {
        for rec in prepared.records {
            let (key, value) = rec.to_entry();
            self.put_item(key.clone(), Item::new(value, rec.ts), persist);
            self.flood(&key);
        }
        if let Some(marker) = prepared.forget {
            self.hooks.forget(&marker);
        }
        self.refresh();
    }

    /// A new version of `key` written here (None deletes), not applied.
    fn version_record(&mut self, key: &str, value: Option<&str>) -> KeyRecord {
        KeyRecord {
            key: key.to_owned(),
            origin: self.cfg.uri.clone(),
            ts: self.hlc.now(self.now_ms),
            value: value.map(str::to_owned),
        }
    }

    /// The store could not take replicated versions of `keys`: puts back
    /// what it holds for them (`durable`: their records and collected
    /// deletes, as [`Durable`] says), so memory matches disk. Nothing is
    /// sent; the newer versions come back from the peers when the links
    /// reconcile again.
    pub fn restore_keys(&mut self, keys: &[String], durable: &Durable) {
        for key in keys {
            let sort_key = SortKey::config(key);
            self.db.remove(&sort_key);
            match durable.keys.iter().find(|r| r.key == *key) {
                Some(rec) => {
                    let (k, value) = rec.to_entry();
                    self.put_item(k, Item::new(value, rec.ts), false);
                }
                None => {
                    self.collected_keys.remove(key.as_str());
                }
            }
            if let Some((_, ts)) = durable.collected.iter().find(|(k, _)| k == key) {
                self.collected_keys.insert(key.clone(), *ts);
            }
            self.hooks.note_change();
        }
        self.refresh();
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
        let prepared = self.prepare_put_hook(now_ms, kind, name, hook, spec_json)?;
        let written = prepared.written();
        self.apply_write(prepared, true);
        Ok(written)
    }

    /// [`Self::put_hook`], prepared (see [`PreparedWrite`]).
    pub fn prepare_put_hook(
        &mut self,
        now_ms: u64,
        kind: HookKind,
        name: &str,
        hook: &str,
        spec_json: &str,
    ) -> Result<PreparedWrite, KeyError> {
        let key = hook_key(kind, name, hook);
        let marker = key.marker().expect("a hook has a marker").to_key();
        let key = key.to_key();
        // Both valid before either is written.
        rarangi_proto::validate_key(&key)?;
        rarangi_proto::validate_key(&marker)?;
        self.admit_key(&key, spec_json)?;
        self.now_ms = now_ms;
        let version = self.resource_version(kind, name);
        let existed = self.key(&key).is_some();
        let marker = self.version_record(&marker, Some(&version));
        let hook = self.version_record(&key, Some(spec_json));
        Ok(PreparedWrite {
            records: vec![marker, hook],
            main: Some(1),
            existed,
            forget: None,
        })
    }

    /// Deletes a web-hook and its marker; false if there was no such hook.
    pub fn del_hook(&mut self, now_ms: u64, kind: HookKind, name: &str, hook: &str) -> bool {
        let prepared = self.prepare_del_hook(now_ms, kind, name, hook);
        let existed = prepared.existed();
        self.apply_write(prepared, true);
        existed
    }

    /// [`Self::del_hook`], prepared (see [`PreparedWrite`]).
    pub fn prepare_del_hook(&mut self, now_ms: u64, kind: HookKind, name: &str, hook: &str) -> PreparedWrite {
        let key = hook_key(kind, name, hook);
        let marker = key.marker().expect("a hook has a marker");
        let mut prepared = self.prepare_key_delete(now_ms, &key.to_key());
        let marker_key = marker.to_key();
        if self.key(&marker_key).is_some() {
            let rec = self.version_record(&marker_key, None);
            prepared.records.push(rec);
        }
        prepared.forget = Some(marker);
        prepared
    }

    /// The driver's report on a [`Delivery`]: on success the marker records
    /// `version` (replicated, so no leader sends it again); on failure the
    /// delivery is retried with back-off from a later [`Self::tick`].
    pub fn webhook_done(&mut self, now_ms: u64, marker: &ConfigKey, version: &str, ok: bool) {
        if let Some(prepared) = self.prepare_webhook_done(now_ms, marker, version, ok) {
            self.apply_write(prepared, true);
        }
    }

    /// [`Self::webhook_done`], prepared: the marker write, if any (see
    /// [`PreparedWrite`]). When it cannot be stored, report the delivery
    /// again as failed: it is retried, so delivered at least once.
    pub fn prepare_webhook_done(
        &mut self,
        now_ms: u64,
        marker: &ConfigKey,
        version: &str,
        ok: bool,
    ) -> Option<PreparedWrite> {
        self.now_ms = now_ms;
        if !self.hooks.finished(marker, ok, now_ms) {
            return None;
        }
        // A hook deleted meanwhile keeps no marker.
        let hook_live = marker.hook().is_some_and(|h| self.key(&h.to_key()).is_some());
        if !hook_live {
            return None;
        }
        self.prepare_key_write(now_ms, &marker.to_key(), version).ok()
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
