//! One Rarangi catalogue as a pure, deterministic state machine.
//!
//! Inputs are link up/down, a message from a peer catalogue or a client,
//! client connect/disconnect, local configuration writes and timer ticks,
//! each carrying the wall-clock reading `now_ms`. Outputs ([`Output`]) are
//! messages to send, records to persist, webhooks to
//! post and notices to log. Own registrations live while a connection or a
//! lease (a TTL) holds them. There are no sockets, no async runtime and no
//! clock in here: the daemon (`rarangi-server`) and the simulation
//! (`rarangi-sim`) drive it.
//!
//! See `docs/ARCHITECTURE.md` for the replication rules implemented here.

#![forbid(unsafe_code)]

mod catalogue;
mod check;
mod config;
mod config_key;
mod hooks;
mod horizon;
mod item;
mod lease;
mod link_rule;
mod output;
mod sort_key;
mod sync;
mod topology;
mod welcome;

pub use catalogue::{
    Catalogue, KeyError, LimitError, PreparedWrite, Probe, Registration, ServiceView, TopologyView,
    REGISTER_RULE,
};
pub use check::{
    parse_check, parse_duration_ms, Check, CheckError, CheckKind, CHECK_ATTR, DEFAULT_FAILS,
    DEFAULT_INTERVAL_MS, DEFAULT_PASSES, DEFAULT_TIMEOUT_MS, MAX_INTERVAL_MS, MAX_STREAK, MIN_INTERVAL_MS,
};
pub use config::{
    Config, Flap, Limits, DEFAULT_REAP_AFTER_MS, DEFAULT_REGEX_BYTES_PER_CLIENT, DEFAULT_REGEX_BYTES_TOTAL,
    DEFAULT_SERVICES_PER_CATALOGUE,
};
pub use config_key::{ConfigKey, HookKind, KeyWrite, Written};
pub use hooks::{services_version, Delivery, What, ABSENT_VERSION};
pub use item::KeyRecord;
pub use lease::{LeaseError, Registered, MAX_LEASE_MS};
pub use link_rule::keep_new_link;
pub use output::{ClientId, Durable, Notice, Output, PersistOp};
pub use welcome::{check_welcome, WelcomeVerdict};
