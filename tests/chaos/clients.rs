//! The clients, all in the test process (reaching the namespaces through
//! the root namespace's veth on the lab's bridge): registrars holding
//! line-protocol registrations (each lives with its connection), and
//! configuration writers keeping a ledger of every acknowledged write.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rarangi_harness::Deadline;
use rarangi_proto::{Attrs, Message, ServiceUri};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::common::http::try_http;

/// How long a client waits for any one answer. Longer than most SIGSTOPs,
/// so some writes to a frozen catalogue are answered after SIGCONT.
pub const PATIENCE: Duration = Duration::from_secs(4);
/// Registrations one registrar holds at most.
const HELD_MAX: usize = 16;
/// Connections kept open after UNREG_SERV (so the deregistration, not the
/// close, removes the service), at most, per registrar.
const HUSKS_MAX: usize = 8;
/// Keys one writer works on at a time.
const KEYS: usize = 6;

/// A raw line-protocol connection whose lines a reader task forwards.
pub struct Line {
    w: OwnedWriteHalf,
    rx: mpsc::UnboundedReceiver<String>,
    reader: tokio::task::JoinHandle<()>,
}

impl Line {
    /// Connects and reads the WELCOME.
    pub async fn open(addr: &str) -> std::io::Result<Line> {
        let s = timeout(PATIENCE, TcpStream::connect(addr)).await??;
        let (r, w) = s.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        let welcome = timeout(PATIENCE, rx.recv()).await?;
        if !welcome.is_some_and(|l| l.starts_with("0 ")) {
            return Err(std::io::Error::other("no WELCOME"));
        }
        Ok(Line { w, rx, reader })
    }

    /// Sends `lines` (each ending in LF) and a HEARTBEAT; returns what came
    /// back before the HEARTBEAT's answer.
    pub async fn fence(&mut self, lines: &str) -> std::io::Result<Vec<String>> {
        let out = format!("{lines}1\n");
        timeout(PATIENCE, self.w.write_all(out.as_bytes())).await??;
        let mut got = Vec::new();
        loop {
            match timeout(PATIENCE, self.rx.recv()).await? {
                Some(l) if l == "1" => return Ok(got),
                Some(l) => got.push(l),
                None => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            }
        }
    }

    /// Whether the catalogue closed it (say, it was killed).
    fn closed(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(_) => continue,
                Err(mpsc::error::TryRecvError::Empty) => return false,
                Err(mpsc::error::TryRecvError::Disconnected) => return true,
            }
        }
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A registration believed live: its URI, the catalogue it was made at,
/// and the connection it lives with.
pub struct Held {
    /// Service URI.
    pub uri: String,
    /// Index of the catalogue.
    pub cat: usize,
    /// Its connection.
    pub line: Line,
}

/// What one registrar did.
#[derive(Default)]
pub struct Registrations {
    /// Registrations acknowledged (no ERROR before the fence).
    pub made: usize,
    /// Refused with an ERROR (the lines).
    pub refused: Vec<String>,
    /// Not answered in time or connection failed (closed at once).
    pub unanswered: usize,
    /// Withdrawn with UNREG_SERV (connection kept open).
    pub unregistered: usize,
    /// Withdrawn by closing the connection.
    pub closed: usize,
    /// Ended by the catalogue closing the connection (killed).
    pub lost: usize,
    /// Service URIs registered once and withdrawn since.
    pub gone: Vec<String>,
    /// Registrations held at the end of the soak.
    pub held: Vec<Held>,
    /// Connections kept open after UNREG_SERV.
    husks: Vec<Line>,
}

/// Registers and withdraws services at random catalogues until `soak`.
pub async fn registrar(k: usize, seed: u64, addrs: Vec<String>, soak: Deadline) -> Registrations {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut r = Registrations::default();
    let mut n = 0usize;
    while !soak.passed() {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(50..400))).await;
        for mut h in std::mem::take(&mut r.held) {
            if h.line.closed() {
                r.lost += 1;
                r.gone.push(h.uri);
            } else {
                r.held.push(h);
            }
        }
        if r.held.len() < 3 || (r.held.len() < HELD_MAX && rng.gen_bool(0.55)) {
            n += 1;
            let uri = format!("tcp://10.250.{k}.{}:{}/r{k}-{n}", n / 1000, 8000 + n % 1000);
            let cat = rng.gen_range(0..addrs.len());
            register(&mut r, uri, cat, &addrs[cat]).await;
        } else {
            let h = r.held.swap_remove(rng.gen_range(0..r.held.len()));
            withdraw(&mut r, h, rng.gen_bool(0.5)).await;
        }
    }
    r
}

async fn register(r: &mut Registrations, uri: String, cat: usize, addr: &str) {
    let reg = Message::RegServ {
        service: ServiceUri::parse(&uri).expect("a valid service URI"),
        attrs: Attrs::default(),
    };
    let mut line = match Line::open(addr).await {
        Ok(l) => l,
        Err(_) => {
            r.unanswered += 1;
            return;
        }
    };
    match line.fence(&format!("{}\n", reg.encode())).await {
        Ok(got) if got.is_empty() => {
            r.made += 1;
            r.held.push(Held { uri, cat, line });
        }
        Ok(got) => r.refused.push(format!("REG_SERV {uri} at {addr}: {got:?}")),
        Err(_) => {
            // Dropping the connection settles it: whatever the catalogue
            // did with the line, the registration ends with the connection.
            r.unanswered += 1;
            r.gone.push(uri);
        }
    }
}

