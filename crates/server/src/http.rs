//! The HTTP API (Nesoi's resources, with its defects fixed): replicated
//! configuration under `/app`, service instances under `/srv` (the same
//! catalogue the line protocol serves), webhooks, blocking queries,
//! Server-Sent Events and the topology. `docs/openapi.yaml` describes every
//! route in [`ROUTES`]; a test keeps the two equal.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use rarangi_core::{KeyRecord, ServiceView};
use rarangi_proto::{Attrs, ServiceUri};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::driver::{Event, Request};
use crate::hooks::{hook_key, marker_key, parse_http_endpoint};
use crate::Shared;

/// Every route and method served, as listed in docs/openapi.yaml.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/app"),
    ("get", "/app/{name}"),
    ("put", "/app/{name}"),
    ("delete", "/app/{name}"),
    ("head", "/app/{name}"),
    ("get", "/app/{name}/web-hooks"),
    ("post", "/app/{name}/web-hooks"),
    ("get", "/app/{name}/web-hooks/{hook}"),
    ("put", "/app/{name}/web-hooks/{hook}"),
    ("delete", "/app/{name}/web-hooks/{hook}"),
    ("get", "/srv"),
    ("get", "/srv/{name}"),
    ("head", "/srv/{name}"),
    ("get", "/srv/{name}/{host}"),
    ("put", "/srv/{name}/{host}"),
    ("delete", "/srv/{name}/{host}"),
    ("get", "/srv/{name}/web-hooks"),
    ("post", "/srv/{name}/web-hooks"),
    ("get", "/srv/{name}/web-hooks/{hook}"),
    ("put", "/srv/{name}/web-hooks/{hook}"),
    ("delete", "/srv/{name}/web-hooks/{hook}"),
    ("get", "/v1/topology"),
    ("get", "/v1/events"),
];

/// Default TTL of an HTTP-registered instance (Nesoi: dead after 2 min).
const DEFAULT_TTL_S: u64 = 120;
/// Longest blocking query.
const MAX_WAIT: Duration = Duration::from_secs(600);

type Api = Arc<Shared>;

/// An error answered as `{"error": "..."}`.
#[derive(Debug)]
pub(crate) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1, "status": self.0.as_u16()}))).into_response()
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, msg.into())
}

type ApiResult = Result<Response, ApiError>;

/// Serves the API until shutdown.
pub(crate) async fn serve(listener: tokio::net::TcpListener, shared: Api, stop: CancellationToken) {
    let limit = shared.settings.http_body_limit;
    let app = router(shared).layer(DefaultBodyLimit::max(limit));
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await;
}

fn router(shared: Api) -> Router {
    Router::new()
        .route("/app", get(list_apps))
        .route(
            "/app/{name}",
            get(get_app).put(put_app).delete(delete_app).head(head_app),
        )
        .route("/app/{name}/web-hooks", get(list_hooks_app).post(post_hook_app))
        .route(
            "/app/{name}/web-hooks/{hook}",
            get(get_hook_app).put(put_hook_app).delete(delete_hook_app),
        )
        .route("/srv", get(list_srv))
        .route("/srv/{name}", get(get_srv).head(head_srv))
        .route("/srv/{name}/web-hooks", get(list_hooks_srv).post(post_hook_srv))
        .route(
            "/srv/{name}/web-hooks/{hook}",
            get(get_hook_srv).put(put_hook_srv).delete(delete_hook_srv),
        )
        .route(
            "/srv/{name}/{host}",
            get(get_instance).put(put_instance).delete(delete_instance),
        )
        .route("/v1/topology", get(topology))
        .route("/v1/events", get(events))
        .fallback(|| async { not_found("no such resource; see docs/openapi.yaml for the routes") })
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this resource".into(),
            )
        })
        .with_state(shared)
}

/// Path segments: `[0-9a-zA-Z.\-_]+`.
fn segment(s: &str) -> Result<&str, ApiError> {
    let ok = !s.is_empty()
        && s.len() <= 200
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'));
    if ok {
        Ok(s)
    } else {
        Err(bad(format!("path segment {s:?} must match [0-9a-zA-Z.-_]+")))
    }
}

