//! The memory guard: the driver reads the process's resident memory each
//! tick and, beyond the configured limit, tells the core to refuse new
//! registrations and subscriptions (`2 limit`) instead of growing.

use crate::settings::MemoryLimit;

/// The guard clears below this share of the limit (in percent), so it does
/// not flap around the threshold.
const CLEAR_PERCENT: u64 = 90;

/// Whether the guard is engaged, and where.
#[derive(Debug)]
pub(crate) struct MemoryGuard {
    /// Resident bytes beyond which it engages; None: off.
    limit: Option<u64>,
    engaged: bool,
}

impl MemoryGuard {
    /// A guard for the setting, resolved against this machine's memory
    /// (or its cgroup's limit, if lower); the threshold is logged.
    pub(crate) fn new(setting: MemoryLimit) -> Self {
        let limit = match setting {
            MemoryLimit::Off => None,
            MemoryLimit::Bytes(b) => Some(b),
            MemoryLimit::Share(p) => match available_memory() {
                Some(total) => Some(total / 100 * u64::from(p)),
                None => {
                    tracing::warn!("cannot read this machine's memory size; the memory guard is off");
                    None
                }
            },
        };
        if let Some(limit) = limit {
            tracing::info!(
                limit_bytes = limit,
                "memory guard: new registrations and subscriptions are refused beyond this resident size"
            );
        }
        Self {
            limit,
            engaged: false,
        }
    }

    /// Compares the resident size with the limit; returns the new state
    /// when it changes (logged).
    pub(crate) fn check(&mut self) -> Option<bool> {
        let limit = self.limit?;
        let rss = resident_bytes()?;
        let engage = if self.engaged {
            rss > limit / 100 * CLEAR_PERCENT
        } else {
            rss > limit
        };
        if engage == self.engaged {
            return None;
        }
        self.engaged = engage;
        if engage {
            tracing::warn!(
                rss_bytes = rss,
                limit_bytes = limit,
                "memory guard engaged: refusing new registrations and subscriptions"
            );
        } else {
            tracing::info!(
                rss_bytes = rss,
                limit_bytes = limit,
                "memory guard cleared: accepting new registrations and subscriptions"
            );
        }
        Some(engage)
    }
}

/// This process's resident memory, from /proc/self/statm.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64)
}

/// The machine's memory, or the cgroup's limit if lower.
fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let machine = meminfo.as_deref().and_then(mem_total);
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .and_then(|s| s.trim().parse::<u64>().ok());
    match (machine, cgroup) {
        (Some(m), Some(c)) => Some(m.min(c)),
        (m, c) => m.or(c),
    }
}

/// `MemTotal` of /proc/meminfo, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_this_machine() {
        assert!(resident_bytes().is_some_and(|b| b > 0));
        assert!(available_memory().is_some_and(|b| b > 0));
        assert_eq!(mem_total("MemTotal:  2048 kB\nMemFree: 1 kB\n"), Some(2 << 20));
    }

    #[test]
    fn engages_beyond_the_limit_and_clears_below_it() {
        let mut tiny = MemoryGuard::new(MemoryLimit::Bytes(1));
        assert_eq!(tiny.check(), Some(true));
        assert_eq!(tiny.check(), None, "logged once");
        tiny.limit = Some(u64::MAX / 2);
        assert_eq!(tiny.check(), Some(false));
        assert_eq!(MemoryGuard::new(MemoryLimit::Off).check(), None);
    }
}
