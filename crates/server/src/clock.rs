//! The one place the daemon reads clocks (the core takes `now_ms` as an
//! input, so tests and the simulation control time). `clippy.toml` bans
//! these calls everywhere else.

#![allow(clippy::disallowed_methods)]

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The monotonic clock, for measuring how long something lasted.
pub(crate) fn instant() -> Instant {
    Instant::now()
}
