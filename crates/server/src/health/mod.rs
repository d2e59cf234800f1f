//! Watchdog probes (DESIGN §11, seed 003). The core decides which probe is
//! due and what its results mean (`rarangi_core::Catalogue::due_probes`,
//! `probe`); this module only runs them: a TCP connect (`tcp.rs`) or an
//! HTTP GET (`http.rs`), each within its check's timeout, off the driver's
//! task, with at most `--probe-concurrency` in flight. Each result goes
//! back to the driver as [`Event::Probe`]. Only services registered at
//! this catalogue are ever probed (the core holds checks for its own
//! registrations only).

mod http;
mod tcp;

use std::sync::Arc;
use std::time::Duration;

use rarangi_core::{CheckKind, Probe};
use tokio::sync::{mpsc, Semaphore};

use crate::driver::Event;

/// Runs probes and reports their results to the driver.
pub(crate) struct Prober {
    permits: Arc<Semaphore>,
    events: mpsc::Sender<Event>,
}

impl Prober {
    /// A prober allowing `max` probes in flight.
    pub(crate) fn new(max: usize, events: mpsc::Sender<Event>) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max.max(1))),
            events,
        }
    }

    /// Starts one probe; its result comes back as [`Event::Probe`]. With
    /// every permit taken the probe is skipped: no result, so a busy
    /// catalogue never marks a service critical for its own slowness.
    pub(crate) fn start(&self, probe: Probe) {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::debug!(service = %probe.service, "probe skipped: --probe-concurrency probes already in flight");
            return;
        };
        let events = self.events.clone();
        tokio::spawn(async move {
            let timeout = Duration::from_millis(probe.check.timeout_ms);
            let ok = tokio::time::timeout(timeout, run(&probe.check.kind))
                .await
                .unwrap_or(false);
            let _ = events
                .send(Event::Probe {
                    service: probe.service,
                    ok,
                })
                .await;
            drop(permit);
        });
    }
}

/// One probe, without its timeout: true when healthy.
async fn run(kind: &CheckKind) -> bool {
    match kind {
        CheckKind::Tcp(addr) => tcp::connects(addr).await,
        CheckKind::Http(url) => http::answers_2xx(url).await,
    }
}

/// The check attributes of an HTTP registration's `"check"` object:
/// `{"tcp": "HOST:PORT"}` or `{"http": "URL"}`, with optional `"interval"`
/// and `"timeout"` (`"1s"`, `"500ms"`) and `"fails"`, `"passes"` (numbers).
/// The core checks the values (`rarangi_core::parse_check`); this only
/// maps the JSON shape onto the line protocol's attributes.
pub(crate) fn check_attrs(v: &serde_json::Value) -> Result<Vec<(String, String)>, String> {
    const SHAPE: &str = "\"check\" must be {\"tcp\": \"HOST:PORT\"} or {\"http\": \"URL\"}, optionally with \"interval\", \"timeout\", \"fails\", \"passes\"";
    let o = v.as_object().ok_or(SHAPE)?;
    let text = |k: &str| {
        o.get(k)
            .map(|v| v.as_str().ok_or(format!("\"check\".{k} must be a string")))
    };
    let target = match (text("tcp").transpose()?, text("http").transpose()?) {
        (Some(addr), None) => format!("tcp://{addr}"),
        (None, Some(url)) => url.to_owned(),
        _ => return Err(SHAPE.into()),
    };
    let mut attrs = vec![("check".to_owned(), target)];
    for (k, attr) in [("interval", "check-interval"), ("timeout", "check-timeout")] {
        if let Some(t) = text(k).transpose()? {
            attrs.push((attr.to_owned(), t.to_owned()));
        }
    }
    for (k, attr) in [("fails", "check-fails"), ("passes", "check-passes")] {
        if let Some(n) = o.get(k) {
            let n = n.as_u64().ok_or(format!("\"check\".{k} must be a number"))?;
            attrs.push((attr.to_owned(), n.to_string()));
        }
    }
    if let Some(k) = o
        .keys()
        .find(|k| !["tcp", "http", "interval", "timeout", "fails", "passes"].contains(&k.as_str()))
    {
        return Err(format!("\"check\".{k} is not known; {SHAPE}"));
    }
    Ok(attrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_checks_become_attributes() {
        let a = check_attrs(&json!({"tcp": "h:1", "interval": "2s", "fails": 5})).unwrap();
        let want = [
            ("check", "tcp://h:1"),
            ("check-interval", "2s"),
            ("check-fails", "5"),
        ];
        assert_eq!(a, want.map(|(k, v)| (k.to_owned(), v.to_owned())));
        let a = check_attrs(&json!({"http": "http://h/x", "timeout": "100ms", "passes": 1})).unwrap();
        assert_eq!(a[0].1, "http://h/x");
        for bad in [
            json!("tcp"),
            json!({}),
            json!({"tcp": "h:1", "http": "http://h/"}),
            json!({"tcp": 5}),
            json!({"tcp": "h:1", "fails": "3"}),
            json!({"tcp": "h:1", "every": "1s"}),
        ] {
            assert!(check_attrs(&bad).is_err(), "{bad}");
        }
    }
}
