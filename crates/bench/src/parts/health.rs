//! Watchdog checks on real processes: time from a hung (SIGSTOPped)
//! service to its withdrawal at every catalogue, and the CPU a catalogue
//! spends probing many checked services.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rarangi_client::Connection;
use rarangi_harness::{clock, lookup, Change};
use rarangi_proto::{Attrs, Message, ServiceUri};
use rarangi_sim::Topology;

use super::edges_of;
use crate::cluster::{pid, start_network, wait_all, watch_all};
use crate::os::proc_stats;
use crate::report::{ms, Report};
use crate::stats::median_p99;

/// Probe interval and timeout of the SIGSTOP runs, in ms.
const INTERVAL_MS: u64 = 200;
const TIMEOUT_MS: u64 = 100;

/// Registers `uri` with `attrs` on `conn` (not waiting for an answer).
async fn reg_with(conn: &mut Connection, uri: &str, attrs: &str) -> Result<()> {
    let service = ServiceUri::parse(uri).map_err(|e| anyhow::anyhow!("{e}"))?;
    let attrs = Attrs::parse(attrs).map_err(|e| anyhow::anyhow!("{e}"))?;
    conn.send(&Message::RegServ { service, attrs }).await?;
    Ok(())
}

/// `kill -SIG PID` of a child we started and have not reaped.
fn signal(pid: u32, sig: &str) -> Result<()> {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()?
        .success();
    if !ok {
        bail!("kill -{sig} {pid} failed");
    }
    Ok(())
}

/// SIGSTOP of an HTTP-checked service until watchers at all 3 catalogues
/// of a chain saw DEL_SERV; then the probe CPU of `services` checked
/// services at one catalogue.
pub async fn health(r: &mut Report, runs: usize, services: usize) -> Result<()> {
    let cats = start_network(3, &edges_of(Topology::Chain, 3), 200, 1000)?;
    let seen = watch_all(&cats, "^tcp://127.0.0.1:[0-9]+/hung").await?;
    let mut conn = Connection::connect(&cats[0].opts()).await?;
    let mut samples = Vec::new();
    for i in 0..runs {
        let mut child = Command::new("python3")
            .args(["-c", "import http.server as h; s=h.HTTPServer(('127.0.0.1',0),h.SimpleHTTPRequestHandler); print(s.server_address[1],flush=True); s.serve_forever()"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .current_dir(std::env::temp_dir())
            .spawn()
            .context("python3 (an HTTP service to check)")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        let port: u16 = line.trim().parse().context("the service's port")?;
        let uri = format!("tcp://127.0.0.1:{port}/hung-{i}");
        let attrs = format!("check=http%3A%2F%2F127.0.0.1%3A{port}%2F&check-interval={INTERVAL_MS}ms&check-timeout={TIMEOUT_MS}ms");
        reg_with(&mut conn, &uri, &attrs).await?;
        if wait_all(&seen, &uri, Change::Added, Duration::from_secs(20))
            .await
            .is_none()
        {
            bail!("{uri} did not reach every catalogue");
        }
        let t0 = clock::now();
        signal(child.id(), "STOP")?;
        let limit = Duration::from_secs(20);
        let done = wait_all(&seen, &uri, Change::Removed, limit).await;
        samples.push(done.map_or(limit, |t| t - t0));
        signal(child.id(), "CONT")?;
        let _ = child.kill();
        let _ = child.wait();
    }
    let (sm, sp) = median_p99(&samples);
    println!("health: SIGSTOP to withdrawal everywhere median {sm:.0} ms p99 {sp:.0} ms");
    drop(conn);
    drop(seen);
    drop(cats);

    // Probe cost: `services` services with check=tcp (1 s interval) at one
    // catalogue, all pointing at one listener here that accepts them.
    let cats = start_network(1, &[], 1000, 5000)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let acceptor = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    let mut conn = Connection::connect(&cats[0].opts()).await?;
    for i in 0..services {
        reg_with(
            &mut conn,
            &format!("tcp://127.0.0.1:{port}/checked-{i}"),
            "check=tcp",
        )
        .await?;
    }
    conn.request(&Message::Heartbeat).await?;
    let shown = lookup(&cats[0].opts(), "checked-").await?.len();
    let pid = pid(&cats[0])?;
    // The whole process's CPU while probing (an idle catalogue's
    // heartbeat-free tick costs next to nothing).
    let (_, cpu0) = proc_stats(pid);
    let t0 = clock::now();
    let secs = 10;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let (rss, cpu1) = proc_stats(pid);
    acceptor.abort();
    let cpu = (cpu1 - cpu0) as f64 / (elapsed * 10.0);
    println!("health: {shown} checked services, catalogue CPU {cpu:.1}% of one core");
    let aim = (INTERVAL_MS * 3 + 50) as f64;
    r.targets.push((
        format!("hung service withdrawn everywhere within interval x fails + 50 ms ({aim:.0} ms)"),
        format!("median {} ms, p99 {} ms", ms(sm), ms(sp)),
        sm <= aim,
    ));
    r.section(
        "Health checks",
        format!(
            "| what | runs | median ms | p99 ms |\n| --- | --- | --- | --- |\n| SIGSTOP of a service checked with `check=http://...` (interval {INTERVAL_MS} ms, timeout {TIMEOUT_MS} ms, 3 failures), registered at the head of a 3-catalogue chain, until watchers at all 3 saw DEL_SERV | {} | {} | {} |\n\nThe aim is interval x fails + 50 ms = {aim:.0} ms; a probe that times out fails at timeout after it starts, so the floor is about 2 intervals + timeout after the stop, plus up to one interval of phase.\n\n| checked services (check=tcp, 1 s interval) at one catalogue | catalogue CPU (% of one core) over {secs} s | RSS |\n| --- | --- | --- |\n| {shown} | {cpu:.1} | {} MiB |\n",
            samples.len(),
            ms(sm),
            ms(sp),
            rss / 1024
        ),
    );
    Ok(())
}
