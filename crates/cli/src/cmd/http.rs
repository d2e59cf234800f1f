//! The one small HTTP/1.1 client of the command line (hyper's client
//! connection over plain TCP), for `config` and `hooks`: bounded in time
//! and size, with errors that say what to do.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rarangi_proto::wellknown::{http_port, Side};
use serde_json::Value;

/// Where and how to reach a catalogue's HTTP API.
#[derive(clap::Args, Clone)]
pub(crate) struct HttpTarget {
    /// Environment, for the well-known HTTP ports.
    #[arg(long, env = "RARANGI_ENV", default_value = "development")]
    env: String,
    /// The catalogue's HTTP API. [default: 127.0.0.1 on the environment's
    /// well-known HTTP port of side A, then side B]
    #[arg(long, value_name = "HOST:PORT")]
    http: Option<String>,
    /// Token sent as `Authorization: Bearer` (catalogues run with
    /// --http-token-file need one; a write token to change anything).
    #[arg(
        long,
        env = "RARANGI_HTTP_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

/// Largest answer read (a document is at most 2 MiB on the wire).
const MAX_BODY: usize = 8 << 20;
/// Time for one request that is not a blocking query.
const TIMEOUT: Duration = Duration::from_secs(15);

/// An answer: status, `X-Rarangi-Index`, body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) index: Option<u64>,
    pub(crate) body: Bytes,
}

impl Answer {
    /// The body as JSON.
    pub(crate) fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).context("the catalogue answered with something that is not JSON")
    }

    /// Fails with the catalogue's error unless the status is 2xx.
    pub(crate) fn ok(self) -> Result<Self> {
        match self.status {
            200..=299 => Ok(self),
            401 | 403 => bail!(
                "the catalogue refused the request ({}): needs a token: --token or RARANGI_HTTP_TOKEN (a write token to change anything)",
                self.status
            ),
            s => {
                let text = String::from_utf8_lossy(&self.body);
                let text = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or_else(|| text.chars().take(500).collect());
                bail!("HTTP {s}: {text}")
            }
        }
    }
}

impl HttpTarget {
    /// The addresses to try in order.
    fn addrs(&self) -> Result<Vec<String>> {
        if let Some(a) = &self.http {
            return Ok(vec![a.clone()]);
        }
        let ports: Vec<String> = [Side::A, Side::B]
            .into_iter()
            .filter_map(|s| http_port(&self.env, s))
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        if ports.is_empty() {
            bail!(
                "environment {:?} has no well-known HTTP port: give --http HOST:PORT",
                self.env
            );
        }
        Ok(ports)
    }

    /// One request; `wait` is how long a blocking query may take.
    pub(crate) async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        wait: Option<Duration>,
    ) -> Result<Answer> {
        let addrs = self.addrs()?;
        let mut last = None;
        for addr in &addrs {
            let Ok(stream) = tokio::net::TcpStream::connect(addr.as_str()).await else {
                last = Some(addr.clone());
                continue;
            };
            let limit = TIMEOUT + wait.unwrap_or_default();
            return tokio::time::timeout(limit, self.exchange(stream, addr, method, path, body))
                .await
                .map_err(|_| anyhow!("no answer from the catalogue HTTP API at {addr} within {limit:?}"))?;
        }
        bail!(
            "no catalogue HTTP API at {}; is it running? --http",
            last.unwrap_or_else(|| addrs.join(", "))
        )
    }

    async fn exchange(
        &self,
        stream: tokio::net::TcpStream,
        addr: &str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer> {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP to {addr}"))?;
        tokio::spawn(conn);
        let mut req = Request::builder().method(method).uri(path).header("host", addr);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let resp = send
            .send_request(req)
            .await
            .with_context(|| format!("HTTP to {addr}"))?;
        let status = resp.status().as_u16();
        let index = resp
            .headers()
            .get("x-rarangi-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| anyhow!("reading the answer from {addr}: {e}"))?
            .to_bytes();
        Ok(Answer { status, index, body })
    }
}

/// Checks that a name is one path segment; the catalogue checks its own
/// name rules after.
pub(crate) fn segment(name: &str) -> Result<&str> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || "/?#%".contains(c);
    if name.is_empty() || name == "." || name == ".." || name.chars().any(bad) {
        bail!("{name:?} is not a name");
    }
    Ok(name)
}