async fn ask<T>(api: &Api, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    api.events
        .send(Event::Api(make(tx)))
        .await
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "catalogue shutting down".into()))?;
    rx.await
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "catalogue shutting down".into()))
}

fn body_json(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let bytes = body.map_err(|r| ApiError(r.status(), format!("request body: {}", r.body_text())))?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| bad(format!("body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(bad("body must be a JSON object"));
    }
    Ok(v)
}

// ----- blocking queries ------------------------------------------------------

/// `?index=N&wait=30s`: answer at once if anything under the resource
/// changed after index N, else when it changes or the wait ends.
#[derive(Debug, Deserialize)]
struct WaitQuery {
    index: Option<u64>,
    wait: Option<String>,
}

fn parse_wait(s: &str) -> Result<Duration, ApiError> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| bad(format!("wait {s:?}: use e.g. 30s, 500ms or 2m")))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => return Err(bad(format!("wait {s:?}: use e.g. 30s, 500ms or 2m"))),
    };
    Ok(d.min(MAX_WAIT))
}

/// Waits as the query asks; returns the global index to report.
async fn block(api: &Api, prefix: &str, q: &WaitQuery) -> Result<u64, ApiError> {
    if q.index.is_none() {
        return Ok(api.change_index.load(std::sync::atomic::Ordering::Acquire));
    }
    let mut changes = api.changes.subscribe();
    let prefix = prefix.to_owned();
    let (last, global) = ask(api, |reply| Request::Index {
        prefix: prefix.clone(),
        reply,
    })
    .await?;
    let Some(after) = q.index else { return Ok(global) };
    if last > after {
        return Ok(global);
    }
    let wait = q
        .wait
        .as_deref()
        .map(parse_wait)
        .transpose()?
        .unwrap_or(Duration::from_secs(300));
    let woke = tokio::time::timeout(wait, async {
        loop {
            match changes.recv().await {
                Ok(c) if c.index > after && c.path.starts_with(&prefix) => return c.index,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return after + 1,
                Err(_) => std::future::pending::<()>().await,
            }
        }
    })
    .await;
    match woke {
        Ok(_) => Ok(ask(api, |reply| Request::Index {
            prefix: prefix.clone(),
            reply,
        })
        .await?
        .1),
        Err(_) => Ok(global),
    }
}

fn with_index(mut r: Response, index: u64) -> Response {
    r.headers_mut()
        .insert("x-rarangi-index", HeaderValue::from(index));
    r
}

// ----- /app ---------------------------------------------------------------------

async fn list_apps(State(api): State<Api>, Query(q): Query<WaitQuery>) -> ApiResult {
    let index = block(&api, "/app/", &q).await?;
    let keys = ask(&api, |reply| Request::Keys {
        prefix: "app/".into(),
        reply,
    })
    .await?;
    let names: Vec<&str> = keys.iter().map(|r| &r.key["app/".len()..]).collect();
    Ok(with_index(Json(names).into_response(), index))
}

async fn read_key(api: &Api, key: &str) -> Result<Option<KeyRecord>, ApiError> {
    let keys = ask(api, |reply| Request::Keys {
        prefix: key.to_owned(),
        reply,
    })
    .await?;
    Ok(keys.into_iter().find(|r| r.key == key))
}

fn doc(rec: &KeyRecord) -> Value {
    serde_json::from_str(rec.value.as_deref().unwrap_or("null")).unwrap_or(Value::Null)
}

async fn get_app(State(api): State<Api>, Path(name): Path<String>, Query(q): Query<WaitQuery>) -> ApiResult {
    let name = segment(&name)?;
    let index = block(&api, &format!("/app/{name}"), &q).await?;
    let rec = read_key(&api, &format!("app/{name}"))
        .await?
        .ok_or_else(|| not_found(format!("no application {name:?}")))?;
    Ok(with_index(Json(doc(&rec)).into_response(), index))
}

async fn put_app(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let name = segment(&name)?.to_owned();
    let mut v = body_json(body)?;
    if v.get("config").is_none() {
        return Err(bad("body needs a \"config\" attribute"));
    }
    v["updated_at"] = Value::String(rfc3339(crate::clock::now_ms()));
    let key = format!("app/{name}");
    let existed = read_key(&api, &key).await?.is_some();
    let value = v.to_string();
    ask(&api, |reply| Request::SetKey { key, value, reply })
        .await?
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("not stored: {e}")))?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(v)).into_response())
}

