//! `/app/NAME/web-hooks` and `/srv/NAME/web-hooks`: hook registrations
//! (configuration keys, so they replicate); delivery is `webhook.rs`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use rarangi_core::{ConfigKey, HookKind, Written};

use super::{ask, bad, body_json, doc, not_found, segment, Api, ApiError, ApiResult};
use crate::driver::Request;
use crate::webhook::Endpoint;

/// The configuration key of hook `hook` on `/KIND/NAME`.
fn hook_key(kind: HookKind, name: &str, hook: &str) -> ConfigKey {
    ConfigKey::Hook {
        kind,
        name: name.to_owned(),
        hook: hook.to_owned(),
    }
}

async fn list_hooks(api: &Api, kind: HookKind, name: &str) -> ApiResult {
    let name = segment(name)?;
    let view = api.view();
    let hooks: Vec<Value> = view
        .keys_with_prefix(&ConfigKey::hooks_of(kind, name))
        .map(doc)
        .collect();
    Ok(Json(hooks).into_response())
}

/// Registers or replaces a hook; the core starts it from the resource's
/// current version, so only changes from now on are reported.
async fn write_hook(api: &Api, kind: HookKind, name: &str, hook: &str, endpoint: &str) -> ApiResult {
    if let Err(e) = Endpoint::parse(endpoint) {
        return Err(bad(format!("endpoint {endpoint:?}: {}", crate::error_chain(&e))));
    }
    let spec = json!({"name": hook, "endpoint": endpoint});
    let written = ask(api, |reply| Request::PutHook {
        kind,
        name: name.to_owned(),
        hook: hook.to_owned(),
        spec: spec.to_string(),
        reply,
    })
    .await??;
    let status = match written {
        Written::Created => StatusCode::CREATED,
        Written::Updated => StatusCode::OK,
    };
    let mut r = (status, Json(spec)).into_response();
    if let Some(loc) = hook_key(kind, name, hook)
        .api_path()
        .and_then(|p| HeaderValue::from_str(&p).ok())
    {
        r.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(r)
}

async fn post_hook(api: &Api, kind: HookKind, name: &str, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let name = segment(name)?;
    let v = body_json(api, body)?;
    let hook = v
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("body needs a \"name\" string"))?;
    let hook = segment(hook)?;
    let endpoint = v
        .get("endpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("body needs an \"endpoint\" string"))?;
    // POST creates; replacing is PUT's job (racing POSTs of one name may
    // both pass this check: the later one replaces, as a PUT would).
    if api.view().key(&hook_key(kind, name, hook).to_key()).is_some() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("web-hook {hook:?} exists; PUT to its path replaces it"),
        ));
    }
    write_hook(api, kind, name, hook, endpoint).await
}

async fn get_hook(api: &Api, kind: HookKind, name: &str, hook: &str) -> ApiResult {
    let (name, hook) = (segment(name)?, segment(hook)?);
    let view = api.view();
    let rec = view
        .key(&hook_key(kind, name, hook).to_key())
        .ok_or_else(|| not_found(format!("no web-hook {hook:?}")))?;
    Ok(Json(doc(rec)).into_response())
}

async fn put_hook(
    api: &Api,
    kind: HookKind,
    name: &str,
    hook: &str,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let (name, hook) = (segment(name)?, segment(hook)?);
    let v = body_json(api, body)?;
    let endpoint = v
        .get("endpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("body needs an \"endpoint\" string"))?;
    write_hook(api, kind, name, hook, endpoint).await
}

async fn delete_hook(api: &Api, kind: HookKind, name: &str, hook: &str) -> ApiResult {
    let (name, hook) = (segment(name)?, segment(hook)?);
    let existed = ask(api, |reply| Request::DelHook {
        kind,
        name: name.to_owned(),
        hook: hook.to_owned(),
        reply,
    })
    .await??;
    if existed {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(not_found(format!("no web-hook {hook:?}")))
    }
}

pub(super) async fn list_hooks_app(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    list_hooks(&api, HookKind::App, &name).await
}
pub(super) async fn list_hooks_srv(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    list_hooks(&api, HookKind::Srv, &name).await
}
pub(super) async fn post_hook_app(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    post_hook(&api, HookKind::App, &name, body).await
}
pub(super) async fn post_hook_srv(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    post_hook(&api, HookKind::Srv, &name, body).await
}
pub(super) async fn get_hook_app(
    State(api): State<Api>,
    Path((name, hook)): Path<(String, String)>,
) -> ApiResult {
    get_hook(&api, HookKind::App, &name, &hook).await
}
pub(super) async fn get_hook_srv(
    State(api): State<Api>,
    Path((name, hook)): Path<(String, String)>,
) -> ApiResult {
    get_hook(&api, HookKind::Srv, &name, &hook).await
}
pub(super) async fn put_hook_app(
    State(api): State<Api>,
    Path((name, hook)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    put_hook(&api, HookKind::App, &name, &hook, body).await
}
pub(super) async fn put_hook_srv(
    State(api): State<Api>,
    Path((name, hook)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    put_hook(&api, HookKind::Srv, &name, &hook, body).await
}
pub(super) async fn delete_hook_app(
    State(api): State<Api>,
    Path((name, hook)): Path<(String, String)>,
) -> ApiResult {
    delete_hook(&api, HookKind::App, &name, &hook).await
}
pub(super) async fn delete_hook_srv(
    State(api): State<Api>,
    Path((name, hook)): Path<(String, String)>,
) -> ApiResult {
    delete_hook(&api, HookKind::Srv, &name, &hook).await
}
