//! A TCP proxy between two catalogues that can be cut and healed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::scratch::fresh_addr;
use crate::Error;

/// Forwards every connection to a target. Cut, it blackholes: connections
/// stay open but carry nothing, as in a network partition, so only missing
/// heartbeats tell. Healed, it drops the blackholed connections so fresh
/// ones form.
pub struct Proxy {
    /// Where it listens.
    pub addr: String,
    accepted: Arc<AtomicUsize>,
    cut: Arc<AtomicBool>,
    epoch: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy to `target` on a fresh loopback address.
    pub async fn to(target: &str) -> Result<Proxy, Error> {
        Self::start(&fresh_addr(), target).await
    }

    /// Listens on `listen` and forwards each connection to `target`.
    pub async fn start(listen: &str, target: &str) -> Result<Proxy, Error> {
        let addr = listen.to_owned();
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(Error::io(format!("proxy: listen on {addr}")))?;
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

    /// Cut: from now on bytes are read and dropped.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    /// Heal: drop the blackholed connections so fresh ones form.
    pub fn heal(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.cut.store(false, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
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
    // Notices a heal while the connection is idle.
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
