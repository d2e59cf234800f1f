//! `rarangi serve` processes: started with options, restarted, killed
//! (SIGKILL) or stopped (SIGTERM) by the PID we started, their log kept in
//! their temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use rarangi_client::{Endpoint, Options};

use crate::scratch::{fresh_addr, TempDir};
use crate::wait::{Deadline, DEADLINE};
use crate::Error;

/// The `rarangi` binary: `$RARANGI_BIN`, else `rarangi` next to the running
/// executable (or next to its `deps/` directory, for test binaries).
pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("RARANGI_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("target dir");
    let dir = if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    dir.join("rarangi")
}

/// Whether `prlimit` (util-linux) can run here, for [`CatOptions::nofile`].
pub fn has_prlimit() -> bool {
    Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// How to start a catalogue: see [`Cat::options`].
#[derive(Debug, Clone)]
pub struct CatOptions {
    bin: PathBuf,
    env: String,
    cluster: Option<String>,
    addr: Option<String>,
    peers: Vec<String>,
    heartbeat_ms: u64,
    dead_after_ms: u64,
    log_level: String,
    extra: Vec<String>,
    nofile: Option<u64>,
    launcher: Vec<String>,
    http: Option<(Option<String>, String)>,
    dns: Option<Option<String>>,
}

impl CatOptions {
    /// The DNS server: `--dns ARG` (no `--dns` at all, the default bind,
    /// when None). [default: `--dns` a fresh address, in [`Cat::dns`]]
    pub fn dns(mut self, arg: Option<&str>) -> Self {
        self.dns = Some(arg.map(str::to_owned));
        self
    }

    /// The HTTP API: `--http ARG` (no `--http` at all, the default bind,
    /// when None), reached at `reach`. [default: `--http` a fresh address]
    pub fn http(mut self, arg: Option<&str>, reach: &str) -> Self {
        self.http = Some((arg.map(str::to_owned), reach.to_owned()));
        self
    }

    /// Runs the process under `prlimit --nofile=N:N` (see [`has_prlimit`]).
    pub fn nofile(mut self, n: u64) -> Self {
        self.nofile = Some(n);
        self
    }

    /// The binary to run instead of [`binary()`].
    pub fn bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.bin = bin.into();
        self
    }

    /// The cluster name (`--cluster`).
    pub fn cluster(mut self, cluster: &str) -> Self {
        self.cluster = Some(cluster.to_owned());
        self
    }

    /// Listen on and advertise `addr` instead of a fresh address.
    pub fn at(mut self, addr: &str) -> Self {
        self.addr = Some(addr.to_owned());
        self
    }

    /// Runs the binary through this command (say `ip netns exec NS`). The
    /// command must exec the binary, not fork it: signals go to the PID
    /// we started.
    pub fn launcher<S: AsRef<str>>(mut self, command: impl IntoIterator<Item = S>) -> Self {
        self.launcher = command.into_iter().map(|a| a.as_ref().to_owned()).collect();
        self
    }

    /// Peers to dial (`--peer`, once each).
    pub fn peers<S: AsRef<str>>(mut self, peers: impl IntoIterator<Item = S>) -> Self {
        self.peers
            .extend(peers.into_iter().map(|p| p.as_ref().to_owned()));
        self
    }

    /// Heartbeat interval and dead-after, in ms (default 200 and 1000).
    pub fn timing(mut self, heartbeat_ms: u64, dead_after_ms: u64) -> Self {
        (self.heartbeat_ms, self.dead_after_ms) = (heartbeat_ms, dead_after_ms);
        self
    }

    /// `RUST_LOG` for the process (default `info`).
    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = level.to_owned();
        self
    }

    /// More arguments for `rarangi serve`.
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.extra.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Starts the process and waits until it accepts line-protocol and
    /// HTTP connections. Its socket, data and log live in a temporary directory.
    pub fn start(self) -> Result<Cat, Error> {
        let addr = self.addr.clone().unwrap_or_else(fresh_addr);
        let (http_arg, http) = match self.http.clone() {
            Some(given) => given,
            None => {
                let a = fresh_addr();
                (Some(a.clone()), a)
            }
        };
        // A fresh address by default: catalogues of one environment would
        // all want its well-known DNS port.
        let (dns_arg, dns) = match self.dns.clone() {
            Some(given) => (given.clone(), given.unwrap_or_default()),
            None => {
                let a = fresh_addr();
                (Some(a.clone()), a)
            }
        };
        let dir = TempDir::new(&format!("cat-{addr}"))?;
        let mut args: Vec<String> = vec!["serve".into(), "--env".into(), self.env.clone()];
        if let Some(cluster) = &self.cluster {
            args.extend(["--cluster".into(), cluster.clone()]);
        }
        args.extend([
            "--listen".into(),
            addr.clone(),
            "--advertise".into(),
            addr.clone(),
            "--heartbeat-ms".into(),
            self.heartbeat_ms.to_string(),
            "--dead-after-ms".into(),
            self.dead_after_ms.to_string(),
            "--unix".into(),
            dir.path().join("s.sock").display().to_string(),
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
        ]);
        if let Some(a) = http_arg {
            args.extend(["--http".into(), a]);
        }
        if let Some(a) = dns_arg {
            args.extend(["--dns".into(), a]);
        }
        for p in &self.peers {
            args.extend(["--peer".into(), p.clone()]);
        }
        args.extend(self.extra.iter().cloned());
        let mut cat = Cat {
            addr,
            http,
            dns,
            env: self.env,
            bin: self.bin,
            nofile: self.nofile,
            log_level: self.log_level,
            launcher: self.launcher,
            args,
            child: None,
            dir,
        };
        cat.restart()?;
        Ok(cat)
    }
}

