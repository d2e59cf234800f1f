//! The HTTP API (Nesoi's resources, with its defects fixed): replicated
//! configuration under `/app`, service instances under `/srv` (the same
//! catalogue the line protocol serves), webhooks, blocking queries,
//! Server-Sent Events and the topology. One file per resource family; a
//! Consul-compatible API (`consul/`), metrics and a UI join them as
//! `metrics.rs`, `ui.rs`. Reads use the driver's published [`View`]; only
//! writes go to the driver. `docs/openapi.yaml` describes every route in
//! [`ROUTES`]; a test keeps the two equal.

mod app;
pub mod auth;
mod consul;
mod events;
mod hooks;
mod metrics;
mod srv;
mod topology;
mod ui;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rarangi_core::{KeyError, KeyRecord, LeaseError, LimitError};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::driver::view::View;
use crate::driver::{Event, Request, WriteError};
use crate::Shared;
use app::{delete_app, get_app, head_app, list_apps, put_app};
use events::events;
use hooks::{
    delete_hook_app, delete_hook_srv, get_hook_app, get_hook_srv, list_hooks_app, list_hooks_srv,
    post_hook_app, post_hook_srv, put_hook_app, put_hook_srv,
};
use srv::{delete_instance, get_instance, get_srv, head_srv, list_srv, put_instance};
use topology::topology;

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
    ("get", "/v1/agent/self"),
    ("get", "/v1/agent/services"),
    ("put", "/v1/agent/service/register"),
    ("put", "/v1/agent/service/deregister/{id}"),
    ("put", "/v1/agent/check/pass/{check}"),
    ("put", "/v1/agent/check/warn/{check}"),
    ("put", "/v1/agent/check/fail/{check}"),
    ("put", "/v1/agent/check/update/{check}"),
    ("get", "/v1/catalog/services"),
    ("get", "/v1/catalog/service/{name}"),
    ("get", "/v1/catalog/nodes"),
    ("get", "/v1/health/service/{name}"),
    ("get", "/v1/status/leader"),
    ("get", "/v1/status/peers"),
    ("get", "/metrics"),
    ("get", "/ui"),
    ("get", "/ui/"),
    ("get", "/ui/app.js"),
    ("get", "/ui/style.css"),
];

/// Longest blocking query (`wait=`); longer asks are refused.
const MAX_WAIT: Duration = Duration::from_secs(600);
/// A blocking query's wait when `wait=` is not given.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// What every handler gets.
struct HttpState {
    shared: Arc<Shared>,
    /// Rendered GET /srv/NAME bodies with the name's change index.
    srv_cache: Mutex<HashMap<String, (u64, Bytes)>>,
    /// Services registered through the Consul-compatible API.
    consul: consul::Registry,
}

impl HttpState {
    /// The latest published view.
    fn view(&self) -> Arc<View> {
        self.shared.view.borrow().clone()
    }
}

type Api = Arc<HttpState>;

/// An error answered as `{"error": "..."}`.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1, "status": self.0.as_u16()}))).into_response()
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        let status = match &e {
            WriteError::Key(KeyError::TooLarge(_))
            | WriteError::Lease(LeaseError::Limit(LimitError::TooLarge(_))) => StatusCode::PAYLOAD_TOO_LARGE,
            WriteError::Lease(LeaseError::Limit(_)) => StatusCode::SERVICE_UNAVAILABLE,
            WriteError::Key(_) | WriteError::Lease(_) => StatusCode::BAD_REQUEST,
            // Read-only until the store writes again: retry later.
            WriteError::Store(_) | WriteError::ReadOnly(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, crate::error_chain(&e))
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, msg.into())
}

type ApiResult = Result<Response, ApiError>;

/// Put on every request that came over HTTPS: whether the client
/// presented a certificate the handshake verified against the CA (the
/// registration rule over TLS, as for REG_SERV).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Https {
    /// A verified client certificate was presented.
    pub(crate) client_certificate: bool,
}

