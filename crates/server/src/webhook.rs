//! Webhook delivery (Nesoi). The core decides which hook fires, when, and
//! with what (`rarangi_core::Output::Webhook`, on the leader only, retried
//! with back-off); the driver hands each delivery to [`Webhooks::post`] off
//! its task and reports the result back (`Catalogue::webhook_done`). A
//! marker is written only after a 2xx, so delivery is at least once.
//!
//! Endpoints are parsed as URIs ([`Endpoint`]): http or https, a host, no
//! user information; the parser lets no CR, LF or space through, so an
//! endpoint cannot add headers. The POST goes through hyper (and rustls
//! for https, trusting the system's roots and `--hook-ca`), only to
//! addresses `--hook-allow` permits, checked after resolving the host.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper::http::uri::InvalidUri;
use hyper::http::{header, Request, Uri};
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::access::canonical;
use crate::settings::Settings;

/// The whole delivery (resolve, connect, handshake, answer) must fit in this.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Why an endpoint is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum EndpointError {
    /// Not a URI (spaces, CR, LF and other bytes a URI cannot hold).
    #[error("not a valid URI")]
    NotUri(#[source] InvalidUri),
    /// A scheme other than http or https (or none).
    #[error("only http:// and https:// endpoints are supported")]
    Scheme,
    /// No host.
    #[error("the endpoint has no host")]
    NoHost,
    /// `user:password@` in the authority.
    #[error("user information (user@host) is not allowed in an endpoint")]
    UserInfo,
}

/// A webhook endpoint that passed the checks.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    uri: Uri,
    https: bool,
    /// The host without IPv6 brackets.
    host: String,
    port: u16,
}

impl Endpoint {
    /// Checks `s`: an absolute http or https URI with a host and no user
    /// information.
    pub(crate) fn parse(s: &str) -> Result<Endpoint, EndpointError> {
        let uri: Uri = s.parse().map_err(EndpointError::NotUri)?;
        let https = match uri.scheme_str() {
            Some(sch) if sch.eq_ignore_ascii_case("http") => false,
            Some(sch) if sch.eq_ignore_ascii_case("https") => true,
            _ => return Err(EndpointError::Scheme),
        };
        let authority = uri.authority().ok_or(EndpointError::NoHost)?;
        if authority.as_str().contains('@') {
            return Err(EndpointError::UserInfo);
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(EndpointError::NoHost);
        }
        Ok(Endpoint {
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
            https,
            uri,
        })
    }
}

/// Where webhooks may go.
#[derive(Debug, Clone)]
enum Allow {
    /// Anywhere (the HTTP API is loopback-only: only local users register hooks).
    Any,
    /// Anywhere but loopback, link-local and unspecified addresses (the
    /// default when the HTTP API is exposed).
    NotLocal,
    /// Only these networks (`--hook-allow`).
    Nets(Vec<IpNet>),
}

impl Allow {
    fn from_settings(s: &Settings) -> Allow {
        if !s.hook_allow.is_empty() {
            Allow::Nets(s.hook_allow.clone())
        } else if s.http.is_some_and(crate::http::auth::exposed) {
            Allow::NotLocal
        } else {
            Allow::Any
        }
    }

    fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match self {
            Allow::Any => true,
            Allow::NotLocal => {
                let link_local = match ip {
                    IpAddr::V4(v4) => v4.is_link_local(),
                    IpAddr::V6(v6) => v6.is_unicast_link_local(),
                };
                !(ip.is_loopback() || ip.is_unspecified() || link_local)
            }
            Allow::Nets(nets) => nets.iter().any(|n| n.contains(&ip)),
        }
    }
}

