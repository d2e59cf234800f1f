//! Settings of one catalogue's state machine.

use rarangi_proto::{CatalogueUri, Hlc};

/// Budgets of one catalogue (answered with `2 limit ...` to clients, a
/// notice for peers). Item sizes are protocol rules, not settings: see
/// `rarangi_proto::limits`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Registrations one client connection may hold.
    pub registrations_per_client: usize,
    /// Subscriptions one client connection may hold.
    pub subscriptions_per_client: usize,
    /// Longest regular expression source accepted, in bytes.
    pub regex_len: usize,
    /// Largest compiled size of one regex, handed to the regex crate (its
    /// lazy DFA may use twice as much again).
    pub regex_compiled_size: usize,
    /// Bytes of compiled regexes one client connection may use, each
    /// regex counted at the size limit it compiled under plus its DFA.
    pub regex_bytes_per_client: usize,
    /// Bytes of all compiled regexes, in use or kept idle for reuse; a
    /// regex shared by many clients counts once.
    pub regex_bytes_total: usize,
    /// Compiled regexes held at most, in use or idle.
    pub regexes_total: usize,
    /// Service records (live or deleted) held per owning catalogue; more
    /// from a peer are refused with a notice, more here with `2 limit`.
    pub services_per_catalogue: usize,
}

/// Default of [`Limits::regex_bytes_per_client`]: 8 MiB.
pub const DEFAULT_REGEX_BYTES_PER_CLIENT: usize = 8 << 20;
/// Default of [`Limits::regex_bytes_total`]: 128 MiB.
pub const DEFAULT_REGEX_BYTES_TOTAL: usize = 128 << 20;
/// Default of [`Limits::services_per_catalogue`]: 2 million.
pub const DEFAULT_SERVICES_PER_CATALOGUE: usize = 2_000_000;

impl Default for Limits {
    fn default() -> Self {
        Self {
            registrations_per_client: 1024,
            subscriptions_per_client: 64,
            regex_len: 4096,
            regex_compiled_size: 1 << 20,
            regex_bytes_per_client: DEFAULT_REGEX_BYTES_PER_CLIENT,
            regex_bytes_total: DEFAULT_REGEX_BYTES_TOTAL,
            regexes_total: 4096,
            services_per_catalogue: DEFAULT_SERVICES_PER_CATALOGUE,
        }
    }
}

/// Flap damping of watchdog checks: an instance whose health changes more
/// than `flap_limit` times within `flap_window_ms` is held critical for
/// `hold_down_ms`.
#[derive(Debug, Clone)]
pub struct Flap {
    /// Health changes allowed within the window.
    pub flap_limit: u32,
    /// The window, in ms.
    pub flap_window_ms: u64,
    /// How long a flapping instance is held critical, in ms.
    pub hold_down_ms: u64,
}

impl Default for Flap {
    fn default() -> Self {
        Self {
            flap_limit: 4,
            flap_window_ms: 60_000,
            hold_down_ms: 60_000,
        }
    }
}
/// Default of [`Config::reap_after_ms`]: 72 hours.
pub const DEFAULT_REAP_AFTER_MS: u64 = 72 * 60 * 60 * 1000;

/// What a catalogue is and how it behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// This catalogue's identity.
    pub uri: CatalogueUri,
    /// Its cluster.
    pub cluster: String,
    /// Its environment; links to other environments are refused.
    pub environment: String,
    /// How long tombstones are kept before collection (DESIGN §4: 60 min).
    pub tombstone_horizon_ms: u64,
    /// How far ahead of the local clock a received timestamp may be.
    pub max_skew_ms: u64,
    /// A catalogue unreachable this long is removed everywhere (reaped),
    /// like Serf's reconnect_timeout.
    pub reap_after_ms: u64,
    /// Client limits.
    pub limits: Limits,
    /// Flap damping of watchdog checks.
    pub flap: Flap,
}

impl Config {
    /// A configuration with the defaults of DESIGN.md.
    pub fn new(uri: CatalogueUri, cluster: impl Into<String>, environment: impl Into<String>) -> Self {
        Self {
            uri,
            cluster: cluster.into(),
            environment: environment.into(),
            tombstone_horizon_ms: 60 * 60 * 1000,
            max_skew_ms: Hlc::DEFAULT_MAX_SKEW_MS,
            reap_after_ms: DEFAULT_REAP_AFTER_MS,
            limits: Limits::default(),
            flap: Flap::default(),
        }
    }
}
