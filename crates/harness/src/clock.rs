//! The only place the harness, the whole-system tests and the benchmarks
//! read the clock (a root `clippy.toml` bans `Instant::now` elsewhere).
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

/// Now, on the monotonic clock.
pub fn now() -> Instant {
    Instant::now()
}
