//! Kubernetes discovery (`--discover-k8s SERVICE`): the catalogues behind
//! a headless Service, from its EndpointSlices (discovery.k8s.io/v1,
//! label `kubernetes.io/service-name=SERVICE`), kept current with kube's
//! `runtime::watcher` (it lists, watches, follows bookmarks and relists
//! after 410 Gone). Ready and not-ready endpoints both count: a catalogue
//! may report not-ready until it has linked, and waiting for readiness
//! before dialling it would deadlock a new cluster.
//!
//! Configuration comes from `kube::Config::infer`: KUBECONFIG (or
//! ~/.kube/config), else in-cluster (KUBERNETES_SERVICE_HOST/PORT, the
//! service account's CA and token). kube re-reads a token file
//! (in-cluster, or a kubeconfig `tokenFile`) at least once a minute, so a
//! rotated service-account token is picked up without a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, watcher, Event};
use kube::{Api, Client};
use rarangi_proto::Backoff;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) use crate::settings::{K8sConfig, K8sPort};
use crate::Settings;

/// More discovered addresses than this are ignored (and logged): the
/// dialer runs one task per address.
pub(crate) const MAX_ADDRESSES: usize = 4096;

/// Back-off between failed API calls: the links' rule, capped at 30 s (as
/// client-go's reflector) so a rotated token or a restarted API server is
/// picked up soon.
fn api_backoff() -> Backoff {
    Backoff::new(Duration::from_secs(1), Duration::from_secs(30))
}

