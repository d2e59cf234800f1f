//! Churn and lookup rates at one catalogue.

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rarangi_client::Connection;
use rarangi_harness::clock;
use rarangi_proto::Message;

use super::{reg, unreg};
use crate::cluster::{pid, start_network};
use crate::os::proc_stats;
use crate::report::Report;

/// Registrations plus deregistrations per second at a hub with 4 peers.
pub async fn churn(r: &mut Report, secs: u64) -> Result<()> {
    let cats = start_network(5, &[(1, 0), (2, 0), (3, 0), (4, 0)], 1000, 5000)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = pid(&cats[0])?;
    let (rss0, cpu0) = proc_stats(pid);
    let mut conn = Connection::connect(&cats[0].opts()).await?;
    let t0 = clock::now();
    let mut ops = 0u64;
    let mut i = 0u64;
    while t0.elapsed() < Duration::from_secs(secs) {
        for _ in 0..250 {
            let uri = format!("tcp://churn-{}:1/c", i % 1000);
            reg(&mut conn, &uri).await?;
            unreg(&mut conn, &uri).await?;
            i += 1;
            ops += 2;
        }
        conn.request(&Message::Heartbeat).await.ok();
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let (rss1, cpu1) = proc_stats(pid);
    let rate = ops as f64 / elapsed;
    println!("churn: {rate:.0} ops/s");
    r.targets.push((
        "at least 20k registrations+deregistrations/s at one catalogue".into(),
        format!("{rate:.0}/s"),
        rate >= 20_000.0,
    ));
    r.section(
        "Churn",
        format!(
            "One client pipelining REG_SERV + UNREG_SERV at a catalogue linked to 4 others (each change flooded to them), for {secs} s.\n\n| operations/s | hub CPU (% of one core) | hub RSS before → after |\n| --- | --- | --- |\n| {rate:.0} | {:.0} | {} → {} MiB |\n",
            (cpu1 - cpu0) as f64 / (elapsed * 10.0),
            rss0 / 1024,
            rss1 / 1024
        ),
    );
    Ok(())
}

/// One line-protocol load connection (plain TCP or TLS): 32 lookups in
/// flight (SUB_SERV then UNSUB_SERV, written in one go), until `deadline`.
/// The answers are counted by their first field, not parsed, so the
/// generator stays light next to the catalogue it measures. Returns the
/// lookups completed.
pub(crate) async fn lookup_load<S>(mut tcp: S, worker: u64, deadline: Instant) -> Result<u64>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut done, mut buf) = (0u64, vec![0u8; 1 << 16]);
    // The first bytes of the line being read, and how far into it we are.
    let (mut head, mut pos) = ([0u8; 3], 0usize);
    while clock::now() < deadline {
        let mut batch = String::new();
        for k in 0..32 {
            let regex = format!("/svc{}$", (done + worker + k) % 50);
            let _ = writeln!(batch, "8 {regex}\n12 {regex}");
        }
        tcp.write_all(batch.as_bytes()).await?;
        // Every lookup ends with its SUB_SERV echo (8) and UNSUB_SERV echo (12).
        let mut ends = 0;
        while ends < 64 {
            let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await??;
            if n == 0 {
                bail!("the catalogue closed the connection");
            }
            for &b in &buf[..n] {
                if b == b'\n' {
                    if head.starts_with(b"8 ") || head == *b"12 " {
                        ends += 1;
                    }
                    (head, pos) = ([0; 3], 0);
                } else {
                    if pos < 3 {
                        head[pos] = b;
                    }
                    pos += 1;
                }
            }
        }
        done += 32;
    }
    Ok(done)
}

/// Registers the 1,000 services lookups look up (20 per name, `svc0` to
/// `svc49`) on `owner`, and waits until the catalogue has them.
pub(crate) async fn fill(owner: &mut Connection) -> Result<()> {
    for i in 0..1000 {
        reg(
            owner,
            &format!("tcp://10.0.{}.{}:80/svc{}", i / 250, i % 250, i % 50),
        )
        .await?;
    }
    owner.request(&Message::Heartbeat).await?;
    Ok(())
}

/// Lookups per second over the line protocol, and HTTP GET /srv/NAME with wrk.
pub async fn lookups(r: &mut Report, secs: u64) -> Result<()> {
    let cats = start_network(1, &[], 1000, 5000)?;
    let mut owner = Connection::connect(&cats[0].opts()).await?;
    fill(&mut owner).await?;
    let pid = pid(&cats[0])?;
    let (_, cpu_line0) = proc_stats(pid);
    let deadline = clock::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..4 {
        let tcp = tokio::net::TcpStream::connect(&cats[0].addr).await?;
        tcp.set_nodelay(true)?;
        tasks.push(tokio::spawn(lookup_load(tcp, w, deadline)));
    }
    let t0 = clock::now();
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    let line_secs = t0.elapsed().as_secs_f64();
    let rate = total as f64 / line_secs;
    let (_, cpu_line1) = proc_stats(pid);
    let line_cpu = (cpu_line1 - cpu_line0) as f64 / 10.0 / line_secs;
    let t1 = clock::now();
    let wrk = Command::new("wrk")
        .args([
            "-t2",
            "-c32",
            &format!("-d{secs}s"),
            &format!("http://{}/srv/svc7", cats[0].http),
        ])
        .output();
    let wrk_line = match wrk {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.starts_with("Requests/sec"))
            .map_or("wrk gave no rate".into(), |l| {
                l.split_whitespace().last().unwrap_or("").to_owned()
            }),
        _ => "not measured: wrk is not installed (apt-get install wrk)".into(),
    };
    let (_, cpu_http) = proc_stats(pid);
    let http_cpu = (cpu_http - cpu_line1) as f64 / 10.0 / t1.elapsed().as_secs_f64();
    let per_core = |rate: f64, cpu: f64| {
        if cpu > 0.0 {
            format!("{:.0}", rate * 100.0 / cpu)
        } else {
            "-".into()
        }
    };
    let wrk_rate: f64 = wrk_line.parse().unwrap_or(0.0);
    println!("lookups: {rate:.0}/s line protocol; HTTP {wrk_line}");
    r.targets.push((
        "at least 100k lookups/s".into(),
        format!("{rate:.0}/s over the line protocol, {wrk_line} over HTTP"),
        rate >= 100_000.0,
    ));
    r.section(
        "Lookups",
        format!(
            "1,000 services (20 per name) at one catalogue. A line-protocol lookup is SUB_SERV REGEX, its snapshot (20 records) and end marker, then UNSUB_SERV: what `rarangi lookup` does. 4 connections, 32 lookups in flight each, {secs} s; the generator counts answers by their first field rather than parsing them, to stay light. HTTP: `wrk -t2 -c32` on GET /srv/svc7. The load generator shares the machine's 2 cores with the catalogue, so the table also gives the catalogue's CPU and its rate per core it used.\n\n| interface | lookups/s | catalogue CPU (% of one core) | lookups per catalogue core-second |\n| --- | --- | --- | --- |\n| line protocol | {rate:.0} | {line_cpu:.0} | {} |\n| HTTP GET /srv/NAME | {wrk_line} | {http_cpu:.0} | {} |\n\nRepeated lookups are answered from a snapshot cached per regular expression (line protocol) and a rendered body cached per service name (HTTP), both dropped at the next change.\n", per_core(rate, line_cpu), per_core(wrk_rate, http_cpu)
        ),
    );
    Ok(())
}
