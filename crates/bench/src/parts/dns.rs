//! DNS: queries per second at a catalogue's DNS port and at dnsmasq
//! serving the same records, with one load generator (Debian's dnsperf);
//! and the time from a registration, and from a registering process's
//! death, until a DNS query sees it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rarangi_client::Connection;
use rarangi_harness::{binary, clock, fresh_addr, Cat, Deadline};
use tokio::net::UdpSocket;

use super::reg;
use crate::cluster::{pid, start};
use crate::os::proc_stats;
use crate::report::Report;
use crate::stats::median_p99;

/// Services served by both servers, two instances each.
const SERVICES: usize = 10;

/// Queries/s at our DNS and at dnsmasq for `secs` each, then `runs`
/// visibility timings.
pub async fn dns(r: &mut Report, secs: u64, runs: usize) -> Result<()> {
    for tool in ["dnsperf", "dnsmasq"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()?
            .stdout
            .is_empty()
        {
            bail!("{tool} is missing: apt-get install dnsperf dnsmasq-base");
        }
    }
    let cat = start(&fresh_addr(), &[], 200, 1000)?;
    let mut conn = Connection::connect(&cat.opts()).await?;
    let mut records = Vec::new();
    for s in 0..SERVICES {
        for i in 0..2 {
            let (ip, port) = (format!("127.0.2.{}", 2 * s + i), 8000 + i as u16);
            reg(&mut conn, &format!("tcp://{ip}:{port}/svc{s}")).await?;
            records.push((s, ip, port));
        }
    }
    let queries = tempfile("dns-queries")?;
    let lines: String = (0..SERVICES)
        .map(|s| format!("svc{s}.service.rarangi A\n_svc{s}._tcp.service.rarangi SRV\n"))
        .collect();
    std::fs::write(&queries, lines)?;
    let ours = cat.dns.clone();
    let deadline = Deadline::default();
    while query(&ours, &format!("svc{}.service.rarangi", SERVICES - 1))
        .await?
        .1
        < 2
    {
        deadline.retry(|| "the services in DNS".to_owned()).await;
    }

    let (cpu0, t0) = (proc_stats(pid(&cat)?).1, clock::now());
    let our_qps = dnsperf(&ours, &queries, secs)?;
    let our_cores = (proc_stats(pid(&cat)?).1 - cpu0) as f64 / 1000.0 / t0.elapsed().as_secs_f64();
    let (mut dnsmasq, theirs) = start_dnsmasq(&records)?;
    let their_qps = dnsperf(&theirs, &queries, secs);
    let _ = dnsmasq.kill();
    let _ = dnsmasq.wait();
    let their_qps = their_qps?;
    let _ = std::fs::remove_file(&queries);
    let per_core = our_qps / our_cores.max(0.01);
    let ratio = their_qps / our_qps.max(1.0);
    println!("dns: {our_qps:.0} q/s ({per_core:.0} per core), dnsmasq {their_qps:.0} q/s");

    let (seen, gone) = visibility(&cat, &mut conn, runs).await?;
    let (seen_med, seen_p99) = median_p99(&seen);
    let (gone_med, gone_p99) = median_p99(&gone);
    r.targets.push((
        "at least 100k DNS queries/s per core".into(),
        format!("{per_core:.0}/s"),
        per_core >= 100_000.0,
    ));
    r.targets.push((
        "DNS within 2x of dnsmasq".into(),
        format!("dnsmasq/ours {ratio:.2}"),
        ratio <= 2.0,
    ));
    r.targets.push((
        "a dead instance gone from DNS within 50 ms".into(),
        format!("median {gone_med:.1} ms"),
        gone_med < 50.0,
    ));
    r.section(
        "DNS",
        format!(
            "dnsperf (Debian), {secs} s against each server in turn, the same {SERVICES} names (A) and their RFC 2782 SRV names, two instances each: a catalogue's DNS port, then dnsmasq (`--host-record`, `--srv-host`, cache off). Figures from a shared 2-core machine: the load generator, the server and other work share the cores; the per-core rate divides by the catalogue's own CPU time.\n\n\
             | server | queries/s | catalogue CPU (cores) | per core |\n| --- | --- | --- | --- |\n\
             | rarangi | {our_qps:.0} | {our_cores:.2} | {per_core:.0} |\n| dnsmasq | {their_qps:.0} | | |\n\n\
             Visibility over {runs} runs, polled with a UDP query every 0.2 ms: from sending REG_SERV until the A query answers it, median {seen_med:.2} ms (p99 {seen_p99:.2}); from SIGKILL of a `rarangi register` process until NXDOMAIN, median {gone_med:.2} ms (p99 {gone_p99:.2}).\n"
        ),
    );
    Ok(())
}

