//! The Consul-compatible API: `GET /v1/health/service/NAME` per second
//! next to `GET /srv/NAME` (wrk), and how long a blocking Consul query
//! takes to return a registration and a process death.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rarangi_client::Connection;
use rarangi_harness::clock;
use rarangi_proto::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::reg;
use crate::cluster::start_network;
use crate::report::Report;
use crate::stats::median_p99;

/// One GET with `Connection: close`: the `X-Consul-Index` and the body.
async fn get(addr: &str, path: &str) -> Result<(u64, String)> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP answer")?;
    let index = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-consul-index: ")
                .map(str::to_owned)
        })
        .and_then(|i| i.trim().parse().ok())
        .context("no X-Consul-Index")?;
    Ok((index, body.to_owned()))
}

/// wrk's requests per second on `url`, or why there is none.
fn wrk(url: &str, secs: u64) -> String {
    match Command::new("wrk")
        .args(["-t2", "-c32", &format!("-d{secs}s"), url])
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.starts_with("Requests/sec"))
            .map_or("wrk gave no rate".into(), |l| {
                l.split_whitespace().last().unwrap_or("").to_owned()
            }),
        _ => "not measured: wrk is not installed (apt-get install wrk)".into(),
    }
}

/// Waits (blocking query) until `path`'s body contains `want` or stops
/// containing it (`present` false); returns when it did.
async fn blocked_until(http: &str, path: &str, index: u64, want: &str, present: bool) -> Result<()> {
    let mut index = index;
    let deadline = clock::now() + Duration::from_secs(30);
    loop {
        let (i, body) = get(http, &format!("{path}?index={index}&wait=30s")).await?;
        if body.contains(want) == present {
            return Ok(());
        }
        if clock::now() > deadline {
            bail!("{path} never showed the change");
        }
        index = i;
    }
}

/// The Consul part: lookup rates and blocking-query latencies.
pub async fn consul(r: &mut Report, secs: u64, runs: usize) -> Result<()> {
    let cats = start_network(1, &[], 1000, 5000)?;
    let http = cats[0].http.clone();
    let mut owner = Connection::connect(&cats[0].opts()).await?;
    for i in 0..1000 {
        reg(
            &mut owner,
            &format!("tcp://10.0.{}.{}:80/svc{}", i / 250, i % 250, i % 50),
        )
        .await?;
    }
    owner.request(&Message::Heartbeat).await?;
    let health = wrk(&format!("http://{http}/v1/health/service/svc7"), secs);
    let srv = wrk(&format!("http://{http}/srv/svc7"), secs);
    println!("consul: GET /v1/health/service/NAME {health}/s, GET /srv/NAME {srv}/s");

    let bin = rarangi_harness::binary();
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let name = format!("lat{i}");
        let path = format!("/v1/health/service/{name}");
        let uri = format!("tcp://127.0.0.1:{}/{name}", 20_000 + i);
        let (index, _) = get(&http, &path).await?;
        let waiter = tokio::spawn({
            let (http, path, uri) = (http.clone(), path.clone(), uri.clone());
            async move {
                blocked_until(&http, &path, index, &format!(":{}", 20_000 + i), true)
                    .await
                    .map(|_| uri)
            }
        });
        // The query is blocked once the catalogue holds it; give it a moment
        // to get there so the time measured is the change's, not the dial's.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t0 = clock::now();
        let mut child = Command::new(&bin)
            .args(["register", &uri, "--catalogue", &cats[0].addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        waiter.await??;
        up.push(t0.elapsed());
        let (index, _) = get(&http, &path).await?;
        let waiter = tokio::spawn({
            let (http, path) = (http.clone(), path.clone());
            async move { blocked_until(&http, &path, index, &format!(":{}", 20_000 + i), false).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t1 = clock::now();
        child.kill()?;
        waiter.await??;
        down.push(t1.elapsed());
        let _ = child.wait();
    }
    let (um, up99) = median_p99(&up);
    let (dm, dp99) = median_p99(&down);
    r.section(
        "Consul-compatible API",
        format!(
            "Measured on a shared 2-core machine (other work running): figures are indicative. One catalogue holding 1,000 services (20 per name). Rates: `wrk -t2 -c32 -d{secs}s`, the load generator on the same cores.\n\n\
             | request | per second |\n| --- | --- |\n| GET /v1/health/service/NAME | {health} |\n| GET /srv/NAME | {srv} |\n\n\
             A blocking `GET /v1/health/service/NAME?index=N` returns a change ({runs} runs; the registration is a `rarangi register` process started at t0, which includes its start; the death is its SIGKILL):\n\n\
             | change | median | p99 |\n| --- | --- | --- |\n| registration (process start to answer) | {um:.1} ms | {up99:.1} ms |\n| process death (kill to answer) | {dm:.1} ms | {dp99:.1} ms |\n"
        ),
    );
    Ok(())
}
