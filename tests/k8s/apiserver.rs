//! A stand-in Kubernetes API server: just enough of discovery.k8s.io/v1
//! EndpointSlices (list, and watch with ADDED/MODIFIED/DELETED/BOOKMARK
//! events and 410 Gone) over HTTPS with a bearer token, for the
//! Kubernetes discovery test. Hand-written HTTP/1.1: each answer closes
//! its connection, a watch streams JSON lines until the server ends it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// The one namespace served.
pub(crate) const NAMESPACE: &str = "catalogues";
/// The label selector the catalogue must send (percent-decoded).
pub(crate) const SELECTOR: &str = "kubernetes.io/service-name=rarangi";
/// Longest request head read.
const MAX_HEAD: usize = 16 * 1024;

/// What the server answered so far.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
    /// Lists answered.
    pub(crate) lists: usize,
    /// Watches started.
    pub(crate) watches: usize,
    /// Watches answered with 410 Gone.
    pub(crate) gone: usize,
    /// Requests refused with 401 (wrong or missing token).
    pub(crate) unauthorized: usize,
    /// Requests accepted, by token.
    pub(crate) accepted: BTreeMap<String, usize>,
}

#[derive(Debug, Default)]
struct State {
    rv: u64,
    slices: BTreeMap<String, Value>,
    /// (resourceVersion, type, object) of every change since `oldest`.
    history: Vec<(u64, &'static str, Value)>,
    /// A watch from a resourceVersion below this is 410 Gone.
    oldest: u64,
    token: String,
    stats: Stats,
}

/// The running stand-in; its task ends with the test's runtime.
pub(crate) struct ApiServer {
    /// `https://127.0.0.1:PORT`.
    pub(crate) url: String,
    state: Arc<Mutex<State>>,
    /// Bumped to wake watches (a change) or, with `ends`, to end them.
    wake: watch::Sender<u64>,
    ends: watch::Sender<u64>,
}

impl ApiServer {
    /// Serves on a fresh loopback port with this certificate (`acceptor`),
    /// accepting `token`.
    pub(crate) async fn start(acceptor: TlsAcceptor, token: &str) -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            rv: 1,
            oldest: 1,
            token: token.to_owned(),
            ..State::default()
        }));
        let (wake, _) = watch::channel(0);
        let (ends, _) = watch::channel(0);
        let server = ApiServer {
            url,
            state,
            wake,
            ends,
        };
        let (state, wake, ends) = (server.state.clone(), server.wake.clone(), server.ends.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, state) = (acceptor.clone(), state.clone());
                let (wake, ends) = (wake.subscribe(), ends.subscribe());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        serve(tls, state, wake, ends).await;
                    }
                });
            }
        });
        server
    }

    /// Creates or replaces slice `name` listing `ips` on the port named
    /// "line" = `port` (ADDED or MODIFIED).
    pub(crate) fn put_slice(&self, name: &str, ips: &[&str], port: u16) {
        let mut s = self.state.lock().unwrap();
        s.rv += 1;
        let endpoints: Vec<Value> = ips
            .iter()
            .enumerate()
            // Ready and not-ready endpoints alike must be dialled.
            .map(|(i, ip)| json!({"addresses": [ip], "conditions": {"ready": i % 2 == 0}}))
            .collect();
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "resourceVersion": s.rv.to_string(),
                "labels": {"kubernetes.io/service-name": "rarangi"},
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "line", "port": port, "protocol": "TCP"}],
        });
        let kind = if s.slices.contains_key(name) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let rv = s.rv;
        s.history.push((rv, kind, slice.clone()));
        s.slices.insert(name.to_owned(), slice);
        drop(s);
        self.wake.send_modify(|n| *n += 1);
    }

    /// Deletes slice `name` (DELETED).
    pub(crate) fn delete_slice(&self, name: &str) {
        let mut s = self.state.lock().unwrap();
        let mut slice = s.slices.remove(name).expect("a slice to delete");
        s.rv += 1;
        slice["metadata"]["resourceVersion"] = json!(s.rv.to_string());
        let rv = s.rv;
        s.history.push((rv, "DELETED", slice));
        drop(s);
        self.wake.send_modify(|n| *n += 1);
    }

    /// Forgets the history (as etcd compaction does) and ends every
    /// watch: a watch resumed from an older resourceVersion gets 410 Gone
    /// and the client must list again. `then` changes the slices after
    /// the compaction, so only a relist shows that change.
    pub(crate) fn compact_then(&self, then: impl FnOnce(&ApiServer)) {
        {
            let mut s = self.state.lock().unwrap();
            s.rv += 1;
            s.oldest = s.rv;
            s.history.clear();
        }
        then(self);
        self.ends.send_modify(|n| *n += 1);
    }

    /// Accepts only `token` from now on, and ends every watch (each was
    /// authorised with the old one).
    pub(crate) fn rotate_token(&self, token: &str) {
        self.state.lock().unwrap().token = token.to_owned();
        self.ends.send_modify(|n| *n += 1);
    }

    /// What the server answered so far.
    pub(crate) fn stats(&self) -> Stats {
        self.state.lock().unwrap().stats.clone()
    }
}

