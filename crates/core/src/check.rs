//! Watchdog checks declared with a registration (DESIGN §11, seed 003):
//! what to probe and how often, parsed from the registration's attributes
//! by one pure function with bounds. The attributes stay in the record as
//! they are (they replicate like any other metadata); only the catalogue
//! the service registered at acts on them.
//!
//! `check=tcp` connects to the service URI's host:port (`check=tcp://HOST:PORT`
//! to another address); `check=http://HOST:PORT/PATH` sends a GET (a 2xx
//! is healthy). `check-interval`, `check-timeout`,
//! `check-fails` and `check-passes` tune it.

use rarangi_proto::{Attrs, ServiceUri};

/// The attribute naming the check.
pub const CHECK_ATTR: &str = "check";
/// Default probe interval: 1 s.
pub const DEFAULT_INTERVAL_MS: u64 = 1000;
/// Default probe timeout: 500 ms.
pub const DEFAULT_TIMEOUT_MS: u64 = 500;
/// Default consecutive failures before an instance is critical.
pub const DEFAULT_FAILS: u32 = 3;
/// Default consecutive passes before a critical instance is healthy again.
pub const DEFAULT_PASSES: u32 = 2;
/// Shortest interval accepted: 100 ms.
pub const MIN_INTERVAL_MS: u64 = 100;
/// Longest interval accepted: 1 h.
pub const MAX_INTERVAL_MS: u64 = 60 * 60 * 1000;
/// Largest `check-fails` / `check-passes`.
pub const MAX_STREAK: u32 = 100;
/// Longest HTTP check URL, in bytes.
const MAX_URL_LEN: usize = 2048;

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// Connect to `host:port`.
    Tcp(String),
    /// GET this `http://` URL; a 2xx answer is healthy.
    Http(String),
}

/// A watchdog check: what to probe, how often, and the thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What to probe.
    pub kind: CheckKind,
    /// Time between probes, in ms.
    pub interval_ms: u64,
    /// How long one probe may take, in ms (less than the interval).
    pub timeout_ms: u64,
    /// Consecutive failures before the instance is critical.
    pub fails: u32,
    /// Consecutive passes before a critical instance is healthy again.
    pub passes: u32,
}

/// A check attribute that is refused (the registration is refused too).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// `check=` is neither `tcp`, `tcp://HOST:PORT` nor an `http://` URL.
    #[error("check={0:?}: use check=tcp, check=tcp://HOST:PORT or check=http://HOST:PORT/PATH")]
    Kind(String),
    /// `check=tcp` on a service URI without a port.
    #[error("check=tcp needs a port in the service URI (as in tcp://host:8080/name)")]
    NoPort,
    /// A malformed `http://` check URL.
    #[error("check URL {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A duration that does not parse or is out of bounds.
    #[error("{attr}={value:?}: {reason}")]
    Duration {
        /// The attribute.
        attr: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A threshold that is not a number in 1..=100.
    #[error("{attr}={value:?}: must be a whole number from 1 to {MAX_STREAK}")]
    Streak {
        /// The attribute.
        attr: &'static str,
        /// Its value.
        value: String,
    },
    /// A `check-*` setting without `check=`.
    #[error("{0} is set but there is no check= attribute")]
    Orphan(&'static str),
}

const TUNING: [&str; 4] = ["check-interval", "check-timeout", "check-fails", "check-passes"];

/// The check `attrs` declare for `service`, if any.
pub fn parse_check(service: &ServiceUri, attrs: &Attrs) -> Result<Option<Check>, CheckError> {
    let Some(spec) = attrs.get(CHECK_ATTR) else {
        return match TUNING.iter().find(|a| attrs.get(a).is_some()) {
            Some(a) => Err(CheckError::Orphan(a)),
            None => Ok(None),
        };
    };
    let kind = if spec.eq_ignore_ascii_case("tcp") {
        let addr = service.instance();
        if !has_port(addr) {
            return Err(CheckError::NoPort);
        }
        CheckKind::Tcp(addr.to_owned())
    } else if spec.len() >= 6 && spec[..6].eq_ignore_ascii_case("tcp://") {
        let addr = spec[6..].trim_end_matches('/');
        let clean = addr.len() <= MAX_URL_LEN
            && !addr
                .chars()
                .any(|c| c.is_control() || c == ' ' || c == '/' || c == '@');
        if !clean || !has_port(addr) {
            return Err(CheckError::Url {
                url: spec.chars().take(64).collect(),
                reason: "use tcp://HOST:PORT",
            });
        }
        CheckKind::Tcp(addr.to_owned())
    } else if spec.len() >= 7 && spec[..7].eq_ignore_ascii_case("http://") {
        check_url(spec)?;
        CheckKind::Http(spec.to_owned())
    } else {
        return Err(CheckError::Kind(spec.chars().take(64).collect()));
    };
    let interval_ms = duration(attrs, "check-interval", DEFAULT_INTERVAL_MS)?;
    if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&interval_ms) {
        return Err(duration_error(
            attrs,
            "check-interval",
            "must be from 100ms to 1h".into(),
        ));
    }
    let timeout_ms = duration(attrs, "check-timeout", DEFAULT_TIMEOUT_MS.min(interval_ms / 2))?;
    if timeout_ms == 0 || timeout_ms >= interval_ms {
        let reason = format!("must be positive and shorter than the interval ({interval_ms}ms)");
        return Err(duration_error(attrs, "check-timeout", reason));
    }
    Ok(Some(Check {
        kind,
        interval_ms,
        timeout_ms,
        fails: streak(attrs, "check-fails", DEFAULT_FAILS)?,
        passes: streak(attrs, "check-passes", DEFAULT_PASSES)?,
    }))
}

/// `host:port` with a non-empty host and a port from 1 to 65535.
fn has_port(addr: &str) -> bool {
    addr.rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && !h.ends_with(':') && p.parse::<u16>().is_ok_and(|p| p > 0))
}

fn check_url(url: &str) -> Result<(), CheckError> {
    let bad = |reason| CheckError::Url {
        url: url.chars().take(64).collect(),
        reason,
    };
    if url.len() > MAX_URL_LEN {
        return Err(bad("longer than 2048 bytes"));
    }
    if url.chars().any(|c| c.is_control() || c == ' ') {
        return Err(bad("contains spaces or control characters"));
    }
    let rest = &url[7..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.is_empty() || authority.starts_with(':') {
        return Err(bad("needs a host"));
    }
    if authority.contains('@') {
        return Err(bad("user information (user@host) is not allowed"));
    }
    Ok(())
}

fn duration_error(attrs: &Attrs, attr: &'static str, reason: String) -> CheckError {
    CheckError::Duration {
        attr,
        value: attrs.get(attr).unwrap_or_default().chars().take(32).collect(),
        reason,
    }
}

fn duration(attrs: &Attrs, attr: &'static str, default: u64) -> Result<u64, CheckError> {
    match attrs.get(attr) {
        None => Ok(default),
        Some(v) => {
            parse_duration_ms(v).ok_or_else(|| duration_error(attrs, attr, "use e.g. 500ms, 1s or 2m".into()))
        }
    }
}

fn streak(attrs: &Attrs, attr: &'static str, default: u32) -> Result<u32, CheckError> {
    match attrs.get(attr) {
        None => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_STREAK).contains(n))
            .ok_or_else(|| CheckError::Streak {
                attr,
                value: v.chars().take(32).collect(),
            }),
    }
}

/// `500ms`, `1s`, `2m`, `1h` in ms (the unit is required, so `1` is not
/// read as a second or a millisecond by mistake); None if malformed or
/// absurdly large.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num.len() > 12 {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(scale)
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
