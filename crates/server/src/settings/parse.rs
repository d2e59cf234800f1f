//! Parsers and checks of single values (durations, domains, addresses,
//! networks) shared by the resolution.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use super::*;

/// `--reap-after`, bounded: at least a second (a shorter one would reap
/// catalogues during ordinary restarts), at most a year.
pub(super) fn reap_after(text: Option<&str>) -> Result<Duration, ConfigError> {
    let Some(text) = text else {
        return Ok(Duration::from_millis(rarangi_core::DEFAULT_REAP_AFTER_MS));
    };
    crate::duration::parse_duration(text)
        .filter(|d| (Duration::from_secs(1)..=Duration::from_secs(365 * 86_400)).contains(d))
        .ok_or_else(|| {
            ConfigError::Invalid(format!(
                "--reap-after {text:?} must be a duration from 1s to 365d, such as 72h, 30m or 2s"
            ))
        })
}

/// A DNS domain as answered: lower case, ending in a dot, labels of
/// letters, digits and hyphens.
pub(super) fn dns_domain(d: &str, what: &str) -> Result<String, ConfigError> {
    let d = d.trim().to_ascii_lowercase();
    let bare = d.strip_suffix('.').unwrap_or(&d);
    let ok = !bare.is_empty()
        && bare.len() <= 200
        && bare.split('.').all(|l| {
            (1..=63).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !ok {
        return Err(ConfigError::Invalid(format!(
            "{what} {d:?} is not a DNS domain such as rarangi."
        )));
    }
    Ok(format!("{bare}."))
}

/// `production-a` → (`production`, A); the environment is checked later.
pub(super) fn split_instance(instance: &str) -> Result<(&str, SideArg), ConfigError> {
    let side = match instance.rsplit_once('-') {
        Some((env, "a")) if !env.is_empty() => Some((env, SideArg::A)),
        Some((env, "b")) if !env.is_empty() => Some((env, SideArg::B)),
        _ => None,
    };
    side.ok_or_else(|| {
        ConfigError::Invalid(format!(
            "--instance {instance:?} must be ENV-SIDE, e.g. production-a or staging-b"
        ))
    })
}

pub(super) fn cidrs(list: &[String], what: &str) -> Result<Vec<IpNet>, ConfigError> {
    list.iter()
        .map(|c| {
            c.parse::<IpNet>()
                .or_else(|_| c.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| ConfigError::Invalid(format!("{what} {c:?} is not a CIDR such as 10.0.0.0/8")))
        })
        .collect()
}

pub(crate) fn resolve_addr(s: &str, what: &str) -> Result<SocketAddr, ConfigError> {
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            ConfigError::Invalid(format!(
                "{what} {s:?} is not a HOST:PORT this machine can resolve"
            ))
        })
}

pub(super) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty() && CatalogueUri::from_addr(&format!("{h}:1")).is_ok())
        .unwrap_or_else(|| "localhost".into())
}
