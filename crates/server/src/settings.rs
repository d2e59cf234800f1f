//! `rarangi serve` settings: flags, `RARANGI_*` environment variables and a
//! TOML file, in that order of precedence, over the defaults of DESIGN.md.
//! One declaration ([`ServeArgs`]) serves all three sources; the defaults
//! are the `DEFAULT_*` constants below and nowhere else.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use rarangi_proto::wellknown::{self, Side, UserDirs};
use rarangi_proto::{validate_cluster, validate_environment, CatalogueUri, NameError};
use serde::Deserialize;

use crate::http::auth::{check_exposure, TokenFile, TokenFileError};

mod k8s;
pub use k8s::{K8sConfig, K8sPort, SERVICE_ACCOUNT_NAMESPACE};

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

/// Settings of `rarangi serve`, declared once for all three sources: each
/// flag can also be set with the environment variable shown, or in the
/// `--config` TOML file under the flag's name (`data-dir = "/srv/r"`,
/// `peers = ["10.0.0.2:4790"]`; `peer` is accepted too).
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file with any of these settings; flags and variables win over it.
    #[arg(long, env = "RARANGI_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// A throw-away catalogue for trying things, like `consul agent -dev`:
    /// everything on loopback (line protocol, HTTP, DNS), the Unix socket
    /// and state in a temporary directory removed at exit; nothing written
    /// to /var/lib, /run or your home. Other flags still apply.
    #[arg(long, env = "RARANGI_DEV")]
    #[serde(skip)]
    pub dev: bool,
    /// Environment: production, staging, testing, development, or any
    /// [a-z0-9][a-z0-9-]{0,31} (those have no well-known ports). [default: development]
    #[arg(long, env = "RARANGI_ENV")]
    pub env: Option<String>,
    /// Side of this host's catalogue pair; picks the well-known ports. [default: a]
    #[arg(long, env = "RARANGI_SIDE", value_enum)]
    pub side: Option<SideArg>,
    /// Environment and side in one, as ENV-SIDE (`production-a`): the
    /// instance name of the systemd unit `rarangi@production-a.service`.
    /// Must agree with --env and --side where those are given too.
    #[arg(long, env = "RARANGI_INSTANCE", value_name = "ENV-SIDE")]
    #[serde(skip)]
    pub instance: Option<String>,
    /// Cluster name, used to prefer nearby instances. [default: default]
    #[arg(long, env = "RARANGI_CLUSTER")]
    pub cluster: Option<String>,
    /// Line-protocol address to listen on. [default: 0.0.0.0:<well-known port>]
    #[arg(long, env = "RARANGI_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Address other catalogues reach this one at; it forms the catalogue
    /// URI x-tvnetcs://HOST:PORT/. [default: the listen address, or this
    /// host's name when listening on all interfaces]
    #[arg(long, env = "RARANGI_ADVERTISE", value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// Unix socket for local services and clients. [default: as root
    /// /run/rarangi/ENV-SIDE.sock, else $XDG_RUNTIME_DIR/rarangi/ENV-SIDE.sock,
    /// else TMP/rarangi-UID/ENV-SIDE.sock]
    #[arg(long, env = "RARANGI_UNIX", value_name = "PATH")]
    pub unix: Option<PathBuf>,
    /// A catalogue to link to (repeatable; comma-separated in the variable).
    #[arg(
        long = "peer",
        env = "RARANGI_PEERS",
        value_name = "HOST:PORT",
        value_delimiter = ','
    )]
    #[serde(default, alias = "peer")]
    pub peers: Vec<String>,
    /// Directory for durable state (configuration, clock). [default: as
    /// root /var/lib/rarangi/ENV-SIDE, else $XDG_STATE_HOME/rarangi/ENV-SIDE,
    /// else ~/.local/state/rarangi/ENV-SIDE]
    #[arg(long, env = "RARANGI_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Heartbeat interval on catalogue links. [default: 1000]
    #[arg(long, env = "RARANGI_HEARTBEAT_MS", value_name = "MS")]
    pub heartbeat_ms: Option<u64>,
    /// A link with nothing received for this long is dead. [default: 5000]
    #[arg(long, env = "RARANGI_DEAD_AFTER_MS", value_name = "MS")]
    pub dead_after_ms: Option<u64>,
    /// Log format. [default: text]
    #[arg(long, env = "RARANGI_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Also accept REG_SERV from these networks (repeatable), besides the
    /// Unix socket and loopback.
    #[arg(
        long = "allow-register",
        env = "RARANGI_ALLOW_REGISTER",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub allow_register: Vec<String>,
    /// Longest accepted line in bytes. [default: 65536]
    #[arg(long, env = "RARANGI_MAX_LINE", value_name = "BYTES")]
    pub max_line: Option<usize>,
    /// How long deletes are remembered before collection. [default: 3600000]
    #[arg(long, env = "RARANGI_TOMBSTONE_MS", value_name = "MS")]
    pub tombstone_ms: Option<u64>,
    /// A catalogue unreachable for longer than this is removed from every
    /// topology with its links and services (like Serf's
    /// reconnect_timeout); `rarangi force-leave` does it at once. From 1s
    /// to 365d, e.g. "72h", "30m", "2s". [default: 72h]
    #[arg(long, env = "RARANGI_REAP_AFTER", value_name = "DURATION")]
    pub reap_after: Option<String>,
    /// HTTP API address ("off" to disable); listening beyond loopback needs
    /// --http-token-file (or --http-insecure). [default: 127.0.0.1:<well-known
    /// HTTP port>; off for environments without well-known ports]
    #[arg(long, env = "RARANGI_HTTP", value_name = "HOST:PORT")]
    pub http: Option<String>,
    /// Largest accepted HTTP request body in bytes. [default: 2097152]
    #[arg(long, env = "RARANGI_HTTP_BODY_LIMIT", value_name = "BYTES")]
    pub http_body_limit: Option<usize>,
    /// Lines queued for one client before it is disconnected as too slow.
    /// [default: 16384]
    #[arg(long, env = "RARANGI_CLIENT_QUEUE", value_name = "LINES")]
    pub client_queue: Option<usize>,
    /// Bytes queued for one client before it is disconnected if it makes
    /// no progress. [default: 8388608]
    #[arg(long, env = "RARANGI_CLIENT_QUEUE_BYTES", value_name = "BYTES")]
    pub client_queue_bytes: Option<usize>,
    /// Bytes queued for a peer catalogue before the link is dropped if the
    /// peer makes no progress. [default: 67108864]
    #[arg(long, env = "RARANGI_PEER_QUEUE_BYTES", value_name = "BYTES")]
    pub peer_queue_bytes: Option<usize>,
    /// Client connections in total, line protocol and HTTP together (peer
    /// links and the Unix socket are not counted). [default: the descriptor
    /// limit minus a reserve for peers and the Unix socket]
    #[arg(long, env = "RARANGI_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Client connections from one address, line protocol and HTTP
    /// together; 0 for no cap. [default: 256]
    #[arg(long, env = "RARANGI_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// A line-protocol connection that sends no complete first line within
    /// this time is closed. [default: 10000]
    #[arg(long, env = "RARANGI_HANDSHAKE_TIMEOUT_MS", value_name = "MS")]
    pub handshake_timeout_ms: Option<u64>,
    /// An HTTP connection must send a complete request head within this
    /// time, counted from when it connects or when its last response was
    /// sent (so it is also the keep-alive idle timeout). [default: 10000]
    #[arg(long, env = "RARANGI_HTTP_HEADER_TIMEOUT_MS", value_name = "MS")]
    pub http_header_timeout_ms: Option<u64>,
    /// Beyond this resident memory, new registrations and subscriptions
    /// are refused with `2 limit`: a share of the machine's (or cgroup's)
    /// memory such as "80%", a size in bytes ("512MiB", "2G"), or "off".
    /// [default: 80%]
    #[arg(long, env = "RARANGI_MEMORY_LIMIT", value_name = "SHARE|BYTES")]
    pub memory_limit: Option<String>,
    /// Service records (live or deleted) held per owning catalogue; a
    /// peer's ADD_SERV beyond it is refused and logged. [default: 2000000]
    #[arg(long, env = "RARANGI_MAX_SERVICES_PER_CATALOGUE", value_name = "COUNT")]
    pub max_services_per_catalogue: Option<usize>,
    /// Bytes of compiled subscription regexes one connection may use
    /// (each counted at its compiled-size tier plus its DFA). [default: 8388608]
    #[arg(long, env = "RARANGI_REGEX_BUDGET_PER_CONNECTION", value_name = "BYTES")]
    pub regex_budget_per_connection: Option<usize>,
    /// Bytes of compiled subscription regexes for the whole catalogue, a
    /// regex shared by many connections counted once. [default: 134217728]
    #[arg(long, env = "RARANGI_REGEX_BUDGET", value_name = "BYTES")]
    pub regex_budget: Option<usize>,
    /// CA certificate (PEM) that signs every catalogue's and registering
    /// client's certificate; with --tls-cert and --tls-key it turns TLS on
    /// for the line-protocol TCP port and catalogue links.
    #[arg(long, env = "RARANGI_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// This catalogue's certificate (PEM), naming the host of its URI.
    #[arg(long, env = "RARANGI_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "RARANGI_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// With TLS, refuse clients without a certificate signed by the CA
    /// (by default they may look up and subscribe, not register).
    #[arg(long, env = "RARANGI_TLS_VERIFY_CLIENTS")]
    #[serde(default)]
    pub tls_verify_clients: bool,
    /// Without TLS, only these networks may link as peers (repeatable).
    /// [default: any address]
    #[arg(
        long = "peer-allow",
        env = "RARANGI_PEER_ALLOW",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub peer_allow: Vec<String>,
    /// Users (uids) that may register over the Unix socket (repeatable).
    /// [default: any local user, unless --register-gid is given]
    #[arg(
        long = "register-uid",
        env = "RARANGI_REGISTER_UID",
        value_name = "UID",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub register_uid: Vec<u32>,
    /// Groups (gids) that may register over the Unix socket (repeatable).
    #[arg(
        long = "register-gid",
        env = "RARANGI_REGISTER_GID",
        value_name = "GID",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub register_gid: Vec<u32>,
    /// HTTP API tokens: lines `TOKEN read` or `TOKEN write` (`#` starts a
    /// comment). With tokens, every request needs one; re-read on SIGHUP.
    #[arg(long, env = "RARANGI_HTTP_TOKEN_FILE", value_name = "FILE")]
    pub http_token_file: Option<PathBuf>,
    /// Let the HTTP API listen beyond loopback without tokens (anyone who
    /// reaches it may read and change the catalogue).
    #[arg(long, env = "RARANGI_HTTP_INSECURE")]
    #[serde(default)]
    pub http_insecure: bool,
    /// HTTPS on the HTTP API's port, with the --tls-cert certificate (client
    /// certificates optional unless --tls-verify-clients; tokens still
    /// apply): "auto" serves HTTPS when TLS is configured and --http listens
    /// beyond loopback, and plain HTTP on loopback for local tools; "on"
    /// always (needs TLS); "off" never. [default: auto]
    #[arg(long, env = "RARANGI_HTTP_TLS")]
    pub http_tls: Option<HttpTls>,
    /// The only networks webhooks may be POSTed to (repeatable), checked on
    /// the resolved address. [default: anywhere when the HTTP API listens
    /// on loopback only, else anywhere but loopback and link-local]
    #[arg(
        long = "hook-allow",
        env = "RARANGI_HOOK_ALLOW",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub hook_allow: Vec<String>,
    /// CA certificates (PEM) trusted for https webhook endpoints besides
    /// the system's roots.
    #[arg(long, env = "RARANGI_HOOK_CA", value_name = "FILE")]
    pub hook_ca: Option<PathBuf>,
    /// Find peers in the SRV records of this DNS name, e.g.
    /// _rarangi-production._tcp.example.com (repeatable); re-resolved as
    /// the records' TTLs run out, at least every 30 s.
    #[arg(
        long = "discover-dns",
        env = "RARANGI_DISCOVER_DNS",
        value_name = "NAME",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub discover_dns: Vec<String>,
    /// DNS server for --discover-dns. [default: the system's resolvers]
    #[arg(long, env = "RARANGI_DISCOVER_DNS_SERVER", value_name = "HOST:PORT")]
    pub discover_dns_server: Option<String>,
    /// Send and hear LAN broadcast beacons to find peers of this environment
    /// (needs --beacon-key-file). [default: off]
    #[arg(long, env = "RARANGI_BEACON")]
    #[serde(default)]
    pub beacon: bool,
    /// Shared secret that signs and checks beacons (HMAC-SHA256); every
    /// catalogue of the LAN needs the same file. At least 16 bytes.
    #[arg(long, env = "RARANGI_BEACON_KEY_FILE", value_name = "FILE")]
    pub beacon_key_file: Option<PathBuf>,
    /// UDP port of the beacon. [default: the environment's base port + 6]
    #[arg(long, env = "RARANGI_BEACON_PORT", value_name = "PORT")]
    pub beacon_port: Option<u16>,
    /// Most discovered catalogues this one dials at once (seed --peer
    /// addresses are always dialed; 0: no limit). [default: 8]
    #[arg(long, env = "RARANGI_MAX_PEER_LINKS", value_name = "N")]
    pub max_peer_links: Option<usize>,
    /// Watchdog probes (check=tcp / check=http://...) in flight at once; a
    /// probe due while all are busy is skipped (it counts neither way).
    /// [default: 256]
    #[arg(long, env = "RARANGI_PROBE_CONCURRENCY", value_name = "N")]
    pub probe_concurrency: Option<usize>,
    /// A checked instance whose health changes more than this many times
    /// within --check-flap-window-ms is held critical for
    /// --check-hold-down-ms. [default: 4]
    #[arg(long, env = "RARANGI_CHECK_FLAP_LIMIT", value_name = "N")]
    pub check_flap_limit: Option<u32>,
    /// The window in which health changes are counted. [default: 60000]
    #[arg(long, env = "RARANGI_CHECK_FLAP_WINDOW_MS", value_name = "MS")]
    pub check_flap_window_ms: Option<u64>,
    /// How long a flapping instance is held critical. [default: 60000]
    #[arg(long, env = "RARANGI_CHECK_HOLD_DOWN_MS", value_name = "MS")]
    pub check_hold_down_ms: Option<u64>,
    /// Find peer catalogues in Kubernetes: the endpoints (ready or not) of
    /// this headless Service, from its EndpointSlices, watched through the
    /// API server (in-cluster service account, or KUBECONFIG). Needs a
    /// build with the `k8s` feature.
    #[arg(long, env = "RARANGI_DISCOVER_K8S", value_name = "SERVICE")]
    pub discover_k8s: Option<String>,
    /// Namespace of the --discover-k8s Service. [default: the service
    /// account's namespace, else "default"]
    #[arg(long, env = "RARANGI_K8S_NAMESPACE", value_name = "NS")]
    pub k8s_namespace: Option<String>,
    /// Port dialled on each --discover-k8s endpoint: a port name of the
    /// Service (as its EndpointSlices list it) or a number. [default: the
    /// well-known line-protocol port of this side, else the --listen port]
    #[arg(long, env = "RARANGI_K8S_PORT", value_name = "NAME|NUMBER")]
    pub k8s_port: Option<String>,
    /// DNS server address, UDP and TCP ("off" to disable): answers
    /// NAME.service.DOMAIN (A, AAAA, SRV) from this catalogue's view.
    /// [default: 127.0.0.1:<well-known DNS port>; off for environments
    /// without well-known ports]
    #[arg(long, env = "RARANGI_DNS", value_name = "HOST:PORT")]
    pub dns: Option<String>,
    /// The DNS domain answered. [default: rarangi.]
    #[arg(long, env = "RARANGI_DNS_DOMAIN", value_name = "DOMAIN")]
    pub dns_domain: Option<String>,
    /// A second DNS domain answered the same way, such as "consul." for
    /// tools that hard-code Consul names. [default: none]
    #[arg(long, env = "RARANGI_DNS_ALT_DOMAIN", value_name = "DOMAIN")]
    pub dns_alt_domain: Option<String>,
    /// TTL of DNS answers, in seconds (0: clients ask again each time, and
    /// see withdrawals at once). [default: 0]
    #[arg(long, env = "RARANGI_DNS_TTL", value_name = "SECONDS")]
    pub dns_ttl: Option<u32>,
}

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

