//! Departures and restarts with real processes: a SIGTERMed catalogue
//! leaves (no partition), a restarted one returns, `--reap-after` removes a
//! SIGKILLed one everywhere for good, `rarangi force-leave` does it at once,
//! and a link cut briefly by a proxy heals. Nothing here asserts a timing;
//! the benchmark's "heal" part measures heal times.

#[allow(unused_imports)] // not every helper is used here
mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;
use rarangi_client::{register, Attrs};

const ENV: &str = "development";

fn cat_with(peers: &[&str], args: &[&str]) -> Cat {
    Cat::options(ENV)
        .bin(BIN)
        .cluster("c1")
        .peers(peers)
        .args(args)
        .start()
        .unwrap()
}

fn uri(c: &Cat) -> String {
    format!("x-tvnetcs://{}/", c.addr)
}

/// The catalogues `rarangi topology --json` lists at `c`.
fn topology(c: &Cat) -> BTreeSet<String> {
    let out = Command::new(BIN)
        .args(["topology", "--json", "--env", ENV, "--catalogue", &c.addr])
        .output()
        .expect("run rarangi topology");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["catalogues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["uri"].as_str().unwrap().to_owned())
        .collect()
}

/// The catalogues `c` lists as reachable.
fn reachable(c: &Cat) -> BTreeSet<String> {
    let out = Command::new(BIN)
        .args(["topology", "--json", "--env", ENV, "--catalogue", &c.addr])
        .output()
        .expect("run rarangi topology");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["reachable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

fn force_leave(at: &Cat, target: &str) -> std::process::Output {
    Command::new(BIN)
        .args(["force-leave", target, "--env", ENV, "--catalogue", &at.addr])
        .output()
        .expect("run rarangi force-leave")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_a_departure_not_a_partition_and_a_restart_returns() {
    let a = cat_with(&[], &[]);
    let b = cat_with(&[&a.addr], &[]);
    let mut c = cat_with(&[&a.addr, &b.addr], &[]);
    let _reg = register(&c.opts(), "tcp://10.0.0.3:80/orders", Attrs::default())
        .await
        .unwrap();
    let wa = watch(&a, "orders").await;
    let wb = watch(&b, "orders").await;
    eventually("a and b see c's service", || {
        wa.uris().len() == 1 && wb.uris().len() == 1
    })
    .await;
    eventually("everyone knows c", || {
        topology(&a).contains(&uri(&c)) && topology(&b).contains(&uri(&c))
    })
    .await;

    c.terminate().unwrap();
    eventually("a and b log that c left", || {
        a.log().contains("catalogue left") && b.log().contains("catalogue left")
    })
    .await;
    // The departure and the services' withdrawal arrive before the links
    // close; by the time the log says so, the topology has dropped c.
    eventually("c's services are withdrawn", || {
        wa.uris().is_empty() && wb.uris().is_empty()
    })
    .await;
    assert!(!topology(&a).contains(&uri(&c)), "{:?}", topology(&a));
    assert!(!topology(&b).contains(&uri(&c)), "{:?}", topology(&b));
    for x in [&a, &b] {
        assert!(
            !x.log().contains("partition"),
            "a planned stop is no partition:\n{}",
            x.log()
        );
    }

    c.restart().unwrap();
    eventually("c links again everywhere", || {
        reachable(&a).contains(&uri(&c)) && reachable(&b).contains(&uri(&c))
    })
    .await;
    eventually("its service returns (the client re-registered)", || {
        wa.uris().len() == 1 && wb.uris().len() == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reap_after_removes_a_killed_catalogue_everywhere_for_good() {
    let reap = ["--reap-after", "2s"];
    let a = cat_with(&[], &reap);
    let b = cat_with(&[&a.addr], &reap);
    let mut c = cat_with(&[&a.addr, &b.addr], &reap);
    eventually("everyone knows c", || {
        topology(&a).contains(&uri(&c)) && topology(&b).contains(&uri(&c))
    })
    .await;
    let c_uri = uri(&c);
    c.kill();
    eventually("c is reaped at a and b", || {
        !topology(&a).contains(&c_uri) && !topology(&b).contains(&c_uri)
    })
    .await;
    assert!(a.log().contains("reaped") || b.log().contains("reaped"));
    // A later change that crossed the network: c did not come back meanwhile.
    let _reg = register(&b.opts(), "tcp://10.0.0.2:80/fence", Attrs::default())
        .await
        .unwrap();
    eventually_lookup(&a, "fence", &["tcp://10.0.0.2:80/fence"]).await;
    assert!(!topology(&a).contains(&c_uri) && !topology(&b).contains(&c_uri));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_leave_removes_an_unreachable_catalogue_and_refuses_a_reachable_one() {
    let a = cat_with(&[], &[]);
    let b = cat_with(&[&a.addr], &[]);
    let mut c = cat_with(&[&a.addr, &b.addr], &[]);
    eventually("a reaches c", || reachable(&a).contains(&uri(&c))).await;
    let refused = force_leave(&a, &b.addr);
    assert!(!refused.status.success());
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(text.contains("reachable"), "{text}");

    let c_uri = uri(&c);
    c.kill();
    eventually("c is unreachable from a", || {
        !reachable(&a).contains(&c_uri) && topology(&a).contains(&c_uri)
    })
    .await;
    let done = force_leave(&a, &c_uri);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    eventually("c is gone everywhere", || {
        !topology(&a).contains(&c_uri) && !topology(&b).contains(&c_uri)
    })
    .await;
    assert!(b.log().contains("force-leave"), "{}", b.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_cut_heals() {
    let a = cat_with(&[], &[]);
    let proxy = proxy_to(&a.addr).await;
    let b = cat_with(&[&proxy.addr], &[]);
    let _reg = register(&a.opts(), "tcp://10.0.0.1:80/orders", Attrs::default())
        .await
        .unwrap();
    let wb = watch(&b, "orders").await;
    eventually("b sees a's service", || wb.uris().len() == 1).await;
    proxy.cut();
    eventually("b withdraws it", || wb.uris().is_empty()).await;
    // The cut's length, not a synchronisation: the fault lasts a second.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    proxy.heal();
    eventually("healed: b sees it again", || wb.uris().len() == 1).await;
    assert!(reachable(&b).contains(&uri(&a)));
}
