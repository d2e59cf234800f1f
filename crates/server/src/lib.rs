//! The Rarangi catalogue daemon (`rarangi serve`): the tokio shell around
//! [`rarangi_core::Catalogue`]. Layout by concern:
//!
//! - `net/`: listeners (TCP, Unix socket), connections and their send
//!   queues, the dialer with back-off, TLS (`net/tls.rs`);
//! - `driver/`: the one task that owns the core: events in, outputs out,
//!   and the read model it publishes after each batch;
//! - `http/`: the HTTP API, one file per resource family;
//! - `dns/`: the DNS server (A, AAAA, SRV from the read model);
//! - `discovery/`: peer sources (seed list, DNS SRV, beacon, Kubernetes)
//!   merged into the dialer's candidates, with the link policy;
//! - `health/`: watchdog probes;
//! - `webhook.rs`: outbound webhook delivery;
//! - `store.rs`, `settings.rs`, `clock.rs`.

#![forbid(unsafe_code)]

mod access;
mod clock;
pub mod discovery;
pub mod dns;
mod driver;
mod duration;
mod health;
pub mod http;
mod metrics;
mod model;
mod net;
pub mod settings;
pub mod store;
mod webhook;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use net::TlsError;
use rarangi_core::Catalogue;
use rarangi_proto::Message;
pub use settings::{ConfigError, HttpTls, LogFormat, ServeArgs, Settings, TlsFiles};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinError;
pub use tokio_util::sync::CancellationToken;
pub use webhook::WebhookSetupError;

use crate::driver::view::View;
use crate::driver::{Driver, DriverError, Event};
use crate::net::Listener;
use crate::store::{Store, StoreError};

/// State shared by every connection task and the HTTP API.
pub(crate) struct Shared {
    settings: Settings,
    core_config: rarangi_core::Config,
    welcome: Message,
    events: mpsc::Sender<Event>,
    next_conn: AtomicU64,
    writers_done: mpsc::Sender<()>,
    changes: tokio::sync::broadcast::Sender<driver::Change>,
    /// The read model the driver publishes after each batch.
    view: watch::Receiver<Arc<View>>,
    /// `http://HOST:PORT` of our HTTP API, for webhook payloads.
    http_base: String,
    /// The webhook client (`--hook-allow`, `--hook-ca`).
    webhooks: webhook::Webhooks,
    /// Caps on client connections, line protocol and HTTP together.
    gate: Arc<net::Gate>,
    /// TLS on the TCP port and links, when configured.
    tls: Option<Arc<net::Tls>>,
}

