//! Catalogue processes and line-protocol watchers for the benchmarks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rarangi_client::{Connection, Endpoint, Options};
use rarangi_proto::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The `rarangi` binary: `$RARANGI_BIN`, else target/release/rarangi.
pub fn binary() -> PathBuf {
    std::env::var_os("RARANGI_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let here = std::env::current_exe().expect("current exe");
            here.parent().expect("target dir").join("rarangi")
        })
}

/// The first line a command prints, trimmed; empty if it cannot run.
pub fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// A free loopback address on its own 127.0.x.y.
pub fn fresh_addr() -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let ip = format!("127.1.{}.{}", n / 250, n % 250 + 1);
    let l = std::net::TcpListener::bind(format!("{ip}:0")).expect("bind");
    format!("{ip}:{}", l.local_addr().unwrap().port())
}

/// One catalogue process.
pub struct Cat {
    pub addr: String,
    pub http: String,
    pub child: Option<Child>,
    dir: PathBuf,
}

impl Cat {
    pub fn start(addr: &str, peers: &[String], heartbeat_ms: u64, dead_after_ms: u64) -> Result<Cat> {
        let dir = std::env::temp_dir().join(format!(
            "rarangi-bench-{}-{}",
            std::process::id(),
            addr.replace([':', '.'], "_")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let http = fresh_addr();
        let mut cmd = Command::new(binary());
        cmd.args(["serve", "--listen", addr, "--advertise", addr, "--http", &http])
            .args([
                "--heartbeat-ms",
                &heartbeat_ms.to_string(),
                "--dead-after-ms",
                &dead_after_ms.to_string(),
            ])
            .arg("--unix")
            .arg(dir.join("s.sock"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for p in peers {
            cmd.args(["--peer", p]);
        }
        let child = cmd.spawn().with_context(|| {
            format!(
                "start {} (build it: cargo build --release -p rarangi)",
                binary().display()
            )
        })?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                bail!("catalogue {addr} did not start");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Cat {
            addr: addr.to_owned(),
            http,
            child: Some(child),
            dir,
        })
    }

    pub fn opts(&self) -> Options {
        Options::endpoints("development", vec![Endpoint::Tcp(self.addr.clone())])
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cat {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `n` catalogues linked as `edges` (i dials j for each (i, j), i > j).
pub fn start_network(
    n: usize,
    edges: &[(usize, usize)],
    heartbeat_ms: u64,
    dead_after_ms: u64,
) -> Result<Vec<Cat>> {
    let addrs: Vec<String> = (0..n).map(|_| fresh_addr()).collect();
    let mut cats = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let peers: Vec<String> = edges
            .iter()
            .filter_map(|&(a, b)| {
                if a.max(b) == i {
                    Some(addrs[a.min(b)].clone())
                } else {
                    None
                }
            })
            .collect();
        cats.push(Cat::start(addr, &peers, heartbeat_ms, dead_after_ms)?);
    }
    Ok(cats)
}

/// Times at which each watcher saw each service URI added and removed.
#[derive(Default)]
pub struct Seen {
    pub added: HashMap<String, Vec<Instant>>,
    pub removed: HashMap<String, Vec<Instant>>,
}

/// Subscribes a watcher to every catalogue; they record arrival times.
pub async fn watch_all(cats: &[Cat], regex: &str) -> Result<Arc<Mutex<Seen>>> {
    let seen: Arc<Mutex<Seen>> = Arc::default();
    for cat in cats {
        let mut c = Connection::connect(&cat.opts()).await?;
        c.send(&Message::SubServ { regex: regex.into() }).await?;
        loop {
            match c.recv().await? {
                Some(Message::SubServ { .. }) => break,
                Some(_) => {}
                None => bail!("catalogue closed"),
            }
        }
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Ok(Some(m)) = c.recv().await {
                let now = Instant::now();
                let mut s = seen.lock().unwrap();
                match m {
                    Message::AddServ { service, .. } => {
                        s.added.entry(service.to_string()).or_default().push(now)
                    }
                    Message::DelServ { service, .. } => {
                        s.removed.entry(service.to_string()).or_default().push(now)
                    }
                    _ => {}
                }
            }
        });
    }
    Ok(seen)
}

/// Waits until `count(seen) >= want`, returning the last arrival time.
pub async fn wait_all(
    seen: &Arc<Mutex<Seen>>,
    pick: impl Fn(&Seen) -> Option<&Vec<Instant>>,
    want: usize,
    timeout: Duration,
) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        {
            let s = seen.lock().unwrap();
            if let Some(v) = pick(&s).filter(|v| v.len() >= want) {
                return v.iter().max().copied();
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// Resident memory (KiB) and CPU time (ms) of a process.
pub fn proc_stats(pid: u32) -> (u64, u64) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some(ticks * 10)
        })
        .unwrap_or(0);
    (rss, cpu)
}

/// A TCP proxy between two catalogues that can be cut (blackhole:
/// connections stay open but carry nothing, as in a network partition, so
/// only missing heartbeats tell) and healed. Used by the benchmarks and the
/// whole-system tests.
pub struct Proxy {
    pub addr: String,
    cut: Arc<AtomicBool>,
    pub accepted: Arc<AtomicUsize>,
    epoch: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on `listen` and forwards each connection to `target`.
    pub async fn start(listen: &str, target: &str) -> std::io::Result<Proxy> {
        let addr = listen.to_owned();
        let listener = TcpListener::bind(&addr).await?;
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
        Ok(Proxy {
            addr,
            cut,
            accepted,
            epoch,
            task,
        })
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    /// Heal: drop the blackholed connections so fresh ones form.
    pub fn heal(&self) {
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
