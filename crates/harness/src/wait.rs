//! Waiting for a condition with a generous deadline: the one way tests and
//! benchmarks wait. Nothing waits a fixed time and hopes.

use std::fmt::Display;
use std::time::{Duration, Instant};

use crate::clock;

/// How long a test waits for anything before it fails. Generous: the
/// machines are small and shared, and only a broken catalogue takes long.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// How often a condition is checked again, unless told otherwise.
const PAUSE: Duration = Duration::from_millis(20);

/// A point in time after which waiting has failed, and the pause between
/// two checks of a condition.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    until: Instant,
    pause: Duration,
}

impl Default for Deadline {
    /// [`DEADLINE`] from now.
    fn default() -> Self {
        Self::after(DEADLINE)
    }
}

impl Deadline {
    /// `limit` from now, checking every 20 ms.
    pub fn after(limit: Duration) -> Self {
        Self {
            until: clock::now() + limit,
            pause: PAUSE,
        }
    }

    /// The same deadline, checking every `pause` instead.
    pub fn every(self, pause: Duration) -> Self {
        Self { pause, ..self }
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        clock::now() >= self.until
    }

    /// Time left (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.until.saturating_duration_since(clock::now())
    }

    /// Pauses before the next check; false (at once) once the deadline
    /// has passed.
    pub async fn next(&self) -> bool {
        if self.passed() {
            return false;
        }
        tokio::time::sleep(self.pause).await;
        true
    }

    /// [`Deadline::next`] for code that is not async.
    pub fn next_blocking(&self) -> bool {
        if self.passed() {
            return false;
        }
        std::thread::sleep(self.pause);
        true
    }

    /// Pauses before the next check; once the deadline has passed, panics
    /// with `why()` (say what was awaited and what was seen instead).
    pub async fn retry<D: Display>(&self, why: impl FnOnce() -> D) {
        if !self.next().await {
            panic!("timed out: {}", why());
        }
    }
}

/// Waits until `cond()` holds; panics after [`DEADLINE`] naming `what`.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Deadline::default();
    while !cond() {
        deadline.retry(|| format!("waiting for {what}")).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_passed_deadline_stops_at_once() {
        let d = Deadline::after(Duration::ZERO);
        assert!(d.passed());
        assert!(!d.next().await);
        assert!(!d.next_blocking());
        assert_eq!(d.remaining(), Duration::ZERO);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out: waiting for nothing")]
    async fn retry_panics_with_the_reason() {
        Deadline::after(Duration::ZERO)
            .retry(|| "waiting for nothing")
            .await;
    }

    #[tokio::test]
    async fn eventually_returns_once_true() {
        let mut n = 0;
        eventually("three checks", || {
            n += 1;
            n == 3
        })
        .await;
        assert_eq!(n, 3);
    }
}
