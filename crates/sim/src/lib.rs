//! A deterministic in-memory network of Rarangi catalogues.
//!
//! [`Net`] drives many [`rarangi_core::Catalogue`] state machines with a
//! seeded random number generator: links are cut and healed, catalogues
//! crash (losing everything but their durable configuration) and restart,
//! messages are delayed and reordered between different links while each
//! link keeps its order, as TCP does. Every message goes through the real
//! wire encoding and parser. Clients register, subscribe and write
//! configuration; [`Net::check`] verifies the invariants of DESIGN §7.
//!
//! Time is simulated milliseconds; nothing here reads a clock.

#![forbid(unsafe_code)]

mod net;
mod schedule;
mod topology;
pub mod transcript;

pub use net::{Invariant, Net, NetConfig, NodeId, Violation};
pub use schedule::{run_seed, Outcome, ScheduleConfig};
pub use topology::Topology;
