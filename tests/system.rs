//! Whole-system tests: real `rarangi serve` processes on 127.0.0.x, linked
//! over real TCP, with services and watchers using the client library or
//! the `rarangi` command, and faults made by killing processes and by a
//! TCP proxy the test controls. Deadlines are generous; nothing here asserts
//! a timing (that is what the benchmarks are for).

use std::collections::BTreeSet;
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rarangi_client::{register, subscribe, Attrs, Connection, Endpoint, Event, Options};
use rarangi_proto::Message;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const BIN: &str = env!("CARGO_BIN_EXE_rarangi");
const DEADLINE: Duration = Duration::from_secs(20);

static NEXT_IP: AtomicUsize = AtomicUsize::new(0);

/// A distinct loopback address per catalogue, with a free port.
fn fresh_addr() -> String {
    let n = NEXT_IP.fetch_add(1, Ordering::Relaxed);
    let ip = format!("127.0.{}.{}", 10 + (std::process::id() % 200), 2 + n % 250);
    let l = StdListener::bind(format!("{ip}:0")).expect("bind a free port");
    let port = l.local_addr().unwrap().port();
    format!("{ip}:{port}")
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "rarangi-sys-{}-{tag}-{}",
        std::process::id(),
        NEXT_IP.load(Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One catalogue process.
struct Cat {
    addr: String,
    env: String,
    args: Vec<String>,
    dir: PathBuf,
    child: Option<Child>,
}

impl Cat {
    fn start(env: &str, cluster: &str, peers: &[&str]) -> Cat {
        Self::start_at(&fresh_addr(), env, cluster, peers)
    }

    fn start_at(addr: &str, env: &str, cluster: &str, peers: &[&str]) -> Cat {
        let dir = temp_dir(&addr.replace([':', '.'], "_"));
        let mut args: Vec<String> = [
            "serve",
            "--env",
            env,
            "--cluster",
            cluster,
            "--listen",
            addr,
            "--advertise",
            addr,
            "--heartbeat-ms",
            "200",
            "--dead-after-ms",
            "1000",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        args.extend(["--unix".into(), dir.join("s.sock").display().to_string()]);
        args.extend(["--data-dir".into(), dir.join("data").display().to_string()]);
        for p in peers {
            args.extend(["--peer".into(), p.to_string()]);
        }
        let mut cat = Cat {
            addr: addr.to_owned(),
            env: env.to_owned(),
            args,
            dir,
            child: None,
        };
        cat.spawn();
        cat
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .unwrap();
        let child = Command::new(BIN)
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rarangi serve");
        self.child = Some(child);
        let deadline = Instant::now() + DEADLINE;
        while std::net::TcpStream::connect(&self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "catalogue {} did not start: {}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn opts(&self) -> Options {
        Options::endpoints(&self.env, vec![Endpoint::Tcp(self.addr.clone())])
    }

    /// SIGKILL: no goodbye.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM: graceful.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        // SAFETY-free: kill(2) on our own child's PID.
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        c.wait().unwrap()
    }
}

impl Drop for Cat {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A background watcher keeping the set of service URIs a subscription sees.
struct Watcher {
    view: Arc<Mutex<BTreeSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    async fn start(opts: &Options, regex: &str) -> Watcher {
        let mut sub = subscribe(opts, regex).await.expect("subscribe");
        let view: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let v = view.clone();
        let task = tokio::spawn(async move {
            while let Some(ev) = sub.next().await {
                let mut v = v.lock().unwrap();
                match ev {
                    Event::Added(i) => {
                        v.insert(format!("{} @{}", i.service, i.catalogue.addr()));
                    }
                    Event::Removed(i) => {
                        v.remove(&format!("{} @{}", i.service, i.catalogue.addr()));
                    }
                    Event::Synced => {}
                }
            }
        });
        Watcher { view, task }
    }

    fn uris(&self) -> BTreeSet<String> {
        self.view
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.split(" @").next().unwrap().to_owned())
            .collect()
    }

    fn records(&self) -> BTreeSet<String> {
        self.view.lock().unwrap().clone()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The URIs a catalogue's lookup returns right now.
async fn lookup(cat: &Cat, regex: &str) -> BTreeSet<String> {
    let mut c = Connection::connect(&cat.opts()).await.expect("connect");
    c.send(&Message::SubServ { regex: regex.into() }).await.unwrap();
    let mut out = BTreeSet::new();
    loop {
        match c.recv().await.unwrap() {
            Some(Message::AddServ { service, .. }) => {
                out.insert(service.to_string());
            }
            Some(Message::SubServ { .. }) | None => return out,
            Some(_) => {}
        }
    }
}

async fn eventually_lookup(cat: &Cat, regex: &str, want: &[&str]) {
    let want: BTreeSet<String> = want.iter().map(ToString::to_string).collect();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = lookup(cat, regex).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} shows {got:?}, want {want:?}\n{}",
            cat.addr,
            cat.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spawn_register(cat: &Cat, service: &str) -> Child {
    Command::new(BIN)
        .args([
            "register",
            service,
            "--env",
            &cat.env,
            "--catalogue",
            &cat.addr,
            "--attr",
            "zone=a",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rarangi register")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_registration_reaches_the_far_end_and_process_death_removes_it() {
    let a = Cat::start("development", "c1", &[]);
    let b = Cat::start("development", "c1", &[&a.addr]);
    let c = Cat::start("development", "c2", &[&b.addr]);
    let watcher = Watcher::start(&c.opts(), "orders").await;
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
    let m1 = Cat::start("development", "c1", &[]);
    let m2 = Cat::start("development", "c1", &[&m1.addr]);
    let leaves: Vec<Cat> = (0..3)
        .map(|i| Cat::start("development", &format!("c{}", i + 2), &[&m1.addr, &m2.addr]))
        .collect();
    let watchers = [
        Watcher::start(&m1.opts(), "").await,
        Watcher::start(&leaves[2].opts(), "").await,
    ];
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
    let a = Cat::start("development", "c1", &[]);
    let mut b = Cat::start("development", "c1", &[&a.addr]);
    let c = Cat::start("development", "c1", &[&b.addr]);
    let _reg = register(&c.opts(), "tcp://10.0.0.3:80/search", Attrs::default())
        .await
        .unwrap();
    let watcher = Watcher::start(&a.opts(), "search").await;
    eventually("a sees c's service", || watcher.uris().len() == 1).await;

    b.kill();
    eventually("a withdraws what it cannot reach", || watcher.uris().is_empty()).await;
    eventually_lookup(&c, "search", &["tcp://10.0.0.3:80/search"]).await;

    b.spawn();
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
    let mut side_a = Cat::start("development", "c1", &[]);
    let mut side_b = Cat::start("development", "c1", &[&side_a.addr]);
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
    let watcher = Watcher::start(&side_b.opts(), "auth").await;
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
    side_a.spawn();
    side_b.kill();
    let at = reg
        .wait_registered(Some(&at), DEADLINE)
        .await
        .expect("re-registered");
    assert_eq!(at.addr(), side_a.addr);
    side_b.spawn();
    eventually_lookup(&side_b, "auth", &["tcp://10.0.0.4:80/auth"]).await;
    drop(reg);
    eventually_lookup(&side_b, "auth", &[]).await;
}

/// A TCP proxy between two catalogues that the test can cut (blackhole:
/// connections stay open but carry nothing, so only heartbeats tell) and
/// heal.
struct Proxy {
    addr: String,
    cut: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    epoch: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: &str) -> Proxy {
        let addr = fresh_addr();
        let listener = TcpListener::bind(&addr).await.unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let epoch = Arc::new(AtomicUsize::new(0));
        let (t, c, a, e) = (target.to_owned(), cut.clone(), accepted.clone(), epoch.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                a.fetch_add(1, Ordering::SeqCst);
                let (t, c, e) = (t.clone(), c.clone(), e.clone());
                tokio::spawn(async move {
                    let my_epoch = e.load(Ordering::SeqCst);
                    let Ok(outbound) = TcpStream::connect(&t).await else {
                        return;
                    };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::select! {
                        _ = pipe(ri, wo, c.clone(), e.clone(), my_epoch) => {}
                        _ = pipe(ro, wi, c, e, my_epoch) => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            cut,
            accepted,
            epoch,
            task,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    /// Heal: drop the blackholed connections so fresh ones form.
    fn heal(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies bytes while the proxy is healed; while cut, reads and drops them
/// (the connection stays open but silent); closes once the proxy has been
/// healed after the connection was made (a new epoch).
async fn pipe(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
    epoch: Arc<AtomicUsize>,
    mine: usize,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut check = tokio::time::interval(Duration::from_millis(50));
    loop {
        if epoch.load(Ordering::SeqCst) != mine {
            return;
        }
        tokio::select! {
            n = r.read(&mut buf) => {
                let n = match n { Ok(0) | Err(_) => return, Ok(n) => n };
                if !cut.load(Ordering::SeqCst) && w.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            _ = check.tick() => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_through_a_proxy_withdraws_both_ways_and_heals() {
    let a = Cat::start("development", "west", &[]);
    let b = Cat::start("development", "east", &[]);
    let proxy = Proxy::start(&b.addr).await;
    let a2 = Cat::start("development", "west", &[&a.addr, &proxy.addr]);
    let _ra = register(&a.opts(), "tcp://10.1.0.1:80/orders", Attrs::default())
        .await
        .unwrap();
    let _rb = register(&b.opts(), "tcp://10.2.0.1:80/orders", Attrs::default())
        .await
        .unwrap();
    let wa = Watcher::start(&a.opts(), "orders").await;
    let wb = Watcher::start(&b.opts(), "orders").await;
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
    let staging = Cat::start("staging", "c1", &[&prod_addr]);
    let proxy = Proxy::start(&staging.addr).await;
    let prod = Cat::start_at(&prod_addr, "production", "c1", &[&proxy.addr]);
    let _r = register(&staging.opts(), "tcp://10.0.0.5:80/orders", Attrs::default())
        .await
        .unwrap();
    // Long enough for several back-off retries, had there been any.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        proxy.accepted.load(Ordering::SeqCst),
        1,
        "production dialled staging more than once"
    );
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

/// Opens a raw connection, sends bytes, and returns what came back until
/// the catalogue closed or went quiet.
async fn raw(addr: &str, bytes: &[u8]) -> (Vec<String>, bool) {
    let s = TcpStream::connect(addr).await.unwrap();
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    let mut welcome = String::new();
    r.read_line(&mut welcome).await.unwrap();
    assert!(welcome.starts_with("0 x-tvnetcs://"));
    let _ = w.write_all(bytes).await;
    let _ = w.flush().await;
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        match tokio::time::timeout(Duration::from_millis(700), r.read_line(&mut l)).await {
            Ok(Ok(0)) => return (lines, true),
            Ok(Ok(_)) => lines.push(l.trim_end().to_owned()),
            Ok(Err(_)) => return (lines, true),
            Err(_) => return (lines, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_errors_and_harms_nobody() {
    let a = Cat::start("development", "c1", &[]);
    let b = Cat::start("development", "c1", &[&a.addr]);
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
    let (lines, _) = raw(&a.addr, &junk).await;
    assert!(lines.iter().all(|l| l.starts_with("2 ")), "{lines:?}");

    let mut huge = vec![b'x'; 1 << 20];
    huge.push(b'\n');
    let (lines, closed) = raw(&a.addr, &huge).await;
    assert!(
        closed && lines.iter().any(|l| l.starts_with("2 line-too-long")),
        "{lines:?}"
    );

    let (lines, _) = raw(&a.addr, b"8 (unclosed\n").await;
    assert!(lines[0].starts_with("2 bad-regex"), "{lines:?}");
    let (lines, _) = raw(&a.addr, b"99 hello\n").await;
    assert!(lines[0].starts_with("2 bad-message"), "{lines:?}");
    let (lines, closed) = raw(&a.addr, b"0 x-tvnetcs://10.9.9.9:4770/ c1 staging\n").await;
    assert!(closed && lines[0].starts_with("2 env-mismatch"), "{lines:?}");
    let (lines, closed) = raw(&a.addr, b"1\n0 x-tvnetcs://10.9.9.9:4770/ c1 staging\n").await;
    assert!(
        closed && lines.iter().any(|l| l.starts_with("2 env-mismatch")),
        "{lines:?}"
    );
    let (lines, _) = raw(&a.addr, b"7 tcp://no-name:1\r\n").await;
    assert!(lines[0].starts_with("2 bad-uri"), "{lines:?}");

    for cat in [&a, &b] {
        eventually_lookup(cat, "orders", &["tcp://10.0.0.6:80/orders"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_withdraws_services_before_exit() {
    let mut a = Cat::start("development", "c1", &[]);
    let b = Cat::start("development", "c1", &[&a.addr]);
    let _reg = register(&a.opts(), "tcp://10.0.0.7:80/orders", Attrs::default())
        .await
        .unwrap();
    let watcher = Watcher::start(&b.opts(), "orders").await;
    eventually("b sees it", || watcher.uris().len() == 1).await;
    let status = a.terminate();
    assert!(status.success(), "exit status {status}");
    eventually("b saw the withdrawal", || watcher.uris().is_empty()).await;
    assert!(a.log().contains("shutting down"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_subscriber_is_disconnected_and_stalls_nobody() {
    let addr = fresh_addr();
    let mut a = Cat::start_at(&addr, "development", "c1", &[]);
    // Restart with a small client queue.
    a.kill();
    a.args.extend(["--client-queue".into(), "64".into()]);
    a.spawn();
    let b = Cat::start("development", "c1", &[&a.addr]);
    // The stuck client: subscribes to everything, then never reads.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stuck = sock.connect(a.addr.parse().unwrap()).await.unwrap();
    stuck.write_all(b"8 .*\n").await.unwrap();
    let good = Watcher::start(&a.opts(), "").await;
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
    let a = Cat::start("development", "west", &[]);
    let b = Cat::start("development", "west", &[&a.addr]);
    let z = Cat::start("development", "east", &[&a.addr]);
    let unix = Options::endpoints("development", vec![Endpoint::Unix(a.dir.join("s.sock"))]);
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
    let deadline = Instant::now() + DEADLINE;
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
        assert!(Instant::now() < deadline, "resolve gave {got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(resolver.resolve("nothing").is_empty());
}
