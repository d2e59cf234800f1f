//! The Kubernetes discovery settings (`--discover-k8s`, `--k8s-namespace`,
//! `--k8s-port`), resolved and checked; declared with the others in
//! [`super::ServeArgs`].

use std::path::Path;

use super::ConfigError;

/// Where the service account's namespace is mounted in a pod.
pub const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Which catalogues to find in Kubernetes, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sConfig {
    /// The headless Service whose EndpointSlices list the catalogues.
    pub service: String,
    /// Its namespace.
    pub namespace: String,
    /// The port to dial on each endpoint.
    pub port: K8sPort,
}

/// The port dialled on a discovered endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum K8sPort {
    /// The slice's TCP port of this name (the Service port's name).
    Name(String),
    /// This port number, whatever the slice lists.
    Number(u16),
}

impl std::fmt::Display for K8sPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            K8sPort::Name(n) => f.write_str(n),
            K8sPort::Number(n) => write!(f, "{n}"),
        }
    }
}

impl std::str::FromStr for K8sPort {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return match s.parse::<u16>() {
                Ok(n) if n > 0 => Ok(K8sPort::Number(n)),
                _ => Err(ConfigError::Invalid(format!(
                    "--k8s-port {s:?} is not a port number (1-65535)"
                ))),
            };
        }
        // A Kubernetes port name (IANA_SVC_NAME): at most 15 characters.
        if s.len() <= 15 && dns_label(s) {
            return Ok(K8sPort::Name(s.to_owned()));
        }
        Err(ConfigError::Invalid(format!(
            "--k8s-port {s:?} is neither a port number nor a Kubernetes port name (a-z, 0-9, '-', at most 15 characters)"
        )))
    }
}

/// Resolves the three settings: `None` without `--discover-k8s`.
/// `default_port` is the port used when `--k8s-port` is not given;
/// `namespace_file` is read when `--k8s-namespace` is not given.
pub(super) fn resolve(
    service: Option<String>,
    namespace: Option<String>,
    port: Option<String>,
    default_port: u16,
    namespace_file: &Path,
) -> Result<Option<K8sConfig>, ConfigError> {
    let Some(service) = service else {
        if namespace.is_some() || port.is_some() {
            return Err(ConfigError::Invalid(
                "--k8s-namespace and --k8s-port need --discover-k8s SERVICE".into(),
            ));
        }
        return Ok(None);
    };
    if !cfg!(feature = "k8s") {
        return Err(ConfigError::Invalid(
            "--discover-k8s: this rarangi was built without Kubernetes support (cargo feature `k8s` of rarangi-server)".into(),
        ));
    }
    if !dns_label(&service) || !service.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(ConfigError::Invalid(format!(
            "--discover-k8s {service:?} is not a Service name (a-z, 0-9, '-', starting with a letter, at most 63 characters)"
        )));
    }
    let namespace = match namespace {
        Some(ns) => ns,
        None => std::fs::read_to_string(namespace_file)
            .map(|s| s.trim().to_owned())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into()),
    };
    if !dns_label(&namespace) {
        return Err(ConfigError::Invalid(format!(
            "--k8s-namespace {namespace:?} is not a namespace name (a-z, 0-9, '-', at most 63 characters)"
        )));
    }
    let port = match port {
        Some(p) => p.parse()?,
        None => K8sPort::Number(default_port),
    };
    Ok(Some(K8sConfig {
        service,
        namespace,
        port,
    }))
}

/// An RFC 1123 label: what Kubernetes accepts as a namespace, and (with a
/// leading letter) as a Service or port name. Checked because the names
/// go into a URL path and a label selector.
fn dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_file() -> &'static Path {
        Path::new("/nonexistent/namespace")
    }

    #[test]
    fn ports_by_name_or_number() {
        assert_eq!("4790".parse::<K8sPort>().unwrap(), K8sPort::Number(4790));
        assert_eq!("line".parse::<K8sPort>().unwrap(), K8sPort::Name("line".into()));
        for bad in ["0", "65536", "", "Line", "a,b=c", "-x", "a-very-long-port-name"] {
            assert!(bad.parse::<K8sPort>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn namespace_from_the_service_account_else_default() {
        let dir = std::env::temp_dir().join(format!("rarangi-k8s-ns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("namespace");
        std::fs::write(&file, "catalogues\n").unwrap();
        let got = resolve(Some("rarangi".into()), None, None, 4790, &file);
        let _ = std::fs::remove_dir_all(&dir);
        if !cfg!(feature = "k8s") {
            assert!(got.is_err(), "without the feature the flag is refused");
            return;
        }
        let got = got.unwrap().unwrap();
        assert_eq!(got.namespace, "catalogues");
        assert_eq!(got.port, K8sPort::Number(4790));
        let got = resolve(Some("rarangi".into()), None, Some("line".into()), 1, no_file());
        let got = got.unwrap().unwrap();
        assert_eq!(got.namespace, "default");
        assert_eq!(got.port, K8sPort::Name("line".into()));
    }

    #[test]
    fn names_that_could_change_the_query_are_refused() {
        assert_eq!(resolve(None, None, None, 1, no_file()).unwrap(), None);
        assert!(resolve(None, Some("ns".into()), None, 1, no_file()).is_err());
        for bad in ["a,b=c", "Rarangi", "1abc", "a b", "x/../y", ""] {
            assert!(
                resolve(Some(bad.into()), None, None, 1, no_file()).is_err(),
                "{bad:?}"
            );
        }
        assert!(resolve(Some("ok".into()), Some("a/b".into()), None, 1, no_file()).is_err());
    }
}
