//! `rarangi serve` settings: flags, `RARANGI_*` environment variables and a
//! TOML file, in that order of precedence, over the defaults of DESIGN.md.
//! One declaration ([`ServeArgs`]) serves all three sources; the defaults
//! are the `DEFAULT_*` constants below and nowhere else.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use rarangi_proto::wellknown::{self, Side, UserDirs};
use rarangi_proto::{validate_cluster, validate_environment, CatalogueUri, NameError};
use serde::Deserialize;

use crate::http::auth::{check_exposure, TokenFile, TokenFileError};

mod args;
mod k8s;
mod parse;
mod resolved;
pub use args::ServeArgs;
pub use k8s::{K8sConfig, K8sPort, SERVICE_ACCOUNT_NAMESPACE};
pub(crate) use parse::resolve_addr;
use parse::{cidrs, dns_domain, host_name, reap_after, split_instance};
pub use resolved::{DnsSettings, MemoryLimit, Settings, TlsFiles};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Which side of the host's pair of catalogues (picks the well-known ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SideArg {
    /// Side A: the environment's base ports.
    A,
    /// Side B: base + 1.
    B,
}

impl From<SideArg> for Side {
    fn from(s: SideArg) -> Self {
        match s {
            SideArg::A => Side::A,
            SideArg::B => Side::B,
        }
    }
}

/// Whether the HTTP API speaks HTTPS (`--http-tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HttpTls {
    /// HTTPS when TLS is configured and the API listens beyond loopback;
    /// plain HTTP on loopback, where nothing crosses the network.
    #[default]
    Auto,
    /// Always HTTPS (needs --tls-ca/--tls-cert/--tls-key).
    On,
    /// Always plain HTTP.
    Off,
}

/// Heartbeat interval on catalogue links, in milliseconds.
pub const DEFAULT_HEARTBEAT_MS: u64 = 1000;
/// A link silent this long (ms) is dead.
pub const DEFAULT_DEAD_AFTER_MS: u64 = 5000;
/// Tombstone horizon in milliseconds (DESIGN §4: 60 minutes).
pub const DEFAULT_TOMBSTONE_MS: u64 = 3_600_000;
/// Lines queued for one client before it is dropped as too slow.
pub const DEFAULT_CLIENT_QUEUE: usize = 16 * 1024;
/// Largest HTTP request body in bytes: the largest replicated item
/// (`rarangi_proto::MAX_ITEM_LINE`, 2 MiB), so any document that can be
/// replicated can be sent.
pub const DEFAULT_HTTP_BODY_LIMIT: usize = rarangi_proto::MAX_ITEM_LINE;
/// Bytes queued for one client before it may be dropped as too slow.
pub const DEFAULT_CLIENT_QUEUE_BYTES: usize = 8 << 20;
/// Bytes queued for a peer catalogue before it may be dropped as dead.
pub const DEFAULT_PEER_QUEUE_BYTES: usize = 64 << 20;
/// Client connections (line protocol and HTTP together) from one address.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
/// Time allowed for a new line-protocol connection's first line, in ms.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Time allowed for an HTTP request head, and for an idle keep-alive
/// connection's next request, in ms.
pub const DEFAULT_HTTP_HEADER_TIMEOUT_MS: u64 = 10_000;
/// Default of `--probe-concurrency`.
pub const DEFAULT_PROBE_CONCURRENCY: usize = 256;
/// Share of the machine's (or cgroup's) memory beyond which new
/// registrations and subscriptions are refused.
pub const DEFAULT_MEMORY_LIMIT: &str = "80%";
/// Environment when none is given.
pub const DEFAULT_ENV: &str = "development";
/// Cluster when none is given.
pub const DEFAULT_CLUSTER: &str = "default";
/// The DNS domain answered.
pub const DEFAULT_DNS_DOMAIN: &str = "rarangi.";

