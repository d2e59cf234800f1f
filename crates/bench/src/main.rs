//! `rarangi-bench`: measures Rarangi on real processes over loopback and on
//! the in-memory network, prints a table, and writes docs/BENCHMARKS.md and
//! docs/bench-propagation.png.
//!
//! ```sh
//! cargo build --release -p rarangi -p rarangi-bench --bins --examples
//! target/release/rarangi-bench all      # everything (several minutes)
//! target/release/rarangi-bench quick    # small sizes, a smoke run
//! target/release/rarangi-bench all --compare   # also etcd 3.4 (apt)
//! target/release/rarangi-bench all --only scale  # one part, printed only
//! target/release/rarangi-bench tls      # the cost of TLS alone (= all --only tls)
//! ```

use anyhow::{bail, Result};
use rarangi_bench::parts::{
    churn, consul, discovery, dns, etcd_side_by_side, heal, health, lookups, propagation, scale,
    serf_side_by_side, sim, tls_cost, withdrawal,
};
use rarangi_bench::report::{write_docs, Report};

/// The parts `--only` accepts.
const PARTS: &str =
    "propagation, withdrawal, heal, health, churn, lookups, consul, dns, tls, scale, sim, discovery, etcd, serf";

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: rarangi-bench all|quick|tls [--compare] [--only PART,...]\n\n\
             all       full sizes; writes docs/BENCHMARKS.md and docs/bench-propagation.png\n\
             quick     small sizes (a smoke run); writes the same files\n\
             tls       the cost of TLS alone, full sizes, printed only (all --only tls)\n\
             --compare also run etcd 3.4 and Serf side by side (installed with apt if missing)\n\
             --only    run just these parts and print them, writing nothing: {PARTS}"
        );
        return Ok(());
    }
    let mut mode = args.first().cloned().unwrap_or_else(|| "quick".into());
    let compare = args.iter().any(|a| a == "--compare");
    let mut only: Option<Vec<String>> = args.iter().position(|a| a == "--only").map(|i| {
        args.get(i + 1)
            .map(|v| v.split(',').map(str::to_owned).collect())
            .unwrap_or_default()
    });
    if mode == "tls" {
        (mode, only) = ("all".into(), Some(vec!["tls".into()]));
    }
    if let Some(parts) = &only {
        if let Some(bad) = parts.iter().find(|p| !PARTS.split(", ").any(|k| k == p.as_str())) {
            bail!("unknown part {bad:?} for --only: choose from {PARTS}");
        }
    }
    let quick = match mode.as_str() {
        "all" => false,
        "quick" => true,
        other => bail!("unknown mode {other:?}: use `all` or `quick` (see --help)"),
    };
    let wants = |part: &str| only.as_ref().is_none_or(|o| o.iter().any(|p| p == part));
    let mut r = Report::default();
    let sizes: &[usize] = if quick { &[5] } else { &[5, 20, 50] };
    let runs = if quick { 10 } else { 40 };
    if wants("propagation") {
        propagation(&mut r, sizes, runs).await?;
    }
    if wants("withdrawal") {
        withdrawal(&mut r, if quick { 5 } else { 20 }).await?;
    }
    if wants("health") {
        health(&mut r, if quick { 3 } else { 10 }, if quick { 200 } else { 1000 }).await?;
    }
    if wants("heal") {
        heal(&mut r, &[1, 5, 30], if quick { 1 } else { 5 }).await?;
    }
    if wants("churn") {
        churn(&mut r, if quick { 2 } else { 5 }).await?;
    }
    if wants("lookups") {
        lookups(&mut r, if quick { 2 } else { 5 }).await?;
    }
    if wants("tls") {
        tls_cost(&mut r, if quick { 10 } else { 40 }, if quick { 2 } else { 5 }).await?;
    }
    if wants("consul") {
        consul(&mut r, if quick { 2 } else { 5 }, if quick { 5 } else { 20 }).await?;
    }
    // Needs dnsperf and dnsmasq (Debian): reported, not fatal, when missing.
    if wants("dns") {
        if let Err(e) = dns(&mut r, if quick { 2 } else { 10 }, if quick { 5 } else { 20 }).await {
            println!("dns failed: {e:#}");
            r.section("DNS", format!("Not measured in this run: {e:#}\n"));
        }
    }
    if wants("scale") {
        for &n in if quick {
            &[10_000][..]
        } else {
            &[100_000, 1_000_000][..]
        } {
            scale(&mut r, n).await?;
        }
    }
    if wants("sim") {
        sim(&mut r, quick);
    }
    if wants("discovery") {
        discovery(&mut r, if quick { 3 } else { 10 }).await?;
    }
    let compares = |part: &str| {
        (compare && only.is_none()) || only.as_ref().is_some_and(|o| o.iter().any(|p| p == part))
    };
    // Other systems: a failure there is reported, and the rest is kept.
    if compares("etcd") {
        if let Err(e) = etcd_side_by_side(&mut r, if quick { 10 } else { 40 }).await {
            println!("etcd side by side failed: {e:#}");
            r.section("Side by side: etcd", format!("Not measured in this run: {e:#}\n"));
        }
    }
    if compares("serf") {
        let sizes: &[usize] = if quick { &[5] } else { &[5, 20, 50] };
        let (runs, kills) = if quick { (10, 1) } else { (40, 3) };
        if let Err(e) = serf_side_by_side(&mut r, sizes, runs, kills) {
            println!("serf side by side failed: {e:#}");
            r.section("Side by side: Serf", format!("Not measured in this run: {e:#}\n"));
        }
    }
    if only.is_none() {
        write_docs(&r, &mode)?;
    }
    Ok(())
}