/// A `rarangi serve` process this harness started. Dropping it kills the
/// process and removes its directory.
#[derive(Debug)]
pub struct Cat {
    /// Line-protocol address (listened on and advertised).
    pub addr: String,
    /// HTTP API address.
    pub http: String,
    /// DNS address (UDP and TCP) when given; empty with the default bind.
    pub dns: String,
    /// Its environment.
    pub env: String,
    bin: PathBuf,
    nofile: Option<u64>,
    log_level: String,
    launcher: Vec<String>,
    args: Vec<String>,
    child: Option<Child>,
    dir: TempDir,
}

impl Cat {
    /// Options for a catalogue of `env`, to be [`CatOptions::start`]ed.
    pub fn options(env: &str) -> CatOptions {
        CatOptions {
            bin: binary(),
            env: env.to_owned(),
            cluster: None,
            addr: None,
            peers: Vec::new(),
            heartbeat_ms: 200,
            dead_after_ms: 1000,
            log_level: "info".into(),
            extra: Vec::new(),
            http: None,
            dns: None,
            nofile: None,
            launcher: Vec::new(),
        }
    }

    /// Starts the process again with the same arguments and data (a
    /// running one is killed first); waits until it accepts line-protocol
    /// and HTTP connections.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(Error::io("open the catalogue's log"))?;
        // A launcher (e.g. `ip netns exec NS`) and prlimit exec the
        // catalogue in turn: the PID is the catalogue's.
        let mut prefix: Vec<std::ffi::OsString> = self.launcher.iter().map(Into::into).collect();
        if let Some(n) = self.nofile {
            prefix.extend(["prlimit".into(), format!("--nofile={n}:{n}").into(), "--".into()]);
        }
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(&self.bin);
                cmd
            }
            None => Command::new(&self.bin),
        };
        // Nothing from our environment may redirect it (to system
        // directories, say): the arguments say everything.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("RARANGI_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args(&self.args)
            .env("RUST_LOG", &self.log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| Error::Spawn {
                bin: self.bin.clone(),
                source,
            })?;
        let child = self.child.insert(child);
        let deadline = Deadline::after(DEADLINE).every(Duration::from_millis(10));
        // Ready once both the line protocol and the HTTP API answer: tests
        // use either at once.
        let ready = |addr: &str| std::net::TcpStream::connect(addr).is_ok();
        while !(ready(&self.addr) && ready(&self.http)) {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(Error::Exited {
                    addr: self.addr.clone(),
                    status,
                    log: self.log(),
                });
            }
            if !deadline.next_blocking() {
                return Err(Error::NotStarted {
                    addr: self.addr.clone(),
                    log: self.log(),
                });
            }
        }
        Ok(())
    }

    /// SIGKILL: the process dies without a goodbye. Nothing if not running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (a graceful stop); waits for the exit and returns its status.
    pub fn terminate(&mut self) -> Result<ExitStatus, Error> {
        self.signal("TERM")?;
        let mut c = self.child.take().expect("signalled, so running");
        c.wait().map_err(Error::io("wait for the catalogue"))
    }

    /// SIGSTOP: the process freezes with its connections open, as a hung
    /// host would; [`Cat::resume`] thaws it.
    pub fn stop(&self) -> Result<(), Error> {
        self.signal("STOP")
    }

    /// SIGCONT after [`Cat::stop`].
    pub fn resume(&self) -> Result<(), Error> {
        self.signal("CONT")
    }

    /// Sends `sig` (a name such as `TERM`) to the running process.
    fn signal(&self, sig: &str) -> Result<(), Error> {
        let c = self.child.as_ref().ok_or_else(|| Error::NotRunning {
            addr: self.addr.clone(),
        })?;
        // kill(1) on the PID of our own child: no unsafe libc call, and the
        // child is not reaped before this, so the PID is still its own.
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &c.id().to_string()])
            .status()
            .map_err(Error::io("run kill(1)"))?;
        if !status.success() {
            return Err(Error::io(format!("kill -{sig} {}", c.id()))(
                std::io::Error::other(status.to_string()),
            ));
        }
        Ok(())
    }

    /// The process ID, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its resident memory (VmRSS of /proc/PID/status) in KiB, while running.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Everything it logged so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Its Unix socket (registration and lookups).
    pub fn unix_socket(&self) -> PathBuf {
        self.dir.path().join("s.sock")
    }

    /// Client options reaching it over TCP.
    pub fn opts(&self) -> Options {
        Options::endpoints(&self.env, vec![Endpoint::Tcp(self.addr.clone())])
    }

    fn log_path(&self) -> PathBuf {
        self.dir().join("log")
    }

    /// Its temporary directory (socket, data, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cat {
    fn drop(&mut self) {
        self.kill();
    }
}
