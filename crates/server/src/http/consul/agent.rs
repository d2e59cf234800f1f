//! Consul's agent endpoints: `/v1/agent/self`, `/v1/agent/services`,
//! service registration and TTL checks.
//!
//! A registration becomes an instance leased at this catalogue (like
//! `PUT /srv/NAME/HOST`): id = `ID` (default `Name`), service URI
//! `tcp://ADDRESS:PORT/NAME/ID` (the id in the path keeps two ids on one
//! address apart), tags and `Meta` as user attributes (a tag `k=v` is the
//! attribute `k` = `v`, a tag `k` the attribute `k` with an empty value,
//! so each comes back as the same tag). With a TTL check the lease is the
//! TTL, renewed by `check/pass` (or `warn`, or `update` with passing or
//! warning); `fail` (or `update` critical) withdraws the instance until the
//! next pass. Without one the lease is 24 h: re-register within it. HTTP
//! and TCP checks become the watchdog attributes (`check`,
//! `check-interval`, `check-timeout`). The registrations themselves are
//! kept here, like a Consul agent's local services, so a pass after a
//! lapse or a failure registers the instance again; they end with the
//! process, like every lease.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Extension;
use rarangi_proto::{instance, Attrs, ServiceUri};
use serde_json::{json, Map, Value};

use super::{answer, catalogue_host, go_duration, node_id, tag};
use crate::driver::Request;
use crate::http::srv::{may_register, own_instances};
use crate::http::{ask, bad, body_json, not_found, segment, Api, ApiError, ApiResult, Https};

/// The Consul version whose API this mimics, for tools that compare
/// versions (`Config.Version`); Rarangi's own is `Config.Rarangi`.
const CONSUL_VERSION: &str = "1.21.0";
/// Most registrations kept (Consul agents hold a host's services).
const MAX_REGS: usize = 4096;
/// Most bytes of registrations kept.
const MAX_REG_BYTES: usize = 16 << 20;

/// One Consul registration at this catalogue.
#[derive(Debug, Clone)]
struct Reg {
    service: ServiceUri,
    attrs: Attrs,
    ttl_ms: u64,
    /// The ids of its TTL checks (`service:ID`, or as given).
    ttl_checks: Vec<String>,
}

impl Reg {
    fn bytes(&self) -> usize {
        self.service.as_str().len()
            + self.attrs.0.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            + self.ttl_checks.iter().map(String::len).sum::<usize>()
    }
}

/// The services registered through this catalogue's Consul API, by id.
#[derive(Debug, Default)]
pub(in crate::http) struct Registry(Mutex<HashMap<String, Reg>>);

impl Registry {
    fn get(&self, id: &str) -> Option<Reg> {
        self.0.lock().expect("registry lock").get(id).cloned()
    }

    /// Keeps `reg` as `id`, within the caps.
    fn put(&self, id: &str, reg: Reg) -> Result<(), ApiError> {
        let mut m = self.0.lock().expect("registry lock");
        let others: usize = m.iter().filter(|(k, _)| *k != id).map(|(_, r)| r.bytes()).sum();
        let count = m.len() + usize::from(!m.contains_key(id));
        if count > MAX_REGS || others + reg.bytes() > MAX_REG_BYTES {
            return Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "limit: at most {MAX_REGS} Consul registrations of {MAX_REG_BYTES} bytes \
                     in all per catalogue; deregister some first"
                ),
            ));
        }
        m.insert(id.to_owned(), reg);
        Ok(())
    }

    fn remove(&self, id: &str) -> Option<Reg> {
        self.0.lock().expect("registry lock").remove(id)
    }

    /// The registration owning TTL check `check`.
    fn by_check(&self, check: &str) -> Option<(String, Reg)> {
        let m = self.0.lock().expect("registry lock");
        m.iter()
            .find(|(_, r)| r.ttl_checks.iter().any(|c| c == check))
            .map(|(id, r)| (id.clone(), r.clone()))
    }
}

/// `GET /v1/agent/self`.
pub(in crate::http) async fn agent_self(State(api): State<Api>) -> ApiResult {
    let s = &api.shared.settings;
    let view = api.view();
    let (host, port) = instance::host_port(s.uri.addr()).unwrap_or((s.uri.addr(), None));
    let body = json!({
        "Config": {
            "Datacenter": s.cluster,
            "PrimaryDatacenter": s.cluster,
            "NodeName": s.uri.addr(),
            "NodeID": node_id(&s.uri),
            "Server": true,
            "Version": CONSUL_VERSION,
            "Revision": "",
            "Rarangi": {"Version": env!("CARGO_PKG_VERSION"), "Catalogue": s.uri.as_str()},
        },
        "Member": {
            "Name": s.uri.addr(),
            "Addr": host,
            "Port": port.unwrap_or(0),
            "Tags": {"dc": s.cluster, "role": "consul", "build": CONSUL_VERSION},
            "Status": 1,
            "ProtocolMin": 1,
            "ProtocolMax": 5,
            "ProtocolCur": 2,
            "DelegateMin": 2,
            "DelegateMax": 5,
            "DelegateCur": 4,
        },
        "Meta": {},
        "Coord": null,
    });
    Ok(answer(&body, view.index))
}

