//! A Consul-compatible catalogue API (`/v1/catalog`, `/v1/health`,
//! `/v1/agent`, `/v1/status`): the subset that Prometheus, VictoriaMetrics,
//! Traefik and Consul-registering services call, rendered from the one
//! instance model (docs/MODEL.md, "Consul API") and read from the published
//! view. Registrations become HTTP-leased instances of this catalogue.
//! Shared here: Consul's query parameters, its blocking queries and the
//! rendering of a catalogue as a Consul node.

mod agent;
mod catalog;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use rarangi_proto::{decode_field, instance, CatalogueUri};
use serde_json::{json, Value};

use super::{bad, Api, ApiError};
use crate::driver::view::{Instance, View};

pub(super) use agent::Registry;

/// The Consul routes, merged into the HTTP API's router.
pub(super) fn router() -> Router<Api> {
    Router::new()
        .route("/v1/agent/self", get(agent::agent_self))
        .route("/v1/agent/services", get(agent::agent_services))
        .route("/v1/agent/service/register", put(agent::register))
        .route("/v1/agent/service/deregister/{id}", put(agent::deregister))
        .route("/v1/agent/check/pass/{check}", put(agent::check_pass))
        .route("/v1/agent/check/warn/{check}", put(agent::check_warn))
        .route("/v1/agent/check/fail/{check}", put(agent::check_fail))
        .route("/v1/agent/check/update/{check}", put(agent::check_update))
        .route("/v1/catalog/services", get(catalog::services))
        .route("/v1/catalog/service/{name}", get(catalog::service))
        .route("/v1/catalog/nodes", get(catalog::nodes))
        .route("/v1/health/service/{name}", get(catalog::health_service))
        .route("/v1/status/leader", get(catalog::leader))
        .route("/v1/status/peers", get(catalog::peers))
}

/// Longest blocking query, as Consul's `wait` limit.
const MAX_WAIT: Duration = Duration::from_secs(600);
/// A blocking query's wait when `wait=` is not given (Consul's default).
const DEFAULT_WAIT: Duration = Duration::from_secs(300);
/// Longest query string read; Consul queries are a few parameters.
const MAX_QUERY: usize = 8192;

/// The query parameters Consul's read endpoints take. `stale`,
/// `consistent`, `cached`, `ns`, `filter` and unknown parameters are
/// accepted and ignored, as Consul ignores unknown ones.
#[derive(Debug, Default, PartialEq)]
struct Params {
    /// `index=N`: block until the index passes N.
    index: Option<u64>,
    /// `wait=10s`: how long to block (clamped to 10 min).
    wait: Option<Duration>,
    /// `tag=T` (repeatable): instances carrying every one.
    tags: Vec<String>,
    /// `dc=CLUSTER`: instances of that cluster only.
    dc: Option<String>,
    /// `passing`: passing instances only (every listed one is).
    passing: bool,
}

impl Params {
    /// Parses a raw query string; a bad `index` or `wait` is 400, as in
    /// Consul.
    fn parse(raw: Option<&str>) -> Result<Params, ApiError> {
        let raw = raw.unwrap_or("");
        if raw.len() > MAX_QUERY {
            return Err(bad(format!("query string longer than {MAX_QUERY} bytes")));
        }
        let mut p = Params::default();
        for pair in raw.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            // Go's url.Values writes a space as `+`.
            let v = decode_field(&v.replace('+', "%20"))
                .map_err(|_| bad(format!("query parameter {k:?}: bad percent-encoding")))?;
            match k {
                "index" => {
                    let i = v
                        .parse::<u64>()
                        .map_err(|_| bad(format!("Invalid index {v:?}")))?;
                    p.index = Some(i);
                }
                "wait" => {
                    let d = go_duration(&v).ok_or_else(|| bad(format!("Invalid wait time {v:?}")))?;
                    p.wait = Some(d.min(MAX_WAIT));
                }
                "tag" => p.tags.push(v),
                "dc" if !v.is_empty() => p.dc = Some(v),
                "passing" => p.passing = !matches!(v.as_str(), "false" | "0"),
                _ => {}
            }
        }
        Ok(p)
    }

    /// Whether an instance passes the `dc` and `tag` filters.
    fn admits(&self, i: &Instance) -> bool {
        self.dc.as_deref().is_none_or(|dc| &*i.cluster == dc)
            && self
                .tags
                .iter()
                .all(|t| tags(i).iter().any(|have| have.eq_ignore_ascii_case(t)))
    }
}

