//! Side by side with Serf (Debian's `serf` package): user-event
//! propagation and failure detection over the same numbers of agents as
//! the Rarangi propagation runs, all on loopback with Serf's default (LAN)
//! timings.
//!
//! Times come from `serf monitor` streams, one per agent, read as the lines
//! arrive: an event has reached an agent when that agent logs it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::etcd::ensure;
use crate::os::first_line;
use rarangi_harness::{clock, fresh_addr, Deadline};

/// Log lines seen: (agent, line, when).
type Lines = Arc<Mutex<Vec<(usize, String, Instant)>>>;

/// A Serf cluster of agent processes, each with a monitor.
pub struct Serf {
    agents: Vec<Option<Child>>,
    monitors: Vec<Child>,
    rpc: Vec<String>,
    lines: Lines,
    dir: PathBuf,
}

impl Drop for Serf {
    fn drop(&mut self) {
        for c in self.monitors.iter_mut().chain(self.agents.iter_mut().flatten()) {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The installed Serf: what it reports and the Debian package version.
pub fn version() -> String {
    format!(
        "Serf {} (Debian package {})",
        first_line("serf", &["version"]),
        first_line("dpkg-query", &["-W", "-f", "${Version}", "serf"])
    )
}

impl Serf {
    /// Starts `n` agents, each joining the first, and waits until every
    /// agent counts `n` alive members.
    pub fn start(n: usize) -> Result<Serf> {
        ensure("serf", "serf")?;
        let dir = std::env::temp_dir().join(format!("rarangi-bench-serf-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut s = Serf {
            agents: Vec::new(),
            monitors: Vec::new(),
            rpc: Vec::new(),
            lines: Arc::default(),
            dir,
        };
        let mut first = String::new();
        for i in 0..n {
            let (bind, rpc) = (fresh_addr(), fresh_addr());
            let mut cmd = Command::new("serf");
            cmd.args(["agent", &format!("-node=n{i}"), &format!("-bind={bind}")])
                .arg(format!("-rpc-addr={rpc}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if i == 0 {
                first = bind.clone();
            } else {
                cmd.arg(format!("-retry-join={first}"))
                    .arg("-retry-interval=200ms");
            }
            s.agents.push(Some(cmd.spawn().context("start serf agent")?));
            s.rpc.push(rpc);
            if i == 0 {
                // Joining fails while the first agent is not up yet.
                let deadline = Deadline::after(Duration::from_secs(10)).every(Duration::from_millis(50));
                while s.alive(&s.rpc[0]) < 1 && deadline.next_blocking() {}
            }
        }
        // Many agents starting on few cores take a while to agree.
        let deadline = Deadline::after(Duration::from_secs(240)).every(Duration::from_millis(250));
        for (i, rpc) in s.rpc.iter().enumerate() {
            loop {
                let alive = s.alive(rpc);
                if alive >= n {
                    break;
                }
                if !deadline.next_blocking() {
                    bail!("serf agent n{i} sees {alive} of {n} agents alive after 240 s");
                }
            }
        }
        for (i, rpc) in s.rpc.iter().enumerate() {
            let mut child = Command::new("serf")
                .args(["monitor", &format!("-rpc-addr={rpc}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .context("start serf monitor")?;
            let out = child.stdout.take().expect("piped");
            let lines = s.lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    lines.lock().expect("lines").push((i, line, clock::now()));
                }
            });
            s.monitors.push(child);
        }
        std::thread::sleep(Duration::from_millis(500));
        Ok(s)
    }

    fn alive(&self, rpc: &str) -> usize {
        Command::new("serf")
            .args(["members", &format!("-rpc-addr={rpc}"), "-status=alive"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
            .unwrap_or(0)
    }

    /// When each of `agents` first logged a line containing `needle`;
    /// waits up to `timeout` for all of them.
    fn wait_for(&self, needle: &str, agents: &[usize], timeout: Duration) -> Result<Vec<Instant>> {
        let deadline = Deadline::after(timeout).every(Duration::from_millis(1));
        loop {
            let found: Vec<Option<Instant>> = {
                let lines = self.lines.lock().expect("lines");
                agents
                    .iter()
                    .map(|&a| {
                        lines
                            .iter()
                            .find(|(i, l, _)| *i == a && l.contains(needle))
                            .map(|(_, _, t)| *t)
                    })
                    .collect()
            };
            if found.iter().all(Option::is_some) {
                return Ok(found.into_iter().flatten().collect());
            }
            if !deadline.next_blocking() {
                let missing: Vec<String> = agents
                    .iter()
                    .zip(&found)
                    .filter(|(_, f)| f.is_none())
                    .map(|(a, _)| format!("n{a}"))
                    .collect();
                bail!(
                    "serf: {needle:?} not logged by {} within {timeout:?}",
                    missing.join(" ")
                );
            }
        }
    }

    /// Sends a user event at agent 0 (not coalesced); returns how long it
    /// took from agent 0 logging it until every agent had logged it.
    pub fn event(&self, name: &str) -> Result<Duration> {
        let ok = Command::new("serf")
            .args([
                "event",
                "-coalesce=false",
                &format!("-rpc-addr={}", self.rpc[0]),
                name,
            ])
            .stdout(Stdio::null())
            .status()?
            .success();
        if !ok {
            bail!("serf event failed");
        }
        let all: Vec<usize> = (0..self.rpc.len())
            .filter(|&i| self.agents[i].is_some())
            .collect();
        let times = self.wait_for(&format!("user-event: {name}"), &all, Duration::from_secs(10))?;
        let start = times[0];
        let last = times.iter().max().copied().unwrap_or(start);
        Ok(last.saturating_duration_since(start))
    }

    /// SIGKILLs agent `k`; returns how long until every other live agent
    /// logged it as failed.
    pub fn kill(&mut self, k: usize) -> Result<Duration> {
        let mut child = self.agents[k].take().context("agent already killed")?;
        let t0 = clock::now();
        child.kill()?;
        let _ = child.wait();
        let others: Vec<usize> = (0..self.rpc.len())
            .filter(|&i| self.agents[i].is_some())
            .collect();
        let times = self.wait_for(
            &format!("EventMemberFailed: n{k} "),
            &others,
            Duration::from_secs(60),
        )?;
        let last = times.iter().max().copied().unwrap_or(t0);
        Ok(last.saturating_duration_since(t0))
    }
}
