//! Propagation and withdrawal latency on real processes.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rarangi_client::Connection;
use rarangi_harness::{clock, fresh_addr, Change, Proxy, Watcher};
use rarangi_sim::Topology;

use super::{edges_of, layouts, reg, unreg};
use crate::cluster::{start, start_network, wait_all, watch_all};
use crate::report::{ms, Report};
use crate::stats::median_p99;

/// Registration at one catalogue until a watcher at every catalogue has it.
pub async fn propagation(r: &mut Report, sizes: &[usize], runs: usize) -> Result<()> {
    let mut body = String::from(
        "Registration at catalogue 0 until a watcher at *every* catalogue has received ADD_SERV (and, for removal, DEL_SERV after UNREG_SERV). One process per catalogue, default heartbeats.\n\n| catalogues | layout | links | runs | add median ms | add p99 ms | remove median ms | remove p99 ms |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for &n in sizes {
        for (t, name) in layouts() {
            let edges = edges_of(t, n);
            let cats = start_network(n, &edges, 1000, 5000)?;
            let seen = watch_all(&cats, "^tcp://bench").await?;
            let mut conn = Connection::connect(&cats[0].opts()).await?;
            // Warm up: wait until the network has formed.
            reg(&mut conn, "tcp://bench-warm:1/p").await?;
            if wait_all(
                &seen,
                "tcp://bench-warm:1/p",
                Change::Added,
                Duration::from_secs(60),
            )
            .await
            .is_none()
            {
                bail!("{n} catalogues in {name} did not converge");
            }
            let (mut adds, mut dels) = (Vec::new(), Vec::new());
            for i in 0..runs {
                let uri = format!("tcp://bench-{i}:1/p");
                let t0 = clock::now();
                reg(&mut conn, &uri).await?;
                let done = wait_all(&seen, &uri, Change::Added, Duration::from_secs(10)).await;
                adds.push(done.map_or(Duration::from_secs(10), |t| t - t0));
                let t1 = clock::now();
                unreg(&mut conn, &uri).await?;
                let done = wait_all(&seen, &uri, Change::Removed, Duration::from_secs(10)).await;
                dels.push(done.map_or(Duration::from_secs(10), |t| t - t1));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let (am, ap) = median_p99(&adds);
            let (dm, dp) = median_p99(&dels);
            r.plot.push((name.to_owned(), n, am, ap));
            let _ = writeln!(
                body,
                "| {n} | {name} | {} | {runs} | {} | {} | {} | {} |",
                edges.len(),
                ms(am),
                ms(ap),
                ms(dm),
                ms(dp)
            );
            println!("propagation {n} {name}: add median {am:.2} ms p99 {ap:.2} ms");
        }
    }
    let worst = r
        .plot
        .iter()
        .filter(|p| p.1 == sizes[sizes.len() - 1])
        .map(|p| p.3)
        .fold(0.0, f64::max);
    r.targets.push((
        format!(
            "propagation p99 under 10 ms at {} catalogues",
            sizes[sizes.len() - 1]
        ),
        format!("worst layout p99 {} ms", ms(worst)),
        worst < 10.0,
    ));
    r.section("Propagation", body);
    Ok(())
}

/// Waits until every watcher has seen `uri` added.
async fn arrived(seen: &[Watcher], uri: &str) -> Result<()> {
    match wait_all(seen, uri, Change::Added, Duration::from_secs(20)).await {
        Some(_) => Ok(()),
        None => bail!("registration {uri} did not reach {} watchers", seen.len()),
    }
}

/// From `t0` until every watcher has seen `uri` removed; 20 s if never.
async fn removal_time(seen: &[Watcher], uri: &str, t0: Instant) -> Duration {
    let limit = Duration::from_secs(20);
    wait_all(seen, uri, Change::Removed, limit)
        .await
        .map_or(limit, |t| t - t0)
}

/// Death of a service process, death of a catalogue, and a partition.
pub async fn withdrawal(r: &mut Report, runs: usize) -> Result<()> {
    let n = 5;
    let edges = edges_of(Topology::Chain, n);
    let cats = start_network(n, &edges, 200, 1000)?;
    let seen = watch_all(&cats, "^tcp://death").await?;
    let bin = rarangi_harness::binary();
    let mut samples = Vec::new();
    for i in 0..runs {
        let uri = format!("tcp://death-{i}:1/p");
        let mut child = Command::new(&bin)
            .args(["register", &uri, "--catalogue", &cats[0].addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        arrived(&seen, &uri).await?;
        let t0 = clock::now();
        child.kill()?;
        samples.push(removal_time(&seen, &uri, t0).await);
        let _ = child.wait();
    }
    let (pm, pp) = median_p99(&samples);
    drop(cats);

    // A catalogue dies: the far side withdraws after dead-after.
    let mut cat_samples = Vec::new();
    for i in 0..runs.min(5) {
        let mut cats = start_network(3, &[(1, 0), (2, 1)], 200, 1000)?;
        let seen = watch_all(&cats[..1], "^tcp://far").await?;
        let mut c = Connection::connect(&cats[2].opts()).await?;
        let uri = format!("tcp://far-{i}:1/p");
        reg(&mut c, &uri).await?;
        arrived(&seen, &uri).await?;
        let t0 = clock::now();
        cats[1].kill();
        cat_samples.push(removal_time(&seen, &uri, t0).await);
    }
    let (cm, cp) = median_p99(&cat_samples);

    // A partition: the link goes silent; the far side is withdrawn after
    // dead-after without heartbeats.
    let mut part_samples = Vec::new();
    for i in 0..runs.min(5) {
        let b_addr = fresh_addr();
        let b = start(&b_addr, &[], 200, 1000)?;
        let hole = Proxy::start(&fresh_addr(), &b.addr).await?;
        let a_addr = fresh_addr();
        let a = start(&a_addr, std::slice::from_ref(&hole.addr), 200, 1000)?;
        let seen = watch_all(std::slice::from_ref(&a), "^tcp://cut").await?;
        let mut c = Connection::connect(&b.opts()).await?;
        let uri = format!("tcp://cut-{i}:1/p");
        reg(&mut c, &uri).await?;
        arrived(&seen, &uri).await?;
        let t0 = clock::now();
        hole.cut();
        part_samples.push(removal_time(&seen, &uri, t0).await);
    }
    let (xm, xp) = median_p99(&part_samples);
    r.targets.push((
        "removal after process death under 50 ms at every watcher".into(),
        format!("p99 {} ms", ms(pp)),
        pp < 50.0,
    ));
    r.section(
        "Withdrawal",
        format!(
            "| what | runs | median ms | p99 ms |\n| --- | --- | --- | --- |\n| SIGKILL of a registered service process, until watchers at all 5 catalogues of a chain saw DEL_SERV | {} | {} | {} |\n| SIGKILL of the middle catalogue of a chain, until the far side withdrew (heartbeat 200 ms, dead-after 1000 ms) | {} | {} | {} |\n| partition: the link between two catalogues goes silent (a forwarder swallows the bytes, connections stay open), until the far side's service is withdrawn (heartbeat 200 ms, dead-after 1000 ms) | {} | {} | {} |\n\nA killed process's connections are closed by the kernel, so its peers see its links drop at once: the second row is not bounded by dead-after. A partition or a host that vanishes is noticed only by silence, so the third row is dead-after plus up to a heartbeat (5 s by default).\n",
            samples.len(), ms(pm), ms(pp), cat_samples.len(), ms(cm), ms(cp), part_samples.len(), ms(xm), ms(xp)
        ),
    );
    Ok(())
}
