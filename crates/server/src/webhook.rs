//! Webhooks (Nesoi): hook registrations and delivery markers are
//! configuration keys, so they replicate and survive restarts. The leader
//! (lowest reachable URI) compares each hooked resource's current version
//! with the hook's marker and, when they differ, POSTs
//! `{"name","what","uri"}` to the endpoint; only after a 2xx does it write
//! the new marker. A leader that dies mid-retry leaves the marker behind, so
//! the next leader delivers: at least once, and nothing when nothing changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use rarangi_core::KeyRecord;
use rarangi_proto::{CatalogueUri, ServiceUri, Ts};

use crate::driver::view::View;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Configuration key of a hook: `hook/KIND/NAME/HOOK`.
pub(crate) fn hook_key(kind: &str, name: &str, hook: &str) -> String {
    format!("hook/{kind}/{name}/{hook}")
}

/// Configuration key of a hook's delivery marker.
pub(crate) fn marker_key(kind: &str, name: &str, hook: &str) -> String {
    format!("hookstate/{kind}/{name}/{hook}")
}

/// The version of a hooked resource: the configuration record's timestamp,
/// or a digest of the service instances; "absent" when there is none.
pub(crate) fn resource_version(view: &View, kind: &str, name: &str) -> String {
    match kind {
        "app" => view
            .key(&format!("app/{name}"))
            .map_or_else(|| "absent".into(), |r| r.ts.to_string()),
        _ => services_version(view.instances(name).map(|i| (&i.service, &i.catalogue, i.ts))),
    }
}

/// A digest of one service's instances ("absent" when none).
pub(crate) fn services_version<'a>(
    instances: impl Iterator<Item = (&'a ServiceUri, &'a CatalogueUri, Ts)>,
) -> String {
    let mut items: Vec<String> = instances
        .map(|(service, catalogue, ts)| format!("{service} {catalogue} {ts}"))
        .collect();
    if items.is_empty() {
        return "absent".into();
    }
    items.sort();
    // FNV-1a: stable across processes and versions.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in items.join("\n").bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// One notification to send.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) marker: String,
    pub(crate) version: String,
    pub(crate) endpoint: String,
    pub(crate) body: String,
}

/// Per-hook retry state on the leader, and the hooked resources' versions.
#[derive(Debug, Default)]
pub(crate) struct Hooks {
    inflight: BTreeSet<String>,
    retry: BTreeMap<String, (u64, u64)>,
    /// `KIND/NAME` → (its local change index, its version then): a service's
    /// version takes a scan of every service, so it is only recomputed
    /// after the service changed.
    versions: HashMap<String, (u64, String)>,
}

impl Hooks {
    /// The deliveries due now (none unless we lead). `change_index` gives a
    /// resource's last local change index from its API path (`/srv/NAME`,
    /// `/app/NAME`).
    pub(crate) fn due(
        &mut self,
        view: &View,
        base_uri: &str,
        now_ms: u64,
        change_index: impl Fn(&str) -> u64,
    ) -> Vec<Delivery> {
        if view.topology.leader != view.topology.me {
            return Vec::new();
        }
        let mut out = Vec::new();
        // Hook keys are `hook/KIND/NAME/HOOK`.
        let hooks: Vec<(&str, &str, &str, &KeyRecord)> = view
            .keys_with_prefix("hook/")
            .filter_map(|rec| {
                let mut parts = rec.key.splitn(4, '/').skip(1);
                Some((parts.next()?, parts.next()?, parts.next()?, rec))
            })
            .collect();
        // Forget the versions of resources no longer hooked.
        self.versions.retain(|resource, _| {
            hooks
                .iter()
                .any(|(kind, name, _, _)| resource.split_once('/') == Some((kind, name)))
        });
        for (kind, name, hook, rec) in hooks {
            let marker = marker_key(kind, name, hook);
            if self.inflight.contains(&marker) || self.retry.get(&marker).is_some_and(|(at, _)| *at > now_ms)
            {
                continue;
            }
            let resource = format!("{kind}/{name}");
            let index = change_index(&format!("/{resource}"));
            let version = match self.versions.get(&resource) {
                Some((at, v)) if *at == index => v.clone(),
                _ => {
                    let v = resource_version(view, kind, name);
                    self.versions.insert(resource, (index, v.clone()));
                    v
                }
            };
            let last = view
                .key(&marker)
                .and_then(|r| r.value.clone())
                .unwrap_or_else(|| "absent".into());
            if last == version {
                continue;
            }
            let what = match (last.as_str(), version.as_str()) {
                (_, "absent") => "deleted",
                ("absent", _) => "created",
                _ => "updated",
            };
            let Ok(spec) = serde_json::from_str::<serde_json::Value>(rec.value.as_deref().unwrap_or("{}"))
            else {
                continue;
            };
            let Some(endpoint) = spec.get("endpoint").and_then(|e| e.as_str()) else {
                continue;
            };
            let body = serde_json::json!({
                "name": spec.get("name").and_then(|n| n.as_str()).unwrap_or(hook),
                "what": what,
                "uri": format!("{base_uri}/{kind}/{name}"),
            });
            self.inflight.insert(marker.clone());
            out.push(Delivery {
                marker,
                version,
                endpoint: endpoint.to_owned(),
                body: body.to_string(),
            });
        }
        out
    }

    /// Records an attempt's result; returns true if the marker should be
    /// written.
    pub(crate) fn finished(&mut self, marker: &str, ok: bool, now_ms: u64) -> bool {
        self.inflight.remove(marker);
        if ok {
            self.retry.remove(marker);
            return true;
        }
        let (_, backoff) = self.retry.get(marker).copied().unwrap_or((0, 500));
        let next = (backoff * 2).min(30_000);
        self.retry.insert(marker.to_owned(), (now_ms + backoff, next));
        false
    }
}

/// Splits `http://host:port/path` into address and path.
pub(crate) fn parse_http_endpoint(endpoint: &str) -> Option<(String, String)> {
    let rest = endpoint.strip_prefix("http://")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if hostport.is_empty() || hostport.contains(['@', ' ']) {
        return None;
    }
    let addr = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_owned()
    } else {
        format!("{hostport}:80")
    };
    Some((addr, path.to_owned()))
}

/// POSTs a JSON body with a 3 s deadline; true on a 2xx answer.
pub(crate) async fn post(endpoint: &str, body: &str) -> bool {
    let Some((addr, path)) = parse_http_endpoint(endpoint) else {
        return false;
    };
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(&addr).await.ok()?;
        let host = addr.clone();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: rarangi\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.ok()?;
        let status = std::str::from_utf8(&head[9..12]).ok()?.parse::<u16>().ok()?;
        Some((200..300).contains(&status))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), attempt).await,
        Ok(Some(true))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_http_endpoint("http://127.0.0.1:9/x/y"),
            Some(("127.0.0.1:9".into(), "/x/y".into()))
        );
        assert_eq!(parse_http_endpoint("http://h"), Some(("h:80".into(), "/".into())));
        assert_eq!(parse_http_endpoint("https://h/"), None);
    }
}
