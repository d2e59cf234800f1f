//! `/app/NAME/web-hooks` and `/srv/NAME/web-hooks`: hook registrations
//! (configuration keys, so they replicate); delivery is `webhook.rs`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::{ask, bad, body_json, delete_key, doc, not_found, segment, Api, ApiResult};
use crate::driver::Request;
use crate::webhook::{hook_key, marker_key, parse_http_endpoint, resource_version};

async fn list_hooks(api: &Api, kind: &str, name: &str) -> ApiResult {
    let name = segment(name)?;
    let prefix = format!("hook/{kind}/{name}/");
    let view = api.view();
    let hooks: Vec<Value> = view.keys_with_prefix(&prefix).map(doc).collect();
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
    let version = resource_version(&api.view(), kind, name);
    ask(api, |reply| Request::SetKey {
        key: marker,
        value: version,
        reply,
    })
    .await??;
    let key = hook_key(kind, name, hook);
    let value = spec.to_string();
    ask(api, |reply| Request::SetKey { key, value, reply }).await??;
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
    let view = api.view();
    let rec = view
        .key(&hook_key(kind, name, hook))
        .ok_or_else(|| not_found(format!("no web-hook {hook:?}")))?;
    Ok(Json(doc(rec)).into_response())
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
    let existed = api.view().key(&hook_key(kind, name, hook)).is_some();
    write_hook(api, kind, name, hook, endpoint, !existed).await
}

async fn delete_hook(api: &Api, kind: &str, name: &str, hook: &str) -> ApiResult {
    let (name, hook) = (segment(name)?, segment(hook)?);
    let r = delete_key(api, hook_key(kind, name, hook), format!("no web-hook {hook:?}")).await?;
    let marker = marker_key(kind, name, hook);
    let _ = ask(api, |reply| Request::DelKey { key: marker, reply }).await;
    Ok(r)
}

pub(super) async fn list_hooks_app(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    list_hooks(&api, "app", &name).await
}
pub(super) async fn list_hooks_srv(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    list_hooks(&api, "srv", &name).await
}
pub(super) async fn post_hook_app(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    post_hook(&api, "app", &name, body).await
}
pub(super) async fn post_hook_srv(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    post_hook(&api, "srv", &name, body).await
}
pub(super) async fn get_hook_app(
    State(api): State<Api>,
    Path((name, hook)): Path<(String, String)>,
) -> ApiResult {
    get_hook(&api, "app", &name, &hook).await
}
pub(super) async fn get_hook_srv(
    State(api): State<Api>,
    Path((name, hook)): Path<(String, String)>,
) -> ApiResult {
    get_hook(&api, "srv", &name, &hook).await
}
pub(super) async fn put_hook_app(
    State(api): State<Api>,
    Path((name, hook)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    put_hook(&api, "app", &name, &hook, body).await
}
pub(super) async fn put_hook_srv(
    State(api): State<Api>,
    Path((name, hook)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    put_hook(&api, "srv", &name, &hook, body).await
}
pub(super) async fn delete_hook_app(
    State(api): State<Api>,
    Path((name, hook)): Path<(String, String)>,
) -> ApiResult {
    delete_hook(&api, "app", &name, &hook).await
}
pub(super) async fn delete_hook_srv(
    State(api): State<Api>,
    Path((name, hook)): Path<(String, String)>,
) -> ApiResult {
    delete_hook(&api, "srv", &name, &hook).await
}