async fn delete_app(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    let name = segment(&name)?;
    delete_key(&api, format!("app/{name}"), format!("no application {name:?}")).await
}

async fn delete_key(api: &Api, key: String, missing: String) -> ApiResult {
    let deleted = ask(api, |reply| Request::DelKey { key, reply })
        .await?
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("not stored: {e}")))?;
    if deleted {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(not_found(missing))
    }
}

fn subscriptions_link(path: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("<{path}/web-hooks>; rel=\"Subscriptions\"")).expect("ASCII path")
}

async fn head_app(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    let name = segment(&name)?;
    let found = read_key(&api, &format!("app/{name}")).await?.is_some();
    let status = if found {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    let mut h = HeaderMap::new();
    h.insert(header::LINK, subscriptions_link(&format!("/app/{name}")));
    Ok((status, h).into_response())
}

// ----- web-hooks ------------------------------------------------------------------

async fn list_hooks(api: &Api, kind: &str, name: &str) -> ApiResult {
    let name = segment(name)?;
    let prefix = format!("hook/{kind}/{name}/");
    let keys = ask(api, |reply| Request::Keys { prefix, reply }).await?;
    let hooks: Vec<Value> = keys.iter().map(doc).collect();
    Ok(Json(hooks).into_response())
}

async fn write_hook(
    api: &Api,
    kind: &str,
    name: &str,
    hook: &str,
    endpoint: &str,
    created: bool,
) -> ApiResult {
    if parse_http_endpoint(endpoint).is_none() {
        return Err(bad(format!(
            "endpoint {endpoint:?} must be an http:// URL (https is not supported yet)"
        )));
    }
    let spec = json!({"name": hook, "endpoint": endpoint});
    // Start from the current version: report changes from now on.
    let marker = marker_key(kind, name, hook);
    let version = current_version(api, kind, name).await?;
    ask(api, |reply| Request::SetKey {
        key: marker,
        value: version,
        reply,
    })
    .await?
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let key = hook_key(kind, name, hook);
    let value = spec.to_string();
    ask(api, |reply| Request::SetKey { key, value, reply })
        .await?
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let mut r = (
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(spec),
    )
        .into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("/{kind}/{name}/web-hooks/{hook}")) {
        r.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(r)
}

/// The hooked resource's version, as the leader will compute it.
async fn current_version(api: &Api, kind: &str, name: &str) -> Result<String, ApiError> {
    if kind == "app" {
        return Ok(read_key(api, &format!("app/{name}"))
            .await?
            .map_or_else(|| "absent".into(), |r| r.ts.to_string()));
    }
    let services = services(api, Some(name)).await?;
    Ok(crate::hooks::services_version(&services))
}

async fn post_hook(api: &Api, kind: &str, name: &str, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let name = segment(name)?;
    let v = body_json(body)?;
    let hook = v
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("body needs a \"name\" string"))?;
    let hook = segment(hook)?;
    let endpoint = v
        .get("endpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("body needs an \"endpoint\" string"))?;
    write_hook(api, kind, name, hook, endpoint, true).await
}

async fn get_hook(api: &Api, kind: &str, name: &str, hook: &str) -> ApiResult {
    let (name, hook) = (segment(name)?, segment(hook)?);
    let rec = read_key(api, &hook_key(kind, name, hook))
        .await?
        .ok_or_else(|| not_found(format!("no web-hook {hook:?}")))?;
    Ok(Json(doc(&rec)).into_response())
}

async fn put_hook(
    api: &Api,
    kind: &str,
    name: &str,
    hook: &str,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let (name, hook) = (segment(name)?, segment(hook)?);
    let v = body_json(body)?;
    let endpoint = v
        .get("endpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("body needs an \"endpoint\" string"))?;
    let existed = read_key(api, &hook_key(kind, name, hook)).await?.is_some();
    write_hook(api, kind, name, hook, endpoint, !existed).await
}

