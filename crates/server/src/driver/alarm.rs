//! The store alarm: when a commit fails (a full disk, an I/O error),
//! configuration turns read-only (local writes answer 503 with the reason,
//! replicated ones are not applied) and the alarm shows in the log and in
//! `/v1/topology`. Reads and services keep working. Every tick a probe
//! reopens the store (redb refuses all writes after an I/O error until it
//! is reopened) and writes; once that works the alarm clears by itself and,
//! if peers' configuration was refused meanwhile, the links are bounced so
//! reconciliation brings it back.

use std::io::Write as _;
use std::path::Path;

use super::Driver;
use crate::error_chain;
use crate::store::StoreError;

/// The probe also writes this much beside the store, so the alarm does not
/// clear while there is room for the clock mark but not for a document.
const PROBE_BYTES: usize = 1 << 20;
/// The probe's scratch file in the data directory.
const PROBE_FILE: &str = ".rarangi-space-probe";

impl Driver {
    /// A commit failed: configuration becomes read-only. Logged once; the
    /// first error is the one shown (later ones only say "previous I/O
    /// error").
    pub(super) fn raise_alarm(&mut self, e: &StoreError) {
        if self.alarm.is_some() {
            tracing::debug!(error = %error_chain(e), "store still failing");
            return;
        }
        let alarm = format!("store: {}", error_chain(e));
        tracing::error!(
            alarm = %alarm,
            "store alarm: configuration is read-only (writes answer 503, peers' changes wait) until the store can write again; reads and services go on"
        );
        self.alarm = Some(alarm.clone());
        self.view.alarms = vec![alarm];
        self.publish(true);
    }

    /// While in alarm, once a tick: reopen the store and write; clears the
    /// alarm when that works.
    pub(super) fn probe_store(&mut self) {
        let clock = self.core.clock();
        let dir = self.shared.settings.data_dir.clone();
        let probed = tokio::task::block_in_place(|| {
            room_for(&dir, PROBE_BYTES).map_err(|e| format!("no room in {}: {e}", dir.display()))?;
            self.store.reopen().map_err(|e| error_chain(&e))?;
            self.store.apply(&[], clock).map_err(|e| error_chain(&e))
        });
        if let Err(why) = probed {
            tracing::debug!(why, "store still read-only");
            return;
        }
        self.saved_clock = clock;
        self.alarm = None;
        self.view.alarms.clear();
        self.publish(true);
        tracing::info!("store alarm cleared: the store writes again; configuration writes resume");
        if std::mem::take(&mut self.resync) {
            self.bounce_links();
        }
    }

    /// Puts back in the core what the store holds for `keys` (replicated
    /// versions it could not take), from the store if it can still be
    /// read, else from the view (which shows only what was stored).
    pub(super) fn restore(&mut self, keys: &std::collections::BTreeSet<String>) {
        if keys.is_empty() {
            return;
        }
        let keys: Vec<String> = keys.iter().cloned().collect();
        let durable = tokio::task::block_in_place(|| {
            self.store.reopen()?;
            self.store.load_keys(&keys)
        });
        let durable = durable.unwrap_or_else(|e| {
            tracing::debug!(error = %error_chain(&e), "store unreadable; restoring from the view");
            rarangi_core::Durable {
                keys: keys.iter().filter_map(|k| self.view.key(k).cloned()).collect(),
                collected: Vec::new(),
            }
        });
        self.core.restore_keys(&keys, &durable);
        self.resync = true;
    }

    /// Closes every peer link so each reconciles afresh when it comes back
    /// (dialled again by whichever side dialled it).
    fn bounce_links(&mut self) {
        let links: Vec<_> = self.peers.iter().map(|(p, l)| (p.clone(), l.conn)).collect();
        for (peer, conn) in links {
            self.drop_peer(
                &peer,
                conn,
                "store writable again: re-synchronising configuration",
            );
        }
    }
}

/// Whether `bytes` more can be written in `dir`: writes and syncs them in a
/// scratch file, then removes it.
fn room_for(dir: &Path, bytes: usize) -> std::io::Result<()> {
    let path = dir.join(PROBE_FILE);
    let written = std::fs::File::create(&path).and_then(|mut f| {
        f.write_all(&vec![0; bytes])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&path);
    written
}
