//! The one harness for whole-system tests and benchmarks: `rarangi serve`
//! processes started with options under a temporary directory (never a
//! system directory), restarted, killed or stopped by the PID we started;
//! fresh loopback addresses; a TCP proxy that can cut and heal a link;
//! line-protocol watchers and lookups; network namespaces with faults
//! ([`Lab`]); and [`Deadline`], the one way to wait for a condition.

#![forbid(unsafe_code)]

pub mod clock;
mod dnsmasq;
mod error;
mod netns;
mod process;
mod proxy;
mod scratch;
mod wait;
mod watch;

pub use dnsmasq::Dnsmasq;
pub use error::Error;
pub use netns::Lab;
pub use process::{binary, has_prlimit, Cat, CatOptions};
pub use proxy::Proxy;
pub use scratch::{fresh_addr, TempDir};
pub use wait::{eventually, Deadline, DEADLINE};
pub use watch::{lookup, snapshot, Change, Watcher};
