//! One Rarangi catalogue as a pure, deterministic state machine.
//!
//! Inputs are link up/down, a message from a peer catalogue or a client,
//! client connect/disconnect, local configuration writes and timer ticks,
//! each carrying the wall-clock reading `now_ms`. Outputs ([`Output`]) are
//! messages to send, records to persist and notices to log. There are no sockets, no async runtime and no clock in here: the
//! daemon (`rarangi-server`) and the simulation (`rarangi-sim`) drive it.
//!
//! See `docs/ARCHITECTURE.md` for the replication rules implemented here.

#![forbid(unsafe_code)]

mod catalogue;
mod config;
mod horizon;
mod item;
mod output;
mod sort_key;
mod sync;
mod topology;
mod welcome;

pub use catalogue::{Catalogue, ServiceView, TopologyView};
pub use config::{Config, Limits};
pub use item::KeyRecord;
pub use output::{ClientId, Durable, Notice, Output, PersistOp};
pub use welcome::{check_welcome, WelcomeVerdict};