/// `GET /v1/agent/services`: the services registered through this API.
pub(in crate::http) async fn agent_services(State(api): State<Api>) -> ApiResult {
    let view = api.view();
    let regs: Vec<(String, Reg)> = {
        let m = api.consul.0.lock().expect("registry lock");
        m.iter().map(|(k, r)| (k.clone(), r.clone())).collect()
    };
    let mut out = Map::new();
    for (id, r) in regs {
        let (address, port) = instance::address(&r.service);
        let user: Vec<(&str, &str)> = instance::user_attrs(&r.attrs).collect();
        out.insert(
            id.clone(),
            json!({
                "ID": id,
                "Service": r.service.name(),
                "Tags": user.iter().map(|(k, v)| tag(k, v)).collect::<Vec<_>>(),
                "Meta": user.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<Map<_, _>>(),
                "Address": address,
                "Port": port.unwrap_or(0),
                "Weights": {"Passing": instance::weight(&r.attrs), "Warning": 1},
                "EnableTagOverride": false,
                "Datacenter": api.shared.settings.cluster,
            }),
        );
    }
    Ok(answer(&Value::Object(out), view.index))
}

/// A field of a Consul JSON object: Consul reads keys case-insensitively
/// and accepts snake_case (`deregister_critical_service_after`).
fn field<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let plain = |s: &str| s.replace('_', "").to_ascii_lowercase();
    let want = plain(name);
    m.iter()
        .find(|(k, v)| plain(k) == want && !v.is_null())
        .map(|(_, v)| v)
}

fn string<'a>(m: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, ApiError> {
    match field(m, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(bad(format!("{name} must be a string"))),
    }
}

/// A Consul duration field (`"10s"`), in milliseconds.
fn duration_ms(m: &Map<String, Value>, name: &str) -> Result<Option<u64>, ApiError> {
    string(m, name)?
        .filter(|s| !s.is_empty())
        .map(|s| {
            go_duration(s)
                .map(|d| d.as_millis() as u64)
                .ok_or_else(|| bad(format!("{name} {s:?} is not a duration such as 10s")))
        })
        .transpose()
}

/// What a registration's checks ask for.
#[derive(Debug, Default, PartialEq)]
struct Checks {
    /// The shortest TTL of its TTL checks.
    ttl_ms: Option<u64>,
    /// The ids of its TTL checks.
    ttl_ids: Vec<String>,
    /// The watchdog attributes of its first HTTP or TCP check.
    watchdog: Vec<(String, String)>,
}

/// Reads `Check` and `Checks` (Consul names a lone check `service:ID`,
/// several `service:ID:N` unless they give a `CheckID`).
fn checks(body: &Map<String, Value>, id: &str) -> Result<Checks, ApiError> {
    let mut list: Vec<(&Map<String, Value>, String)> = Vec::new();
    if let Some(c) = field(body, "Check") {
        let c = c.as_object().ok_or_else(|| bad("Check must be an object"))?;
        list.push((c, format!("service:{id}")));
    }
    if let Some(cs) = field(body, "Checks") {
        let cs = cs.as_array().ok_or_else(|| bad("Checks must be an array"))?;
        for (n, c) in cs.iter().enumerate() {
            let c = c.as_object().ok_or_else(|| bad("Checks must hold objects"))?;
            list.push((c, format!("service:{id}:{}", n + 1)));
        }
    }
    let mut out = Checks::default();
    for (c, default_id) in list {
        let check_id = string(c, "CheckID")?.or(string(c, "ID")?).unwrap_or(&default_id);
        if let Some(ttl) = duration_ms(c, "TTL")? {
            if ttl == 0 || ttl > rarangi_core::MAX_LEASE_MS {
                return Err(bad("a check's TTL must be from 1ms to 24h"));
            }
            out.ttl_ms = Some(out.ttl_ms.map_or(ttl, |t| t.min(ttl)));
            out.ttl_ids.push(check_id.to_owned());
            continue;
        }
        let probe = match (string(c, "HTTP")?, string(c, "TCP")?) {
            (Some(url), _) => url.to_owned(),
            // The watchdog connects to the instance's own address.
            (None, Some(_)) => "tcp".to_owned(),
            (None, None) => continue,
        };
        if out.watchdog.is_empty() {
            out.watchdog.push(("check".into(), probe));
            for (name, attr) in [("Interval", "check-interval"), ("Timeout", "check-timeout")] {
                if let Some(ms) = duration_ms(c, name)? {
                    out.watchdog.push((attr.into(), format!("{ms}ms")));
                }
            }
        }
    }
    Ok(out)
}