async fn withdraw(r: &mut Registrations, mut h: Held, unreg: bool) {
    r.gone.push(h.uri.clone());
    if unreg {
        let msg = Message::UnregServ {
            service: ServiceUri::parse(&h.uri).expect("a valid service URI"),
        };
        if let Ok(got) = h.line.fence(&format!("{}\n", msg.encode())).await {
            if got.is_empty() {
                r.unregistered += 1;
                r.husks.push(h.line);
                if r.husks.len() > HUSKS_MAX {
                    r.husks.remove(0);
                }
                return;
            }
        }
    }
    r.closed += 1;
}

/// A configuration document's state as the ledger knows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    /// Deleted or never written.
    Absent,
    /// Its `config` member.
    Config(Value),
}

/// One key's history in the ledger.
#[derive(Debug)]
pub struct KeyLedger {
    /// The last acknowledged write (a PUT's config, or a DELETE).
    pub acked: Doc,
    /// How many writes were acknowledged.
    pub acks: usize,
    /// Writes with no clear answer (timeout, 5xx, reset): they may have
    /// happened. The key is then retired: nothing writes it again.
    pub maybe: Vec<Doc>,
}

impl KeyLedger {
    /// Every state the key may end in.
    pub fn allowed(&self) -> Vec<Doc> {
        let mut all = vec![self.acked.clone()];
        all.extend(self.maybe.iter().cloned());
        all
    }
}

/// What one writer did, and every key's ledger.
#[derive(Debug, Default)]
pub struct Writes {
    /// Keys by application name.
    pub keys: BTreeMap<String, KeyLedger>,
    /// PUTs acknowledged (200/201).
    pub puts: usize,
    /// DELETEs acknowledged (204).
    pub deletes: usize,
    /// DELETEs answered 404 (the catalogue held no such key: no change).
    pub absent: usize,
    /// Writes with no clear answer.
    pub unclear: usize,
    /// Other answers, by status (0: the connection failed or closed).
    pub statuses: BTreeMap<u16, usize>,
    /// Isolation probes made (the other environment's key and service
    /// looked up on a catalogue of this one).
    pub probes: usize,
    /// Isolation probes that found something of the other environment.
    pub leaks: Vec<String>,
}

/// Writes and deletes configuration at random catalogues until `soak`.
pub async fn writer(
    k: usize,
    seed: u64,
    https: Vec<String>,
    other: (String, String),
    soak: Deadline,
) -> Writes {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut w = Writes::default();
    let mut names: Vec<String> = (0..KEYS).map(|i| format!("w{k}-k{i}")).collect();
    let mut fresh = KEYS;
    let mut seq = 0u64;
    while !soak.passed() {
        // At least 20 ms between two writes: two acknowledged writes of a
        // key are then a millisecond apart on the clock every catalogue
        // shares, so the later one also has the later timestamp.
        tokio::time::sleep(Duration::from_millis(rng.gen_range(20..150))).await;
        let slot = rng.gen_range(0..names.len());
        let name = names[slot].clone();
        let http = &https[rng.gen_range(0..https.len())];
        if rng.gen_bool(0.05) {
            probe(&mut w, http, &other).await;
        }
        seq += 1;
        let ledger = w.keys.entry(name.clone()).or_insert(KeyLedger {
            acked: Doc::Absent,
            acks: 0,
            maybe: Vec::new(),
        });
        let path = format!("/app/{name}");
        let (doc, answer) = if rng.gen_bool(0.7) {
            let config = json!({"writer": k, "seq": seq});
            let body = json!({ "config": config }).to_string();
            let a = timeout(PATIENCE, try_http(http, "PUT", &path, Some(body.as_bytes()))).await;
            (Doc::Config(config), a)
        } else {
            let a = timeout(PATIENCE, try_http(http, "DELETE", &path, None)).await;
            (Doc::Absent, a)
        };
        let status = match answer {
            Ok(Ok((status, _, _))) => status,
            _ => 0,
        };
        match (status, &doc) {
            (200 | 201, Doc::Config(_)) | (204, Doc::Absent) => {
                if doc == Doc::Absent {
                    w.deletes += 1;
                } else {
                    w.puts += 1;
                }
                ledger.acked = doc;
                ledger.acks += 1;
            }
            (404, Doc::Absent) => w.absent += 1,
            (400..=499, _) => *w.statuses.entry(status).or_default() += 1,
            _ => {
                *w.statuses.entry(status).or_default() += 1;
                w.unclear += 1;
                ledger.maybe.push(doc);
                names[slot] = format!("w{k}-k{fresh}");
                fresh += 1;
            }
        }
    }
    w
}

/// Looks up the other environment's key and service on one catalogue.
async fn probe(w: &mut Writes, http: &str, (app, srv): &(String, String)) {
    for path in [format!("/app/{app}"), format!("/srv/{srv}")] {
        if let Ok(Ok((status, _, body))) = timeout(PATIENCE, try_http(http, "GET", &path, None)).await {
            w.probes += 1;
            if status != 404 {
                w.leaks.push(format!("GET {path} on {http}: {status} {body}"));
            }
        }
    }
}
