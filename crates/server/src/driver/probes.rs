//! The driver's side of watchdog checks: it wakes when the core says the
//! next probe is due, hands the due probes to `crate::health`, and feeds
//! their results back to the core (`Event::Probe`).

use std::time::Duration;

use super::Driver;
use crate::clock::now_ms;

impl Driver {
    /// Completes when the next probe is due; never if none is.
    pub(super) fn probes_due(&self) -> impl std::future::Future<Output = ()> + 'static {
        let wait = self
            .core
            .next_probe_ms()
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms())));
        async move {
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        }
    }

    /// Starts every probe that is due.
    pub(super) fn start_probes(&mut self) {
        for probe in self.core.due_probes(now_ms()) {
            self.prober.start(probe);
        }
    }
}
