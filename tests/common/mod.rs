//! Shared harness for the whole-system tests: catalogue processes, a
//! fault-injecting TCP proxy, watchers and polling helpers.
#![allow(dead_code, missing_docs, unreachable_pub)]

use std::collections::BTreeSet;
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
pub use rarangi_bench::harness::Proxy;
use rarangi_client::{subscribe, Connection, Endpoint, Event, Options};
use rarangi_proto::Message;

pub const BIN: &str = env!("CARGO_BIN_EXE_rarangi");
pub const DEADLINE: Duration = Duration::from_secs(20);

static NEXT_IP: AtomicUsize = AtomicUsize::new(0);

/// A distinct loopback address per catalogue, with a free port.
pub fn fresh_addr() -> String {
    let n = NEXT_IP.fetch_add(1, Ordering::Relaxed);
    let ip = format!("127.0.{}.{}", 10 + (std::process::id() % 200), 2 + n % 250);
    let l = StdListener::bind(format!("{ip}:0")).expect("bind a free port");
    let port = l.local_addr().unwrap().port();
    format!("{ip}:{port}")
}

pub fn temp_dir(tag: &str) -> PathBuf {
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
pub struct Cat {
    pub addr: String,
    pub http: String,
    pub env: String,
    pub args: Vec<String>,
    pub dir: PathBuf,
    pub child: Option<Child>,
}

impl Cat {
    pub fn start(env: &str, cluster: &str, peers: &[&str]) -> Cat {
        Self::start_at(&fresh_addr(), env, cluster, peers)
    }

    pub fn start_at(addr: &str, env: &str, cluster: &str, peers: &[&str]) -> Cat {
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
        let http = fresh_addr();
        args.extend(["--http".into(), http.clone()]);
        args.extend(["--unix".into(), dir.join("s.sock").display().to_string()]);
        args.extend(["--data-dir".into(), dir.join("data").display().to_string()]);
        for p in peers {
            args.extend(["--peer".into(), p.to_string()]);
        }
        let mut cat = Cat {
            addr: addr.to_owned(),
            http,
            env: env.to_owned(),
            args,
            dir,
            child: None,
        };
        cat.spawn();
        cat
    }

    pub fn spawn(&mut self) {
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

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    pub fn opts(&self) -> Options {
        Options::endpoints(&self.env, vec![Endpoint::Tcp(self.addr.clone())])
    }

    /// SIGKILL: no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM: graceful.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
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
pub struct Watcher {
    view: Arc<Mutex<BTreeSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    pub async fn start(opts: &Options, regex: &str) -> Watcher {
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

    pub fn uris(&self) -> BTreeSet<String> {
        self.view
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.split(" @").next().unwrap().to_owned())
            .collect()
    }

    pub fn records(&self) -> BTreeSet<String> {
        self.view.lock().unwrap().clone()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The URIs a catalogue's lookup returns right now.
pub async fn lookup(cat: &Cat, regex: &str) -> BTreeSet<String> {
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

pub async fn eventually_lookup(cat: &Cat, regex: &str, want: &[&str]) {
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

pub fn spawn_register(cat: &Cat, service: &str) -> Child {
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

/// A fault-injecting proxy to `target` on a fresh address of this test.
pub async fn proxy_to(target: &str) -> Proxy {
    Proxy::start(&fresh_addr(), target)
        .await
        .expect("start the proxy")
}
