//! Fuzzing for Rarangi on stable Rust: a seeded, time-bounded generator
//! (not coverage-guided) that drives the line parser, the DNS server's request handling and a small
//! network of in-memory catalogues, checks properties after every case, and shrinks
//! any failure to a replayable seed and a minimal input.
//!
//! The `rarangi-fuzz` binary runs it for N minutes; `tests/smoke.rs` runs
//! a fixed number of cases of each target under `cargo test`. See
//! `docs/RELIABILITY.md`.

#![forbid(unsafe_code)]

pub mod catalogue;
mod clock;
pub mod dns;
pub mod engine;
pub mod gen;
pub mod parser;
pub mod run;

pub use catalogue::Catalogues;
pub use dns::Dns;
pub use engine::{case_seed, run_batch, run_case, Failure, Tally, Target};
pub use gen::Gen;
pub use parser::Parser;
pub use run::{fuzz, replay, Plan, Report, TargetName};
