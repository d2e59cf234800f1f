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
use rarangi_proto::{instance, Attrs, ServiceUri};
use serde_json::{json, Value};

use super::{
    ask, bad, block, body_json, not_found, rfc3339, segment, subscriptions_link, with_index, Api, ApiError,
    ApiResult, WaitQuery,
};
use crate::driver::Request;
use crate::model::announced_uri;

/// Default TTL of an HTTP-registered instance (Nesoi: dead after 2 min).
const DEFAULT_TTL_S: u64 = 120;
/// Longest TTL accepted (24 h); longer asks are refused.
const MAX_TTL_S: u64 = rarangi_core::MAX_LEASE_MS / 1000;

pub(super) async fn list_srv(State(api): State<Api>, Query(q): Query<WaitQuery>) -> ApiResult {
    let view = block(&api, "/srv/", &q).await?;
    let names = view.service_names();
    Ok(with_index(Json(names).into_response(), view.index))
}

/// `?master`: only the master by Nesoi's rule.
#[derive(Debug, serde::Deserialize)]
pub(super) struct MasterQuery {
    master: Option<String>,
}

pub(super) async fn get_srv(
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(q): Query<WaitQuery>,
    Query(m): Query<MasterQuery>,
) -> ApiResult {
    let name = segment(&name)?;
    let view = block(&api, &format!("/srv/{name}/"), &q).await?;
    if m.master.is_some() {
        let v = view
            .master(name)
            .ok_or_else(|| not_found(format!("no instance of {name:?} claims master")))?;
        return Ok(with_index(Json(v.to_json()).into_response(), view.index));
    }
    // The name's own change index: the body is rendered once per change
    // of this service, however many other services change.
    let at = view.last_change_of(&format!("/srv/{name}"));
    let cached = api.srv_cache.lock().expect("cache lock").get(name).cloned();
    let body = match cached {
        Some((cached_at, body)) if cached_at == at => body,
        _ => {
            let mut out: BTreeMap<String, Value> = BTreeMap::new();
            for v in view.instances(name) {
                // Ids are unique per catalogue; the same id announced at
                // two catalogues is told apart by the catalogue.
                let mut key = v.id().to_owned();
                if out.contains_key(&key) {
                    key = format!("{key}@{}", v.catalogue.addr());
                }
                out.insert(key, v.to_json());
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
        .find(|v| v.id() == host)
        .ok_or_else(|| not_found(format!("no instance {host:?} of {name:?}")))?;
    Ok(with_index(Json(v.to_json()).into_response(), view.index))
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
    let attrs_in = match v.get("attrs") {
        None => serde_json::Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(bad("\"attrs\" must be an object of strings")),
    };
    let service = announced_uri(name, host, endpoints);
    let updated_at = rfc3339(crate::clock::now_ms());
    let mut attrs = Attrs::default();
    for (k, v) in attrs_in {
        let Value::String(v) = v else {
            return Err(bad(format!("attribute {k:?} must be a string")));
        };
        if instance::is_model_key(&k) {
            return Err(bad(format!(
                "attribute {k:?} is a field of the instance model; give it at the top level"
            )));
        }
        attrs.0.insert(k, v);
    }
    attrs.0.insert(instance::ID.into(), host.to_owned());
    attrs.0.insert(instance::ENDPOINTS.into(), endpoints.to_string());
    attrs.0.insert(instance::UPDATED_AT.into(), updated_at.clone());
    if let Some(m) = master {
        attrs.0.insert(instance::MASTER.into(), m.to_string());
    }
    let registered = ask(&api, |reply| Request::Register {
        service: service.clone(),
        attrs,
        ttl_ms: ttl.saturating_mul(1000),
        reply,
    })
    .await??;
    // The same id announced with other endpoints earlier is a different
    // URI: withdraw the old one, so one id is one instance.
    let mut replaced = false;
    for old in own_instances(&api, name, host) {
        if old != service {
            replaced |= ask(&api, |reply| Request::Unregister { service: old, reply }).await?;
        }
    }
    let mut out = json!({
        "service": service.as_str(),
        "id": host,
        "endpoints": endpoints,
        "ttl": ttl,
        "updated_at": updated_at,
    });
    if let Some(m) = master {
        out["master"] = Value::Bool(m);
    }
    Ok((
        if registered == rarangi_core::Registered::Created && !replaced {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(out),
    )
        .into_response())
}

/// The service URIs of instance `id` of `name` registered at this
/// catalogue.
fn own_instances(api: &Api, name: &str, id: &str) -> Vec<ServiceUri> {
    let here = &api.shared.settings.uri;
    api.view()
        .instances(name)
        .filter(|i| &i.catalogue == here && i.id() == id)
        .map(|i| i.service.clone())
        .collect()
}

pub(super) async fn delete_instance(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((name, host)): Path<(String, String)>,
) -> ApiResult {
    may_register(&api, peer)?;
    let (name, host) = (segment(&name)?, segment(&host)?);
    let mut withdrawn = false;
    for service in own_instances(&api, name, host) {
        withdrawn |= ask(&api, |reply| Request::Unregister { service, reply }).await?;
    }
    if withdrawn {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let view = api.view();
    let found = view.instances(name).find(|v| v.id() == host);
    match found {
        Some(v) => Err(ApiError(
            StatusCode::CONFLICT,
            format!(
                "instance {host:?} of {name:?} is registered at {}{}; delete it there",
                v.catalogue,
                if v.catalogue == api.shared.settings.uri {
                    " over the line protocol"
                } else {
                    ""
                }
            ),
        )),
        None => Err(not_found(format!(
            "no HTTP-registered instance {host:?} of {name:?}"
        ))),
    }
}
