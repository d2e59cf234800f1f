//! Raw HTTP/1.1 for the HTTP API tests, and a webhook receiver.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::Deadline;

/// One HTTP/1.1 request with `Connection: close`; returns status, headers
/// (lower-case names) and body.
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> (u16, Vec<(String, String)>, String) {
    http_with(addr, method, path, &[], body).await
}

/// [`http`] with more request headers.
pub async fn http_with(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> (u16, Vec<(String, String)>, String) {
    let s = TcpStream::connect(addr).await.expect("connect to HTTP API");
    http_over(s, addr, method, path, headers, body).await
}

/// [`http_with`] over a connection the caller made (from a chosen address,
/// or over TLS for HTTPS, say).
pub async fn http_over<S: AsyncRead + AsyncWrite + Unpin>(
    s: S,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> (u16, Vec<(String, String)>, String) {
    exchange_http(s, addr, method, path, headers, body)
        .await
        .expect("send the HTTP request")
}

/// [`http`] that reports a failed connection instead of panicking (for
/// catalogues that may be down).
pub async fn try_http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> std::io::Result<(u16, Vec<(String, String)>, String)> {
    let s = TcpStream::connect(addr).await?;
    exchange_http(s, addr, method, path, &[], body).await
}

/// One request and its whole answer (`Connection: close`).
async fn exchange_http<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<(u16, Vec<(String, String)>, String)> {
    let body = body.unwrap_or_default();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    Ok((status, headers, body.to_owned()))
}

/// GET, with the body as JSON (null if it is not JSON).
pub async fn get_json(addr: &str, path: &str) -> (u16, Value) {
    let (status, _, body) = http(addr, "GET", path, None).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// PUT a JSON body; returns the status.
pub async fn put(addr: &str, path: &str, body: Value) -> u16 {
    http(addr, "PUT", path, Some(body.to_string().as_bytes())).await.0
}

/// GETs `path` until `ok(status, body)`; returns that body.
pub async fn eventually_json(
    addr: &str,
    path: &str,
    what: &str,
    mut ok: impl FnMut(u16, &Value) -> bool,
) -> Value {
    let deadline = Deadline::default();
    loop {
        let (s, v) = get_json(addr, path).await;
        if ok(s, &v) {
            return v;
        }
        deadline
            .retry(|| format!("waiting for {what}: GET {path} on {addr} gave {s} {v}"))
            .await;
    }
}

/// The `config` member of an `/app/NAME` document.
pub fn config_of(v: &Value) -> Value {
    v.get("config").cloned().unwrap_or(Value::Null)
}

/// A webhook receiver the test runs: records each POSTed JSON body it
/// accepts. While refusing, it answers 503 and only counts the attempt.
pub struct Receiver {
    got: Arc<Mutex<Vec<Value>>>,
    refused: Arc<AtomicUsize>,
    refusing: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Accepts notifications on `addr`.
    pub async fn start(addr: &str) -> Receiver {
        Self::start_with(addr, false).await
    }

    /// Answers 503 on `addr` until [`Receiver::accept`].
    pub async fn refusing(addr: &str) -> Receiver {
        Self::start_with(addr, true).await
    }

    /// Accepts notifications over TLS on `addr`.
    pub async fn start_tls(addr: &str, tls: tokio_rustls::TlsAcceptor) -> Receiver {
        Self::start_over(addr, false, Some(tls)).await
    }

    async fn start_with(addr: &str, refusing: bool) -> Receiver {
        Self::start_over(addr, refusing, None).await
    }

    async fn start_over(addr: &str, refusing: bool, tls: Option<tokio_rustls::TlsAcceptor>) -> Receiver {
        let listener = TcpListener::bind(addr).await.unwrap();
        let got: Arc<Mutex<Vec<Value>>> = Arc::default();
        let refused = Arc::new(AtomicUsize::new(0));
        let refusing = Arc::new(AtomicBool::new(refusing));
        let (g, r, no) = (got.clone(), refused.clone(), refusing.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                let (g, r, no, tls) = (g.clone(), r.clone(), no.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => answer(s, g, r, no).await,
                        Some(tls) => {
                            if let Ok(s) = tls.accept(s).await {
                                answer(s, g, r, no).await;
                            }
                        }
                    }
                });
            }
        });
        Receiver {
            got,
            refused,
            refusing,
            task,
        }
    }

    /// The notifications accepted so far.
    pub fn got(&self) -> Vec<Value> {
        self.got.lock().unwrap().clone()
    }

    /// The `what` of each notification accepted so far.
    pub fn whats(&self) -> Vec<String> {
        self.got()
            .iter()
            .map(|n| n["what"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// Notifications refused so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// From now on, accept notifications.
    pub fn accept(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request; records its JSON body and answers 200, or counts it
/// and answers 503 while refusing.
async fn answer<S: AsyncRead + AsyncWrite>(
    s: S,
    g: Arc<Mutex<Vec<Value>>>,
    r: Arc<AtomicUsize>,
    no: Arc<AtomicBool>,
) {
    let (rd, mut w) = tokio::io::split(s);
    let mut rd = BufReader::new(rd);
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    if rd.read_exact(&mut body).await.is_err() {
        return;
    }
    if no.load(Ordering::SeqCst) {
        r.fetch_add(1, Ordering::SeqCst);
        let _ = w
            .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    }
    g.lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
    let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
    // TLS buffers: send the answer and close_notify before dropping.
    let _ = w.shutdown().await;
}
