//! Whole-system tests: real `rarangi serve` processes on 127.0.0.x, linked
//! over real TCP, with services and watchers using the client library or
//! the `rarangi` command, and faults made by killing processes and by a
//! TCP proxy the test controls. Deadlines are generous; nothing here asserts
//! a timing (that is what the benchmarks are for).

mod common;

use std::collections::BTreeSet;

use common::*;
use rarangi_client::{register, Attrs, Connection, Endpoint, Options};
use rarangi_proto::{Message, ServiceUri};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_registration_reaches_the_far_end_and_process_death_removes_it() {
    let a = cat("development", "c1", &[]);
    let b = cat("development", "c1", &[&a.addr]);
    let c = cat("development", "c2", &[&b.addr]);
    let watcher = watch(&c, "orders").await;
    let mut service = spawn_register(&a, "tcp://10.0.0.1:8080/orders");
    eventually("the far end sees the registration", || {
        watcher.uris().contains("tcp://10.0.0.1:8080/orders")
    })
    .await;
    eventually_lookup(&b, "orders", &["tcp://10.0.0.1:8080/orders"]).await;

    service.kill().unwrap(); // SIGKILL: the process dies, its connection resets.
    service.wait().unwrap();
    eventually("the far end sees the removal", || watcher.uris().is_empty()).await;
    for cat in [&a, &b, &c] {
        eventually_lookup(cat, "orders", &[]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_masters_layout_replicates_and_removes_everywhere() {
    // Seed 001: every catalogue links to two masters; masters are meshed.
    let m1 = cat("development", "c1", &[]);
    let m2 = cat("development", "c1", &[&m1.addr]);
    let leaves: Vec<Cat> = (0..3)
        .map(|i| cat("development", &format!("c{}", i + 2), &[&m1.addr, &m2.addr]))
        .collect();
    let watchers = [watch(&m1, "").await, watch(&leaves[2], "").await];
    let mut service = spawn_register(&leaves[0], "tcp://10.0.0.2:80/billing");
    for w in &watchers {
        eventually("every watcher sees it", || w.uris().len() == 1).await;
    }
    eventually_lookup(&leaves[1], "billing", &["tcp://10.0.0.2:80/billing"]).await;
    service.kill().unwrap();
    service.wait().unwrap();
    for w in &watchers {
        eventually("every watcher sees it go", || w.uris().is_empty()).await;
    }
    drop(m2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_middle_catalogue_withdraws_and_its_restart_restores() {
    let a = cat("development", "c1", &[]);
    let mut b = cat("development", "c1", &[&a.addr]);
    let c = cat("development", "c1", &[&b.addr]);
    let _reg = register(&c.opts(), "tcp://10.0.0.3:80/search", Attrs::default())
        .await
        .unwrap();
    let watcher = watch(&a, "search").await;
    eventually("a sees c's service", || watcher.uris().len() == 1).await;

    b.kill();
    eventually("a withdraws what it cannot reach", || watcher.uris().is_empty()).await;
    eventually_lookup(&c, "search", &["tcp://10.0.0.3:80/search"]).await;

    b.restart().unwrap();
    eventually("it comes back without re-registering", || {
        watcher.uris().len() == 1
    })
    .await;
    assert!(
        a.log().contains("partition"),
        "a logs the partition:\n{}",
        a.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reregisters_after_restart_and_fails_over_between_sides() {
    let mut side_a = cat("development", "c1", &[]);
    let mut side_b = cat("development", "c1", &[&side_a.addr]);
    let both = Options::endpoints(
        "development",
        vec![
            Endpoint::Tcp(side_a.addr.clone()),
            Endpoint::Tcp(side_b.addr.clone()),
        ],
    );
    let mut reg = register(&both, "tcp://10.0.0.4:80/auth", Attrs::default())
        .await
        .unwrap();
    let at_a = reg.catalogue().unwrap();
    assert_eq!(at_a.addr(), side_a.addr);
    let watcher = watch(&side_b, "auth").await;
    eventually("b sees it registered at a", || {
        watcher.records().iter().any(|r| r.ends_with(&side_a.addr))
    })
    .await;

    side_a.kill();
    let at = reg
        .wait_registered(Some(&at_a), DEADLINE)
        .await
        .expect("failed over");
    assert_eq!(at.addr(), side_b.addr);
    eventually("b shows it registered at b", || {
        let r = watcher.records();
        r.len() == 1 && r.iter().all(|r| r.ends_with(&side_b.addr))
    })
    .await;

    // Side A comes back; side B restarts: the client re-registers (at A).
    side_a.restart().unwrap();
    side_b.kill();
    let at = reg
        .wait_registered(Some(&at), DEADLINE)
        .await
        .expect("re-registered");
    assert_eq!(at.addr(), side_a.addr);
    side_b.restart().unwrap();
    eventually_lookup(&side_b, "auth", &["tcp://10.0.0.4:80/auth"]).await;
    drop(reg);
    eventually_lookup(&side_b, "auth", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_through_a_proxy_withdraws_both_ways_and_heals() {
    let a = cat("development", "west", &[]);
    let b = cat("development", "east", &[]);
    let proxy = proxy_to(&b.addr).await;
    let a2 = cat("development", "west", &[&a.addr, &proxy.addr]);
    let _ra = register(&a.opts(), "tcp://10.1.0.1:80/orders", Attrs::default())
        .await
        .unwrap();
    let _rb = register(&b.opts(), "tcp://10.2.0.1:80/orders", Attrs::default())
        .await
        .unwrap();
    let wa = watch(&a, "orders").await;
    let wb = watch(&b, "orders").await;
    eventually("both sides see both", || {
        wa.uris().len() == 2 && wb.uris().len() == 2
    })
    .await;

    proxy.cut();
    eventually("west withdraws east", || {
        wa.uris() == BTreeSet::from(["tcp://10.1.0.1:80/orders".to_owned()])
    })
    .await;
    eventually("east withdraws west", || {
        wb.uris() == BTreeSet::from(["tcp://10.2.0.1:80/orders".to_owned()])
    })
    .await;
    assert!(a2.log().contains("link down"), "{}", a2.log());

    proxy.heal();
    eventually("converged after heal", || {
        wa.uris().len() == 2 && wb.uris().len() == 2
    })
    .await;
    eventually_lookup(
        &a2,
        "orders",
        &["tcp://10.1.0.1:80/orders", "tcp://10.2.0.1:80/orders"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_never_link_and_are_not_redialled() {
    let prod_addr = fresh_addr();
    let staging = cat("staging", "c1", &[&prod_addr]);
    let proxy = proxy_to(&staging.addr).await;
    // Fence: production also dials a peer that never answers, with the
    // same back-off. Once it has retried that one three times, it would
    // have redialled staging too.
    let decoy = proxy_to(&fresh_addr()).await;
    let prod_peers = [proxy.addr.as_str(), decoy.addr.as_str()];
    let prod = cat_at(&prod_addr, "production", "c1", &prod_peers);
    let _r = register(&staging.opts(), "tcp://10.0.0.5:80/orders", Attrs::default())
        .await
        .unwrap();
    eventually("production retried the silent peer", || decoy.accepted() >= 4).await;
    assert_eq!(proxy.accepted(), 1, "production dialled staging more than once");
    eventually_lookup(&prod, "", &[]).await;
    assert!(prod.log().contains("environment mismatch"), "{}", prod.log());
    assert!(
        staging.log().contains("environment mismatch"),
        "{}",
        staging.log()
    );
    // A production client cannot use the staging catalogue either.
    let wrong = Options::endpoints("production", vec![Endpoint::Tcp(staging.addr.clone())]);
    assert!(matches!(
        Connection::connect(&wrong).await,
        Err(rarangi_client::Error::EnvMismatch { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_lookups_get_whole_snapshots_in_order_and_see_every_change() {
    let a = cat("development", "c1", &[]);
    let mut owner = Connection::connect(&a.opts()).await.unwrap();
    let service = |i: u32| ServiceUri::parse(&format!("tcp://10.0.0.{i}:80/orders")).unwrap();
    let reg = |i: u32| Message::RegServ {
        service: service(i),
        attrs: Attrs::default(),
    };
    owner.request(&reg(1)).await.unwrap();
    owner.request(&reg(2)).await.unwrap();
    // Three lookups in one write. Snapshots are encoded once and shared;
    // each answer must still be whole and in order: the records, the
    // SUB_SERV marker, the UNSUB_SERV echo.
    let ask = "8 orders\n12 orders\n".repeat(3);
    let kinds = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .map(|l| l.split(' ').next().unwrap().to_owned())
            .collect()
    };
    // Three times: `records` ADD_SERV lines, the marker, the echo.
    let shape = |records: usize| -> Vec<String> {
        let one = std::iter::repeat_n("5", records).chain(["8", "12"]);
        one.clone()
            .chain(one.clone())
            .chain(one)
            .map(String::from)
            .collect()
    };
    let lines = exchange(&a.addr, ask.as_bytes()).await.lines;
    assert_eq!(kinds(&lines), shape(2), "{lines:?}");
    assert_eq!(lines[..4], lines[4..8], "the same answer twice");
    assert_eq!(lines[..4], lines[8..12]);

    // A change between lookups: every later answer shows it.
    owner.request(&reg(3)).await.unwrap();
    let lines = exchange(&a.addr, ask.as_bytes()).await.lines;
    assert_eq!(kinds(&lines), shape(3), "{lines:?}");
    owner
        .request(&Message::UnregServ { service: service(1) })
        .await
        .unwrap();
    let want: BTreeSet<String> = [2, 3].map(|i| service(i).to_string()).into();
    assert_eq!(lookup(&a.opts(), "orders").await.unwrap(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_errors_and_harms_nobody() {
    let a = cat("development", "c1", &[]);
    let b = cat("development", "c1", &[&a.addr]);
    let _reg = register(&a.opts(), "tcp://10.0.0.6:80/orders", Attrs::default())
        .await
        .unwrap();
    eventually_lookup(&b, "orders", &["tcp://10.0.0.6:80/orders"]).await;

    // Random bytes (seeded), with some newlines.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let junk: Vec<u8> = (0..4096)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed & 0xff) as u8
        })
        .collect();
    // One ERROR per line (the last one, unterminated, is ended by the fence).
    let junk_lines = junk.split(|&b| b == b'\n').count() - usize::from(junk.ends_with(b"\n"));
    let answer = exchange(&a.addr, &junk).await;
    assert!(!answer.closed, "{answer:?}");
    assert_eq!(answer.lines.len(), junk_lines, "{answer:?}");
    assert!(answer.lines.iter().all(|l| l.starts_with("2 ")), "{answer:?}");

    let mut huge = vec![b'x'; 1 << 20];
    huge.push(b'\n');
    let Answer { lines, closed } = exchange(&a.addr, &huge).await;
    assert!(
        closed && lines.iter().any(|l| l.starts_with("2 line-too-long")),
        "{lines:?}"
    );

    let Answer { lines, .. } = exchange(&a.addr, b"8 (unclosed\n").await;
    assert!(lines[0].starts_with("2 bad-regex"), "{lines:?}");
    let Answer { lines, .. } = exchange(&a.addr, b"99 hello\n").await;
    assert!(lines[0].starts_with("2 bad-message"), "{lines:?}");
    let Answer { lines, closed } =
        exchange_until_closed(&a.addr, b"0 x-tvnetcs://10.9.9.9:4770/ c1 staging\n").await;
    assert!(closed && lines[0].starts_with("2 env-mismatch"), "{lines:?}");
    let Answer { lines, closed } =
        exchange_until_closed(&a.addr, b"1\n0 x-tvnetcs://10.9.9.9:4770/ c1 staging\n").await;
    assert!(
        closed && lines.iter().any(|l| l.starts_with("2 env-mismatch")),
        "{lines:?}"
    );
    let Answer { lines, .. } = exchange(&a.addr, b"7 tcp://no-name:1\r\n").await;
    assert!(lines[0].starts_with("2 bad-uri"), "{lines:?}");

    for cat in [&a, &b] {
        eventually_lookup(cat, "orders", &["tcp://10.0.0.6:80/orders"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_withdraws_services_before_exit() {
    let mut a = cat("development", "c1", &[]);
    let b = cat("development", "c1", &[&a.addr]);
    let _reg = register(&a.opts(), "tcp://10.0.0.7:80/orders", Attrs::default())
        .await
        .unwrap();
    let watcher = watch(&b, "orders").await;
    eventually("b sees it", || watcher.uris().len() == 1).await;
    let status = a.terminate().unwrap();
    assert!(status.success(), "exit status {status}");
    eventually("b saw the withdrawal", || watcher.uris().is_empty()).await;
    assert!(a.log().contains("shutting down"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_subscriber_is_disconnected_and_stalls_nobody() {
    let a = Cat::options("development")
        .bin(BIN)
        .cluster("c1")
        .args(["--client-queue", "64"])
        .start()
        .unwrap();
    let b = cat("development", "c1", &[&a.addr]);
    // The stuck client: subscribes to everything, then never reads.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stuck = sock.connect(a.addr.parse().unwrap()).await.unwrap();
    stuck.write_all(b"8 .*\n").await.unwrap();
    let good = watch(&a, "").await;
    // Enough long registrations to overflow the kernel buffers and the queue.
    let pad = "p".repeat(1500);
    let mut regs = Vec::new();
    for c in 0..4 {
        let mut conn = Connection::connect(&a.opts()).await.unwrap();
        for i in 0..1000 {
            let service =
                rarangi_client::ServiceUri::parse(&format!("tcp://10.3.{c}.{}:80/bulk/{pad}{i}", i % 250))
                    .unwrap();
            conn.send(&Message::RegServ {
                service,
                attrs: Attrs::default(),
            })
            .await
            .unwrap();
        }
        regs.push(conn);
    }
    eventually("the good watcher got all 4000", || good.uris().len() == 4000).await;
    eventually_lookup(
        &b,
        "bulk/p{1500}999$",
        &[
            &format!("tcp://10.3.0.249:80/bulk/{pad}999"),
            &format!("tcp://10.3.1.249:80/bulk/{pad}999"),
            &format!("tcp://10.3.2.249:80/bulk/{pad}999"),
            &format!("tcp://10.3.3.249:80/bulk/{pad}999"),
        ],
    )
    .await;
    eventually("the stuck client was disconnected and logged", || {
        a.log().contains("cannot keep up")
    })
    .await;
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolver_orders_by_locality_and_unix_socket_registers() {
    let a = cat("development", "west", &[]);
    let b = cat("development", "west", &[&a.addr]);
    let z = cat("development", "east", &[&a.addr]);
    let unix = Options::endpoints("development", vec![Endpoint::Unix(a.unix_socket())]);
    let _r1 = register(&unix, "tcp://10.0.0.1:80/orders", Attrs::default())
        .await
        .unwrap();
    let _r2 = register(&b.opts(), "tcp://10.0.0.2:80/orders", Attrs::default())
        .await
        .unwrap();
    let _r3 = register(&z.opts(), "tcp://10.0.0.3:80/orders", Attrs::default())
        .await
        .unwrap();
    let resolver = rarangi_client::Resolver::start(&a.opts()).await.unwrap();
    let deadline = Deadline::default();
    loop {
        let got: Vec<String> = resolver
            .resolve("orders")
            .iter()
            .map(|i| i.service.to_string())
            .collect();
        if got
            == [
                "tcp://10.0.0.1:80/orders",
                "tcp://10.0.0.2:80/orders",
                "tcp://10.0.0.3:80/orders",
            ]
        {
            break;
        }
        deadline.retry(|| format!("resolve gave {got:?}")).await;
    }
    assert!(resolver.resolve("nothing").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_fails_over_and_emits_exactly_the_difference() {
    let mut side_a = cat("development", "c1", &[]);
    let side_b = cat("development", "c1", &[&side_a.addr]);
    let far = cat("development", "c2", &[&side_b.addr]);
    let both = Options::endpoints(
        "development",
        vec![
            Endpoint::Tcp(side_a.addr.clone()),
            Endpoint::Tcp(side_b.addr.clone()),
        ],
    );
    let _at_a = register(&side_a.opts(), "tcp://10.0.0.1:80/orders", Attrs::default())
        .await
        .unwrap();
    let _at_far = register(&far.opts(), "tcp://10.0.0.2:80/orders", Attrs::default())
        .await
        .unwrap();
    eventually_lookup(
        &side_b,
        "orders",
        &["tcp://10.0.0.1:80/orders", "tcp://10.0.0.2:80/orders"],
    )
    .await;

    let mut sub = rarangi_client::subscribe(&both, "orders").await.unwrap();
    let mut view: BTreeSet<String> = BTreeSet::new();
    let mut synced = 0;
    let apply = |ev: rarangi_client::Event, view: &mut BTreeSet<String>, synced: &mut usize| match ev {
        rarangi_client::Event::Added(i) => {
            view.insert(format!("{}@{}", i.service, i.catalogue.addr()));
        }
        rarangi_client::Event::Removed(i) => {
            assert!(
                view.remove(&format!("{}@{}", i.service, i.catalogue.addr())),
                "removed {i:?} it never had"
            );
        }
        rarangi_client::Event::Synced => *synced += 1,
    };
    while synced == 0 {
        let ev = sub.next_event().await.unwrap();
        apply(ev, &mut view, &mut synced);
    }
    assert_eq!(view.len(), 2, "{view:?}");

    // Side A dies with its service; the subscription moves to side B and
    // must report only that one removal.
    side_a.kill();
    let deadline = Deadline::default();
    while synced < 2 || view.len() != 1 {
        let ev = tokio::time::timeout(deadline.remaining(), sub.next_event())
            .await
            .unwrap_or_else(|_| panic!("view after failover: {view:?}"))
            .expect("the subscription goes on");
        apply(ev, &mut view, &mut synced);
    }
    assert_eq!(
        view,
        BTreeSet::from([format!("tcp://10.0.0.2:80/orders@{}", far.addr)])
    );
}
