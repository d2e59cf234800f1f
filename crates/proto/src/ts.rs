//! Hybrid logical clock timestamps (DESIGN §4).
//!
//! A timestamp is `unix_millis << 16 | counter`, written in decimal. The clock
//! is pure: callers pass the wall-clock reading, so tests control time.

use std::fmt;

/// A hybrid logical clock timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ts(pub u64);

impl Ts {
    /// The greatest timestamp, and the widest (20 digits): size checks
    /// made before a version exists use it, so they hold for any version.
    pub const MAX: Ts = Ts(u64::MAX);

    /// The timestamp for wall-clock `millis` with the given counter.
    pub fn from_parts(millis: u64, counter: u16) -> Self {
        Ts(millis << 16 | u64::from(counter))
    }

    /// The wall-clock milliseconds part.
    pub fn millis(self) -> u64 {
        self.0 >> 16
    }

    /// The logical counter part.
    pub fn counter(self) -> u16 {
        (self.0 & 0xffff) as u16
    }
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A received timestamp too far ahead of the local clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timestamp {ts} is {ahead_ms} ms ahead of the local clock (limit {limit_ms} ms); check the clocks")]
pub struct SkewError {
    /// The offending timestamp.
    pub ts: Ts,
    /// How far ahead of the local wall clock it was.
    pub ahead_ms: u64,
    /// The configured limit.
    pub limit_ms: u64,
}

/// A hybrid logical clock: monotonic, and advanced past every timestamp it
/// observes, whatever the wall clock does.
#[derive(Debug, Clone)]
pub struct Hlc {
    last: Ts,
    max_skew_ms: u64,
}

impl Hlc {
    /// Default limit on how far ahead a received timestamp may be (60 s).
    pub const DEFAULT_MAX_SKEW_MS: u64 = 60_000;

    /// A clock that will never issue a timestamp at or below `floor` (the
    /// high-water mark persisted before a restart).
    pub fn new(floor: Ts, max_skew_ms: u64) -> Self {
        Self {
            last: floor,
            max_skew_ms,
        }
    }

    /// A fresh timestamp, strictly greater than every one issued or observed.
    pub fn now(&mut self, wall_ms: u64) -> Ts {
        let physical = Ts::from_parts(wall_ms, 0);
        self.last = if physical > self.last {
            physical
        } else {
            Ts(self.last.0 + 1)
        };
        self.last
    }

    /// The greatest timestamp issued or observed so far.
    pub fn last(&self) -> Ts {
        self.last
    }

    /// Checks a received timestamp against the skew limit and, if accepted,
    /// moves the clock past it.
    pub fn observe(&mut self, ts: Ts, wall_ms: u64) -> Result<(), SkewError> {
        let limit = wall_ms.saturating_add(self.max_skew_ms);
        if ts.millis() > limit {
            return Err(SkewError {
                ts,
                ahead_ms: ts.millis() - wall_ms,
                limit_ms: self.max_skew_ms,
            });
        }
        self.last = self.last.max(ts);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_even_when_wall_clock_goes_back() {
        let mut c = Hlc::new(Ts(0), 60_000);
        let a = c.now(1000);
        let b = c.now(999);
        let d = c.now(1000);
        assert!(a < b && b < d);
        assert_eq!(a.millis(), 1000);
    }

    #[test]
    fn observe_advances_and_rejects_skew() {
        let mut c = Hlc::new(Ts(0), 60_000);
        let remote = Ts::from_parts(50_000, 7);
        c.observe(remote, 1_000).unwrap();
        assert!(c.now(1_000) > remote);
        let err = c.observe(Ts::from_parts(70_000, 0), 1_000).unwrap_err();
        assert_eq!(err.ahead_ms, 69_000);
    }

    #[test]
    fn floor_survives_restart() {
        let mut c = Hlc::new(Ts::from_parts(5_000, 3), 60_000);
        assert!(c.now(10) > Ts::from_parts(5_000, 3));
    }
}
