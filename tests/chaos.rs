//! Chaos soak: seven catalogues, each in a network namespace of its own
//! (a `Lab`: one bridge, addresses in 10.213.X.0/24), two masters meshed
//! and five catalogues linked to both, plus a catalogue of another
//! environment in the first namespace. For a bounded time a seeded
//! schedule cuts links (iptables DROP, both directions), drops one way,
//! cuts one catalogue from all, SIGSTOPs and SIGCONTs, SIGKILLs and
//! restarts (same data directory), while clients in the test process
//! (reaching the namespaces through the root namespace's veth on the
//! bridge) register and withdraw services over the line protocol and
//! write and delete configuration over HTTP, keeping a ledger of every
//! acknowledged write. Then every fault ends and, within a generous bound,
//! every catalogue must show exactly the live registrations and every
//! acknowledged write, nothing withdrawn or deleted, nothing of the other
//! environment, all catalogues reachable and one leader.
//!
//! One minute by default (CI); longer, and to replay a schedule:
//!
//! ```text
//! RARANGI_CHAOS_SECS=1800 cargo test -p rarangi --test chaos -- --nocapture
//! RARANGI_CHAOS_SEED=1234 cargo test -p rarangi --test chaos -- --nocapture
//! ```
//!
//! Skips (and says why) where network namespaces cannot be made: not root,
//! no `ip` or `iptables`, no CAP_NET_ADMIN.

// A test crate exports nothing: `pub` marks what the modules share.
#![allow(unreachable_pub)]

#[path = "chaos/check.rs"]
mod check;
#[path = "chaos/clients.rs"]
mod clients;
#[allow(unused_imports)] // the harness re-exports other tests use
mod common;
#[path = "chaos/faults.rs"]
mod faults;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::http::try_http;
use common::*;
use rarangi_harness::{Error, Lab};

/// Catalogues of the environment under test, one per namespace.
const CATALOGUES: usize = 7;
const ENV: &str = "development";
const LINE_PORT: u16 = 4790;
const HTTP_PORT: u16 = 4792;
/// The other environment, in namespace 0 beside catalogue 0.
const OTHER_ENV: &str = "staging";
const OTHER_LINE_PORT: u16 = 4770;
const OTHER_HTTP_PORT: u16 = 4772;
/// Heartbeat and dead-after (ms): short, so faults show; not so short
/// that two shared cores flap links all the time.
const TIMING: (u64, u64) = (250, 1500);
/// How long everything may take to heal once the faults end: a link's
/// back-off grows to 5 minutes under repeated failures (plus a 10 s
/// connect timeout).
const HEAL: Duration = Duration::from_secs(330);
/// Registrars and writers running at once.
const REGISTRARS: u64 = 3;
const WRITERS: u64 = 2;

/// The catalogues and the namespaces they run in. Fields drop in order:
/// the processes end before their namespaces go.
pub struct Net {
    cats: Vec<Mutex<Cat>>,
    other: Cat,
    /// Line-protocol addresses.
    addrs: Vec<String>,
    /// HTTP addresses.
    https: Vec<String>,
    /// The configured links (dialer, dialled).
    links: Vec<(usize, usize)>,
    lab: Mutex<Lab>,
}

