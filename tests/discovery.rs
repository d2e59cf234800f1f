//! Peer discovery: seed peers checked at start, DNS SRV records served by a
//! real dnsmasq that the test starts (and restarts with changed records),
//! and the LAN beacon in a bridged lab of network namespaces.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use common::http::get_json;
use common::{eventually, fresh_addr, Cat, Deadline, BIN, DEADLINE};
use rarangi_harness::{Dnsmasq, Error, Lab};

/// The SRV name the DNS test serves.
const SRV: &str = "_rarangi._tcp.disc.test";

/// The links `cat`'s HTTP API shows, as unordered pairs of URIs.
async fn links(http: &str) -> BTreeSet<(String, String)> {
    let (_, v) = get_json(http, "/v1/topology").await;
    v["links"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|p| Some((p[0].as_str()?.to_owned(), p[1].as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn uri(addr: &str) -> String {
    format!("x-tvnetcs://{addr}/")
}

/// Waits until `http` shows a link between every two of `addrs`.
async fn eventually_meshed(http: &str, addrs: &[&str], log: impl Fn() -> String) {
    let deadline = Deadline::after(DEADLINE);
    loop {
        let have = links(http).await;
        let missing: Vec<(String, String)> = addrs
            .iter()
            .enumerate()
            .flat_map(|(i, a)| addrs[i + 1..].iter().map(move |b| (uri(a), uri(b))))
            .map(|(a, b)| if a < b { (a, b) } else { (b, a) })
            .filter(|pair| !have.contains(pair))
            .collect();
        if missing.is_empty() {
            return;
        }
        deadline
            .retry(|| format!("links missing at {http}: {missing:?}; have {have:?}\n{}", log()))
            .await;
    }
}

/// Whether `serve` with `env` variables set exits with an error naming `what`.
async fn start_error(extra: &[&str], env: &[(&str, &str)], what: &str) {
    let dir = std::env::temp_dir().join(format!("rarangi-disc-{}-{}", std::process::id(), fresh_addr()));
    let mut child = Command::new(BIN)
        .args(["serve", "--env", "development", "--http", "off", "--listen"])
        .arg(fresh_addr())
        .arg("--data-dir")
        .arg(&dir)
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = None;
    eventually("serve to refuse to start", || {
        status = child.try_wait().unwrap();
        status.is_some()
    })
    .await;
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(what), "{what:?} not in {text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn malformed_seed_peers_and_beacon_without_key_are_start_errors() {
    start_error(
        &[],
        &[("RARANGI_PEERS", "127.0.0.1:1,,127.0.0.1:2")],
        "entry 2 of 3 is empty",
    )
    .await;
    start_error(&["--peer", "127.0.0.1"], &[], "\"127.0.0.1\"").await;
    start_error(&["--peer", "host:70000"], &[], "host:70000").await;
    start_error(&["--beacon"], &[], "--beacon-key-file").await;
}

fn dns_cat(addr: &str, dns: &Dnsmasq) -> Cat {
    Cat::options("development")
        .bin(BIN)
        .at(addr)
        .args([
            "--discover-dns",
            &format!("{SRV}."),
            "--discover-dns-server",
            &dns.addr,
        ])
        .start()
        .unwrap()
}

#[tokio::test]
async fn dns_srv_records_are_followed_as_they_change() {
    let (a_addr, b_addr, c_addr) = (fresh_addr(), fresh_addr(), fresh_addr());
    let mut dns = match Dnsmasq::start(SRV, &[&a_addr, &b_addr]) {
        Err(Error::Unsupported(why)) => {
            println!("DNS SRV test skipped: {why}");
            return;
        }
        other => other.unwrap(),
    };
    let a = dns_cat(&a_addr, &dns);
    let b = dns_cat(&b_addr, &dns);
    let logs = || format!("A:\n{}\nB:\n{}", a.log(), b.log());
    eventually_meshed(&a.http, &[&a_addr, &b_addr], logs).await;

    // C discovers nobody itself: it is linked only because A and B found
    // it in the changed records.
    let c = Cat::options("development").bin(BIN).at(&c_addr).start().unwrap();
    dns.serve(&[&a_addr, &b_addr, &c_addr]).unwrap();
    let logs = || format!("A:\n{}\nB:\n{}\nC:\n{}", a.log(), b.log(), c.log());
    eventually_meshed(&c.http, &[&a_addr, &b_addr, &c_addr], logs).await;

    // B leaves the records: A and C stop redialing it.
    dns.serve(&[&a_addr, &c_addr]).unwrap();
    let retired = format!("no discovery source lists {b_addr} any more");
    eventually("A to retire B", || a.log().contains(&retired)).await;
    // Nobody dials itself, though every catalogue is in the records.
    assert!(!a.log().contains("is this catalogue itself"), "{}", a.log());
    drop(b);
}

/// A catalogue in lab namespace `i` at `port`, with the beacon on.
fn beacon_cat(lab: &Lab, i: usize, side: &str, key: &Path, level: &str) -> Cat {
    let port = if side == "a" { 4790 } else { 4791 };
    let addr = format!("{}:{port}", lab.ip(i));
    let http = format!("{}:{}", lab.ip(i), port + 2);
    Cat::options("development")
        .bin(BIN)
        .launcher(lab.launcher(i))
        .at(&addr)
        .http(Some(&http), &http)
        .log_level(level)
        .args(["--side", side, "--beacon", "--beacon-key-file"])
        .args([key.display().to_string()])
        // The API listens on the lab's address; the lab exists only here.
        .args(["--http-insecure"])
        .start()
        .unwrap()
}

#[tokio::test]
async fn beacons_link_a_lan_and_a_wrong_key_is_ignored() {
    let lab = match Lab::create(2) {
        Err(Error::Unsupported(why)) => {
            println!("beacon test skipped: {why}");
            return;
        }
        other => other.unwrap(),
    };
    let dir = std::env::temp_dir().join(format!("rarangi-beacon-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (key, other_key) = (dir.join("key"), dir.join("other"));
    std::fs::write(&key, "the lab's shared beacon secret\n").unwrap();
    std::fs::write(&other_key, "somebody else's beacon secret\n").unwrap();
    // Sides A and B of host 0 share the beacon port; host 1 has one, and
    // a catalogue whose key differs.
    let a = beacon_cat(&lab, 0, "a", &key, "info");
    let b = beacon_cat(&lab, 0, "b", &key, "info");
    let c = beacon_cat(&lab, 1, "a", &key, "info");
    let stranger = beacon_cat(&lab, 1, "b", &other_key, "rarangi_server=debug");
    let logs = || format!("A:\n{}\nB:\n{}\nC:\n{}", a.log(), b.log(), c.log());
    eventually_meshed(&c.http, &[&a.addr, &b.addr, &c.addr], logs).await;
    eventually("the stranger to drop a beacon", || {
        stranger.log().contains("bad tag")
    })
    .await;
    let theirs = links(&stranger.http).await;
    assert!(theirs.is_empty(), "{theirs:?}\n{}", stranger.log());
    assert!(!c.log().contains(&stranger.addr), "{}", c.log());
    drop((a, b, c, stranger));
    let _ = std::fs::remove_dir_all(dir);
}
