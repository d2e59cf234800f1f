//! The task that merges the sources' candidates and drives the dialer.
//!
//! Link policy: seed peers (`--peer`) are always dialed. Of the discovered
//! candidates, at most `--max-peer-links` are dialed at once; a loop keeps
//! its place while a source lists its address, and the free places go to
//! the candidates that rank first by a hash of (our URI, address), so each
//! catalogue picks a different subset and the links of all of them form a
//! random graph of degree at least that bound (connected with high
//! probability). A candidate no source lists any more is not redialed once
//! its link (if any) ends. Addresses that answered as this catalogue or as
//! another environment are never dialed again.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::future::select_all;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Source;
use crate::net::{dial_loop, DialEnd};
use crate::Shared;

/// One running dial loop.
struct Loop {
    /// Tells it not to redial.
    retire: CancellationToken,
    /// Which start of that address it is (an address can be retired and
    /// wanted again while its old loop still runs a link).
    generation: u64,
    /// A seed peer: never retired.
    seed: bool,
}

/// Merges candidates and owns the dial loops.
pub(super) struct Merger {
    shared: Arc<Shared>,
    sources: Vec<Source>,
    stop: CancellationToken,
    loops: HashMap<String, Loop>,
    /// Addresses never to dial again (self, other environment).
    banned: HashSet<String>,
    tasks: JoinSet<(String, u64, DialEnd)>,
    next_generation: u64,
}

impl Merger {
    /// A merger over `sources`; nothing runs until [`Merger::run`].
    pub(super) fn new(shared: Arc<Shared>, sources: Vec<Source>, stop: CancellationToken) -> Self {
        Self {
            shared,
            sources,
            stop,
            loops: HashMap::new(),
            banned: HashSet::new(),
            tasks: JoinSet::new(),
            next_generation: 0,
        }
    }

    /// Dials the seeds, then follows the sources until shutdown.
    pub(super) async fn run(mut self) {
        for addr in self.shared.settings.peers.clone() {
            self.spawn(addr, true);
        }
        self.reconcile();
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => break,
                closed = changed(&mut self.sources) => {
                    if let Some(i) = closed {
                        // The source ended: what it last said stays, no more news.
                        let (name, _) = self.sources.remove(i);
                        tracing::warn!(source = name, "a discovery source stopped; keeping its last candidates");
                    }
                }
                Some(joined) = self.tasks.join_next() => {
                    let Ok((addr, generation, end)) = joined else { continue };
                    if self.loops.get(&addr).is_some_and(|l| l.generation == generation) {
                        self.loops.remove(&addr);
                    }
                    if matches!(end, DialEnd::SelfConnection | DialEnd::EnvMismatch) {
                        self.banned.insert(addr);
                    }
                }
            }
            self.reconcile();
        }
        // Dial loops stop with the same token.
        self.tasks.detach_all();
    }

    /// Starts and retires dial loops to match what the sources list.
    fn reconcile(&mut self) {
        let own = [
            self.shared.settings.uri.addr().to_owned(),
            self.shared.settings.listen.to_string(),
        ];
        let wanted: BTreeSet<String> = self
            .sources
            .iter()
            .flat_map(|(_, rx)| rx.borrow().iter().map(|a| a.to_string()).collect::<Vec<_>>())
            .filter(|a| !own.contains(a) && !self.banned.contains(a))
            .collect();
        let retired: Vec<String> = self
            .loops
            .iter()
            .filter(|(addr, l)| !l.seed && !wanted.contains(*addr))
            .map(|(addr, _)| addr.clone())
            .collect();
        for addr in retired {
            if let Some(l) = self.loops.remove(&addr) {
                tracing::info!(peer = %addr, "no discovery source lists {addr} any more; not redialing it");
                l.retire.cancel();
            }
        }
        let running = self.loops.values().filter(|l| !l.seed).count();
        let fresh: Vec<&String> = wanted.iter().filter(|a| !self.loops.contains_key(*a)).collect();
        let chosen = pick(
            self.shared.settings.uri.as_str(),
            fresh,
            self.shared
                .settings
                .discovery
                .max_peer_links
                .map(|m| m.saturating_sub(running)),
        );
        for addr in chosen {
            tracing::info!(peer = %addr, "discovered a catalogue; dialing it");
            self.spawn(addr, false);
        }
    }

    fn spawn(&mut self, addr: String, seed: bool) {
        if self.loops.contains_key(&addr) {
            return;
        }
        let retire = CancellationToken::new();
        let generation = self.next_generation;
        self.next_generation += 1;
        self.loops.insert(
            addr.clone(),
            Loop {
                retire: retire.clone(),
                generation,
                seed,
            },
        );
        let (shared, stop) = (self.shared.clone(), self.stop.clone());
        self.tasks.spawn(async move {
            let end = dial_loop(addr.clone(), shared, stop, retire).await;
            (addr, generation, end)
        });
    }
}

/// The link policy's choice among fresh candidates: up to `room` of them
/// (all if `None`), the first by a hash of `(ours, address)`.
pub(super) fn pick(ours: &str, fresh: Vec<&String>, room: Option<usize>) -> Vec<String> {
    let rank = |addr: &str| {
        let mut h = DefaultHasher::new();
        (ours, addr).hash(&mut h);
        h.finish()
    };
    let mut ranked: Vec<(u64, &String)> = fresh.into_iter().map(|a| (rank(a), a)).collect();
    ranked.sort();
    ranked
        .into_iter()
        .take(room.unwrap_or(usize::MAX))
        .map(|(_, a)| a.clone())
        .collect()
}

/// Waits until a source's set changes; `Some(i)` if source `i` ended.
/// Never returns while there is no source.
async fn changed(sources: &mut [Source]) -> Option<usize> {
    if sources.is_empty() {
        return std::future::pending().await;
    }
    let futures = sources.iter_mut().map(|(_, rx)| Box::pin(rx.changed()));
    let (result, i, _) = select_all(futures).await;
    result.err().map(|_| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_picks_a_bounded_stable_subset() {
        let addrs: Vec<String> = (1..=20).map(|i| format!("10.0.0.{i}:4790")).collect();
        let all = pick("x-tvnetcs://a:1/", addrs.iter().collect(), None);
        assert_eq!(all.len(), 20);
        let some = pick("x-tvnetcs://a:1/", addrs.iter().collect(), Some(8));
        assert_eq!(some.len(), 8);
        assert_eq!(some, all[..8], "the same ranking, cut");
        // Another catalogue ranks differently: the links spread out.
        let theirs = pick("x-tvnetcs://b:1/", addrs.iter().collect(), Some(8));
        assert_ne!(some, theirs);
        assert!(pick("x-tvnetcs://a:1/", addrs.iter().collect(), Some(0)).is_empty());
    }
}
