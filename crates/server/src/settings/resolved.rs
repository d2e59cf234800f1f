//! Settings as a catalogue uses them, after defaults and validation.

use super::*;

/// Resolved settings of one catalogue.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Environment.
    pub env: String,
    /// Side.
    pub side: Side,
    /// Cluster.
    pub cluster: String,
    /// Line-protocol listen address.
    pub listen: SocketAddr,
    /// Advertised host:port (the URI).
    pub uri: CatalogueUri,
    /// Unix socket path.
    pub unix: PathBuf,
    /// Peers to dial.
    pub peers: Vec<String>,
    /// Durable state directory.
    pub data_dir: PathBuf,
    /// `--dev`: the temporary directory holding the socket and the state,
    /// removed when the catalogue stops.
    pub dev_dir: Option<PathBuf>,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Dead-after.
    pub dead_after: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Networks allowed to register besides loopback.
    pub allow_register: Vec<IpNet>,
    /// Maximum line length.
    pub max_line: usize,
    /// Tombstone horizon.
    pub tombstone_ms: u64,
    /// Unreachable catalogues are reaped after this long.
    pub reap_after: Duration,
    /// Per-client send queue, in lines.
    pub client_queue: usize,
    /// HTTP API address, if enabled.
    pub http: Option<SocketAddr>,
    /// HTTP body limit.
    pub http_body_limit: usize,
    /// Per-client send queue, in bytes.
    pub client_queue_bytes: usize,
    /// Per-peer send queue, in bytes.
    pub peer_queue_bytes: usize,
    /// Client connections in total; None: from the descriptor limit.
    pub max_connections: Option<usize>,
    /// Client connections per address; None: no cap.
    pub max_connections_per_ip: Option<usize>,
    /// Time allowed for a line-protocol connection's first line.
    pub handshake_timeout: Duration,
    /// Time allowed for an HTTP request head (and keep-alive idle time).
    pub http_header_timeout: Duration,
    /// The memory guard's threshold.
    pub memory_limit: MemoryLimit,
    /// Service records held per owning catalogue.
    pub max_services_per_catalogue: usize,
    /// Compiled-regex bytes per connection.
    pub regex_budget_per_connection: usize,
    /// Compiled-regex bytes per catalogue.
    pub regex_budget: usize,
    /// TLS files, when TLS is on.
    pub tls: Option<TlsFiles>,
    /// With TLS: clients need a certificate for anything.
    pub tls_verify_clients: bool,
    /// Without TLS: networks that may link as peers (empty: any).
    pub peer_allow: Vec<IpNet>,
    /// Uids that may register over the Unix socket.
    pub register_uid: Vec<u32>,
    /// Gids that may register over the Unix socket.
    pub register_gid: Vec<u32>,
    /// HTTP API tokens, when configured.
    pub http_tokens: Option<TokenFile>,
    /// The HTTP API may listen beyond loopback without tokens.
    pub http_insecure: bool,
    /// The HTTP API speaks HTTPS (with the TLS files of `tls`).
    pub http_tls: bool,
    /// Networks webhooks may go to (empty: the default rule).
    pub hook_allow: Vec<IpNet>,
    /// Extra CA certificates for https webhook endpoints.
    pub hook_ca: Option<PathBuf>,
    /// Peer discovery: DNS SRV, beacon, link policy.
    pub discovery: crate::discovery::DiscoverySettings,
    /// Watchdog probes in flight at once.
    pub probe_concurrency: usize,
    /// Flap damping of watchdog checks.
    pub flap: rarangi_core::Flap,
    /// Kubernetes discovery, when `--discover-k8s` is given.
    pub discover_k8s: Option<K8sConfig>,
    /// The DNS server, when enabled.
    pub dns: Option<DnsSettings>,
}

/// The DNS server's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// UDP and TCP address.
    pub addr: SocketAddr,
    /// The domain answered, lower case, ending in a dot.
    pub domain: String,
    /// A second domain answered the same way.
    pub alt_domain: Option<String>,
    /// Answer TTL, seconds.
    pub ttl: u32,
}

/// The certificate files of a catalogue with TLS on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate(s), PEM.
    pub ca: PathBuf,
    /// This catalogue's certificate chain, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
}

/// Where the memory guard engages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLimit {
    /// Never.
    Off,
    /// At this percentage of the machine's (or cgroup's) memory.
    Share(u8),
    /// At this many bytes of resident memory.
    Bytes(u64),
}

impl std::str::FromStr for MemoryLimit {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ConfigError::Invalid(format!(
                "--memory-limit {s:?} is not a share such as 80%, a size such as 512MiB, or off"
            ))
        };
        let t = s.trim();
        if t.eq_ignore_ascii_case("off") {
            return Ok(MemoryLimit::Off);
        }
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<u8>() {
                Ok(p @ 1..=100) => Ok(MemoryLimit::Share(p)),
                _ => Err(bad()),
            };
        }
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (n, unit) = t.split_at(digits);
        let n: u64 = n.parse().map_err(|_| bad())?;
        let shift = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kb" | "kib" => 10,
            "m" | "mb" | "mib" => 20,
            "g" | "gb" | "gib" => 30,
            "t" | "tb" | "tib" => 40,
            _ => return Err(bad()),
        };
        n.checked_mul(1 << shift)
            .filter(|b| *b > 0)
            .map(MemoryLimit::Bytes)
            .ok_or_else(bad)
    }
}