/// Serves the API until shutdown: plain HTTP, or HTTPS with the catalogue's
/// certificate when `--http-tls` says so (the TLS configuration of the
/// line-protocol port, so SIGHUP renews both).
pub(crate) async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let limit = shared.settings.http_body_limit;
    let gate = shared.gate.clone();
    let tls = shared.settings.http_tls.then(|| shared.tls.clone()).flatten();
    let header_timeout = shared.settings.http_header_timeout;
    let mut http1 = hyper::server::conn::http1::Builder::new();
    // hyper runs this timer whenever it waits for a request head: on a new
    // connection (slowloris) and on an idle keep-alive connection alike.
    http1
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout);
    let state = Arc::new(HttpState {
        shared,
        srv_cache: Mutex::default(),
        consul: consul::Registry::default(),
    });
    let app = router(state).layer(DefaultBodyLimit::max(limit));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut errors = crate::net::AcceptErrors::new("HTTP");
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, addr) = match accepted {
            Ok(a) => {
                errors.ok();
                a
            }
            Err(e) => {
                errors
                    .failed(&e, || async { listener.accept().await.map(drop) })
                    .await;
                continue;
            }
        };
        let permit = match gate.admit(addr.ip(), false) {
            Ok(p) => p,
            Err(why) => {
                let status = match why {
                    crate::net::Refusal::PerIp { .. } => "429 Too Many Requests",
                    crate::net::Refusal::Total { .. } => "503 Service Unavailable",
                };
                crate::metrics::metrics()
                    .refused("limit", if status.starts_with('4') { "4xx" } else { "5xx" });
                refuse(stream, status, &why.to_string());
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // The peer's address, for rules by address (PUT /srv).
        let app = app.clone().layer(axum::Extension(ConnectInfo(addr)));
        let (http1, watcher) = (http1.clone(), graceful.watcher());
        match &tls {
            None => {
                let conn = serve_connection(&http1, stream, app);
                tokio::spawn(async move {
                    let _ = watcher.watch(conn).await;
                    drop(permit);
                });
            }
            Some(tls) => {
                let tls = tls.clone();
                tokio::spawn(async move {
                    let Some((stream, https)) = handshake(stream, addr, &tls, header_timeout).await else {
                        return;
                    };
                    let conn = serve_connection(&http1, stream, app.layer(axum::Extension(https)));
                    let _ = watcher.watch(conn).await;
                    drop(permit);
                });
            }
        }
    }
    // As before: stop accepting, let the requests in flight finish.
    graceful.shutdown().await;
}

/// One HTTP/1.1 connection serving `app` over `stream`.
fn serve_connection<S>(
    http1: &hyper::server::conn::http1::Builder,
    stream: S,
    app: Router,
) -> impl hyper_util::server::graceful::GracefulConnection
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    http1.serve_connection(hyper_util::rt::TokioIo::new(stream), service)
}

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// The server side of an HTTPS handshake, within the header timeout. Plain
/// HTTP sent to the HTTPS port is answered with a 400 saying so (as nginx
/// does) instead of a TLS alert the client cannot read; a failed handshake
/// is logged with the client's address.
async fn handshake(
    stream: tokio::net::TcpStream,
    addr: std::net::SocketAddr,
    tls: &crate::net::Tls,
    timeout: Duration,
) -> Option<(crate::net::ServerStream, Https)> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
        Ok(Ok(1..)) if first[0] == TLS_HANDSHAKE => {}
        Ok(Ok(1..)) => {
            tracing::debug!(peer = %addr, "plain HTTP on the HTTPS port");
            refuse(
                stream,
                "400 Bad Request",
                "this port speaks HTTPS: use https:// with the catalogue's CA (curl --cacert ca.pem)",
            );
            return None;
        }
        // Closed, failed or silent: nothing to answer.
        _ => return None,
    }
    let stream = match tokio::time::timeout(timeout, tls.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(peer = %addr, error = %e, "refused an HTTPS connection: TLS handshake failed");
            return None;
        }
        Err(_) => {
            tracing::warn!(peer = %addr, "refused an HTTPS connection: no TLS handshake within {} ms", timeout.as_millis());
            return None;
        }
    };
    let client_certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .is_some_and(|c| !c.is_empty());
    Some((stream, Https { client_certificate }))
}

/// Refused connections lingering to read their request (see `refuse`).
static LINGERING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// At most this many at once; beyond, they are closed at once.
const LINGER_MAX: usize = 64;
/// How long one lingers.
const LINGER: Duration = Duration::from_millis(200);

/// Answers a connection with `status` and `{"error": why}` without serving
/// it (over a connection cap: 429 when its address has too many, 503 when
/// the catalogue has; plain HTTP on the HTTPS port: 400). The request is
/// read (briefly) and discarded, so closing does not reset the connection
/// and lose the answer.
fn refuse(stream: tokio::net::TcpStream, status: &str, why: &str) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = json!({"error": why}).to_string();
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
    if LINGERING.fetch_add(1, Ordering::Relaxed) >= LINGER_MAX {
        LINGERING.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = stream.shutdown().await;
        let mut buf = [0u8; 4096];
        let drain = async { while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(LINGER, drain).await;
        LINGERING.fetch_sub(1, Ordering::Relaxed);
    });
}

fn router(state: Api) -> Router {
    let router = Router::new()
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
        .route("/metrics", get(metrics::metrics))
        .merge(consul::router())
        .fallback(|| async { not_found("no such resource; see docs/openapi.yaml for the routes") })
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this resource".into(),
            )
        })
        // After every route and the fallbacks, so it guards them all (an
        // unknown path is not told apart from a known one without a token).
        .layer(axum::middleware::from_fn_with_state(
            auth::Auth::start(&state.shared.settings),
            auth::check,
        ));
    // The UI's static files, after the gate: they hold no data (ui.rs).
    ui::routes(router)
        // Outermost: refusals by the token check are logged too.
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// Logs each request at debug with the client's address and the status
/// (the query string is left out: it is noise, and could be long).
async fn log_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return next.run(req).await;
    }
    let client = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.to_string());
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let r = next.run(req).await;
    tracing::debug!(%client, %method, path, status = r.status().as_u16(), "HTTP request");
    r
}

