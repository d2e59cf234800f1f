//! Bounded by design, with real processes: an item too large to replicate
//! is refused where it enters (HTTP 413, `2 limit`) and replication goes
//! on; links never drop over an item; compiled regexes stay within their
//! budgets while connections try to make the catalogue grow.

#[allow(unused_imports)] // not every helper is used here
mod common;

use common::http::*;
use common::*;
use rarangi_proto::limits::{DOCUMENT_GUARANTEED, MAX_ITEM_LINE, MAX_SERVICE_LINE};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// A raw line-protocol connection kept open (its registrations and
/// subscriptions live while it does).
struct Raw {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Raw {
    async fn open(addr: &str) -> Raw {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut r = BufReader::new(r);
        let mut welcome = String::new();
        r.read_line(&mut welcome).await.unwrap();
        assert!(welcome.starts_with("0 "), "{welcome:?}");
        Raw { r, w }
    }

    /// Sends `bytes` (whole lines) and a HEARTBEAT; returns the lines
    /// answered before the HEARTBEAT's answer.
    async fn ask(&mut self, bytes: &[u8]) -> Vec<String> {
        self.w.write_all(bytes).await.unwrap();
        self.w.write_all(b"1\n").await.unwrap();
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            let n = tokio::time::timeout(DEADLINE, self.r.read_line(&mut l))
                .await
                .expect("an answer")
                .unwrap();
            assert!(n > 0, "closed; got {lines:?}");
            match l.trim_end() {
                "1" => return lines,
                other => lines.push(other.to_owned()),
            }
        }
    }
}

/// Two linked catalogues: `b` dials `a`; returns once a write at `a` is
/// visible at `b`.
async fn pair() -> (Cat, Cat) {
    let a = cat("development", "c1", &[]);
    let b = cat("development", "c1", &[&a.addr]);
    assert_eq!(put(&a.http, "/app/ready", json!({"config": 1})).await, 201);
    eventually_json(&b.http, "/app/ready", "the link", |s, _| s == 200).await;
    (a, b)
}