/// A setting that cannot be used, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The `--config` file could not be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The `--config` file is not valid TOML for these settings.
    #[error("config file {}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and why.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// An environment or cluster name breaks the naming rule.
    #[error("invalid name")]
    Name(#[source] NameError),
    /// A value that cannot be used, with what to do instead.
    #[error("{0}")]
    Invalid(String),
    /// The `--http-token-file` cannot be used.
    #[error("--http-token-file")]
    Tokens(#[source] TokenFileError),
}

impl ServeArgs {
    /// Merges flags, variables, the file and defaults, and validates.
    pub fn resolve(&self) -> Result<Settings, ConfigError> {
        self.resolve_for(&UserDirs::current())
    }

    /// As [`ServeArgs::resolve`], with the default paths of `dirs`.
    pub fn resolve_for(&self, dirs: &UserDirs) -> Result<Settings, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str::<ServeArgs>(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source: Box::new(source),
                })?
            }
            None => ServeArgs::default(),
        };
        self.clone().over(file).settings(dirs)
    }

    /// These values where set, else `file`'s.
    fn over(self, file: ServeArgs) -> ServeArgs {
        let list = |a: Vec<String>, b: Vec<String>| if a.is_empty() { b } else { a };
        ServeArgs {
            config: self.config,
            dev: self.dev,
            env: self.env.or(file.env),
            side: self.side.or(file.side),
            instance: self.instance,
            cluster: self.cluster.or(file.cluster),
            listen: self.listen.or(file.listen),
            advertise: self.advertise.or(file.advertise),
            unix: self.unix.or(file.unix),
            peers: list(self.peers, file.peers),
            data_dir: self.data_dir.or(file.data_dir),
            heartbeat_ms: self.heartbeat_ms.or(file.heartbeat_ms),
            dead_after_ms: self.dead_after_ms.or(file.dead_after_ms),
            log_format: self.log_format.or(file.log_format),
            allow_register: list(self.allow_register, file.allow_register),
            max_line: self.max_line.or(file.max_line),
            tombstone_ms: self.tombstone_ms.or(file.tombstone_ms),
            reap_after: self.reap_after.or(file.reap_after),
            http: self.http.or(file.http),
            http_body_limit: self.http_body_limit.or(file.http_body_limit),
            client_queue: self.client_queue.or(file.client_queue),
            client_queue_bytes: self.client_queue_bytes.or(file.client_queue_bytes),
            peer_queue_bytes: self.peer_queue_bytes.or(file.peer_queue_bytes),
            max_connections: self.max_connections.or(file.max_connections),
            max_connections_per_ip: self.max_connections_per_ip.or(file.max_connections_per_ip),
            handshake_timeout_ms: self.handshake_timeout_ms.or(file.handshake_timeout_ms),
            http_header_timeout_ms: self.http_header_timeout_ms.or(file.http_header_timeout_ms),
            memory_limit: self.memory_limit.or(file.memory_limit),
            max_services_per_catalogue: self
                .max_services_per_catalogue
                .or(file.max_services_per_catalogue),
            regex_budget_per_connection: self
                .regex_budget_per_connection
                .or(file.regex_budget_per_connection),
            regex_budget: self.regex_budget.or(file.regex_budget),
            tls_ca: self.tls_ca.or(file.tls_ca),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            tls_verify_clients: self.tls_verify_clients || file.tls_verify_clients,
            peer_allow: list(self.peer_allow, file.peer_allow),
            register_uid: if self.register_uid.is_empty() {
                file.register_uid
            } else {
                self.register_uid
            },
            register_gid: if self.register_gid.is_empty() {
                file.register_gid
            } else {
                self.register_gid
            },
            http_token_file: self.http_token_file.or(file.http_token_file),
            http_insecure: self.http_insecure || file.http_insecure,
            http_tls: self.http_tls.or(file.http_tls),
            hook_allow: list(self.hook_allow, file.hook_allow),
            hook_ca: self.hook_ca.or(file.hook_ca),
            discover_dns: list(self.discover_dns, file.discover_dns),
            discover_dns_server: self.discover_dns_server.or(file.discover_dns_server),
            beacon: self.beacon || file.beacon,
            beacon_key_file: self.beacon_key_file.or(file.beacon_key_file),
            beacon_port: self.beacon_port.or(file.beacon_port),
            max_peer_links: self.max_peer_links.or(file.max_peer_links),
            probe_concurrency: self.probe_concurrency.or(file.probe_concurrency),
            check_flap_limit: self.check_flap_limit.or(file.check_flap_limit),
            check_flap_window_ms: self.check_flap_window_ms.or(file.check_flap_window_ms),
            check_hold_down_ms: self.check_hold_down_ms.or(file.check_hold_down_ms),
            discover_k8s: self.discover_k8s.or(file.discover_k8s),
            k8s_namespace: self.k8s_namespace.or(file.k8s_namespace),
            k8s_port: self.k8s_port.or(file.k8s_port),
            dns: self.dns.or(file.dns),
            dns_domain: self.dns_domain.or(file.dns_domain),
            dns_alt_domain: self.dns_alt_domain.or(file.dns_alt_domain),
            dns_ttl: self.dns_ttl.or(file.dns_ttl),
        }
    }

    /// Applies the defaults and validates.
    fn settings(mut self, dirs: &UserDirs) -> Result<Settings, ConfigError> {
        if let Some(instance) = self.instance.take() {
            let (env, side) = split_instance(&instance)?;
            let disagree =
                self.env.as_deref().is_some_and(|e| e != env) || self.side.is_some_and(|s| s != side);
            if disagree {
                return Err(ConfigError::Invalid(format!(
                    "--instance {instance:?} disagrees with --env or --side (set by flag, variable or file); give one or the other"
                )));
            }
            self.env = Some(env.to_owned());
            self.side = Some(side);
        }
        let env = self.env.clone().unwrap_or_else(|| DEFAULT_ENV.into());
        validate_environment(&env).map_err(ConfigError::Name)?;
        crate::discovery::check_peers(&self.peers)?;
        let discovery = crate::discovery::DiscoverySettings::resolve(&self, &env)?;
        let side: Side = self.side.unwrap_or(SideArg::A).into();
        let cluster = self.cluster.unwrap_or_else(|| DEFAULT_CLUSTER.into());
        validate_cluster(&cluster).map_err(ConfigError::Name)?;
        let listen = match self.listen {
            Some(l) => resolve_addr(&l, "--listen")?,
            None => {
                let port = wellknown::line_port(&env, side).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "environment {env:?} has no well-known ports; give --listen HOST:PORT"
                    ))
                })?;
                let any = if self.dev { [127, 0, 0, 1] } else { [0, 0, 0, 0] };
                SocketAddr::from((any, port))
            }
        };
        let dev_dir = self
            .dev
            .then(|| dirs.temp_dir.join(format!("rarangi-dev-{}", std::process::id())));
        let advertise = match self.advertise {
            Some(a) => a,
            None if listen.ip().is_unspecified() => format!("{}:{}", host_name(), listen.port()),
            None => listen.to_string(),
        };
        let uri = CatalogueUri::from_addr(&advertise)
            .map_err(|e| ConfigError::Invalid(format!("--advertise {advertise:?}: {e}")))?;
        let unix = match (self.unix, &dev_dir) {
            (Some(u), _) => u,
            (None, Some(d)) => d.join(format!("{env}-{}.sock", side.as_str())),
            (None, None) => dirs.unix_socket(&env, side),
        };
        let data_dir = match (self.data_dir, &dev_dir) {
            (Some(d), _) => d,
            (None, Some(d)) => d.join("data"),
            (None, None) => dirs.data_dir(&env, side),
        };
        let heartbeat_ms = self.heartbeat_ms.unwrap_or(DEFAULT_HEARTBEAT_MS);
        let dead_after_ms = self.dead_after_ms.unwrap_or(DEFAULT_DEAD_AFTER_MS);
        if heartbeat_ms == 0 || dead_after_ms <= heartbeat_ms {
            return Err(ConfigError::Invalid(format!(
                "--dead-after-ms ({dead_after_ms}) must be greater than --heartbeat-ms ({heartbeat_ms}), which must be positive"
            )));
        }
        let allow_register = cidrs(&self.allow_register, "--allow-register")?;
        let peer_allow = cidrs(&self.peer_allow, "--peer-allow")?;
        let tls = match (self.tls_ca, self.tls_cert, self.tls_key) {
            (Some(ca), Some(cert), Some(key)) => Some(TlsFiles { ca, cert, key }),
            (None, None, None) if !self.tls_verify_clients => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "TLS needs all of --tls-ca, --tls-cert and --tls-key (--tls-verify-clients too)".into(),
                ))
            }
        };
        let hook_allow = cidrs(&self.hook_allow, "--hook-allow")?;
        let max_line = self.max_line.unwrap_or(rarangi_proto::DEFAULT_MAX_LINE);
        if max_line < 1024 {
            return Err(ConfigError::Invalid(
                "--max-line must be at least 1024 bytes".into(),
            ));
        }
        let http = match self.http.as_deref() {
            Some("off") => None,
            Some(a) => Some(resolve_addr(a, "--http")?),
            // Loopback by default, as Consul's client_addr: exposing it is a choice.
            None => wellknown::http_port(&env, side).map(|p| SocketAddr::from(([127, 0, 0, 1], p))),
        };
        let http_tokens = self
            .http_token_file
            .map(|p| TokenFile::load(&p))
            .transpose()
            .map_err(ConfigError::Tokens)?;
        let dns = match self.dns.as_deref() {
            Some("off") => None,
            Some(a) => Some(resolve_addr(a, "--dns")?),
            // Loopback by default, as Consul's :8600.
            None => wellknown::dns_port(&env, side).map(|p| SocketAddr::from(([127, 0, 0, 1], p))),
        };
        let dns = match dns {
            Some(addr) => Some(DnsSettings {
                addr,
                domain: dns_domain(
                    self.dns_domain.as_deref().unwrap_or(DEFAULT_DNS_DOMAIN),
                    "--dns-domain",
                )?,
                alt_domain: self
                    .dns_alt_domain
                    .as_deref()
                    .map(|d| dns_domain(d, "--dns-alt-domain"))
                    .transpose()?,
                ttl: self.dns_ttl.unwrap_or(0),
            }),
            None => None,
        };
        if let Some(addr) = http {
            check_exposure(addr, http_tokens.is_some(), self.http_insecure).map_err(ConfigError::Invalid)?;
        }
        let http_tls = match self.http_tls.unwrap_or_default() {
            HttpTls::On if tls.is_none() => {
                return Err(ConfigError::Invalid(
                    "--http-tls on needs --tls-ca, --tls-cert and --tls-key".into(),
                ))
            }
            HttpTls::On => true,
            HttpTls::Off => false,
            // Loopback traffic never leaves the host: plain HTTP keeps curl
            // and scripts simple there (Consul's `http` beside `https`).
            HttpTls::Auto => tls.is_some() && http.is_some_and(crate::http::auth::exposed),
        };
        let discover_k8s = k8s::resolve(
            self.discover_k8s,
            self.k8s_namespace,
            self.k8s_port,
            wellknown::line_port(&env, side).unwrap_or(listen.port()),
            std::path::Path::new(SERVICE_ACCOUNT_NAMESPACE),
        )?;
        Ok(Settings {
            env,
            side,
            cluster,
            listen,
            uri,
            unix,
            peers: self.peers,
            data_dir,
            dev_dir,
            heartbeat: Duration::from_millis(heartbeat_ms),
            dead_after: Duration::from_millis(dead_after_ms),
            log_format: self.log_format.unwrap_or_default(),
            allow_register,
            max_line,
            tombstone_ms: self.tombstone_ms.unwrap_or(DEFAULT_TOMBSTONE_MS),
            reap_after: reap_after(self.reap_after.as_deref())?,
            client_queue: self.client_queue.unwrap_or(DEFAULT_CLIENT_QUEUE).max(1),
            http,
            http_body_limit: self.http_body_limit.unwrap_or(DEFAULT_HTTP_BODY_LIMIT),
            // A budget below one line could drop a reader for one message.
            client_queue_bytes: self
                .client_queue_bytes
                .unwrap_or(DEFAULT_CLIENT_QUEUE_BYTES)
                .max(max_line * 2),
            // A peer's lines are up to the protocol's link limit.
            peer_queue_bytes: self
                .peer_queue_bytes
                .unwrap_or(DEFAULT_PEER_QUEUE_BYTES)
                .max(rarangi_proto::PEER_MAX_LINE * 2),
            max_connections: self.max_connections,
            max_connections_per_ip: match self
                .max_connections_per_ip
                .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_IP)
            {
                0 => None,
                n => Some(n),
            },
            handshake_timeout: Duration::from_millis(
                self.handshake_timeout_ms
                    .unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT_MS)
                    .max(1),
            ),
            http_header_timeout: Duration::from_millis(
                self.http_header_timeout_ms
                    .unwrap_or(DEFAULT_HTTP_HEADER_TIMEOUT_MS)
                    .max(1),
            ),
            memory_limit: self
                .memory_limit
                .as_deref()
                .unwrap_or(DEFAULT_MEMORY_LIMIT)
                .parse()?,
            max_services_per_catalogue: self
                .max_services_per_catalogue
                .unwrap_or(rarangi_core::DEFAULT_SERVICES_PER_CATALOGUE),
            regex_budget_per_connection: self
                .regex_budget_per_connection
                .unwrap_or(rarangi_core::DEFAULT_REGEX_BYTES_PER_CLIENT),
            regex_budget: self
                .regex_budget
                .unwrap_or(rarangi_core::DEFAULT_REGEX_BYTES_TOTAL),
            tls,
            tls_verify_clients: self.tls_verify_clients,
            peer_allow,
            register_uid: self.register_uid,
            register_gid: self.register_gid,
            http_tokens,
            http_insecure: self.http_insecure,
            http_tls,
            hook_allow,
            hook_ca: self.hook_ca,
            discovery,
            probe_concurrency: self.probe_concurrency.unwrap_or(DEFAULT_PROBE_CONCURRENCY).max(1),
            flap: {
                let d = rarangi_core::Flap::default();
                rarangi_core::Flap {
                    flap_limit: self.check_flap_limit.unwrap_or(d.flap_limit),
                    flap_window_ms: self.check_flap_window_ms.unwrap_or(d.flap_window_ms),
                    hold_down_ms: self.check_hold_down_ms.unwrap_or(d.hold_down_ms),
                }
            },
            discover_k8s,
            dns,
        })
    }
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
