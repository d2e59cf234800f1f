//! The Rarangi catalogue daemon (`rarangi serve`): the tokio shell around
//! [`rarangi_core::Catalogue`]. It listens on the line-protocol port and a
//! Unix socket, dials its peers with back-off, runs heartbeats, persists
//! configuration in an embedded store, and shuts down gracefully.

#![forbid(unsafe_code)]

mod backoff;
mod clock;
pub mod config;
mod conn;
mod driver;
mod hooks;
pub mod http;
pub mod store;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use config::{LogFormat, ServeArgs, Settings};
use rarangi_core::Catalogue;
use rarangi_proto::{CatalogueUri, Message};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;
pub use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::conn::{DialOutcome, Origin};
use crate::driver::{Driver, Event};
use crate::store::Store;

/// State shared by every connection task.
pub(crate) struct Shared {
    settings: Settings,
    core_config: rarangi_core::Config,
    welcome: Message,
    events: mpsc::Sender<Event>,
    next_conn: AtomicU64,
    writers_done: mpsc::Sender<()>,
    changes: tokio::sync::broadcast::Sender<driver::Change>,
    /// The driver's change index, readable without asking the driver.
    change_index: AtomicU64,
    /// Rendered GET /srv/NAME bodies, valid while `change_index` is unchanged.
    srv_cache: std::sync::Mutex<std::collections::HashMap<String, (u64, axum::body::Bytes)>>,
    /// `http://HOST:PORT` of our HTTP API, for webhook payloads.
    http_base: String,
}

impl Shared {
    fn next_conn(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServeError(String);

/// Sets up logging to standard error in the chosen format; `RUST_LOG`
/// overrides the default level (info).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs a catalogue until `shutdown` is cancelled (or SIGTERM/SIGINT when
/// called from the command line).
pub async fn serve(settings: Settings, shutdown: CancellationToken) -> Result<(), ServeError> {
    let store = Store::open(&settings.data_dir).map_err(|e| ServeError(e.to_string()))?;
    let (durable, clock) = store.load().map_err(|e| ServeError(e.to_string()))?;
    let mut core_config = rarangi_core::Config::new(
        settings.uri.clone(),
        settings.cluster.clone(),
        settings.env.clone(),
    );
    core_config.tombstone_horizon_ms = settings.tombstone_ms;
    let core = Catalogue::new(core_config.clone(), durable, clock, clock::now_ms());

    let listener = TcpListener::bind(settings.listen).await.map_err(|e| {
        ServeError(format!(
            "cannot listen on {}: {e} (another catalogue there? use --side b or --listen HOST:PORT)",
            settings.listen
        ))
    })?;
    let unix = bind_unix(&settings.unix);

    let (events_tx, events_rx) = mpsc::channel(4096);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let shared = Arc::new(Shared {
        welcome: Message::Welcome {
            catalogue: settings.uri.clone(),
            cluster: settings.cluster.clone(),
            environment: settings.env.clone(),
        },
        settings: settings.clone(),
        core_config,
        events: events_tx,
        next_conn: AtomicU64::new(1),
        writers_done: done_tx,
        changes: tokio::sync::broadcast::channel(4096).0,
        change_index: AtomicU64::new(0),
        srv_cache: Default::default(),
        http_base: format!(
            "http://{}:{}",
            settings
                .uri
                .addr()
                .rsplit_once(':')
                .map_or(settings.uri.addr(), |(h, _)| h),
            settings.http.map_or(0, |a| a.port())
        ),
    });
    tracing::info!(
        uri = %settings.uri,
        env = %settings.env,
        cluster = %settings.cluster,
        listen = %settings.listen,
        unix = %settings.unix.display(),
        data_dir = %settings.data_dir.display(),
        "catalogue started"
    );
    let http_listener = match settings.http {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            ServeError(format!(
                "cannot listen for HTTP on {addr}: {e} (use --http HOST:PORT, or --http off)"
            ))
        })?),
        None => None,
    };
    let driver = Driver::new(core, store, shared.clone());
    let driver_task = tokio::spawn(driver.run(events_rx, shutdown.clone()));

    let tcp_task = tokio::spawn(accept_loop(
        Listener::Tcp(listener),
        shared.clone(),
        shutdown.clone(),
    ));
    let unix_task =
        unix.map(|l| tokio::spawn(accept_loop(Listener::Unix(l), shared.clone(), shutdown.clone())));
    let http_task = http_listener.map(|l| {
        tracing::info!(http = %settings.http.expect("set"), "HTTP API listening");
        tokio::spawn(http::serve(l, shared.clone(), shutdown.clone()))
    });
    for addr in settings.peers.clone() {
        tokio::spawn(dial_loop(addr, shared.clone(), shutdown.clone()));
    }

    let _ = driver_task.await;
    tcp_task.abort();
    if let Some(t) = http_task {
        t.abort();
    }
    if let Some(t) = unix_task {
        t.abort();
        let _ = std::fs::remove_file(&settings.unix);
    }
    drop(shared);
    // Give writers a moment to flush the withdrawals to peers and clients.
    let _ = tokio::time::timeout(Duration::from_secs(2), done_rx.recv()).await;
    tracing::info!("stopped");
    Ok(())
}

