//! Time for a new catalogue to be found and linked, by DNS SRV (dnsmasq on
//! loopback) and by the LAN beacon (a lab of network namespaces).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};
use rarangi_client::Connection;
use rarangi_harness::{clock, fresh_addr, Cat, Change, Dnsmasq, Error, Lab, Watcher};

use super::reg;
use crate::cluster::wait_all;
use crate::report::{ms, Report};
use crate::stats::median_p99;

const SRV: &str = "_rarangi._tcp.bench.test";
const SERVICE: &str = "tcp://disc-bench:1/p";

/// Both sources, `runs` new catalogues each.
pub async fn discovery(r: &mut Report, runs: usize) -> Result<()> {
    let mut body = String::from(
        "A new catalogue, holding one service, appears; measured until a watcher at an existing catalogue has that service (found, dialed, linked, caught up). DNS SRV: from the moment the records name it (dnsmasq restarted with it; TTL 0, so the next resolution, at most 1 s later, sees it). Beacon: from the moment its process is started (beacons every second). Measured once on a shared machine, small counts.\n\n| source | runs | median ms | p99 ms |\n| --- | --- | --- | --- |\n",
    );
    let dns = dns_srv(runs).await?;
    let (m, p) = median_p99(&dns);
    let _ = writeln!(body, "| DNS SRV | {runs} | {} | {} |", ms(m), ms(p));
    match beacon(runs).await {
        Ok(times) => {
            let (m, p) = median_p99(&times);
            let _ = writeln!(body, "| beacon | {runs} | {} | {} |", ms(m), ms(p));
        }
        Err(e) => {
            let _ = writeln!(body, "| beacon | 0 | not measured: {e:#} | |");
        }
    }
    r.section("Discovery", body);
    Ok(())
}

async fn dns_srv(runs: usize) -> Result<Vec<Duration>> {
    let a_addr = fresh_addr();
    let mut dns = Dnsmasq::start(SRV, &[&a_addr])?;
    let a = Cat::options("development")
        .at(&a_addr)
        .log_level("warn")
        .args(["--discover-dns", SRV, "--discover-dns-server", &dns.addr])
        .start()?;
    let mut times = Vec::new();
    for _ in 0..runs {
        let seen = [Watcher::start(&a.opts(), "^tcp://disc-bench").await?];
        let b = Cat::options("development")
            .at(&fresh_addr())
            .log_level("warn")
            .start()?;
        let mut conn = Connection::connect(&b.opts()).await?;
        reg(&mut conn, SERVICE).await?;
        let t0 = clock::now();
        dns.serve(&[&a_addr, &b.addr])?;
        let t = wait_all(&seen, SERVICE, Change::Added, Duration::from_secs(60))
            .await
            .context("DNS SRV: the new catalogue was not linked within 60 s")?;
        times.push(t - t0);
        // Gone from the records before the next one comes.
        dns.serve(&[&a_addr])?;
        drop((conn, b));
        wait_all(&seen, SERVICE, Change::Removed, Duration::from_secs(60))
            .await
            .context("the service did not go")?;
    }
    Ok(times)
}

async fn beacon(runs: usize) -> Result<Vec<Duration>> {
    let lab = match Lab::create(2) {
        Err(Error::Unsupported(why)) => anyhow::bail!("no network namespaces here: {why}"),
        other => other?,
    };
    let key = rarangi_harness::TempDir::new("beacon-key")?;
    let key_file = key.path().join("key");
    std::fs::write(&key_file, "the benchmark's beacon secret")?;
    let start = |i: usize, port: u16| {
        // The harness waits for the HTTP API too; the lab exists only here.
        let http = format!("{}:{}", lab.ip(i), port + 1000);
        Cat::options("development")
            .launcher(lab.launcher(i))
            .at(&format!("{}:{port}", lab.ip(i)))
            .http(Some(&http), &http)
            .log_level("warn")
            .args(["--http-insecure", "--beacon", "--beacon-port", "4796"])
            .args(["--allow-register", &lab.cidr()])
            .args(["--beacon-key-file".to_owned(), key_file.display().to_string()])
            .start()
    };
    let a = start(0, 4790)?;
    let mut times = Vec::new();
    for run in 0..runs {
        let seen = [Watcher::start(&a.opts(), "^tcp://disc-bench").await?];
        let t0 = clock::now();
        // A new address each time: A must find it, not redial an old one.
        let b = start(1, 5000 + run as u16)?;
        let mut conn = Connection::connect(&b.opts()).await?;
        reg(&mut conn, SERVICE).await?;
        let t = wait_all(&seen, SERVICE, Change::Added, Duration::from_secs(60))
            .await
            .context("beacon: the new catalogue was not linked within 60 s")?;
        times.push(t - t0);
        drop((conn, b));
        wait_all(&seen, SERVICE, Change::Removed, Duration::from_secs(60))
            .await
            .context("the service did not go")?;
    }
    Ok(times)
}
