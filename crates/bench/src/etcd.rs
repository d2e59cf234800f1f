//! Side by side with etcd 3.4 (lease + watch): put-to-watch latency, and
//! how long a leased key outlives a client that died. Runs a single etcd
//! member on loopback through its HTTP/JSON gateway.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use rarangi_harness::{clock, fresh_addr, Deadline};

/// Installs a Debian package if `binary` is missing.
pub fn ensure(binary: &str, package: &str) -> Result<()> {
    if Command::new("which")
        .arg(binary)
        .stdout(Stdio::null())
        .status()?
        .success()
    {
        return Ok(());
    }
    println!("installing {package} with apt-get");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-qq", package])
        .status()?
        .success()
        || (Command::new("apt-get")
            .args(["update", "-qq"])
            .status()?
            .success()
            && Command::new("apt-get")
                .args(["install", "-y", "-qq", package])
                .status()?
                .success());
    if !ok {
        bail!("could not install {package}");
    }
    Ok(())
}

/// Watch events seen: (key in base64, is a delete, when).
pub type Events = Arc<Mutex<Vec<(String, bool, Instant)>>>;

/// One etcd member on loopback, stopped on drop.
pub struct Etcd {
    child: Child,
    /// Its client URL's address.
    pub client: String,
    dir: PathBuf,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Etcd {
    /// Starts it (installing etcd with apt if missing) and waits until it answers.
    pub fn start() -> Result<Etcd> {
        ensure("etcd", "etcd-server")?;
        let (client, peer) = (fresh_addr(), fresh_addr());
        let dir = std::env::temp_dir().join(format!("rarangi-bench-etcd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let child = Command::new("etcd")
            .args(["--name", "bench", "--data-dir"])
            .arg(&dir)
            .args([
                "--listen-client-urls",
                &format!("http://{client}"),
                "--advertise-client-urls",
                &format!("http://{client}"),
            ])
            .args([
                "--listen-peer-urls",
                &format!("http://{peer}"),
                "--initial-advertise-peer-urls",
                &format!("http://{peer}"),
            ])
            .args(["--initial-cluster", &format!("bench=http://{peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start etcd")?;
        let deadline = Deadline::after(Duration::from_secs(20));
        while std::net::TcpStream::connect(&client).is_err() {
            if !deadline.next_blocking() {
                bail!("etcd did not start");
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        Ok(Etcd { child, client, dir })
    }

    /// One JSON request; returns the response body.
    pub async fn call(&self, path: &str, body: &str) -> Result<String> {
        let mut s = TcpStream::connect(&self.client).await?;
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.client,
            body.len()
        );
        s.write_all(req.as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        let text = String::from_utf8_lossy(&out).to_string();
        Ok(text
            .split_once("\r\n\r\n")
            .map_or(text.clone(), |(_, b)| b.to_owned()))
    }

    /// Watches a key prefix; records (key base64, is_delete, time).
    pub async fn watch(&self, prefix: &str) -> Result<Events> {
        let mut s = TcpStream::connect(&self.client).await?;
        let mut end = prefix.as_bytes().to_vec();
        *end.last_mut().expect("non-empty") += 1;
        let body = format!(
            r#"{{"create_request":{{"key":"{}","range_end":"{}"}}}}"#,
            b64(prefix.as_bytes()),
            b64(&end)
        );
        let req = format!(
            "POST /v3/watch HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.client,
            body.len()
        );
        s.write_all(req.as_bytes()).await?;
        let seen: Events = Arc::default();
        let sink = seen.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut pending = String::new();
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    return;
                }
                let now = clock::now();
                pending.push_str(&String::from_utf8_lossy(&buf[..n]));
                // Each event object: {"type":"DELETE"?,"kv":{"key":"..."
                while let Some(i) = pending.find("\"kv\":{\"key\":\"") {
                    let before = &pending[..i];
                    let is_delete = before.rfind('{').is_some_and(|j| before[j..].contains("DELETE"));
                    let rest = &pending[i + 13..];
                    let Some(e) = rest.find('"') else { break };
                    sink.lock().unwrap().push((rest[..e].to_owned(), is_delete, now));
                    pending = rest[e..].to_owned();
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(seen)
    }
}

/// When the watcher saw `key` put (or deleted); None after `timeout`.
pub async fn wait_event(seen: &Events, key: &str, delete: bool, timeout: Duration) -> Option<Instant> {
    let k = b64(key.as_bytes());
    let deadline = Deadline::after(timeout).every(Duration::from_micros(200));
    loop {
        if let Some(t) = seen
            .lock()
            .unwrap()
            .iter()
            .find(|(kk, d, _)| *kk == k && *d == delete)
            .map(|e| e.2)
        {
            return Some(t);
        }
        if !deadline.next().await {
            return None;
        }
    }
}

/// Standard base64 with padding (etcd's JSON gateway wants keys so).
pub fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64() {
        assert_eq!(super::b64(b"bench/"), "YmVuY2gv");
        assert_eq!(super::b64(b"ab"), "YWI=");
        assert_eq!(super::b64(b"a"), "YQ==");
    }
}
