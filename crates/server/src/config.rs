//! `rarangi serve` settings: flags, `RARANGI_*` environment variables and a
//! TOML file, in that order of precedence, over the defaults of DESIGN.md.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use rarangi_proto::wellknown::{self, Side};
use rarangi_proto::{validate_cluster, validate_environment, CatalogueUri};
use serde::Deserialize;

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

/// Flags of `rarangi serve`. Every flag can also be set with the
/// environment variable shown, or in the `--config` TOML file under the same
/// name (`data-dir = "/var/lib/rarangi"`, `peer = ["10.0.0.2:4790"]`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML file with any of these settings; flags and variables win over it.
    #[arg(long, env = "RARANGI_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Environment: production, staging, testing, development, or any
    /// [a-z0-9][a-z0-9-]{0,31} (those have no well-known ports). [default: development]
    #[arg(long, env = "RARANGI_ENV")]
    pub env: Option<String>,
    /// Side of this host's catalogue pair; picks the well-known ports. [default: a]
    #[arg(long, env = "RARANGI_SIDE", value_enum)]
    pub side: Option<SideArg>,
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
    /// Unix socket for local services and clients. [default:
    /// $XDG_RUNTIME_DIR/rarangi/ENV-SIDE.sock, else /run/rarangi/ENV-SIDE.sock]
    #[arg(long, env = "RARANGI_UNIX", value_name = "PATH")]
    pub unix: Option<PathBuf>,
    /// A catalogue to link to (repeatable; comma-separated in the variable).
    #[arg(
        long = "peer",
        env = "RARANGI_PEERS",
        value_name = "HOST:PORT",
        value_delimiter = ','
    )]
    pub peers: Vec<String>,
    /// Directory for durable state (configuration, clock). [default:
    /// $XDG_STATE_HOME/rarangi/ENV-SIDE, else /var/lib/rarangi/ENV-SIDE as
    /// root, else ~/.local/state/rarangi/ENV-SIDE]
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
    pub allow_register: Vec<String>,
    /// Longest accepted line in bytes. [default: 65536]
    #[arg(long, env = "RARANGI_MAX_LINE", value_name = "BYTES")]
    pub max_line: Option<usize>,
    /// How long deletes are remembered before collection. [default: 3600000]
    #[arg(long, env = "RARANGI_TOMBSTONE_MS", value_name = "MS")]
    pub tombstone_ms: Option<u64>,
    /// HTTP API address ("off" to disable). [default: 0.0.0.0:<well-known
    /// HTTP port>; off for environments without well-known ports]
    #[arg(long, env = "RARANGI_HTTP", value_name = "HOST:PORT")]
    pub http: Option<String>,
    /// Largest accepted HTTP request body in bytes. [default: 1048576]
    #[arg(long, env = "RARANGI_HTTP_BODY_LIMIT", value_name = "BYTES")]
    pub http_body_limit: Option<usize>,
    /// Lines queued for one client before it is disconnected as too slow.
    /// [default: 16384]
    #[arg(long, env = "RARANGI_CLIENT_QUEUE", value_name = "LINES")]
    pub client_queue: Option<usize>,
}

/// The same settings read from a TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    env: Option<String>,
    side: Option<SideArg>,
    cluster: Option<String>,
    listen: Option<String>,
    advertise: Option<String>,
    unix: Option<PathBuf>,
    #[serde(default)]
    peer: Vec<String>,
    data_dir: Option<PathBuf>,
    heartbeat_ms: Option<u64>,
    dead_after_ms: Option<u64>,
    log_format: Option<LogFormat>,
    #[serde(default)]
    allow_register: Vec<String>,
    max_line: Option<usize>,
    tombstone_ms: Option<u64>,
    client_queue: Option<usize>,
    http: Option<String>,
    http_body_limit: Option<usize>,
}

/// A setting that cannot be used, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

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
    /// Per-client send queue, in lines.
    pub client_queue: usize,
    /// HTTP API address, if enabled.
    pub http: Option<SocketAddr>,
    /// HTTP body limit.
    pub http_body_limit: usize,
}