/// A Go duration (`300ms`, `10s`, `5m`, `1h30m`, `1.5s`), as Consul's
/// `wait` takes; None when it is not one. Longer than a day is None.
fn go_duration(s: &str) -> Option<Duration> {
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_end);
        let n: f64 = num.parse().ok()?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let secs = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * secs;
        rest = next;
    }
    (total.is_finite() && total <= 86_400.0).then(|| Duration::from_secs_f64(total))
}

/// Consul's index is never 0: the change index plus one, so an empty
/// catalogue answers 1 and its first change (index 1) answers 2.
fn consul_index(i: u64) -> u64 {
    i.saturating_add(1)
}

/// Consul's blocking query: without `index` (or with 0) answer at once;
/// else when `index_of(view)` passes it or the wait (plus Consul's jitter
/// of up to wait/16) ends. An index ahead of this catalogue's (a client
/// that failed over from another catalogue) is answered at once, so the
/// client takes the new index instead of hanging.
async fn block(api: &Api, p: &Params, index_of: impl Fn(&View) -> u64) -> Arc<View> {
    let mut rx = api.shared.view.clone();
    let view = rx.borrow_and_update().clone();
    let Some(after) = p.index.filter(|i| *i > 0) else {
        return view;
    };
    if consul_index(index_of(&view)) > after || after > consul_index(view.index) {
        return view;
    }
    let wait = p.wait.unwrap_or(DEFAULT_WAIT);
    let jitter_ms = (wait.as_millis() as u64 / 16).max(1);
    let wait = wait + Duration::from_millis(rand::random::<u64>() % jitter_ms);
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return api.view(),
            changed = rx.changed() => {
                if changed.is_err() {
                    return api.view();
                }
                let view = rx.borrow_and_update().clone();
                if consul_index(index_of(&view)) > after {
                    return view;
                }
            }
        }
    }
}

/// A JSON answer with the headers every Consul read carries.
fn answer(body: &Value, index: u64) -> Response {
    let mut r = ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert("x-consul-index", HeaderValue::from(consul_index(index)));
    h.insert("x-consul-knownleader", HeaderValue::from_static("true"));
    h.insert("x-consul-lastcontact", HeaderValue::from_static("0"));
    r
}

/// An instance's tags: its user attributes as `k=v`, or `k` when the
/// value is empty, so a registered tag comes back as the same tag.
fn tags(i: &Instance) -> Vec<String> {
    i.user_attrs().map(|(k, v)| tag(k, v)).collect()
}

/// One attribute as a tag.
fn tag(k: &str, v: &str) -> String {
    if v.is_empty() {
        k.to_owned()
    } else {
        format!("{k}={v}")
    }
}

/// An instance's user attributes as Consul's `Meta`.
fn meta(i: &Instance) -> Value {
    Value::Object(
        i.user_attrs()
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
            .collect(),
    )
}

/// `Service.ID`: the instance id for instances registered at this
/// catalogue (the agent's own services, as a Consul agent shows them),
/// else `ID@CATALOGUE-ADDR`, so ids are unique in an answer and stable
/// over time.
fn service_id(i: &Instance, here: &CatalogueUri) -> String {
    if &i.catalogue == here {
        i.id().to_owned()
    } else {
        format!("{}@{}", i.id(), i.catalogue.addr())
    }
}

/// A catalogue's host (its advertised address without the port).
fn catalogue_host(c: &CatalogueUri) -> &str {
    instance::host_port(c.addr()).map_or(c.addr(), |(h, _)| h)
}

/// A stable UUID-shaped node id from the catalogue URI (Consul node ids
/// are UUIDs).
fn node_id(c: &CatalogueUri) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, c.as_str().as_bytes());
    let hex: String = d.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A catalogue as a Consul node: `Node` its address, `Datacenter` its
/// cluster.
fn node(c: &CatalogueUri, cluster: &str) -> Value {
    let host = catalogue_host(c);
    json!({
        "ID": node_id(c),
        "Node": c.addr(),
        "Address": host,
        "Datacenter": cluster,
        "TaggedAddresses": {"lan": host, "wan": host},
        "Meta": {"rarangi-catalogue": c.as_str()},
    })
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