/// A webhook client could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookSetupError {
    /// `--hook-ca` could not be read or holds no certificate.
    #[error("--hook-ca {}: {reason}", path.display())]
    HookCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Why one delivery failed (logged; the core retries).
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("cannot resolve {0}")]
    Resolve(String, #[source] std::io::Error),
    #[error("{host} resolves only to {addrs:?}, which --hook-allow does not permit (see \"Securing Rarangi\" in docs/OPERATIONS.md)")]
    NotAllowed { host: String, addrs: Vec<IpAddr> },
    #[error("cannot connect to {0}")]
    Connect(SocketAddr, #[source] std::io::Error),
    #[error("TLS with {0}")]
    Tls(String, #[source] std::io::Error),
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    #[error("HTTP")]
    Http(#[source] hyper::Error),
    #[error("request")]
    Request(#[source] hyper::http::Error),
    #[error("no answer within {} s", TIMEOUT.as_secs())]
    Timeout,
}

/// The webhook client: where hooks may go and whom https trusts. Cheap to
/// clone; the system's roots are loaded at the first https delivery.
#[derive(Clone)]
pub(crate) struct Webhooks {
    allow: Allow,
    extra_roots: Arc<Vec<CertificateDer<'static>>>,
    tls: Arc<OnceLock<TlsConnector>>,
    /// Failures in a row per endpoint, so a dead endpoint is logged at a
    /// decaying rate rather than at every retry.
    failing: Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
}

/// Endpoints whose failures are counted; beyond, the counts start over
/// (an endpoint then says its failure once more).
const FAILING_MAX: usize = 1024;

/// Whether the `n`th failure in a row is logged: the 1st, 2nd, 4th, 8th...
fn worth_logging(n: u64) -> bool {
    n.is_power_of_two()
}

impl Webhooks {
    /// The client for these settings; reads `--hook-ca` (and the catalogue
    /// CA of `--tls-ca`, which https endpoints may use too) now, so a bad
    /// file stops the start.
    pub(crate) fn new(settings: &Settings) -> Result<Webhooks, WebhookSetupError> {
        let mut extra = Vec::new();
        let cas = settings
            .hook_ca
            .iter()
            .chain(settings.tls.as_ref().map(|t| &t.ca));
        for path in cas {
            let before = extra.len();
            let bad = |reason: String| WebhookSetupError::HookCa {
                path: path.clone(),
                reason,
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
                extra.push(cert.map_err(|e| bad(e.to_string()))?);
            }
            if extra.len() == before {
                return Err(bad("no PEM certificate in it".into()));
            }
        }
        Ok(Webhooks {
            allow: Allow::from_settings(settings),
            extra_roots: Arc::new(extra),
            tls: Arc::default(),
            failing: Arc::default(),
        })
    }

    fn tls(&self) -> &TlsConnector {
        self.tls.get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::debug!(error = %e, "a system root certificate could not be loaded");
            }
            roots.add_parsable_certificates(native.certs);
            roots.add_parsable_certificates(self.extra_roots.iter().cloned());
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            TlsConnector::from(Arc::new(config))
        })
    }

    /// POSTs a JSON body with a 3 s deadline; true on a 2xx answer. An
    /// endpoint that is not a valid http(s) URI (stored by an older
    /// catalogue) is never contacted.
    pub(crate) async fn post(&self, endpoint: &str, body: &str) -> bool {
        let ep = match Endpoint::parse(endpoint) {
            Ok(ep) => ep,
            Err(e) => {
                self.failed(endpoint, &format!("not sent: {}", crate::error_chain(&e)));
                return false;
            }
        };
        let outcome = tokio::time::timeout(TIMEOUT, self.deliver(&ep, body))
            .await
            .unwrap_or(Err(DeliveryError::Timeout));
        crate::metrics::metrics().webhook(matches!(&outcome, Ok(s) if s.is_success()));
        let reason = match outcome {
            Ok(status) if status.is_success() => {
                self.delivered(endpoint);
                return true;
            }
            Ok(status) => format!("answered {status}"),
            Err(e) => crate::error_chain(&e),
        };
        self.failed(endpoint, &reason);
        false
    }

    /// A failure: logged with the endpoint and the reason the first time,
    /// then at a decaying rate while it goes on failing.
    fn failed(&self, endpoint: &str, reason: &str) {
        let n = {
            let mut failing = self.failing.lock().expect("webhook failures lock");
            if failing.len() >= FAILING_MAX && !failing.contains_key(endpoint) {
                failing.clear();
            }
            let n = failing.entry(endpoint.to_owned()).or_default();
            *n += 1;
            *n
        };
        if worth_logging(n) {
            tracing::warn!(
                endpoint,
                reason,
                failures_in_a_row = n,
                "webhook delivery failed; retrying (logged again at 2, 4, 8... failures in a row)"
            );
        } else {
            tracing::debug!(endpoint, reason, failures_in_a_row = n, "webhook delivery failed");
        }
    }

    /// A success: an endpoint that was failing says it works again.
    fn delivered(&self, endpoint: &str) {
        let was = self
            .failing
            .lock()
            .expect("webhook failures lock")
            .remove(endpoint);
        if let Some(n) = was {
            tracing::info!(endpoint, failures = n, "webhook delivered again");
        }
    }

    async fn deliver(&self, ep: &Endpoint, body: &str) -> Result<hyper::StatusCode, DeliveryError> {
        let addrs: Vec<SocketAddr> = match ep.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, ep.port)],
            Err(_) => tokio::net::lookup_host((ep.host.as_str(), ep.port))
                .await
                .map_err(|e| DeliveryError::Resolve(ep.host.clone(), e))?
                .collect(),
        };
        let allowed: Vec<SocketAddr> = addrs
            .iter()
            .copied()
            .filter(|a| self.allow.permits(a.ip()))
            .collect();
        if allowed.is_empty() {
            return Err(DeliveryError::NotAllowed {
                host: ep.host.clone(),
                addrs: addrs.iter().map(SocketAddr::ip).collect(),
            });
        }
        // The address checked is the address used: no second lookup.
        let mut failed = None;
        let mut tcp = None;
        for a in &allowed {
            match TcpStream::connect(a).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => failed = Some(DeliveryError::Connect(*a, e)),
            }
        }
        let Some(tcp) = tcp else {
            return Err(failed.expect("at least one address was tried"));
        };
        let _ = tcp.set_nodelay(true);
        if ep.https {
            let name = ServerName::try_from(ep.host.clone())
                .map_err(|_| DeliveryError::ServerName(ep.host.clone()))?;
            let tls = self
                .tls()
                .connect(name, tcp)
                .await
                .map_err(|e| DeliveryError::Tls(ep.host.clone(), e))?;
            send(tls, ep, body).await
        } else {
            send(tcp, ep, body).await
        }
    }
}

/// One POST over `io` with hyper's HTTP/1.1 client.
async fn send<S>(io: S, ep: &Endpoint, body: &str) -> Result<hyper::StatusCode, DeliveryError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(DeliveryError::Http)?;
    let path = ep.uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = ep.uri.authority().map_or(ep.host.as_str(), |a| a.as_str());
    let req = Request::post(path)
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "rarangi")
        .header(header::CONNECTION, "close")
        .body(body.to_owned())
        .map_err(DeliveryError::Request)?;
    // The connection is driven here, not spawned, so a timeout drops it.
    let mut answer = std::pin::pin!(sender.send_request(req));
    let response = tokio::select! {
        r = &mut answer => r,
        // The connection ended: whatever answer came is with the sender.
        _ = conn => answer.await,
    };
    Ok(response.map_err(DeliveryError::Http)?.status())
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
