//! The cost of TLS: propagation, lookups and link set-up with TLS on and
//! off in the same run, on the same machine, side by side.

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rarangi_client::{Connection, Options, TlsClient, TlsOptions};
use rarangi_harness::{clock, fresh_addr, Cat, Change, TempDir, Watcher};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

use super::load::{fill, lookup_load};
use super::reg;
use crate::cluster::wait_all;
use crate::report::{ms, Report};
use crate::stats::median_p99;

/// Catalogues in the propagation chain.
const CHAIN: usize = 3;

/// A CA and one certificate naming every host of `addrs` (made by
/// `rarangi tls`, as an operator would), in a temporary directory.
struct Certs {
    dir: TempDir,
    name: String,
}

impl Certs {
    fn make(addrs: &[String]) -> Result<Certs> {
        let dir = TempDir::new("bench-tls")?;
        let hosts: Vec<&str> = addrs
            .iter()
            .map(|a| a.rsplit_once(':').map_or(a.as_str(), |(h, _)| h))
            .collect();
        let d = dir.path().display().to_string();
        let bin = rarangi_harness::binary();
        for args in [vec!["tls", "ca", &d], [&["tls", "cert", &d][..], &hosts].concat()] {
            let out = Command::new(&bin).args(&args).output()?;
            if !out.status.success() {
                bail!("rarangi {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        Ok(Certs {
            dir,
            name: hosts[0].to_owned(),
        })
    }

    fn path(&self, file: &str) -> std::path::PathBuf {
        self.dir.path().join(file)
    }

    /// `rarangi serve` arguments turning TLS on.
    fn serve_args(&self) -> Vec<String> {
        let p = |f: &str| self.path(f).display().to_string();
        vec![
            "--tls-ca".into(),
            p("ca.pem"),
            "--tls-cert".into(),
            p(&format!("{}.pem", self.name)),
            "--tls-key".into(),
            p(&format!("{}-key.pem", self.name)),
        ]
    }

    /// Client options presenting the certificate (so it may register).
    fn client(&self) -> TlsOptions {
        TlsOptions {
            ca: self.path("ca.pem"),
            cert: Some((
                self.path(&format!("{}.pem", self.name)),
                self.path(&format!("{}-key.pem", self.name)),
            )),
        }
    }
}

/// One side of the comparison: plain TCP, or TLS with these certificates.
struct Side<'a> {
    name: &'static str,
    certs: Option<&'a Certs>,
}

impl Side<'_> {
    fn start(&self, addr: &str, peers: &[String]) -> Result<Cat> {
        let tls = self.certs.map(Certs::serve_args).unwrap_or_default();
        Ok(Cat::options("development")
            .at(addr)
            .peers(peers)
            .log_level("warn")
            .args(["--max-connections-per-ip", "0"])
            .args(tls)
            .start()?)
    }

    fn opts(&self, cat: &Cat) -> Options {
        cat.opts().with_tls(self.certs.map(Certs::client))
    }

    /// A connection to `addr` that has read the WELCOME: TCP, and the TLS
    /// handshake when TLS is on.
    async fn link(&self, tls: Option<&TlsClient>, addr: &str) -> Result<Duration> {
        let t0 = clock::now();
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let mut welcome = String::new();
        match tls {
            None => BufReader::new(tcp).read_line(&mut welcome).await?,
            Some(c) => {
                BufReader::new(c.connect(addr, tcp).await?)
                    .read_line(&mut welcome)
                    .await?
            }
        };
        let took = t0.elapsed();
        if !welcome.starts_with("0 ") {
            bail!("{addr} did not send a WELCOME ({} side): {welcome:?}", self.name);
        }
        Ok(took)
    }
}