async fn delete_hook(api: &Api, kind: &str, name: &str, hook: &str) -> ApiResult {
    let (name, hook) = (segment(name)?, segment(hook)?);
    let r = delete_key(api, hook_key(kind, name, hook), format!("no web-hook {hook:?}")).await?;
    let marker = marker_key(kind, name, hook);
    let _ = ask(api, |reply| Request::DelKey { key: marker, reply }).await;
    Ok(r)
}

async fn list_hooks_app(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    list_hooks(&api, "app", &name).await
}
async fn list_hooks_srv(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    list_hooks(&api, "srv", &name).await
}
async fn post_hook_app(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    post_hook(&api, "app", &name, body).await
}
async fn post_hook_srv(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    post_hook(&api, "srv", &name, body).await
}
async fn get_hook_app(State(api): State<Api>, Path((name, hook)): Path<(String, String)>) -> ApiResult {
    get_hook(&api, "app", &name, &hook).await
}
async fn get_hook_srv(State(api): State<Api>, Path((name, hook)): Path<(String, String)>) -> ApiResult {
    get_hook(&api, "srv", &name, &hook).await
}
async fn put_hook_app(
    State(api): State<Api>,
    Path((name, hook)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    put_hook(&api, "app", &name, &hook, body).await
}
async fn put_hook_srv(
    State(api): State<Api>,
    Path((name, hook)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    put_hook(&api, "srv", &name, &hook, body).await
}
async fn delete_hook_app(State(api): State<Api>, Path((name, hook)): Path<(String, String)>) -> ApiResult {
    delete_hook(&api, "app", &name, &hook).await
}
async fn delete_hook_srv(State(api): State<Api>, Path((name, hook)): Path<(String, String)>) -> ApiResult {
    delete_hook(&api, "srv", &name, &hook).await
}

// ----- /srv -----------------------------------------------------------------------

fn instance_json(v: &ServiceView) -> Value {
    let attr = |k: &str| v.attrs.get(k).map(str::to_owned);
    let endpoints = attr("endpoints")
        .and_then(|e| serde_json::from_str::<Value>(&e).ok())
        .unwrap_or_else(|| json!([v.service.as_str()]));
    let mut o = json!({
        "service": v.service.as_str(),
        "catalogue": v.catalogue.as_str(),
        "cluster": v.cluster,
        "endpoints": endpoints,
        "attrs": v.attrs.0,
    });
    if let Some(m) = attr("master") {
        o["master"] = Value::Bool(m == "true");
    }
    if let Some(u) = attr("updated_at") {
        o["updated_at"] = Value::String(u);
    }
    o
}

async fn services(api: &Api, name: Option<&str>) -> Result<Vec<ServiceView>, ApiError> {
    let name = name.map(str::to_owned);
    ask(api, |reply| Request::Services { name, reply }).await
}

async fn list_srv(State(api): State<Api>, Query(q): Query<WaitQuery>) -> ApiResult {
    let index = block(&api, "/srv/", &q).await?;
    let mut names: Vec<String> = services(&api, None)
        .await?
        .iter()
        .map(|v| v.service.name().to_owned())
        .collect();
    names.sort();
    names.dedup();
    Ok(with_index(Json(names).into_response(), index))
}

async fn get_srv(State(api): State<Api>, Path(name): Path<String>, Query(q): Query<WaitQuery>) -> ApiResult {
    let name = segment(&name)?;
    let index = block(&api, &format!("/srv/{name}/"), &q).await?;
    let cached = api.srv_cache.lock().expect("cache lock").get(name).cloned();
    let body = match cached {
        Some((at, body)) if at == index => body,
        _ => {
            let mut out: BTreeMap<String, Value> = BTreeMap::new();
            for v in services(&api, Some(name)).await?.iter() {
                out.insert(v.service.instance().to_owned(), instance_json(v));
            }
            if out.is_empty() {
                return Err(not_found(format!("no instances of {name:?}")));
            }
            // Rendered after `index` was read, so at least that new.
            let body = axum::body::Bytes::from(
                serde_json::to_vec(&out)
                    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
            );
            let mut cache = api.srv_cache.lock().expect("cache lock");
            if cache.len() >= SRV_CACHE_MAX {
                cache.clear();
            }
            cache.insert(name.to_owned(), (index, body.clone()));
            body
        }
    };
    let mut r = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    r = with_index(r, index);
    Ok(r)
}

/// Service names whose GET /srv/NAME answer is kept between changes.
const SRV_CACHE_MAX: usize = 1024;

async fn head_srv(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    let name = segment(&name)?;
    let found = !services(&api, Some(name)).await?.is_empty();
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

async fn get_instance(
    State(api): State<Api>,
    Path((name, host)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
) -> ApiResult {
    let (name, host) = (segment(&name)?, segment_host(&host)?);
    let index = block(&api, &format!("/srv/{name}/{host}"), &q).await?;
    let all = services(&api, Some(name)).await?;
    let v = all
        .iter()
        .find(|v| v.service.name() == name && v.service.instance() == host)
        .ok_or_else(|| not_found(format!("no instance {host:?} of {name:?}")))?;
    Ok(with_index(Json(instance_json(v)).into_response(), index))
}

/// Hosts may carry a port (`10.0.0.1:8080`) for line-protocol instances.
fn segment_host(s: &str) -> Result<&str, ApiError> {
    segment(&s.replace(':', "")).map(|_| s)
}

async fn put_instance(
    State(api): State<Api>,
    Path((name, host)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let (name, host) = (segment(&name)?, segment(&host)?);
    let v = body_json(body)?;
    let endpoints = v
        .get("endpoints")
        .ok_or_else(|| bad("body needs an \"endpoints\" attribute"))?;
    let ttl = match v.get("ttl") {
        None => DEFAULT_TTL_S,
        Some(t) => t
            .as_u64()
            .filter(|t| *t > 0)
            .ok_or_else(|| bad("\"ttl\" must be a positive number of seconds"))?,
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
    let existed = services(&api, Some(name))
        .await?
        .iter()
        .any(|s| s.service == service);
    ask(&api, |reply| Request::Register {
        service: service.clone(),
        attrs,
        ttl_ms: ttl * 1000,
        reply,
    })
    .await?
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let mut out =
        json!({"service": service.as_str(), "endpoints": endpoints, "ttl": ttl, "updated_at": updated_at});
    if let Some(m) = master {
        out["master"] = Value::Bool(m);
    }
    Ok((
        if existed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        Json(out),
    )
        .into_response())
}

async fn delete_instance(State(api): State<Api>, Path((name, host)): Path<(String, String)>) -> ApiResult {
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
    match services(&api, Some(name))
        .await?
        .iter()
        .find(|v| v.service == service)
    {
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

// ----- topology and events ----------------------------------------------------------

async fn topology(State(api): State<Api>) -> ApiResult {
    let t = ask(&api, |reply| Request::Topology { reply }).await?;
    let catalogues: Vec<Value> = t
        .catalogues
        .iter()
        .map(|(u, c)| json!({"uri": u.as_str(), "cluster": c, "reachable": t.reachable.contains(u)}))
        .collect();
    Ok(Json(json!({
        "catalogue": t.me.as_str(),
        "leader": t.leader.as_str(),
        "catalogues": catalogues,
        "links": t.links.iter().map(|(a, b)| json!([a.as_str(), b.as_str()])).collect::<Vec<_>>(),
        "reachable": t.reachable.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    prefix: Option<String>,
}

async fn events(
    State(api): State<Api>,
    Query(q): Query<EventsQuery>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let prefix = q.prefix.unwrap_or_default();
    let rx = api.changes.subscribe();
    let stream = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(move |c| {
        let prefix = prefix.clone();
        async move {
            let c = c.ok()?;
            if !c.path.starts_with(&prefix) {
                return None;
            }
            let data = json!({"index": c.index, "path": c.path, "what": c.what}).to_string();
            Some(Ok(SseEvent::default()
                .event(c.what)
                .id(c.index.to_string())
                .data(data)))
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(5)))
}

/// `2026-11-22T01:02:03.456Z` from Unix milliseconds.
fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_waits() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_309_323_456), "2026-11-22T01:02:03.456Z");
        assert_eq!(parse_wait("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_wait("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_wait("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_wait("soon").is_err());
        assert!(segment("a.b-c_1").is_ok() && segment("a/b").is_err() && segment("").is_err());
    }
}