/// Path segments: `[0-9A-Za-z._-]+`, at most 200 bytes.
fn segment(s: &str) -> Result<&str, ApiError> {
    let ok = !s.is_empty()
        && s.len() <= 200
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'));
    if ok {
        Ok(s)
    } else {
        Err(bad(format!(
            "path segment {s:?} must be 1 to 200 of: letters, digits, '.', '-', '_' ([0-9A-Za-z._-]+)"
        )))
    }
}

/// Sends a write to the driver and waits for its answer.
async fn ask<T>(api: &Api, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    api.shared
        .events
        .send(Event::Api(make(tx)))
        .await
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "catalogue shutting down".into()))?;
    rx.await
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "catalogue shutting down".into()))
}

fn body_json(api: &Api, body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let bytes = body.map_err(|r| {
        let limit = api.shared.settings.http_body_limit;
        let text = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            format!("request body larger than the limit of {limit} bytes (--http-body-limit)")
        } else {
            format!("request body: {}", r.body_text())
        };
        ApiError(r.status(), text)
    })?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| bad(format!("body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(bad("body must be a JSON object"));
    }
    Ok(v)
}

/// A configuration document's JSON.
fn doc(rec: &KeyRecord) -> Value {
    serde_json::from_str(rec.value.as_deref().unwrap_or("null")).unwrap_or(Value::Null)
}

/// Deletes a configuration key: 204, or 404 with `missing`.
async fn delete_key(api: &Api, key: rarangi_core::ConfigKey, missing: String) -> ApiResult {
    if ask(api, |reply| Request::DelKey { key, reply }).await?? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(not_found(missing))
    }
}

fn subscriptions_link(path: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("<{path}/web-hooks>; rel=\"Subscriptions\"")).expect("ASCII path")
}

// ----- blocking queries ------------------------------------------------------

/// `?index=N&wait=30s`: answer at once if anything under the resource
/// changed after index N, else when it changes or the wait ends.
#[derive(Debug, Deserialize)]
struct WaitQuery {
    index: Option<u64>,
    wait: Option<String>,
}

/// `30s`, `500ms`, `2m` (a bare number is seconds), at most [`MAX_WAIT`].
fn parse_wait(s: &str) -> Result<Duration, ApiError> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| bad(format!("wait {s:?}: use e.g. 30s, 500ms or 2m")))?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        _ => return Err(bad(format!("wait {s:?}: use e.g. 30s, 500ms or 2m"))),
    };
    match ms.map(Duration::from_millis) {
        Some(d) if d <= MAX_WAIT => Ok(d),
        _ => Err(bad(format!(
            "wait {s:?} is longer than the limit of {} s",
            MAX_WAIT.as_secs()
        ))),
    }
}

/// Waits as the query asks, then returns the view to answer from (its
/// index is the one to report).
async fn block(api: &Api, prefix: &str, q: &WaitQuery) -> Result<Arc<View>, ApiError> {
    let wait = q
        .wait
        .as_deref()
        .map(parse_wait)
        .transpose()?
        .unwrap_or(DEFAULT_WAIT);
    let mut rx = api.shared.view.clone();
    let view = rx.borrow_and_update().clone();
    let Some(after) = q.index else { return Ok(view) };
    // A service or instance query watches its service name's index; the
    // rest watch every path under their prefix.
    let indexed = crate::driver::index_path(prefix);
    let last = |v: &View| {
        if indexed == prefix {
            v.last_change_under(prefix)
        } else {
            v.last_change_of(indexed)
        }
    };
    // Consul's rule: an index ahead of ours (a client failing over from a
    // catalogue further along) is answered at once, so it resets rather
    // than waits for a change numbered past it here.
    if last(&view) > after || after > view.index {
        return Ok(view);
    }
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return Ok(api.view()),
            changed = rx.changed() => {
                if changed.is_err() {
                    // The driver is gone: answer with what we have.
                    return Ok(api.view());
                }
                let view = rx.borrow_and_update().clone();
                if last(&view) > after {
                    return Ok(view);
                }
            }
        }
    }
}

fn with_index(mut r: Response, index: u64) -> Response {
    r.headers_mut()
        .insert("x-rarangi-index", HeaderValue::from(index));
    r
}

/// `2026-11-22T01:02:03.456Z` from Unix milliseconds (written once, in
/// `rarangi_proto::instance`, so clients render `updated_at` the same way).
pub(crate) fn rfc3339(ms: u64) -> String {
    rarangi_proto::instance::rfc3339(ms)
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
        assert_eq!(parse_wait("10m").unwrap(), MAX_WAIT);
        assert_eq!(parse_wait("601s").unwrap_err().0, StatusCode::BAD_REQUEST);
        assert!(parse_wait("18446744073709551m").is_err());
        assert!(segment("a.b-c_1").is_ok() && segment("a/b").is_err() && segment("").is_err());
    }
}