impl Net {
    /// Catalogue `i`, to stop, kill or restart.
    fn cat(&self, i: usize) -> MutexGuard<'_, Cat> {
        self.cats[i].lock().expect("catalogue")
    }

    fn start(lab: Lab) -> Net {
        let at = |i: usize, port: u16| format!("{}:{port}", lab.ip(i));
        let addrs: Vec<String> = (0..CATALOGUES).map(|i| at(i, LINE_PORT)).collect();
        let https: Vec<String> = (0..CATALOGUES).map(|i| at(i, HTTP_PORT)).collect();
        let other_addr = at(0, OTHER_LINE_PORT);
        // Seed 001's shape: two masters meshed, every other catalogue
        // linked to both.
        let mut links = vec![(1, 0)];
        links.extend((2..CATALOGUES).flat_map(|i| [(i, 0), (i, 1)]));
        let start = |i: usize, env: &str, addr: &str, http: &str, peers: Vec<&str>| {
            Cat::options(env)
                .bin(BIN)
                .launcher(lab.launcher(i))
                .at(addr)
                .http(Some(http), http)
                .cluster(if i < 2 { "masters" } else { "leaves" })
                .timing(TIMING.0, TIMING.1)
                .peers(peers)
                // The API listens on the lab's addresses, beyond loopback;
                // the lab exists only inside this test's namespaces.
                .args(["--allow-register", &lab.cidr(), "--http-insecure"])
                .start()
                .unwrap()
        };
        let cats = (0..CATALOGUES)
            .map(|i| {
                let mut peers: Vec<&str> = links
                    .iter()
                    .filter(|l| l.0 == i)
                    .map(|l| addrs[l.1].as_str())
                    .collect();
                if i == 0 {
                    peers.push(&other_addr); // refused: another environment
                }
                Mutex::new(start(i, ENV, &addrs[i], &https[i], peers))
            })
            .collect();
        let other = start(
            0,
            OTHER_ENV,
            &other_addr,
            &at(0, OTHER_HTTP_PORT),
            vec![&addrs[0], &addrs[1]],
        );
        Net {
            cats,
            other,
            addrs,
            https,
            links,
            lab: Mutex::new(lab),
        }
    }

    fn endpoints(&self) -> Vec<(String, String)> {
        self.addrs
            .iter()
            .cloned()
            .zip(self.https.iter().cloned())
            .collect()
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak_heals_and_keeps_every_acknowledged_write() {
    let secs = env_u64("RARANGI_CHAOS_SECS").unwrap_or(60);
    let seed = env_u64("RARANGI_CHAOS_SEED").unwrap_or_else(rand::random);
    let lab = match Lab::create(CATALOGUES) {
        Err(Error::Unsupported(why)) => {
            println!("chaos soak skipped: {why}");
            return;
        }
        lab => lab.unwrap(),
    };
    println!("chaos soak: seed {seed}, {secs} s (replay with RARANGI_CHAOS_SEED={seed})");
    let net = Arc::new(Net::start(lab));

    // The other environment holds a registration and a document all along.
    let other = (
        format!("tcp://10.251.0.1:80/{OTHER_ENV}-only"),
        format!("{OTHER_ENV}-only"),
    );
    let mut other_line = clients::Line::open(&net.other.addr).await.unwrap();
    let reg = format!("7 {}\n", other.0);
    assert_eq!(other_line.fence(&reg).await.unwrap(), Vec::<String>::new());
    let (body, path) = (r#"{"config":"staging"}"#, format!("/app/{}", other.1));
    let put = try_http(&net.other.http, "PUT", &path, Some(body.as_bytes()));
    assert_eq!(put.await.unwrap().0, 201);
    let probe = (other.1.clone(), format!("{OTHER_ENV}-only"));

    let soak = Deadline::after(Duration::from_secs(secs));
    let fault_net = net.clone();
    let faults = tokio::task::spawn_blocking(move || faults::run(seed, &fault_net, soak));
    let registrars: Vec<_> = (0..REGISTRARS)
        .map(|k| {
            let addrs = net.addrs.clone();
            tokio::spawn(clients::registrar(
                k as usize,
                seed ^ ((k + 1) << 32),
                addrs,
                soak,
            ))
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|k| {
            let https = net.https.clone();
            let probe = probe.clone();
            tokio::spawn(clients::writer(
                k as usize,
                seed ^ ((k + 11) << 32),
                https,
                probe,
                soak,
            ))
        })
        .collect();
    let faults = faults.await.expect("fault schedule");
    let mut regs = Vec::new();
    for r in registrars {
        regs.push(r.await.expect("registrar"));
    }
    let mut writes = Vec::new();
    for w in writers {
        writes.push(w.await.expect("writer"));
    }

    // Every fault is over (the schedule ended them). A registration is live
    // if its connection still answers.
    let mut expect = check::Expect {
        uris: net.addrs.iter().map(|a| format!("x-tvnetcs://{a}/")).collect(),
        ..Default::default()
    };
    for r in &mut regs {
        expect.gone.extend(r.gone.iter().cloned());
        for h in &mut r.held {
            if h.line.fence("").await.is_ok() {
                expect
                    .services
                    .insert((h.uri.clone(), format!("x-tvnetcs://{}/", net.addrs[h.cat])));
            } else {
                expect.gone.insert(h.uri.clone());
            }
        }
    }
    for w in &mut writes {
        expect.keys.append(&mut w.keys);
    }
    let healed = check::settle(ENV, &net.endpoints(), &expect, HEAL).await;
    // Stable, not just converged for a moment: look again after a while.
    let mut violations: Vec<String> = match healed {
        Ok(_) => {
            tokio::time::sleep(Duration::from_millis(2 * TIMING.1)).await;
            check::check_all(ENV, &net.endpoints(), &expect, false).await
        }
        Err(ref p) => p.clone(),
    };
    violations.extend(
        faults
            .failed_restarts
            .values()
            .map(|e| format!("restart failed: {e}")),
    );
    violations.extend(
        writes
            .iter()
            .flat_map(|w| w.leaks.iter().map(|l| format!("isolation: {l}"))),
    );
    violations.extend(
        regs.iter()
            .flat_map(|r| r.refused.iter().map(|l| format!("refused: {l}"))),
    );
    let mut other_expect = check::Expect {
        uris: [format!("x-tvnetcs://{}/", net.other.addr)].into(),
        ..Default::default()
    };
    other_expect
        .services
        .insert((other.0.clone(), format!("x-tvnetcs://{}/", net.other.addr)));
    other_expect.keys.insert(
        other.1.clone(),
        clients::KeyLedger {
            acked: clients::Doc::Config("staging".into()),
            acks: 1,
            maybe: Vec::new(),
        },
    );
    let other_cat = [(net.other.addr.clone(), net.other.http.clone())];
    violations.extend(check::check_all(OTHER_ENV, &other_cat, &other_expect, false).await);
    drop(other_line);

    // The faults must have done something: links went down, catalogues
    // saw partitions, the two environments refused each other.
    let mut logs: Vec<String> = (0..CATALOGUES).map(|i| net.cat(i).log()).collect();
    logs.push(net.other.log());
    let count = |what: &str| logs.iter().map(|l| l.matches(what).count()).sum::<usize>();
    let effects = [
        ("\"link down\" logged", count("link down")),
        ("\"partition:\" logged", count("partition:")),
        ("\"environment mismatch\" logged", count("environment mismatch")),
    ];
    if faults.started.is_empty() || effects[0].1 == 0 || effects[2].1 == 0 {
        violations.push(format!("the faults had no visible effect: {effects:?}"));
    }
    let report = report(seed, secs, &faults, &regs, &writes, &expect, &healed, &violations);
    let report = format!("{report}effects: {effects:?}");
    println!("{report}");
    if !violations.is_empty() {
        let kept = keep_logs(&net, seed);
        panic!(
            "chaos soak found {} violations (seed {seed}); logs kept in {kept}\n{report}",
            violations.len()
        );
    }
    // A soak that did nothing proves nothing.
    assert!(
        expect.keys.values().any(|k| k.acks > 0),
        "no write was acknowledged\n{report}"
    );
    assert!(
        regs.iter().any(|r| r.made > 0),
        "no registration was made\n{report}"
    );
}

#[allow(clippy::too_many_arguments)]
fn report(
    seed: u64,
    secs: u64,
    faults: &faults::FaultLog,
    regs: &[clients::Registrations],
    writes: &[clients::Writes],
    expect: &check::Expect,
    healed: &Result<Duration, Vec<String>>,
    violations: &[String],
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "=== chaos soak report: seed {seed}, {secs} s, {CATALOGUES} catalogues ==="
    );
    let _ = writeln!(s, "faults: {}", faults.started.values().sum::<usize>());
    for (kind, n) in &faults.started {
        let _ = writeln!(s, "  {kind}: {n}");
    }
    let sum = |f: fn(&clients::Registrations) -> usize| regs.iter().map(f).sum::<usize>();
    let _ = writeln!(
        s,
        "registrations: {} made, {} refused, {} unanswered; withdrawn: {} UNREG_SERV, {} closed, {} lost with a killed catalogue; {} live at the end",
        sum(|r| r.made),
        sum(|r| r.refused.len()),
        sum(|r| r.unanswered),
        sum(|r| r.unregistered),
        sum(|r| r.closed),
        sum(|r| r.lost),
        expect.services.len()
    );
    let wsum = |f: fn(&clients::Writes) -> usize| writes.iter().map(f).sum::<usize>();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for w in writes {
        for (k, v) in &w.statuses {
            *statuses.entry(*k).or_default() += v;
        }
    }
    let present = expect
        .keys
        .values()
        .filter(|k| k.acked != clients::Doc::Absent)
        .count();
    let _ = writeln!(
        s,
        "configuration: {} PUT and {} DELETE acknowledged, {} DELETE of an absent key, {} unclear (timeout/reset/5xx), other answers {statuses:?} (0 = no answer); {} keys, {present} present at the end",
        wsum(|w| w.puts),
        wsum(|w| w.deletes),
        wsum(|w| w.absent),
        wsum(|w| w.unclear),
        expect.keys.len()
    );
    let _ = writeln!(s, "isolation probes during the soak: {}", wsum(|w| w.probes));
    match healed {
        Ok(d) => {
            let _ = writeln!(
                s,
                "healed: every catalogue agreed {:.1} s after the faults ended",
                d.as_secs_f64()
            );
        }
        Err(_) => {
            let _ = writeln!(s, "NOT healed within {} s", HEAL.as_secs());
        }
    }
    let _ = writeln!(s, "violations: {}", violations.len());
    // (the caller appends the faults' effects seen in the logs)
    for v in violations.iter().take(60) {
        let _ = writeln!(s, "  {v}");
    }
    if violations.len() > 60 {
        let _ = writeln!(s, "  … and {} more", violations.len() - 60);
    }
    s
}

/// Copies every catalogue's log out of its temporary directory (removed on
/// drop); returns where.
fn keep_logs(net: &Net, seed: u64) -> String {
    let dir = std::env::temp_dir().join(format!("rarangi-chaos-{seed}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    for i in 0..CATALOGUES {
        let _ = std::fs::write(dir.join(format!("cat{i}.log")), net.cat(i).log());
    }
    let _ = std::fs::write(dir.join("other.log"), net.other.log());
    dir.display().to_string()
}
