//! Networks of catalogue processes for the benchmarks, and the arrival
//! times their watchers record.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rarangi_harness::{fresh_addr, Cat, Change, Deadline, Watcher};

/// Starts one catalogue (environment development, logging warnings only)
/// at `addr`, dialling `peers`.
pub fn start(addr: &str, peers: &[String], heartbeat_ms: u64, dead_after_ms: u64) -> Result<Cat> {
    Ok(Cat::options("development")
        .at(addr)
        .peers(peers)
        .timing(heartbeat_ms, dead_after_ms)
        .log_level("warn")
        // The load generators open many connections from one loopback
        // address (a million registrations take a thousand connections).
        .args(["--max-connections-per-ip", "0"])
        .start()?)
}

/// Starts `n` catalogues linked as `edges` (i dials j for each (i, j), i > j).
pub fn start_network(
    n: usize,
    edges: &[(usize, usize)],
    heartbeat_ms: u64,
    dead_after_ms: u64,
) -> Result<Vec<Cat>> {
    let addrs: Vec<String> = (0..n).map(|_| fresh_addr()).collect();
    let mut cats = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let peers: Vec<String> = edges
            .iter()
            .filter_map(|&(a, b)| {
                if a.max(b) == i {
                    Some(addrs[a.min(b)].clone())
                } else {
                    None
                }
            })
            .collect();
        cats.push(start(addr, &peers, heartbeat_ms, dead_after_ms)?);
    }
    Ok(cats)
}

/// A watcher subscribed to `regex` at every catalogue.
pub async fn watch_all(cats: &[Cat], regex: &str) -> Result<Vec<Watcher>> {
    let mut watchers = Vec::new();
    for cat in cats {
        watchers.push(Watcher::start(&cat.opts(), regex).await?);
    }
    Ok(watchers)
}

/// The process ID of a running catalogue.
pub fn pid(cat: &Cat) -> Result<u32> {
    cat.pid()
        .with_context(|| format!("catalogue {} is not running", cat.addr))
}

/// Waits until every watcher has seen `change` of `service`; returns the
/// last arrival, or None after `timeout`.
pub async fn wait_all(
    watchers: &[Watcher],
    service: &str,
    change: Change,
    timeout: Duration,
) -> Option<Instant> {
    // Arrivals are stamped by the watchers as they read; checking often only
    // ends the wait sooner.
    let deadline = Deadline::after(timeout).every(Duration::from_micros(200));
    loop {
        let mut last: Option<Instant> = None;
        let mut all = true;
        for w in watchers {
            match w.arrivals(service, change).last() {
                Some(&t) => last = last.max(Some(t)),
                None => all = false,
            }
        }
        if all {
            return last;
        }
        if !deadline.next().await {
            return None;
        }
    }
}