impl ServeArgs {
    /// Merges flags, variables, the file and defaults, and validates.
    pub fn resolve(&self) -> Result<Settings, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?
            }
            None => FileConfig::default(),
        };
        let env = pick(&self.env, file.env).unwrap_or_else(|| "development".into());
        validate_environment(&env).map_err(|e| ConfigError(e.to_string()))?;
        let side: Side = pick(&self.side, file.side).unwrap_or(SideArg::A).into();
        let cluster = pick(&self.cluster, file.cluster).unwrap_or_else(|| "default".into());
        validate_cluster(&cluster).map_err(|e| ConfigError(e.to_string()))?;
        let listen = match pick(&self.listen, file.listen) {
            Some(l) => resolve_addr(&l, "--listen")?,
            None => {
                let port = wellknown::line_port(&env, side).ok_or_else(|| {
                    ConfigError(format!(
                        "environment {env:?} has no well-known ports; give --listen HOST:PORT"
                    ))
                })?;
                SocketAddr::from(([0, 0, 0, 0], port))
            }
        };
        let advertise = match pick(&self.advertise, file.advertise) {
            Some(a) => a,
            None if listen.ip().is_unspecified() => format!("{}:{}", host_name(), listen.port()),
            None => listen.to_string(),
        };
        let uri = CatalogueUri::from_addr(&advertise)
            .map_err(|e| ConfigError(format!("--advertise {advertise:?}: {e}")))?;
        let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
        let unix = pick(&self.unix, file.unix)
            .unwrap_or_else(|| wellknown::unix_socket_path(runtime_dir.as_deref(), &env, side));
        let peers = if self.peers.is_empty() {
            file.peer
        } else {
            self.peers.clone()
        };
        let data_dir = pick(&self.data_dir, file.data_dir).unwrap_or_else(|| default_data_dir(&env, side));
        let heartbeat_ms = pick(&self.heartbeat_ms, file.heartbeat_ms).unwrap_or(1000);
        let dead_after_ms = pick(&self.dead_after_ms, file.dead_after_ms).unwrap_or(5000);
        if heartbeat_ms == 0 || dead_after_ms <= heartbeat_ms {
            return Err(ConfigError(format!(
                "--dead-after-ms ({dead_after_ms}) must be greater than --heartbeat-ms ({heartbeat_ms}), which must be positive"
            )));
        }
        let allow = if self.allow_register.is_empty() {
            file.allow_register
        } else {
            self.allow_register.clone()
        };
        let allow_register = allow
            .iter()
            .map(|c| {
                c.parse::<IpNet>()
                    .or_else(|_| c.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError(format!("--allow-register {c:?} is not a CIDR such as 10.0.0.0/8"))
                    })
            })
            .collect::<Result<_, _>>()?;
        let max_line = pick(&self.max_line, file.max_line).unwrap_or(rarangi_proto::DEFAULT_MAX_LINE);
        if max_line < 1024 {
            return Err(ConfigError("--max-line must be at least 1024 bytes".into()));
        }
        let http = match pick(&self.http, file.http).as_deref() {
            Some("off") => None,
            Some(a) => Some(resolve_addr(a, "--http")?),
            None => wellknown::http_port(&env, side).map(|p| SocketAddr::from(([0, 0, 0, 0], p))),
        };
        Ok(Settings {
            env,
            side,
            cluster,
            listen,
            uri,
            unix,
            peers,
            data_dir,
            heartbeat: Duration::from_millis(heartbeat_ms),
            dead_after: Duration::from_millis(dead_after_ms),
            log_format: pick(&self.log_format, file.log_format).unwrap_or_default(),
            allow_register,
            max_line,
            tombstone_ms: pick(&self.tombstone_ms, file.tombstone_ms).unwrap_or(3_600_000),
            client_queue: pick(&self.client_queue, file.client_queue)
                .unwrap_or(16 * 1024)
                .max(1),
            http,
            http_body_limit: pick(&self.http_body_limit, file.http_body_limit).unwrap_or(1 << 20),
        })
    }
}

fn pick<T: Clone>(flag: &Option<T>, file: Option<T>) -> Option<T> {
    flag.clone().or(file)
}

fn resolve_addr(s: &str, what: &str) -> Result<SocketAddr, ConfigError> {
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            ConfigError(format!(
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

fn default_data_dir(env: &str, side: Side) -> PathBuf {
    let leaf = format!("{env}-{}", side.as_str());
    if let Some(state) = std::env::var_os("XDG_STATE_HOME") {
        return Path::new(&state).join("rarangi").join(leaf);
    }
    let system = Path::new("/var/lib/rarangi");
    if std::fs::create_dir_all(system).is_ok() {
        return system.join(leaf);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/state/rarangi").join(leaf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_well_known_ports() {
        let s = ServeArgs::default().resolve().unwrap();
        assert_eq!(s.env, "development");
        assert_eq!(s.listen.port(), 4790);
        assert!(s.uri.as_str().ends_with(":4790/"));
        let b = ServeArgs {
            env: Some("production".into()),
            side: Some(SideArg::B),
            ..ServeArgs::default()
        };
        assert_eq!(b.resolve().unwrap().listen.port(), 4761);
    }

    #[test]
    fn bad_settings_say_what_to_do() {
        let e = ServeArgs {
            env: Some("qa".into()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap_err();
        assert!(e.0.contains("--listen"), "{e}");
        let e = ServeArgs {
            allow_register: vec!["nope".into()],
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap_err();
        assert!(e.0.contains("CIDR"), "{e}");
    }

    #[test]
    fn file_settings_apply_under_flags() {
        let dir = std::env::temp_dir().join(format!("rarangi-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "env = \"staging\"\ncluster = \"eu\"\npeer = [\"127.0.0.1:4771\"]\nlisten = \"127.0.0.1:4770\"\n",
        )
        .unwrap();
        let s = ServeArgs {
            config: Some(path.clone()),
            cluster: Some("us".into()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!((s.env.as_str(), s.cluster.as_str()), ("staging", "us"));
        assert_eq!(s.peers, ["127.0.0.1:4771"]);
        assert_eq!(s.uri.as_str(), "x-tvnetcs://127.0.0.1:4770/");
        std::fs::write(&path, "bogus = 1\n").unwrap();
        let e = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap_err();
        assert!(e.0.contains("bogus"), "{e}");
    }
}
