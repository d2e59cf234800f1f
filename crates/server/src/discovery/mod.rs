//! Finding peers. Every source (the seed list, DNS SRV in `dns.rs`, the LAN
//! beacon in `beacon.rs`, Kubernetes in `k8s.rs` behind the `k8s` feature)
//! is a task `run(config, out, stop) -> Result<(), E>` that replaces the
//! whole set of candidate addresses in its `watch` channel each time its
//! view changes. One task ([`Merger`]) merges them and drives the dialer:
//! a dial loop per candidate it picks (the link policy, [`pick`]), retired
//! when no source lists the address any more. Discovered addresses go
//! through the same WELCOME and certificate checks as seed peers.

pub mod beacon;
mod config;
pub mod dns;
#[cfg(feature = "k8s")]
pub(crate) mod k8s;
mod merger;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

pub use config::{check_peers, BeaconSettings, DiscoverySettings, DEFAULT_MAX_PEER_LINKS};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Shared;

/// The candidate peer addresses one source currently knows.
pub type Candidates = BTreeSet<SocketAddr>;

/// Why a discovery source cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The beacon's UDP socket cannot be opened.
    #[error("cannot open the beacon socket on UDP port {port}")]
    Socket {
        /// The beacon port.
        port: u16,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The system's resolver configuration cannot be read.
    #[error("cannot read the system's DNS configuration; give --discover-dns-server HOST:PORT")]
    Resolver(#[source] hickory_resolver::ResolveError),
}

/// A source's name (for logs) and its channel.
type Source = (&'static str, watch::Receiver<Candidates>);

/// Starts every configured source and the task that merges them and
/// drives the dialer. Fails if a source cannot start (the beacon's port).
pub(crate) async fn start(shared: Arc<Shared>, stop: CancellationToken) -> Result<(), SourceError> {
    let settings = &shared.settings.discovery;
    let mut sources: Vec<Source> = Vec::new();
    if !settings.dns_names.is_empty() {
        let (tx, rx) = watch::channel(Candidates::new());
        let cfg = dns::DnsConfig {
            names: settings.dns_names.clone(),
            server: settings.dns_server,
        };
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = dns::run(cfg, tx, stop).await {
                tracing::error!(error = %crate::error_chain(&e), "DNS SRV discovery stopped");
            }
        });
        sources.push(("dns", rx));
    }
    if let Some(b) = &settings.beacon {
        let (tx, rx) = watch::channel(Candidates::new());
        let cfg = beacon::BeaconConfig {
            port: b.port,
            key: b.key.clone(),
            environment: shared.settings.env.clone(),
            cluster: shared.settings.cluster.clone(),
            uri: shared.settings.uri.clone(),
            incarnation: crate::clock::now_ms(),
        };
        let socket = beacon::bind(cfg.port)?;
        tracing::info!(port = cfg.port, "beacon on: announcing this catalogue on the LAN");
        tokio::spawn(beacon::serve(socket, cfg, tx, stop.clone()));
        sources.push(("beacon", rx));
    }
    #[cfg(feature = "k8s")]
    {
        let (tx, rx) = watch::channel(Candidates::new());
        if k8s::spawn_if_configured(&shared.settings, tx, stop.clone()).is_some() {
            sources.push(("k8s", rx));
        }
    }
    let merger = merger::Merger::new(shared.clone(), sources, stop);
    tokio::spawn(merger.run());
    Ok(())
}