/// Consul ids become a URI path segment and a `/srv` path: keep them to
/// what both carry.
fn consul_id(s: &str) -> Result<&str, ApiError> {
    let ok = !s.is_empty()
        && s.len() <= 200
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b':'));
    if ok {
        Ok(s)
    } else {
        Err(bad(format!("ID {s:?} must match [0-9a-zA-Z.-_:]+")))
    }
}

/// The registration a `PUT /v1/agent/service/register` body describes:
/// its id and what to keep.
/// `node_host` is the address of an instance registered without one.
fn registration(node_host: &str, body: &Map<String, Value>) -> Result<(String, Reg), ApiError> {
    let name = segment(string(body, "Name")?.ok_or_else(|| bad("Name is required"))?)?;
    let id = consul_id(string(body, "ID")?.filter(|s| !s.is_empty()).unwrap_or(name))?;
    let address = match string(body, "Address")?.filter(|s| !s.is_empty()) {
        Some(a) => a.to_owned(),
        // As Consul: an empty address is the node's, here the catalogue's.
        None => node_host.to_owned(),
    };
    let port = match field(body, "Port") {
        None => 0,
        Some(p) => p
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| bad("Port must be a number from 0 to 65535"))?,
    };
    let host = if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]")
    } else {
        address.clone()
    };
    let authority = if port == 0 { host } else { format!("{host}:{port}") };
    let service = ServiceUri::parse(&format!("tcp://{authority}/{name}/{id}"))
        .ok()
        .filter(|u| instance::address(u).0 == address && !authority.contains(['/', '@', '?', '#']))
        .ok_or_else(|| bad(format!("Address {address:?} is not a host name or IP address")))?;

    let mut attrs = Attrs::default();
    let mut add = |k: &str, v: &str, from: &str| -> Result<(), ApiError> {
        if k.is_empty() {
            return Err(bad(format!("{from}: an attribute name cannot be empty")));
        }
        if instance::is_model_key(k) {
            return Err(bad(format!(
                "{from}: {k:?} is a field of the instance model (docs/MODEL.md), not a tag"
            )));
        }
        match attrs.get(k) {
            Some(old) if old != v => Err(bad(format!(
                "{from}: {k:?} is given twice ({old:?} and {v:?}); tags and Meta are one set of attributes"
            ))),
            _ => {
                attrs.0.insert(k.to_owned(), v.to_owned());
                Ok(())
            }
        }
    };
    if let Some(tags) = field(body, "Tags") {
        let tags = tags
            .as_array()
            .ok_or_else(|| bad("Tags must be an array of strings"))?;
        for t in tags {
            let t = t
                .as_str()
                .ok_or_else(|| bad("Tags must be an array of strings"))?;
            let (k, v) = t.split_once('=').unwrap_or((t, ""));
            add(k, v, "Tags")?;
        }
    }
    if let Some(meta) = field(body, "Meta") {
        let meta = meta
            .as_object()
            .ok_or_else(|| bad("Meta must be an object of strings"))?;
        for (k, v) in meta {
            add(
                k,
                v.as_str()
                    .ok_or_else(|| bad("Meta must be an object of strings"))?,
                "Meta",
            )?;
        }
    }
    if let Some(w) = field(body, "Weights").and_then(Value::as_object) {
        if let Some(p) = field(w, "Passing") {
            let p = p
                .as_u64()
                .filter(|p| (1..=65535).contains(p))
                .ok_or_else(|| bad("Weights.Passing must be from 1 to 65535"))?;
            if p != 1 {
                add(instance::WEIGHT, &p.to_string(), "Weights")?;
            }
        }
    }
    let checks = checks(body, id)?;
    for (k, v) in &checks.watchdog {
        add(k, v, "Check")?;
    }
    attrs.0.insert(instance::ID.into(), id.to_owned());
    Ok((
        id.to_owned(),
        Reg {
            service,
            attrs,
            ttl_ms: checks.ttl_ms.unwrap_or(rarangi_core::MAX_LEASE_MS),
            ttl_checks: checks.ttl_ids,
        },
    ))
}

