//! Reconnect back-off (DESIGN §3): a first delay, doubling up to a cap, with
//! jitter, back to the first step after a success. Pure: the caller gives the
//! random number and sleeps, so the daemon's dialer, the client library's
//! reconnects and its re-registrations share one rule.
//!
//! A link that was working and went down is most often a short cut: after
//! [`Backoff::link_lost`] the next [`QUICK_RETRIES`] delays stay under
//! [`QUICK_CAP`], and only then does the doubling resume towards the
//! ceiling, so an address that keeps failing still ends at one try per
//! five minutes.

use std::time::Duration;

/// Retries after a lost link that stay under [`QUICK_CAP`] (about 45 s of
/// tries with the jitter).
const QUICK_RETRIES: u32 = 60;

/// The longest delay between the quick retries after a lost link.
const QUICK_CAP: Duration = Duration::from_secs(1);

/// Exponential back-off with jitter on the upper half of each step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
    /// Quick retries left (after a lost link).
    quick: u32,
}

impl Backoff {
    /// Starts at `initial` and doubles up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            current: initial,
            quick: 0,
        }
    }

    /// The catalogue links' back-off: 250 ms, doubling, capped at 5 minutes
    /// (after a lost link, capped at [`QUICK_CAP`] for [`QUICK_RETRIES`]).
    pub fn links() -> Self {
        Self::new(Duration::from_millis(250), Duration::from_secs(300))
    }

    /// The next delay, somewhere in [d/2, d] for the current step d (picked
    /// by `random`, any u64); the step then doubles up to the cap (up to
    /// [`QUICK_CAP`] while quick retries are left).
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let cap = if self.quick > 0 {
            self.quick -= 1;
            QUICK_CAP.min(self.max)
        } else {
            self.max
        };
        let d = self.current.min(cap);
        self.current = d.saturating_mul(2).min(cap);
        let half = d / 2;
        let span = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(random % span.saturating_add(1).max(1))
    }

    /// Back to the first step (after a link stayed up for a while).
    pub fn reset(&mut self) {
        self.current = self.initial;
        self.quick = 0;
    }

    /// A link that was working went down: back to the first step, and the
    /// next [`QUICK_RETRIES`] delays stay under [`QUICK_CAP`].
    pub fn link_lost(&mut self) {
        self.current = self.initial;
        self.quick = QUICK_RETRIES;
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
        let steps: Vec<Duration> = (0..14).map(|_| b.next_delay(random())).collect();
        assert!(steps[0] >= Duration::from_millis(125) && steps[0] <= Duration::from_millis(250));
        assert!(steps[5] >= Duration::from_secs(4) && steps[5] <= Duration::from_secs(8));
        assert!(steps[13] >= Duration::from_secs(150) && steps[13] <= Duration::from_secs(300));
        assert_eq!(
            b.next_delay(0),
            Duration::from_secs(150),
            "the lowest jitter is half the step"
        );
        assert_eq!(b.next_delay(150_000), Duration::from_secs(300));
        b.reset();
        assert!(b.next_delay(random()) <= Duration::from_millis(250));
    }

    /// The schedule after a lost link: quick tries under a second, then
    /// doubling again from there to the five-minute ceiling.
    #[test]
    fn a_lost_link_retries_quickly_then_backs_off_to_the_ceiling() {
        // The step itself: the highest jitter ([d/2, d], picked by random).
        let top = |b: &mut Backoff| {
            let step = b.current.min(if b.quick > 0 { QUICK_CAP } else { b.max });
            let span = u64::try_from((step / 2).as_millis()).unwrap();
            let d = b.next_delay(span);
            assert_eq!(d, step / 2 + Duration::from_millis(span));
            d
        };
        let mut b = Backoff::links();
        for _ in 0..20 {
            top(&mut b);
        }
        assert_eq!(top(&mut b), Duration::from_secs(300), "a failing address");
        b.link_lost();
        let quick: Vec<Duration> = (0..QUICK_RETRIES).map(|_| top(&mut b)).collect();
        assert_eq!(quick[0], Duration::from_millis(250));
        assert_eq!(quick[1], Duration::from_millis(500));
        assert!(quick[2..].iter().all(|d| *d == QUICK_CAP), "{quick:?}");
        let after: Vec<Duration> = (0..12).map(|_| top(&mut b)).collect();
        assert_eq!(
            after[0],
            Duration::from_secs(1),
            "doubling resumes from the quick cap"
        );
        assert_eq!(after[1], Duration::from_secs(2));
        assert_eq!(after[2], Duration::from_secs(4));
        assert_eq!(after[11], Duration::from_secs(300), "the ceiling holds");
        assert!((0..100).all(|i| b.next_delay(i) <= Duration::from_secs(300)));
    }
}