/// A listening socket of the line protocol.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Accepts one connection and starts serving it.
    async fn accept_one(&self, shared: &Arc<Shared>) -> std::io::Result<()> {
        match self {
            Listener::Tcp(l) => {
                let (s, addr) = l.accept().await?;
                let _ = s.set_nodelay(true);
                tokio::spawn(conn::accepted(s, Origin::Tcp(addr), shared.clone()));
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                tokio::spawn(conn::accepted(s, Origin::Unix, shared.clone()));
            }
        }
        Ok(())
    }
}

async fn accept_loop(listener: Listener, shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept_one(&shared) => r,
        };
        if let Err(e) = accepted {
            // Out of file descriptors, say: wait instead of spinning.
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn bind_unix(path: &Path) -> Option<UnixListener> {
    if let Some(dir) = path.parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!(path = %path.display(), error = %e, "no Unix socket (registration still works from loopback)");
            return None;
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            tracing::warn!(path = %path.display(), "another catalogue owns this Unix socket; not using it");
            return None;
        }
        let _ = std::fs::remove_file(path);
    }
    match UnixListener::bind(path) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "no Unix socket (registration still works from loopback)");
            None
        }
    }
}

/// Keeps a configured peer linked: dial, run, back off, repeat.
async fn dial_loop(addr: String, shared: Arc<Shared>, stop: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
    let mut expected: Option<CatalogueUri> = None;
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            o = conn::dial(&addr, expected.as_ref(), shared.clone()) => o,
        };
        match outcome {
            DialOutcome::Ended(peer) => {
                expected = Some(peer);
                failures = 0;
                if started.elapsed() > Duration::from_secs(30) {
                    backoff.reset();
                }
            }
            DialOutcome::Failed(why) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(10) {
                    tracing::warn!(peer = %addr, error = %why, attempts = failures, "cannot reach peer; retrying with back-off");
                }
            }
            DialOutcome::EnvMismatch { peer, theirs } => {
                tracing::error!(
                    peer = %addr, uri = %peer, theirs = %theirs, ours = %shared.settings.env,
                    "environment mismatch: peer {addr} is {theirs:?}, we are {:?}; not reconnecting until restart",
                    shared.settings.env
                );
                return;
            }
            DialOutcome::SelfConnection => {
                tracing::warn!(peer = %addr, "{addr} is this catalogue itself; not dialing it");
                return;
            }
            DialOutcome::WrongIdentity { expected: exp, got } => {
                tracing::warn!(peer = %addr, expected = %exp, got = %got, "a different catalogue answered; closed");
                expected = None;
            }
        }
        let delay = backoff.next_delay(&mut rand::thread_rng());
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}
