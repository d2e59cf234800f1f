//! Reconnect back-off: 1 s, doubling, capped at 5 minutes, with jitter
//! (DESIGN §3).

use std::time::Duration;

use rand::Rng;

/// Exponential back-off with full jitter on the upper half.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            current: initial,
        }
    }

    /// The next delay: somewhere in [d/2, d] for the current step d; the step
    /// then doubles up to the cap.
    pub(crate) fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = d / 2;
        half + Duration::from_millis(rng.gen_range(0..=half.as_millis() as u64))
    }

    /// Back to the first step (after a link stayed up for a while).
    pub(crate) fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn doubles_to_the_cap_with_jitter_and_resets() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let steps: Vec<Duration> = (0..12).map(|_| b.next_delay(&mut rng)).collect();
        assert!(steps[0] >= Duration::from_millis(500) && steps[0] <= Duration::from_secs(1));
        assert!(steps[3] >= Duration::from_secs(4) && steps[3] <= Duration::from_secs(8));
        assert!(steps[11] >= Duration::from_secs(150) && steps[11] <= Duration::from_secs(300));
        b.reset();
        assert!(b.next_delay(&mut rng) <= Duration::from_secs(1));
    }
}