/// One request on one connection, then close.
async fn serve<S>(
    mut io: S,
    state: Arc<Mutex<State>>,
    mut wake: watch::Receiver<u64>,
    mut ends: watch::Receiver<u64>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Some(head) = read_head(&mut io).await else {
        return;
    };
    let mut lines = head.lines();
    let target = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .to_owned();
    let token = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.trim().strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query: BTreeMap<String, String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect();
    let wanted = format!("/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices");
    let authorized = {
        let mut s = state.lock().unwrap();
        let ok = token.as_deref() == Some(s.token.as_str());
        if ok {
            let accepted = s.token.clone();
            *s.stats.accepted.entry(accepted).or_default() += 1;
        } else {
            s.stats.unauthorized += 1;
        }
        ok
    };
    if !authorized {
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401});
        return answer(&mut io, "401 Unauthorized", &status).await;
    }
    if path != wanted || query.get("labelSelector").map(String::as_str) != Some(SELECTOR) {
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": format!("not served here: {target}"), "reason": "NotFound", "code": 404});
        return answer(&mut io, "404 Not Found", &status).await;
    }
    if query.get("watch").map(String::as_str) != Some("true") {
        let list = {
            let mut s = state.lock().unwrap();
            s.stats.lists += 1;
            json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSliceList",
                "metadata": {"resourceVersion": s.rv.to_string()},
                "items": s.slices.values().cloned().collect::<Vec<_>>(),
            })
        };
        return answer(&mut io, "200 OK", &list).await;
    }
    // A watch: the events after `from`, then each new one, until ended.
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bookmarks = query.get("allowWatchBookmarks").map(String::as_str) == Some("true");
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
    if io.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    ends.mark_unchanged();
    let mut sent = from;
    let mut bookmarked = false;
    loop {
        wake.mark_unchanged();
        let lines = {
            let mut s = state.lock().unwrap();
            if sent == from {
                s.stats.watches += 1;
            }
            if sent < s.oldest {
                s.stats.gone += 1;
                let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": format!("too old resource version: {sent} ({})", s.oldest), "reason": "Expired", "code": 410}});
                vec![gone]
            } else {
                let mut out: Vec<Value> = s
                    .history
                    .iter()
                    .filter(|(rv, _, _)| *rv > sent)
                    .map(|(_, kind, object)| json!({"type": kind, "object": object}))
                    .collect();
                sent = s.rv;
                if bookmarks && !bookmarked {
                    // One bookmark per watch, once it has caught up.
                    bookmarked = true;
                    out.push(json!({"type": "BOOKMARK", "object": {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"resourceVersion": s.rv.to_string()}}}));
                }
                out
            }
        };
        let gone = lines.iter().any(|l| l["type"] == "ERROR");
        for l in lines {
            if io.write_all(format!("{l}\n").as_bytes()).await.is_err() {
                return;
            }
        }
        let _ = io.flush().await;
        if gone {
            let _ = io.shutdown().await;
            return;
        }
        tokio::select! {
            _ = wake.changed() => {}
            _ = ends.changed() => {
                let _ = io.shutdown().await;
                return;
            }
        }
    }
}

/// A whole JSON answer, then close.
async fn answer<S: tokio::io::AsyncWrite + Unpin>(io: &mut S, status: &str, body: &Value) {
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = io.write_all(head.as_bytes()).await;
    let _ = io.write_all(body.as_bytes()).await;
    let _ = io.shutdown().await;
}

/// The request head, up to the blank line (None past [`MAX_HEAD`]).
async fn read_head<S: tokio::io::AsyncRead + Unpin>(io: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = io.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_HEAD {
            return None;
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// `%2F` → `/`, `+` → space: enough for a label selector.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
