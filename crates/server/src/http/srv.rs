//! `/srv/NAME/HOST`: service instances, the same catalogue the line
//! protocol serves; HTTP-registered instances live for a TTL.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use rarangi_proto::{Attrs, ServiceUri};
use serde_json::{json, Value};

use super::{
    ask, bad, block, body_json, not_found, rfc3339, segment, subscriptions_link, with_index, Api, ApiError,
    ApiResult, WaitQuery,
};
use crate::driver::view::Instance;
use crate::driver::Request;

/// Default TTL of an HTTP-registered instance (Nesoi: dead after 2 min).
const DEFAULT_TTL_S: u64 = 120;
/// Longest TTL accepted (24 h); longer asks are refused.
const MAX_TTL_S: u64 = rarangi_core::MAX_LEASE_MS / 1000;

fn instance_json(v: &Instance) -> Value {
    let attr = |k: &str| v.attrs().get(k).map(str::to_owned);
    let endpoints = attr("endpoints")
        .and_then(|e| serde_json::from_str::<Value>(&e).ok())
        .unwrap_or_else(|| json!([v.service.as_str()]));
    let mut o = json!({
        "service": v.service.as_str(),
        "catalogue": v.catalogue.as_str(),
        "cluster": &*v.cluster,
        "endpoints": endpoints,
        "attrs": v.attrs().0,
    });
    if let Some(m) = attr("master") {
        o["master"] = Value::Bool(m == "true");
    }
    if let Some(u) = attr("updated_at") {
        o["updated_at"] = Value::String(u);
    }
    o
}

pub(super) async fn list_srv(State(api): State<Api>, Query(q): Query<WaitQuery>) -> ApiResult {
    let view = block(&api, "/srv/", &q).await?;
    let names = view.service_names();
    Ok(with_index(Json(names).into_response(), view.index))
}

pub(super) async fn get_srv(
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult {
    let name = segment(&name)?;
    let view = block(&api, &format!("/srv/{name}/"), &q).await?;
    // The name's own change index: the body is rendered once per change
    // of this service, however many other services change.
    let at = view.last_change_of(&format!("/srv/{name}"));
    let cached = api.srv_cache.lock().expect("cache lock").get(name).cloned();
    let body = match cached {
        Some((cached_at, body)) if cached_at == at => body,
        _ => {
            let mut out: BTreeMap<String, Value> = BTreeMap::new();
            for v in view.instances(name) {
                out.insert(v.service.instance().to_owned(), instance_json(v));
            }
            if out.is_empty() {
                return Err(not_found(format!("no instances of {name:?}")));
            }
            let body = axum::body::Bytes::from(
                serde_json::to_vec(&out)
                    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
            );
            let mut cache = api.srv_cache.lock().expect("cache lock");
            if cache.len() >= SRV_CACHE_MAX {
                cache.clear();
            }
            cache.insert(name.to_owned(), (at, body.clone()));
            body
        }
    };
    let mut r = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    r = with_index(r, view.index);
    Ok(r)
}

/// Service names whose GET /srv/NAME answer is kept between changes.
const SRV_CACHE_MAX: usize = 1024;

pub(super) async fn head_srv(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    let name = segment(&name)?;
    let found = api.view().instances(name).next().is_some();
    let mut h = HeaderMap::new();
    h.insert(header::LINK, subscriptions_link(&format!("/srv/{name}")));
    Ok((
        if found {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        },
        h,
    )
        .into_response())
}

pub(super) async fn get_instance(
    State(api): State<Api>,
    Path((name, host)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
) -> ApiResult {
    let (name, host) = (segment(&name)?, segment_host(&host)?);
    let view = block(&api, &format!("/srv/{name}/{host}"), &q).await?;
    let v = view
        .instances(name)
        .find(|v| v.service.instance() == host)
        .ok_or_else(|| not_found(format!("no instance {host:?} of {name:?}")))?;
    Ok(with_index(Json(instance_json(v)).into_response(), view.index))
}

/// Hosts may carry a port (`10.0.0.1:8080`) for line-protocol instances.
fn segment_host(s: &str) -> Result<&str, ApiError> {
    segment(&s.replace(':', "")).map(|_| s)
}

/// The registration rule of REG_SERV, for PUT and DELETE on instances
/// (tokens, when configured, were checked before).
fn may_register(api: &Api, peer: SocketAddr) -> Result<(), ApiError> {
    if crate::access::may_register(peer.ip(), &api.shared.settings.allow_register) {
        return Ok(());
    }
    Err(ApiError(
        StatusCode::FORBIDDEN,
        format!(
            "{} is not allowed to register: {}",
            peer.ip(),
            crate::access::REGISTER_RULE
        ),
    ))
}

pub(super) async fn put_instance(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((name, host)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    may_register(&api, peer)?;
    let (name, host) = (segment(&name)?, segment(&host)?);
    let v = body_json(&api, body)?;
    let endpoints = v
        .get("endpoints")
        .ok_or_else(|| bad("body needs an \"endpoints\" attribute"))?;
    let ttl = match v.get("ttl") {
        None => DEFAULT_TTL_S,
        Some(t) => t
            .as_u64()
            .filter(|t| (1..=MAX_TTL_S).contains(t))
            .ok_or_else(|| {
                bad(format!(
                    "\"ttl\" must be a number of seconds from 1 to {MAX_TTL_S}"
                ))
            })?,
    };
    let master = match v.get("master") {
        None => None,
        Some(m) => Some(
            m.as_bool()
                .ok_or_else(|| bad("\"master\" must be true or false"))?,
        ),
    };
    let service = ServiceUri::parse(&format!("nesoi://{host}/{name}")).map_err(|e| bad(e.to_string()))?;
    let updated_at = rfc3339(crate::clock::now_ms());
    let mut attrs: Attrs = [
        ("endpoints", endpoints.to_string()),
        ("ttl", ttl.to_string()),
        ("updated_at", updated_at.clone()),
    ]
    .into_iter()
    .collect();
    if let Some(m) = master {
        attrs.0.insert("master".into(), m.to_string());
    }
    if let Some(check) = v.get("check") {
        attrs.0.extend(crate::health::check_attrs(check).map_err(bad)?);
    }
    let registered = ask(&api, |reply| Request::Register {
        service: service.clone(),
        attrs,
        ttl_ms: ttl.saturating_mul(1000),
        reply,
    })
    .await??;
    let mut out =
        json!({"service": service.as_str(), "endpoints": endpoints, "ttl": ttl, "updated_at": updated_at});
    if let Some(m) = master {
        out["master"] = Value::Bool(m);
    }
    Ok((
        if registered == rarangi_core::Registered::Created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(out),
    )
        .into_response())
}

pub(super) async fn delete_instance(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((name, host)): Path<(String, String)>,
) -> ApiResult {
    may_register(&api, peer)?;
    let (name, host) = (segment(&name)?, segment(&host)?);
    let service = ServiceUri::parse(&format!("nesoi://{host}/{name}")).map_err(|e| bad(e.to_string()))?;
    if ask(&api, |reply| Request::Unregister {
        service: service.clone(),
        reply,
    })
    .await?
    {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let view = api.view();
    let found = view.instances(name).find(|v| v.service == service);
    match found {
        Some(v) => Err(ApiError(
            StatusCode::CONFLICT,
            format!(
                "{service} is registered at {}; delete it there (or let its TTL lapse)",
                v.catalogue
            ),
        )),
        None => Err(not_found(format!(
            "no HTTP-registered instance {host:?} of {name:?}"
        ))),
    }
}