fn no_link_went_down(cats: &[&Cat]) {
    for c in cats {
        assert!(!c.log().contains("link down"), "{}", c.log());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_up_to_the_item_limit_replicate_and_larger_ones_get_413() {
    let (a, b) = pair().await;
    // The guarantee: 512 KiB of spaces, tripled on the wire (1.5 MiB).
    let spaces = " ".repeat(DOCUMENT_GUARANTEED);
    assert_eq!(put(&a.http, "/app/spaces", json!({"config": spaces})).await, 201);
    // A compact document near the limit: 1.9 MiB.
    let near = "x".repeat(MAX_ITEM_LINE - 100 * 1024);
    assert_eq!(put(&a.http, "/app/near", json!({"config": near})).await, 201);
    for (name, want) in [("spaces", &spaces), ("near", &near)] {
        eventually_json(&b.http, &format!("/app/{name}"), name, |s, v| {
            s == 200 && config_of(v).as_str() == Some(want.as_str())
        })
        .await;
    }
    // Over it once encoded (700 KB of spaces: 2.1 MB), and over the body limit.
    let over = json!({"config": " ".repeat(700_000)}).to_string();
    let (status, _, body) = http(&a.http, "PUT", "/app/over", Some(over.as_bytes())).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains(&format!("limit of {MAX_ITEM_LINE} bytes")),
        "{body}"
    );
    let huge = json!({"config": "x".repeat(MAX_ITEM_LINE + 1)}).to_string();
    let (status, _, body) = http(&a.http, "PUT", "/app/huge", Some(huge.as_bytes())).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains(&format!("limit of {MAX_ITEM_LINE} bytes")),
        "{body}"
    );
    // An instance too large to replicate.
    let endpoints = json!({"endpoints": ["x".repeat(70 * 1024)]});
    let (status, _, body) = http(
        &a.http,
        "PUT",
        "/srv/big/h1",
        Some(endpoints.to_string().as_bytes()),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains(&format!("limit of {MAX_SERVICE_LINE} bytes")),
        "{body}"
    );
    // Replication goes on, and nothing refused arrived anywhere.
    assert_eq!(put(&a.http, "/app/after", json!({"config": 2})).await, 201);
    eventually_json(&b.http, "/app/after", "a later write", |s, _| s == 200).await;
    for cat in [&a, &b] {
        for path in ["/app/over", "/app/huge", "/srv/big"] {
            assert_eq!(get_json(&cat.http, path).await.0, 404, "{path}");
        }
    }
    no_link_went_down(&[&a, &b]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_too_large_to_replicate_get_limit_and_the_link_stays_up() {
    let (a, b) = pair().await;
    let mut conn = Raw::open(&a.addr).await;
    // A REG_SERV line just under the 64 KiB client line limit: its
    // ADD_SERV adds the catalogue URI, cluster and timestamp.
    let head = "7 tcp://127.0.0.1:9/big x=";
    let line = format!("{head}{}\n", "y".repeat(64 * 1024 - 1 - head.len()));
    let answer = conn.ask(line.as_bytes()).await;
    assert_eq!(
        answer.len(),
        1,
        "{:?}",
        answer.iter().map(|l| &l[..80]).collect::<Vec<_>>()
    );
    assert!(answer[0].starts_with("2 limit "), "{}", &answer[0][..200]);
    assert!(
        answer[0].contains(&format!("limit of {MAX_SERVICE_LINE} bytes")),
        "{}",
        answer[0]
    );
    // 22 KB of raw control bytes: 66 KB once re-encoded as %01.
    let mut ctl = b"7 tcp://127.0.0.1:9/ctl x=".to_vec();
    ctl.extend(std::iter::repeat_n(1u8, 22 * 1024));
    ctl.push(b'\n');
    let answer = conn.ask(&ctl).await;
    assert!(answer[0].starts_with("2 limit "), "{}", &answer[0][..200]);
    // 15 KB of them (45 KB encoded) fits, and replicates.
    let mut fits = b"7 tcp://127.0.0.1:9/fits x=".to_vec();
    fits.extend(std::iter::repeat_n(1u8, 15 * 1024));
    fits.push(b'\n');
    assert_eq!(conn.ask(&fits).await, Vec::<String>::new());
    eventually_lookup(&b, "fits", &["tcp://127.0.0.1:9/fits"]).await;
    // A later item replicates; no link ever went down.
    assert!(conn.ask(b"7 tcp://127.0.0.1:9/later\n").await.is_empty());
    eventually_lookup(
        &b,
        "/(fits|later|big|ctl)$",
        &["tcp://127.0.0.1:9/fits", "tcp://127.0.0.1:9/later"],
    )
    .await;
    no_link_went_down(&[&a, &b]);
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// What the catalogue may grow by while ten connections each ask for 64
/// regexes compiling near the 1 MiB ceiling: the default budgets admit two
/// per connection (3 MiB charged each), and the catalogue budget is 128
/// MiB. Measured: about 30 MiB. Before the budgets: about 1 GiB.
const REGEX_ATTACK_GROWTH_MIB: u64 = 128;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_while_connections_ask_for_huge_regexes() {
    let a = cat("development", "c1", &[]);
    let pid = a.pid().expect("running");
    let before = rss_kib(pid);
    let mut conns = Vec::new();
    let mut refused = 0;
    for c in 0..10 {
        let mut conn = Raw::open(&a.addr).await;
        let subs: String = (0..64).map(|i| format!("8 \\w{{11}}x{c}y{i}\n")).collect();
        let answer = conn.ask(subs.as_bytes()).await;
        assert_eq!(answer.len(), 64, "{answer:?}");
        refused += answer.iter().filter(|l| l.starts_with("2 limit ")).count();
        conns.push(conn);
    }
    let after = rss_kib(pid);
    println!(
        "VmRSS {before} KiB before, {after} KiB with {} subscriptions accepted",
        640 - refused
    );
    assert!(refused >= 600, "only {refused} of 640 refused");
    assert!(
        after < before + REGEX_ATTACK_GROWTH_MIB * 1024,
        "grew from {before} KiB to {after} KiB"
    );
    // Ordinary subscriptions still work for everyone.
    assert_eq!(
        conns[0].ask(b"8 ^tcp://.*/orders$\n").await,
        ["8 ^tcp://.*/orders$"]
    );
    lookup(&a.opts(), "orders").await.unwrap();
}