/// `--reap-after`, bounded: at least a second (a shorter one would reap
/// catalogues during ordinary restarts), at most a year.
fn reap_after(text: Option<&str>) -> Result<Duration, ConfigError> {
    let Some(text) = text else {
        return Ok(Duration::from_millis(rarangi_core::DEFAULT_REAP_AFTER_MS));
    };
    crate::duration::parse_duration(text)
        .filter(|d| (Duration::from_secs(1)..=Duration::from_secs(365 * 86_400)).contains(d))
        .ok_or_else(|| {
            ConfigError::Invalid(format!(
                "--reap-after {text:?} must be a duration from 1s to 365d, such as 72h, 30m or 2s"
            ))
        })
}

/// A DNS domain as answered: lower case, ending in a dot, labels of
/// letters, digits and hyphens.
fn dns_domain(d: &str, what: &str) -> Result<String, ConfigError> {
    let d = d.trim().to_ascii_lowercase();
    let bare = d.strip_suffix('.').unwrap_or(&d);
    let ok = !bare.is_empty()
        && bare.len() <= 200
        && bare.split('.').all(|l| {
            (1..=63).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !ok {
        return Err(ConfigError::Invalid(format!(
            "{what} {d:?} is not a DNS domain such as rarangi."
        )));
    }
    Ok(format!("{bare}."))
}

/// `production-a` → (`production`, A); the environment is checked later.
fn split_instance(instance: &str) -> Result<(&str, SideArg), ConfigError> {
    let side = match instance.rsplit_once('-') {
        Some((env, "a")) if !env.is_empty() => Some((env, SideArg::A)),
        Some((env, "b")) if !env.is_empty() => Some((env, SideArg::B)),
        _ => None,
    };
    side.ok_or_else(|| {
        ConfigError::Invalid(format!(
            "--instance {instance:?} must be ENV-SIDE, e.g. production-a or staging-b"
        ))
    })
}

fn cidrs(list: &[String], what: &str) -> Result<Vec<IpNet>, ConfigError> {
    list.iter()
        .map(|c| {
            c.parse::<IpNet>()
                .or_else(|_| c.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| ConfigError::Invalid(format!("{what} {c:?} is not a CIDR such as 10.0.0.0/8")))
        })
        .collect()
}

pub(crate) fn resolve_addr(s: &str, what: &str) -> Result<SocketAddr, ConfigError> {
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            ConfigError::Invalid(format!(
                "{what} {s:?} is not a HOST:PORT this machine can resolve"
            ))
        })
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty() && CatalogueUri::from_addr(&format!("{h}:1")).is_ok())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