impl Shared {
    fn next_conn(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

/// Why the daemon could not start, or stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The store could not be opened or read.
    #[error("cannot open the store")]
    Store(#[source] StoreError),
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr} ({hint})")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// What to do about it.
        hint: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The webhook client could not be set up.
    #[error("webhooks")]
    Webhooks(#[source] webhook::WebhookSetupError),
    /// The driver task failed.
    #[error("the driver task failed")]
    Driver(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The driver task panicked.
    #[error("the driver task panicked")]
    DriverPanicked(#[source] JoinError),
    /// The TLS certificate, key or CA cannot be used.
    #[error("cannot set up TLS")]
    Tls(#[source] TlsError),
    /// A peer discovery source cannot start.
    #[error("peer discovery")]
    Discovery(#[source] discovery::SourceError),
}

/// An error and its causes on one line (`a: b: c`), for logs and answers.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

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
    // Declared first, dropped last: after the store and the socket.
    let _dev = settings.dev_dir.clone().map(|dir| {
        tracing::warn!(
            dir = %dir.display(),
            "development mode (--dev): loopback only, state in a temporary directory removed at exit"
        );
        DevDir(dir)
    });
    let tls = match &settings.tls {
        Some(files) => Some(Arc::new(
            net::Tls::load(files, settings.tls_verify_clients).map_err(ServeError::Tls)?,
        )),
        None => None,
    };
    let nofile = net::raise_nofile();
    let webhooks = webhook::Webhooks::new(&settings).map_err(ServeError::Webhooks)?;
    let store = Store::open(&settings.data_dir).map_err(ServeError::Store)?;
    let (durable, clock) = store.load().map_err(ServeError::Store)?;
    let mut core_config = rarangi_core::Config::new(
        settings.uri.clone(),
        settings.cluster.clone(),
        settings.env.clone(),
    );
    core_config.tombstone_horizon_ms = settings.tombstone_ms;
    core_config.reap_after_ms = u64::try_from(settings.reap_after.as_millis()).unwrap_or(u64::MAX);
    core_config.limits.services_per_catalogue = settings.max_services_per_catalogue;
    core_config.limits.regex_bytes_per_client = settings.regex_budget_per_connection;
    core_config.limits.regex_bytes_total = settings.regex_budget;
    core_config.flap = settings.flap.clone();
    let core = Catalogue::new(core_config.clone(), durable, clock, clock::now_ms());

    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: settings.listen,
            hint: "another catalogue there? use --side b or --listen HOST:PORT",
            source,
        })?;

    let (events_tx, events_rx) = mpsc::channel(4096);
    let (view_tx, view_rx) = watch::channel(Arc::new(View::new(core.topology())));
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
        view: view_rx,
        http_base: format!(
            "{}://{}:{}",
            if settings.http_tls { "https" } else { "http" },
            settings
                .uri
                .addr()
                .rsplit_once(':')
                .map_or(settings.uri.addr(), |(h, _)| h),
            settings.http.map_or(0, |a| a.port())
        ),
        gate: Arc::new(net::Gate::new(&settings, nofile)),
        tls: tls.clone(),
        webhooks,
    });
    // Before "catalogue started": every port is ours by now. The HTTP
    // port is checked first, so a conflict there leaves no socket file.
    // Whoever can connect to it has been warned before it is bound.
    http::auth::warn_if_open(&settings);
    if settings.tls.is_some() && !settings.http_tls && settings.http.is_some_and(http::auth::exposed) {
        tracing::warn!("the HTTP API listens beyond loopback in plain text (--http-tls off): tokens and data cross the network unencrypted");
    }
    let http_listener = match settings.http {
        Some(addr) => {
            Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServeError::Listen {
                        addr,
                        hint: "for HTTP; use --http HOST:PORT, or --http off",
                        source,
                    })?,
            )
        }
        None => None,
    };
    let dns_sockets = match &settings.dns {
        Some(dns) => Some(
            dns::Sockets::bind(dns.addr)
                .await
                .map_err(|source| ServeError::Listen {
                    addr: dns.addr,
                    hint: "for DNS (UDP and TCP); use --dns HOST:PORT, or --dns off",
                    source,
                })?,
        ),
        None => None,
    };
    let unix = net::bind_unix(&settings.unix);
    let unix_shown = match &unix {
        Ok(_) => settings.unix.display().to_string(),
        Err(why) => format!("none ({}: {why})", settings.unix.display()),
    };
    tracing::info!(
        uri = %settings.uri,
        env = %settings.env,
        cluster = %settings.cluster,
        listen = %settings.listen,
        unix = %unix_shown,
        data_dir = %settings.data_dir.display(),
        max_connections = shared.gate.total(),
        max_connections_per_ip = settings.max_connections_per_ip,
        tls = tls.is_some(),
        "catalogue started"
    );
    if tls.is_none() && !settings.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %settings.listen,
            "catalogue links are not authenticated: anyone who reaches {} can join as a peer; use --tls-ca/--tls-cert/--tls-key (or at least --peer-allow)",
            settings.listen
        );
    }
    if let Some(tls) = tls {
        tokio::spawn(reload_on_sighup(tls, shutdown.clone()));
    }
    let driver = Driver::new(core, store, shared.clone(), view_tx);
    let driver_task = tokio::spawn(driver.run(events_rx, shutdown.clone()));

    let tcp_task = tokio::spawn(net::accept_loop(
        Listener::Tcp(listener),
        shared.clone(),
        shutdown.clone(),
    ));
    let unix_task = unix.ok().map(|l| {
        tokio::spawn(net::accept_loop(
            Listener::Unix(l),
            shared.clone(),
            shutdown.clone(),
        ))
    });
    let http_task = http_listener.map(|l| {
        tracing::info!(http = %settings.http.expect("set"), https = settings.http_tls, "HTTP API listening");
        tokio::spawn(http::serve(l, shared.clone(), shutdown.clone()))
    });
    let dns_task = match (dns_sockets, &settings.dns) {
        (Some(sockets), Some(dns)) => {
            tracing::info!(dns = %dns.addr, domain = %dns.domain, "DNS listening (UDP and TCP)");
            let handler =
                dns::Handler::new(shared.view.clone(), dns, settings.uri.clone(), &settings.cluster);
            Some(tokio::spawn(dns::serve(sockets, handler, shutdown.clone())))
        }
        _ => None,
    };
    // Seed peers and discovered ones, dialed by one task.
    if let Err(e) = discovery::start(shared.clone(), shutdown.clone()).await {
        shutdown.cancel();
        let _ = driver_task.await;
        return Err(ServeError::Discovery(e));
    }

    let outcome = driver_outcome(driver_task.await);
    if let Err(e) = &outcome {
        tracing::error!(error = %error_chain(e), "stopping: the catalogue cannot go on");
        // Everything else stops with the driver.
        shutdown.cancel();
    }
    tcp_task.abort();
    if let Some(t) = http_task {
        t.abort();
    }
    if let Some(t) = dns_task {
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
    outcome
}

/// `--dev`'s temporary directory, removed when the catalogue stops.
struct DevDir(std::path::PathBuf);

impl Drop for DevDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Re-reads the TLS files on SIGHUP: new handshakes use them, links up
/// stay up; unusable files keep the old configuration.
async fn reload_on_sighup(tls: Arc<net::Tls>, stop: CancellationToken) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot catch SIGHUP; TLS files will not be reloaded");
        return;
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        match tls.reload() {
            Ok(()) => tracing::info!("SIGHUP: TLS certificate, key and CA reloaded"),
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "SIGHUP: cannot reload TLS files; keeping the old ones")
            }
        }
    }
}

/// How the driver task ended, as the daemon's result.
fn driver_outcome(joined: Result<Result<(), DriverError>, JoinError>) -> Result<(), ServeError> {
    match joined {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ServeError::Driver(Box::new(e))),
        Err(e) => Err(ServeError::DriverPanicked(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_driver_task_is_an_error() {
        let panicked = tokio::spawn(async { panic!("boom") }).await;
        let e = driver_outcome(panicked.map(|()| Ok(()))).unwrap_err();
        assert!(matches!(e, ServeError::DriverPanicked(_)), "{e}");
        assert!(driver_outcome(Ok(Ok(()))).is_ok());
    }
}