/// Leases `reg` (registers it, or renews it).
async fn lease(api: &Api, reg: &Reg) -> Result<(), ApiError> {
    ask(api, |reply| Request::Register {
        service: reg.service.clone(),
        attrs: reg.attrs.clone(),
        ttl_ms: reg.ttl_ms,
        reply,
    })
    .await??;
    Ok(())
}

/// Withdraws the instances of `name` with id `id` registered here, but
/// `keep`.
async fn withdraw(api: &Api, name: &str, id: &str, keep: Option<&ServiceUri>) -> Result<bool, ApiError> {
    let mut any = false;
    for old in own_instances(api, name, id) {
        if Some(&old) != keep {
            any |= ask(api, |reply| Request::Unregister { service: old, reply }).await?;
        }
    }
    Ok(any)
}

/// `PUT /v1/agent/service/register`.
pub(in crate::http) async fn register(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    https: Option<Extension<Https>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    may_register(&api, peer, https)?;
    let v = body_json(&api, body)?;
    let node_host = catalogue_host(&api.shared.settings.uri);
    let (id, reg) = registration(node_host, v.as_object().expect("an object"))?;
    let before = api.consul.get(&id);
    api.consul.put(&id, reg.clone())?;
    if let Err(e) = lease(&api, &reg).await {
        // Keep what was there before a refused registration.
        match before {
            Some(b) => api.consul.put(&id, b)?,
            None => drop(api.consul.remove(&id)),
        }
        return Err(e);
    }
    // One id is one instance: drop an earlier registration of this id
    // (another address, or another name) and a /srv announcement of it.
    if let Some(b) = before.filter(|b| b.service.name() != reg.service.name()) {
        withdraw(&api, b.service.name(), &id, None).await?;
    }
    withdraw(&api, reg.service.name(), &id, Some(&reg.service)).await?;
    Ok(StatusCode::OK.into_response())
}

/// `PUT /v1/agent/service/deregister/ID`.
pub(in crate::http) async fn deregister(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    https: Option<Extension<Https>>,
    Path(id): Path<String>,
) -> ApiResult {
    may_register(&api, peer, https)?;
    let reg = api
        .consul
        .remove(&id)
        .ok_or_else(|| not_found(format!("Unknown service ID {id:?}")))?;
    withdraw(&api, reg.service.name(), &id, None).await?;
    Ok(StatusCode::OK.into_response())
}

/// A TTL check's new state.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Status {
    /// `passing` or `warning`: renew (Rarangi lists both as passing).
    Alive,
    /// `critical`: withdraw until the next pass.
    Critical,
}

async fn set_check(
    api: &Api,
    peer: SocketAddr,
    https: Option<Extension<Https>>,
    check: &str,
    status: Status,
) -> ApiResult {
    may_register(api, peer, https)?;
    let (id, reg) = api.consul.by_check(check).ok_or_else(|| {
        not_found(format!(
            "Unknown check ID {check:?}: not a TTL check registered here"
        ))
    })?;
    match status {
        Status::Alive => lease(api, &reg).await?,
        Status::Critical => drop(withdraw(api, reg.service.name(), &id, None).await?),
    }
    Ok(StatusCode::OK.into_response())
}

/// `PUT /v1/agent/check/pass/CHECK`.
pub(in crate::http) async fn check_pass(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    https: Option<Extension<Https>>,
    Path(check): Path<String>,
) -> ApiResult {
    set_check(&api, peer, https, &check, Status::Alive).await
}

/// `PUT /v1/agent/check/warn/CHECK`: renews, as a pass does.
pub(in crate::http) async fn check_warn(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    https: Option<Extension<Https>>,
    Path(check): Path<String>,
) -> ApiResult {
    set_check(&api, peer, https, &check, Status::Alive).await
}

/// `PUT /v1/agent/check/fail/CHECK`: withdraws until the next pass.
pub(in crate::http) async fn check_fail(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    https: Option<Extension<Https>>,
    Path(check): Path<String>,
) -> ApiResult {
    set_check(&api, peer, https, &check, Status::Critical).await
}

/// `PUT /v1/agent/check/update/CHECK {"Status": "passing"|"warning"|"critical"}`.
pub(in crate::http) async fn check_update(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    https: Option<Extension<Https>>,
    Path(check): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let v = body_json(&api, body)?;
    let status = match string(v.as_object().expect("an object"), "Status")? {
        Some("passing" | "warning") => Status::Alive,
        Some("critical") => Status::Critical,
        other => {
            return Err(bad(format!(
                "Status {other:?}: give passing, warning or critical"
            )))
        }
    };
    set_check(&api, peer, https, &check, status).await
}

#[cfg(test)]
#[path = "agent_tests.rs"]
mod tests;
