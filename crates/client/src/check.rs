//! Declaring a watchdog check with a registration: the catalogue the
//! service registers at probes it and withdraws it everywhere while it
//! fails, without the registration ending (docs/OPERATIONS.md, "Health
//! checks"). A check is a set of `check*` attributes; the catalogue
//! validates them and refuses the registration with `2 bad-message` if
//! they are out of bounds.

use std::time::Duration;

use rarangi_proto::Attrs;

/// A watchdog check to add to a registration's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    target: String,
    interval: Option<Duration>,
    timeout: Option<Duration>,
    fails: Option<u32>,
    passes: Option<u32>,
}

impl Check {
    /// A TCP connect to the service URI's host:port.
    pub fn tcp() -> Self {
        Self::new("tcp".into())
    }

    /// A TCP connect to another `host:port`.
    pub fn tcp_to(addr: &str) -> Self {
        Self::new(format!("tcp://{addr}"))
    }

    /// An HTTP GET of `url` (`http://HOST:PORT/PATH`); a 2xx is healthy.
    pub fn http(url: &str) -> Self {
        Self::new(url.to_owned())
    }

    /// `tcp`, `tcp://HOST:PORT` or an `http://` URL, as `rarangi register
    /// --check` takes it.
    pub fn parse(spec: &str) -> Self {
        Self::new(spec.to_owned())
    }

    fn new(target: String) -> Self {
        Self {
            target,
            interval: None,
            timeout: None,
            fails: None,
            passes: None,
        }
    }

    /// Time between probes (default 1 s, from 100 ms to 1 h).
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = Some(d);
        self
    }

    /// Time one probe may take (default 500 ms; less than the interval).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Consecutive failures before the instance is withdrawn (default 3).
    pub fn fails(mut self, n: u32) -> Self {
        self.fails = Some(n);
        self
    }

    /// Consecutive passes before it returns (default 2).
    pub fn passes(mut self, n: u32) -> Self {
        self.passes = Some(n);
        self
    }

    /// Adds the check's attributes to `attrs`.
    pub fn add_to(&self, attrs: &mut Attrs) {
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        attrs.0.insert("check".into(), self.target.clone());
        let tuning = [
            ("check-interval", self.interval.map(ms)),
            ("check-timeout", self.timeout.map(ms)),
            ("check-fails", self.fails.map(|n| n.to_string())),
            ("check-passes", self.passes.map(|n| n.to_string())),
        ];
        for (k, v) in tuning {
            if let Some(v) = v {
                attrs.0.insert(k.into(), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_becomes_attributes() {
        let mut a = Attrs::default();
        Check::tcp()
            .interval(Duration::from_millis(200))
            .timeout(Duration::from_millis(100))
            .fails(2)
            .add_to(&mut a);
        assert_eq!(
            a.encode(),
            "check=tcp&check-fails=2&check-interval=200ms&check-timeout=100ms"
        );
        let mut a = Attrs::default();
        Check::http("http://h:8/x").passes(1).add_to(&mut a);
        assert_eq!(a.get("check"), Some("http://h:8/x"));
        assert_eq!(a.get("check-passes"), Some("1"));
    }
}
