//! Memory per replicated service and catch-up of a new catalogue.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};
use rarangi_client::Connection;
use rarangi_harness::{clock, fresh_addr, snapshot, Cat, Deadline};
use rarangi_proto::Message;

use super::reg;
use crate::cluster::{pid, start, start_network};
use crate::os::proc_stats;
use crate::report::Report;

/// Core heap bytes per replicated service, from the `memory` example
/// (built next to this binary by `cargo build --release --examples`).
fn heap_per_service(n: usize) -> Option<f64> {
    let exe = std::env::current_exe().ok()?.parent()?.join("examples/memory");
    let out = Command::new(exe).arg(n.to_string()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(':').nth(1)?.split_whitespace().next()?.parse().ok()
}

/// Memory per replicated service and catch-up time of a new catalogue.
pub async fn scale(r: &mut Report, n: usize) -> Result<()> {
    let cats = start_network(2, &[(1, 0)], 1000, 5000)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss_before, _) = proc_stats(pid(&cats[1])?);
    let t0 = clock::now();
    let mut conns = Vec::new();
    for c in 0..n.div_ceil(1000) {
        let mut conn = Connection::connect(&cats[0].opts()).await?;
        for i in 0..1000.min(n - c * 1000) {
            let k = c * 1000 + i;
            reg(
                &mut conn,
                &format!(
                    "tcp://10.{}.{}.{}:8080/service-{}",
                    k >> 16,
                    (k >> 8) & 255,
                    k & 255,
                    k % 97
                ),
            )
            .await?;
        }
        conn.request(&Message::Heartbeat).await?;
        conns.push(conn);
    }
    let reg_s = t0.elapsed().as_secs_f64();
    // Wait until the replica holds them all.
    // Counted in slices of 65,536 services, so no one snapshot is huge.
    let count = |cat: &Cat| {
        let opts = cat.opts();
        async move {
            let mut k = 0usize;
            for slice in 0..=((n - 1) >> 16) {
                let regex = format!("^tcp://10\\.{slice}\\.");
                snapshot(&opts, &regex, |_| k += 1).await.ok()?;
            }
            Some(k)
        }
    };
    // Wait for the last registration: links are FIFO, so the rest came
    // before it. Polling with a full snapshot would itself grow the RSS.
    let k = n - 1;
    let last = format!("^tcp://10\\.{}\\.{}\\.{}:8080/", k >> 16, (k >> 8) & 255, k & 255);
    let has_last = |cat: &Cat| {
        let (opts, last) = (cat.opts(), last.clone());
        async move {
            let mut k = 0usize;
            snapshot(&opts, &last, |_| k += 1).await.ok()?;
            Some(k == 1)
        }
    };
    let deadline = Deadline::after(Duration::from_secs(300));
    let polled = deadline.every(Duration::from_millis(200));
    while has_last(&cats[1]).await != Some(true) {
        if !polled.next().await {
            bail!("replica never reached {n} services");
        }
    }
    // Let the replica finish with the last lines and their buffers.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (rss_after, _) = proc_stats(pid(&cats[1])?);
    if count(&cats[1]).await != Some(n) {
        bail!("the replica does not hold all {n} services");
    }
    let heap = heap_per_service(n);
    let per = (rss_after.saturating_sub(rss_before) * 1024) as f64 / n as f64;
    // A new catalogue catches up.
    let addr = fresh_addr();
    let t1 = clock::now();
    let newcomer = start(&addr, &[cats[1].addr.clone()], 1000, 5000)?;
    let polled = deadline.every(Duration::from_millis(50));
    while count(&newcomer).await != Some(n) {
        if !polled.next().await {
            bail!("newcomer never caught up");
        }
    }
    let catch_up = t1.elapsed().as_secs_f64();
    let heap_s = heap.map_or("not run".to_owned(), |h| format!("{h:.0}"));
    println!("scale {n}: {per:.0} B/service RSS, {heap_s} B/service heap, catch-up {catch_up:.2} s");
    r.targets.push((
        "at most 300 bytes of memory per replicated service".into(),
        format!("{per:.0} bytes of RSS, {heap_s} bytes of heap, at {n} services"),
        per <= 300.0,
    ));
    r.scale_rows.push(format!(
        "| {n} | {reg_s:.2} | {per:.0} | {heap_s} | {catch_up:.2} |"
    ));
    r.section(
        "Scale",
        format!(
            "RSS is the replica process's resident memory 1 s after the last service arrived, minus before; heap is what the core state machine allocates per service, counted by the dhat allocator (`cargo run --release -p rarangi-bench --example memory -- N`, run by the bench when built). The difference is the allocator's per-block overhead and free memory it keeps.\n\n| services | registration at one catalogue (s) | replica memory per service (bytes, RSS delta) | core heap per service (bytes) | new catalogue caught up (s, from process start, polled every 50 ms) |\n| --- | --- | --- | --- | --- |\n{}\n",
            r.scale_rows.join("\n")
        ),
    );
    Ok(())
}
