//! Discovery settings, checked when the catalogue starts: the seed list,
//! DNS SRV names and server, the beacon's key and port, the link policy.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rarangi_proto::{wellknown, CatalogueUri};

use crate::settings::{resolve_addr, ConfigError, ServeArgs};

/// Discovered catalogues dialed at once by default.
pub const DEFAULT_MAX_PEER_LINKS: usize = 8;
/// Most `--discover-dns` names.
const MAX_DNS_NAMES: usize = 32;
/// Shortest beacon key, in bytes.
const MIN_KEY: usize = 16;
/// Largest beacon key file, in bytes.
const MAX_KEY_FILE: u64 = 4096;

/// Resolved discovery settings.
#[derive(Debug, Clone, Default)]
pub struct DiscoverySettings {
    /// SRV names to resolve (`--discover-dns`).
    pub dns_names: Vec<String>,
    /// The DNS server to ask instead of the system's (`--discover-dns-server`).
    pub dns_server: Option<SocketAddr>,
    /// The beacon, when on (`--beacon`).
    pub beacon: Option<BeaconSettings>,
    /// Most discovered catalogues dialed at once (`None`: no limit).
    pub max_peer_links: Option<usize>,
}

/// The beacon's port and key.
#[derive(Clone)]
pub struct BeaconSettings {
    /// UDP port, shared by both sides.
    pub port: u16,
    /// The HMAC key read from `--beacon-key-file`.
    pub key: Arc<[u8]>,
}

impl std::fmt::Debug for BeaconSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never in logs.
        f.debug_struct("BeaconSettings")
            .field("port", &self.port)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Checks every seed peer is a `HOST:PORT` (an empty entry, as a stray
/// comma in `RARANGI_PEERS` makes, is an error naming it).
pub fn check_peers(peers: &[String]) -> Result<(), ConfigError> {
    for (i, peer) in peers.iter().enumerate() {
        if peer.trim().is_empty() {
            return Err(ConfigError::Invalid(format!(
                "--peer (RARANGI_PEERS) entry {} of {} is empty; remove the stray comma",
                i + 1,
                peers.len()
            )));
        }
        if let Err(e) = CatalogueUri::from_addr(peer) {
            return Err(ConfigError::Invalid(format!(
                "--peer {peer:?} is not a HOST:PORT with a port from 1 to 65535 ({})",
                e.reason
            )));
        }
    }
    Ok(())
}

impl DiscoverySettings {
    /// Checks and resolves the discovery flags of `args` for environment `env`.
    pub(crate) fn resolve(args: &ServeArgs, env: &str) -> Result<Self, ConfigError> {
        if args.discover_dns.len() > MAX_DNS_NAMES {
            return Err(ConfigError::Invalid(format!(
                "at most {MAX_DNS_NAMES} --discover-dns names"
            )));
        }
        for name in &args.discover_dns {
            let label_ok = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            };
            let bare = name.strip_suffix('.').unwrap_or(name);
            if bare.len() > 253 || !bare.split('.').all(label_ok) {
                return Err(ConfigError::Invalid(format!(
                    "--discover-dns {name:?} is not a DNS name such as _rarangi-production._tcp.example.com"
                )));
            }
        }
        let dns_server = args
            .discover_dns_server
            .as_deref()
            .map(|s| resolve_addr(s, "--discover-dns-server"))
            .transpose()?;
        let beacon = match (args.beacon, &args.beacon_key_file) {
            (false, _) => None,
            (true, None) => {
                return Err(ConfigError::Invalid(
                    "--beacon needs --beacon-key-file FILE (a shared secret of at least 16 bytes)".into(),
                ))
            }
            (true, Some(file)) => {
                let port = args
                    .beacon_port
                    .or_else(|| wellknown::base_port(env).map(|b| b + 6))
                    .ok_or_else(|| {
                        ConfigError::Invalid(format!(
                            "environment {env:?} has no well-known ports; give --beacon-port PORT"
                        ))
                    })?;
                Some(BeaconSettings {
                    port,
                    key: read_key(file)?,
                })
            }
        };
        let max_peer_links = match args.max_peer_links.unwrap_or(DEFAULT_MAX_PEER_LINKS) {
            0 => None,
            n => Some(n),
        };
        Ok(Self {
            dns_names: args.discover_dns.clone(),
            dns_server,
            beacon,
            max_peer_links,
        })
    }
}

/// Reads a beacon key: the file's bytes without surrounding whitespace.
fn read_key(path: &Path) -> Result<Arc<[u8]>, ConfigError> {
    let bad = |why: String| ConfigError::Invalid(format!("--beacon-key-file {}: {why}", path.display()));
    let len = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?.len();
    if len > MAX_KEY_FILE {
        return Err(bad(format!("larger than {MAX_KEY_FILE} bytes")));
    }
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let key = bytes.trim_ascii();
    if key.len() < MIN_KEY {
        return Err(bad(format!("a key needs at least {MIN_KEY} bytes")));
    }
    Ok(Arc::from(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_peers_are_checked() {
        assert!(check_peers(&["127.0.0.1:1".into(), "a.example:4790".into(), "[::1]:2".into()]).is_ok());
        let e = check_peers(&["127.0.0.1:1".into(), "".into()]).unwrap_err();
        assert!(e.to_string().contains("entry 2 of 2 is empty"), "{e}");
        for bad in ["nohost", "h:0", "h:99999", "a b:1"] {
            let e = check_peers(&[bad.into()]).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn beacon_needs_a_key_of_16_bytes() {
        let args = |key: Option<&Path>| ServeArgs {
            beacon: true,
            beacon_key_file: key.map(Path::to_owned),
            ..Default::default()
        };
        let e = DiscoverySettings::resolve(&args(None), "development").unwrap_err();
        assert!(e.to_string().contains("--beacon-key-file"), "{e}");
        let dir = std::env::temp_dir().join(format!("rarangi-beacon-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        std::fs::write(&short, "tiny\n").unwrap();
        let e = DiscoverySettings::resolve(&args(Some(&short)), "development").unwrap_err();
        assert!(e.to_string().contains("at least 16"), "{e}");
        let good = dir.join("good");
        std::fs::write(&good, "0123456789abcdef0123\n").unwrap();
        let s = DiscoverySettings::resolve(&args(Some(&good)), "development").unwrap();
        let b = s.beacon.unwrap();
        assert_eq!((b.port, &*b.key), (4796, &b"0123456789abcdef0123"[..]));
        assert!(!format!("{b:?}").contains("0123"));
        let e = DiscoverySettings::resolve(&args(Some(&good)), "custom").unwrap_err();
        assert!(e.to_string().contains("--beacon-port"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dns_names_and_link_limit() {
        let args = ServeArgs {
            discover_dns: vec!["bad name".into()],
            ..Default::default()
        };
        assert!(DiscoverySettings::resolve(&args, "development").is_err());
        let args = ServeArgs {
            discover_dns: vec!["_rarangi._tcp.example.com".into()],
            discover_dns_server: Some("127.0.0.1:5353".into()),
            max_peer_links: Some(0),
            ..Default::default()
        };
        let s = DiscoverySettings::resolve(&args, "development").unwrap();
        assert_eq!(s.dns_server, Some("127.0.0.1:5353".parse().unwrap()));
        assert_eq!(s.max_peer_links, None);
        let s = DiscoverySettings::resolve(&ServeArgs::default(), "development").unwrap();
        assert_eq!(s.max_peer_links, Some(DEFAULT_MAX_PEER_LINKS));
    }
}
