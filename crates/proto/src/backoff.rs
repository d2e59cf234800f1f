//! Reconnect back-off (DESIGN §3): a first delay, doubling up to a cap, with
//! jitter, back to the first step after a success. Pure: the caller gives the
//! random number and sleeps, so the daemon's dialer, the client library's
//! reconnects and its re-registrations share one rule.

use std::time::Duration;

/// Exponential back-off with jitter on the upper half of each step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// Starts at `initial` and doubles up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            current: initial,
        }
    }

    /// The catalogue links' back-off: 1 s, doubling, capped at 5 minutes.
    pub fn links() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(300))
    }

    /// The next delay, somewhere in [d/2, d] for the current step d (picked
    /// by `random`, any u64); the step then doubles up to the cap.
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let d = self.current;
        self.current = self.current.saturating_mul(2).min(self.max);
        let half = d / 2;
        let span = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(random % span.saturating_add(1).max(1))
    }

    /// Back to the first step (after a link stayed up for a while).
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::links();
        let mut seed = 1u64;
        let mut random = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            seed
        };
        let steps: Vec<Duration> = (0..12).map(|_| b.next_delay(random())).collect();
        assert!(steps[0] >= Duration::from_millis(500) && steps[0] <= Duration::from_secs(1));
        assert!(steps[3] >= Duration::from_secs(4) && steps[3] <= Duration::from_secs(8));
        assert!(steps[11] >= Duration::from_secs(150) && steps[11] <= Duration::from_secs(300));
        assert_eq!(
            b.next_delay(0),
            Duration::from_secs(150),
            "the lowest jitter is half the step"
        );
        assert_eq!(b.next_delay(150_000), Duration::from_secs(300));
        b.reset();
        assert!(b.next_delay(random()) <= Duration::from_secs(1));
    }
}
