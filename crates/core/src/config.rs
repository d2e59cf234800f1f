//! Settings of one catalogue's state machine.

use rarangi_proto::{CatalogueUri, Hlc};

/// Per-connection limits for clients (answered with `2 limit ...`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Registrations one client connection may hold.
    pub registrations_per_client: usize,
    /// Subscriptions one client connection may hold.
    pub subscriptions_per_client: usize,
    /// Longest regular expression source accepted, in bytes.
    pub regex_len: usize,
    /// Compiled-size limit handed to the regex crate.
    pub regex_compiled_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            registrations_per_client: 1024,
            subscriptions_per_client: 64,
            regex_len: 4096,
            regex_compiled_size: 1 << 20,
        }
    }
}

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
    /// Client limits.
    pub limits: Limits,
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
            limits: Limits::default(),
        }
    }
}