/// Why Kubernetes discovery cannot run at all (API errors are retried).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum K8sError {
    /// Neither KUBECONFIG (~/.kube/config) nor the in-cluster environment
    /// gives a usable configuration.
    #[error("no Kubernetes configuration: no usable KUBECONFIG or ~/.kube/config, and not in a cluster (KUBERNETES_SERVICE_HOST/PORT and the service account's files)")]
    Config(#[source] kube::config::InferConfigError),
    /// The configuration was found but a client cannot be built from it
    /// (a bad CA or client certificate, say).
    #[error("cannot build a Kubernetes client from the configuration")]
    Client(#[source] kube::Error),
}

/// Starts Kubernetes discovery if `--discover-k8s` is set: the task
/// publishes the discovered addresses on `out` until `stop`.
pub(crate) fn spawn_if_configured(
    settings: &Settings,
    out: watch::Sender<BTreeSet<SocketAddr>>,
    stop: CancellationToken,
) -> Option<JoinHandle<()>> {
    let cfg = settings.discover_k8s.clone()?;
    Some(tokio::spawn(async move {
        let service = cfg.service.clone();
        if let Err(e) = run(cfg, out, stop).await {
            tracing::error!(service = %service, error = %crate::error_chain(&e), "Kubernetes discovery cannot run; catalogues behind the Service will not be found");
        }
    }))
}

/// Watches the EndpointSlices of `cfg.service` and publishes the whole
/// address set on `out` each time it changes. Returns on `stop`, or on a
/// configuration error; API errors are retried with back-off.
pub(crate) async fn run(
    cfg: K8sConfig,
    out: watch::Sender<BTreeSet<SocketAddr>>,
    stop: CancellationToken,
) -> Result<(), K8sError> {
    let config = tokio::select! {
        _ = stop.cancelled() => return Ok(()),
        c = kube::Config::infer() => c.map_err(K8sError::Config)?,
    };
    tracing::info!(
        service = %cfg.service,
        namespace = %cfg.namespace,
        port = %cfg.port,
        api = %config.cluster_url,
        "Kubernetes discovery: watching the Service's EndpointSlices"
    );
    let client = Client::try_from(config).map_err(K8sError::Client)?;
    let api: Api<EndpointSlice> = Api::namespaced(client, &cfg.namespace);
    let selector = format!("kubernetes.io/service-name={}", cfg.service);
    let stream = watcher(api, watcher::Config::default().labels(&selector));
    let mut stream = std::pin::pin!(stream);
    let mut slices = Slices::default();
    let mut backoff = api_backoff();
    let mut failures = 0u32;
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            n = stream.next() => n,
        };
        match next {
            // The watcher's stream does not end; if it did, keep what we know.
            None => {
                stop.cancelled().await;
                return Ok(());
            }
            Some(Ok(event)) => {
                if failures > 0 {
                    tracing::info!(service = %cfg.service, failures, "Kubernetes API reachable again");
                }
                failures = 0;
                backoff.reset();
                if slices.apply(event, &cfg.port) {
                    let set = slices.union();
                    out.send_if_modified(|old| {
                        let changed = *old != set;
                        if changed {
                            tracing::info!(service = %cfg.service, addresses = set.len(), "Kubernetes discovery: catalogues behind the Service changed");
                            *old = set;
                        }
                        changed
                    });
                }
            }
            Some(Err(e)) => {
                failures = failures.saturating_add(1);
                log_failure(&cfg.service, &e, failures);
                let delay = backoff.next_delay(rand::random());
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Logs an API error at a decaying rate (failures 1, 2, 4, 8, ...); an
/// expired resource version (410 Gone) is routine: the watcher relists.
fn log_failure(service: &str, e: &watcher::Error, failures: u32) {
    let gone = matches!(e, watcher::Error::WatchError(s) if s.code == 410);
    let error = crate::error_chain(e);
    if gone {
        tracing::debug!(service, %error, "Kubernetes watch expired (410 Gone); relisting");
    } else if failures.is_power_of_two() {
        tracing::warn!(service, %error, failures, "Kubernetes API error; retrying with back-off (the last known catalogues are still dialled)");
    }
}

/// What the watcher has told so far: each slice's addresses, and during a
/// (re)list the slices seen since it began.
#[derive(Debug, Default)]
struct Slices {
    current: BTreeMap<String, BTreeSet<SocketAddr>>,
    /// Some while a list is under way; it replaces `current` when done, so
    /// a relist never publishes a partial set.
    listing: Option<BTreeMap<String, BTreeSet<SocketAddr>>>,
}

impl Slices {
    /// Applies one watcher event; true if `current` may have changed.
    fn apply(&mut self, event: Event<EndpointSlice>, port: &K8sPort) -> bool {
        match event {
            Event::Init => {
                self.listing = Some(BTreeMap::new());
                false
            }
            Event::InitApply(slice) => {
                let name = slice.metadata.name.clone().unwrap_or_default();
                let addrs = slice_addresses(&slice, port);
                self.listing.get_or_insert_with(BTreeMap::new).insert(name, addrs);
                false
            }
            Event::InitDone => {
                self.current = self.listing.take().unwrap_or_default();
                true
            }
            Event::Apply(slice) => {
                let name = slice.metadata.name.clone().unwrap_or_default();
                self.current.insert(name, slice_addresses(&slice, port));
                true
            }
            Event::Delete(slice) => {
                let name = slice.metadata.name.clone().unwrap_or_default();
                self.current.remove(&name).is_some()
            }
        }
    }

    /// Every slice's addresses together, at most [`MAX_ADDRESSES`].
    fn union(&self) -> BTreeSet<SocketAddr> {
        let all: BTreeSet<SocketAddr> = self.current.values().flatten().copied().collect();
        if all.len() > MAX_ADDRESSES {
            tracing::warn!(
                found = all.len(),
                max = MAX_ADDRESSES,
                "Kubernetes discovery found more catalogues than it dials; ignoring the rest"
            );
            return all.into_iter().take(MAX_ADDRESSES).collect();
        }
        all
    }
}

/// The catalogue addresses one EndpointSlice lists: each endpoint's first
/// address (Kubernetes: an endpoint's addresses are fungible), ready or
/// not, on the chosen port. A named port the slice does not carry (over
/// TCP) yields nothing; FQDN slices and unparsable addresses are skipped.
pub(crate) fn slice_addresses(slice: &EndpointSlice, port: &K8sPort) -> BTreeSet<SocketAddr> {
    if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
        return BTreeSet::new();
    }
    let port = match port {
        K8sPort::Number(n) => Some(*n),
        K8sPort::Name(name) => slice.ports.iter().flatten().find_map(|p| {
            let tcp = p.protocol.as_deref().is_none_or(|proto| proto == "TCP");
            let named = p.name.as_deref().unwrap_or("") == name;
            (tcp && named)
                .then_some(p.port)
                .flatten()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0)
        }),
    };
    let Some(port) = port else {
        return BTreeSet::new();
    };
    slice
        .endpoints
        .iter()
        .filter_map(|e| e.addresses.first()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}

#[cfg(test)]
#[path = "k8s_tests.rs"]
mod tests;
