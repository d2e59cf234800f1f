//! etcd and Serf side by side.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;
use rarangi_harness::clock;

use crate::os::first_line;
use crate::report::{ms, Report};
use crate::stats::median_p99;

/// etcd 3.4, same machine: put-to-watch latency and lease expiry after the
/// client dies, next to Rarangi's registration-to-watch and removal after
/// process death.
pub async fn etcd_side_by_side(r: &mut Report, runs: usize) -> Result<()> {
    use crate::etcd::{b64, wait_event, Etcd};
    let etcd = Etcd::start()?;
    let seen = etcd.watch("bench/").await?;
    let mut puts = Vec::new();
    for i in 0..runs {
        let key = format!("bench/k{i}");
        let t0 = clock::now();
        etcd.call(
            "/v3/kv/put",
            &format!(r#"{{"key":"{}","value":"{}"}}"#, b64(key.as_bytes()), b64(b"x")),
        )
        .await?;
        let t = wait_event(&seen, &key, false, Duration::from_secs(5)).await;
        puts.push(t.map_or(Duration::from_secs(5), |t| t - t0));
    }
    let mut expiries = Vec::new();
    for i in 0..3 {
        let grant = etcd.call("/v3/lease/grant", r#"{"TTL":2}"#).await?;
        let id = grant
            .split("\"ID\":\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("0")
            .to_owned();
        let key = format!("bench/lease{i}");
        etcd.call(
            "/v3/kv/put",
            &format!(
                r#"{{"key":"{}","value":"{}","lease":"{id}"}}"#,
                b64(key.as_bytes()),
                b64(b"x")
            ),
        )
        .await?;
        // The client "dies": it stops sending keep-alives now.
        let t0 = clock::now();
        let t = wait_event(&seen, &key, true, Duration::from_secs(15)).await;
        expiries.push(t.map_or(Duration::from_secs(15), |t| t - t0));
    }
    let (pm, pp) = median_p99(&puts);
    let (em, ep) = median_p99(&expiries);
    let version = first_line("etcd", &["--version"]);
    r.section(
        "Side by side: etcd",
        format!(
            "{version}, one member on loopback, through its HTTP/JSON gateway (a new connection per put). Compare with the Propagation (5 catalogues) and Withdrawal rows above.\n\n| what | runs | median ms | p99 ms |\n| --- | --- | --- | --- |\n| etcd put until the watcher has the event | {} | {} | {} |\n| etcd key with a 2 s lease (the shortest practical TTL) until the watcher sees it deleted after its client stops keeping it alive | {} | {} | {} |\n\nA lease only expires after its TTL: a dead client's key stays visible for seconds. A Rarangi registration goes with its connection, in about a millisecond.\n",
            puts.len(), ms(pm), ms(pp), expiries.len(), ms(em), ms(ep)
        ),
    );
    Ok(())
}

/// Serf user events and failure detection at the propagation sizes.
pub fn serf_side_by_side(r: &mut Report, sizes: &[usize], runs: usize, kills: usize) -> Result<()> {
    use crate::serf::{self, Serf};
    let mut rows = String::new();
    for &n in sizes {
        let mut s = match Serf::start(n) {
            Ok(s) => s,
            Err(e) => {
                println!("serf {n} agents: {e:#}");
                let _ = writeln!(rows, "| {n} | could not start: {e} | - | - | - |");
                continue;
            }
        };
        let (mut times, mut lost) = (Vec::new(), Vec::new());
        for run in 0..runs {
            match s.event(&format!("bench-{n}-{run}")) {
                Ok(t) => times.push(t),
                Err(e) => {
                    println!("{e:#}");
                    lost.push(e.to_string());
                }
            }
        }
        let (m, p) = median_p99(&times);
        println!(
            "serf {n} agents: user event median {} ms, p99 {} ms",
            ms(m),
            ms(p)
        );
        let _ = writeln!(
            rows,
            "| {n} | user event from one agent until every agent has it | {} | {} | {} |",
            times.len(),
            ms(m),
            ms(p)
        );
        if !lost.is_empty() {
            let _ = writeln!(
                rows,
                "| {n} | user events not logged by every agent within 10 s (left out of the row above) | {} | - | - |",
                lost.len()
            );
        }
        if n <= 20 {
            let mut fails = Vec::new();
            for k in 1..=kills.min(n - 2) {
                fails.push(s.kill(k)?);
            }
            let (fm, _) = median_p99(&fails);
            let worst = fails.iter().map(|d| d.as_secs_f64() * 1000.0).fold(0.0, f64::max);
            println!("serf {n} agents: failure detected in median {} ms", ms(fm));
            let _ = writeln!(
                rows,
                "| {n} | SIGKILL of an agent until every other agent declared it failed | {} | {} | {} (max) |",
                fails.len(),
                ms(fm),
                ms(worst)
            );
        }
    }
    r.section(
        "Side by side: Serf",
        format!(
            "{}, default LAN timings (gossip every 200 ms, probes every 1 s), one agent per process on loopback, every agent joining the first; user events sent with `serf event -coalesce=false`; times from one `serf monitor` per agent. Compare with the Propagation rows (a registration until a watcher at every catalogue has it) and the Withdrawal rows above.\n\n| agents | what | runs | median ms | p99 ms |\n| --- | --- | --- | --- | --- |\n{rows}\nSerf spreads events by gossip rounds, so its latency is a few gossip intervals, and a dead agent is declared failed only after probes and a suspicion timeout. Rarangi floods each change at once along its links. A killed catalogue's links close with its process, so its peers know at once; a host that vanishes without closing its connections is noticed after dead-after (5 s by default, like Serf's few seconds).\n",
            serf::version()
        ),
    );
    Ok(())
}
