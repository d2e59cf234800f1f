//! What the whole-system tests share beyond `rarangi_harness`: catalogues
//! of this build with test timings, lookups that must come true, service
//! processes, and raw exchanges fenced by a HEARTBEAT.
#![allow(dead_code, missing_docs, unreachable_pub)]

pub mod http;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};

pub use rarangi_harness::{eventually, fresh_addr, lookup, Cat, Deadline, Proxy, Watcher, DEADLINE};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The `rarangi` binary of this build.
pub const BIN: &str = env!("CARGO_BIN_EXE_rarangi");

/// A catalogue of `env` and `cluster` dialling `peers` (heartbeat 200 ms,
/// dead after 1 s), on a fresh address.
pub fn cat(env: &str, cluster: &str, peers: &[&str]) -> Cat {
    Cat::options(env)
        .bin(BIN)
        .cluster(cluster)
        .peers(peers)
        .start()
        .unwrap()
}

/// [`cat`] listening on and advertising `addr`.
pub fn cat_at(addr: &str, env: &str, cluster: &str, peers: &[&str]) -> Cat {
    Cat::options(env)
        .bin(BIN)
        .at(addr)
        .cluster(cluster)
        .peers(peers)
        .start()
        .unwrap()
}

/// A watcher of `regex` at `cat`, once its snapshot is in.
pub async fn watch(cat: &Cat, regex: &str) -> Watcher {
    Watcher::start(&cat.opts(), regex).await.unwrap()
}

/// Waits until a lookup of `regex` at `cat` returns exactly `want`.
pub async fn eventually_lookup(cat: &Cat, regex: &str, want: &[&str]) {
    let want: BTreeSet<String> = want.iter().map(ToString::to_string).collect();
    let deadline = Deadline::default();
    loop {
        let got = lookup(&cat.opts(), regex).await.unwrap();
        if got == want {
            return;
        }
        deadline
            .retry(|| format!("{} shows {got:?}, want {want:?}\n{}", cat.addr, cat.log()))
            .await;
    }
}

/// A `rarangi register` process holding `service` at `cat`.
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

/// A proxy to `target` on a fresh address.
pub async fn proxy_to(target: &str) -> Proxy {
    Proxy::to(target).await.unwrap()
}

/// What a raw connection got back: the lines before the fence, and
/// whether the catalogue closed the connection.
#[derive(Debug)]
pub struct Answer {
    pub lines: Vec<String>,
    pub closed: bool,
}

/// A raw line-protocol connection to `addr`, past the catalogue's WELCOME.
async fn connect_raw(
    addr: &str,
) -> (
    BufReader<tokio::net::tcp::OwnedReadHalf>,
    tokio::net::tcp::OwnedWriteHalf,
) {
    let s = TcpStream::connect(addr).await.unwrap();
    let (r, w) = s.into_split();
    let mut r = BufReader::new(r);
    let mut welcome = String::new();
    r.read_line(&mut welcome).await.unwrap();
    assert!(welcome.starts_with("0 x-tvnetcs://"), "{welcome:?}");
    (r, w)
}

/// Opens a raw line-protocol connection, sends `bytes` and then a
/// HEARTBEAT, and reads until that HEARTBEAT's answer (everything before it
/// is the answer to `bytes`) or until the catalogue closes the connection.
/// Heartbeats inside `bytes` are answered too: the fence is the answer to
/// one more than they hold.
pub async fn exchange(addr: &str, bytes: &[u8]) -> Answer {
    let (mut r, mut w) = connect_raw(addr).await;
    let heartbeats = bytes
        .split(|&b| b == b'\n')
        .filter(|l| {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            l == b"1" || l.eq_ignore_ascii_case(b"heartbeat")
        })
        .count();
    let mut out = bytes.to_vec();
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n'); // end the last line, so the fence is a line of its own
    }
    out.extend_from_slice(b"1\n");
    // The catalogue may close before reading it all: what it sent still counts.
    let _ = w.write_all(&out).await;
    let _ = w.flush().await;
    let (mut lines, mut fences) = (Vec::new(), 0);
    let deadline = Deadline::default();
    loop {
        let mut l = String::new();
        let read = tokio::time::timeout(deadline.remaining(), r.read_line(&mut l))
            .await
            .unwrap_or_else(|_| panic!("no HEARTBEAT answer from {addr}; got {lines:?}"));
        match read {
            Ok(0) | Err(_) => return Answer { lines, closed: true },
            Ok(_) => {}
        }
        let l = l.trim_end().to_owned();
        if l == "1" {
            fences += 1;
            if fences > heartbeats {
                return Answer { lines, closed: false };
            }
        }
        lines.push(l);
    }
}

/// Sends `bytes` to a connection the catalogue is expected to close, and
/// reads every line until it does. No HEARTBEAT fence: a fence sent after
/// the catalogue stopped reading would make the kernel reset the
/// connection, and a reset can discard the answer before it is read.
#[allow(dead_code)] // not every test binary uses it
pub async fn exchange_until_closed(addr: &str, bytes: &[u8]) -> Answer {
    let (mut r, mut w) = connect_raw(addr).await;
    let _ = w.write_all(bytes).await;
    let _ = w.flush().await;
    let mut lines = Vec::new();
    let deadline = Deadline::default();
    loop {
        let mut l = String::new();
        let read = tokio::time::timeout(deadline.remaining(), r.read_line(&mut l))
            .await
            .unwrap_or_else(|_| panic!("{addr} did not close the connection; got {lines:?}"));
        match read {
            Ok(0) | Err(_) => return Answer { lines, closed: true },
            Ok(_) => lines.push(l.trim_end().to_owned()),
        }
    }
}