fn tempfile(name: &str) -> Result<std::path::PathBuf> {
    Ok(std::env::temp_dir().join(format!("rarangi-bench-{name}-{}", std::process::id())))
}

/// dnsperf's queries/s against `server` (HOST:PORT).
fn dnsperf(server: &str, queries: &std::path::Path, secs: u64) -> Result<f64> {
    let (host, port) = server.rsplit_once(':').context("HOST:PORT")?;
    let out = Command::new("dnsperf")
        .args([
            "-s",
            host,
            "-p",
            port,
            "-l",
            &secs.to_string(),
            "-c",
            "4",
            "-q",
            "200",
            "-T",
            "2",
            "-d",
        ])
        .arg(queries)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Queries per second:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("dnsperf printed no rate:\n{text}"))
}

/// dnsmasq on a fresh loopback address serving `records` as this catalogue does.
fn start_dnsmasq(records: &[(usize, String, u16)]) -> Result<(Child, String)> {
    let addr = fresh_addr();
    let (host, port) = addr.rsplit_once(':').context("HOST:PORT")?;
    let mut cmd = Command::new("dnsmasq");
    cmd.args([
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--cache-size=0",
    ])
    .args(["--bind-interfaces", "--pid-file=", "--user=root", "--group=root"])
    .arg(format!("--listen-address={host}"))
    .arg(format!("--port={port}"));
    for (s, ip, port) in records {
        cmd.arg(format!("--host-record=svc{s}.service.rarangi,{ip}"));
        cmd.arg(format!("--srv-host=_svc{s}._tcp.service.rarangi,{ip},{port},1,1"));
    }
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    Ok((child, addr))
}

/// One A query at `server`: (response code, answer count).
async fn query(server: &str, name: &str) -> Result<(u8, u16)> {
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    sock.connect(server).await?;
    let mut p = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.extend_from_slice(&[0, 0, 1, 0, 1]);
    sock.send(&p).await?;
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf)).await??;
    if n < 12 {
        bail!("short DNS answer");
    }
    Ok((buf[3] & 0x0f, u16::from_be_bytes([buf[6], buf[7]])))
}

/// Polls `name` until `done` holds of the answer.
async fn poll(server: &str, name: &str, done: impl Fn((u8, u16)) -> bool) -> Result<()> {
    let deadline = Deadline::default();
    while !done(query(server, name).await?) {
        if deadline.remaining().is_zero() {
            bail!("{name} never changed in DNS");
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    Ok(())
}

/// Times from registration to an answer, and from process death to NXDOMAIN.
async fn visibility(cat: &Cat, conn: &mut Connection, runs: usize) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut seen, mut gone) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let name = format!("vis{run}.service.rarangi");
        let t = clock::now();
        reg(conn, &format!("tcp://127.0.3.{run}:80/vis{run}")).await?;
        poll(&cat.dns, &name, |(_, an)| an > 0).await?;
        seen.push(t.elapsed());

        let name = format!("dies{run}.service.rarangi");
        let mut child = Command::new(binary())
            .args(["register", &format!("tcp://127.0.4.{run}:80/dies{run}")])
            .args(["--env", &cat.env, "--catalogue", &cat.addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        poll(&cat.dns, &name, |(_, an)| an > 0).await?;
        let t = clock::now();
        child.kill()?;
        poll(&cat.dns, &name, |(rcode, _)| rcode == 3).await?;
        gone.push(t.elapsed());
        let _ = child.wait();
    }
    Ok((seen, gone))
}
