//! Catalogue processes and line-protocol watchers for the benchmarks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rarangi_client::{Connection, Endpoint, Options};
use rarangi_proto::Message;

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

/// A TCP forwarder that can go silent: while cut it swallows bytes both
/// ways and keeps the connections open, as a network partition does, so
/// the catalogues notice only by missing heartbeats.
pub struct Blackhole {
    pub addr: String,
    cut: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Blackhole {
    pub async fn start(target: &str) -> Result<Blackhole> {
        let addr = fresh_addr();
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (target, c) = (target.to_owned(), cut.clone());
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let (target, c) = (target.clone(), c.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::select! {
                        _ = forward(ri, wo, c.clone()) => {}
                        _ = forward(ro, wi, c) => {}
                    }
                });
            }
        });
        Ok(Blackhole { addr, cut, task })
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !cut.load(Ordering::SeqCst) && w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
