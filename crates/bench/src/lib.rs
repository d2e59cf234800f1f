//! Rarangi benchmarks. The binary (`rarangi-bench`) runs them against real
//! processes on loopback; the in-memory parts live here so a smoke test in
//! CI keeps them compiling and working.

#![forbid(unsafe_code)]

pub mod cluster;
pub mod etcd;
pub mod os;
pub mod parts;
pub mod report;
pub mod serf;
pub mod simbench;
pub mod stats;