/// Propagation (a chain of 3), lookups/s (one catalogue, `secs` s) and
/// link set-up (`runs` connections), with TLS off and on.
pub async fn tls_cost(r: &mut Report, runs: usize, secs: u64) -> Result<()> {
    let addrs: Vec<String> = (0..CHAIN + 1).map(|_| fresh_addr()).collect();
    let certs = Certs::make(&addrs)?;
    let client = certs.client().client()?;
    let sides = [
        Side {
            name: "plain TCP",
            certs: None,
        },
        Side {
            name: "TLS",
            certs: Some(&certs),
        },
    ];
    let mut rows = Vec::new();
    for side in &sides {
        let tls = side.certs.map(|_| &client);
        // Fresh ports for each side; the certificate names the hosts.
        let ports = |a: &String| -> Result<String> {
            let host = a.rsplit_once(':').map_or(a.as_str(), |(h, _)| h);
            let l = std::net::TcpListener::bind((host, 0))?;
            Ok(format!("{host}:{}", l.local_addr()?.port()))
        };
        let here: Vec<String> = addrs.iter().map(ports).collect::<Result<_>>()?;
        let prop = propagation(side, &here[..CHAIN], runs).await?;
        let rate = lookups(side, &here[CHAIN], secs, tls).await?;
        let lone = side.start(&ports(&addrs[0])?, &[])?;
        let mut setups = Vec::new();
        for _ in 0..runs {
            setups.push(side.link(tls, &lone.addr).await?);
        }
        let setup = median_p99(&setups);
        println!(
            "tls cost, {}: propagation median {:.2} ms, lookups {rate:.0}/s, link set-up median {:.2} ms",
            side.name, prop.0, setup.0
        );
        rows.push((side.name, prop, rate, setup));
    }
    let mut body = format!(
        "The same measurements with TLS off and on, in one run: certificates from `rarangi tls` (ECDSA P-256), rustls with ring, TLS 1.3. Propagation: registration at the end of a chain of {CHAIN} catalogues until a watcher at every catalogue has it ({runs} runs). Lookups: as in the Lookups section (1,000 services, 4 connections with 32 lookups in flight, {secs} s). Link set-up: a new connection until its WELCOME has been read (TCP connect, plus the TLS handshake with a client certificate when on: what a dialing catalogue does before its own WELCOME), {runs} connections.\n\n| transport | propagation median ms | p99 ms | lookups/s | link set-up median ms | p99 ms |\n| --- | --- | --- | --- | --- | --- |\n"
    );
    for (name, prop, rate, setup) in &rows {
        let _ = writeln!(
            body,
            "| {name} | {} | {} | {rate:.0} | {} | {} |",
            ms(prop.0),
            ms(prop.1),
            ms(setup.0),
            ms(setup.1)
        );
    }
    let (off, on) = (&rows[0], &rows[1]);
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}", a / b)
        } else {
            "-".into()
        }
    };
    let _ = writeln!(
        body,
        "\nTLS / plain: propagation median ×{}, lookups/s ×{}, link set-up median ×{}.",
        ratio(on.1 .0, off.1 .0),
        ratio(on.2, off.2),
        ratio(on.3 .0, off.3 .0)
    );
    r.section("The cost of TLS", body);
    Ok(())
}

/// Median and p99 (ms) of registration at the chain's end until every
/// watcher has it.
async fn propagation(side: &Side<'_>, addrs: &[String], runs: usize) -> Result<(f64, f64)> {
    let mut cats: Vec<Cat> = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let peers: Vec<String> = cats
            .last()
            .map(|c: &Cat| vec![c.addr.clone()])
            .unwrap_or_default();
        cats.push(
            side.start(addr, &peers)
                .with_context(|| format!("catalogue {i}"))?,
        );
    }
    let mut seen = Vec::new();
    for cat in &cats {
        seen.push(Watcher::start(&side.opts(cat), "^tcp://bench").await?);
    }
    let mut conn = Connection::connect(&side.opts(&cats[CHAIN - 1])).await?;
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
        bail!("the {} chain did not converge", side.name);
    }
    let mut adds = Vec::new();
    for i in 0..runs {
        let uri = format!("tcp://bench-{i}:1/p");
        let t0: Instant = clock::now();
        reg(&mut conn, &uri).await?;
        let done = wait_all(&seen, &uri, Change::Added, Duration::from_secs(10)).await;
        adds.push(done.map_or(Duration::from_secs(10), |t| t - t0));
    }
    Ok(median_p99(&adds))
}

/// Lookups per second at one catalogue at `addr`.
async fn lookups(side: &Side<'_>, addr: &str, secs: u64, tls: Option<&TlsClient>) -> Result<f64> {
    let cat = side.start(addr, &[])?;
    let mut owner = Connection::connect(&side.opts(&cat)).await?;
    fill(&mut owner).await?;
    let deadline = clock::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..4 {
        let tcp = TcpStream::connect(&cat.addr).await?;
        tcp.set_nodelay(true)?;
        tasks.push(match tls {
            None => tokio::spawn(lookup_load(tcp, w, deadline)),
            Some(c) => tokio::spawn(lookup_load(c.connect(&cat.addr, tcp).await?, w, deadline)),
        });
    }
    let t0 = clock::now();
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / t0.elapsed().as_secs_f64())
}
