//! The declaration of every setting: flags, variables and TOML keys at
//! once ([`ServeArgs`]).

use super::*;

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
