//! The one place this crate reads the wall clock: the engine's time budget
//! and its progress lines (never the targets, which are deterministic).

use std::time::{Duration, Instant};

/// A monotonic reading.
#[allow(clippy::disallowed_methods)] // this module is the crate's clock
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// Time since `start`.
pub(crate) fn since(start: Instant) -> Duration {
    now().saturating_duration_since(start)
}
