//! `/app/NAME`: replicated configuration documents.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::Value;

use super::{
    ask, bad, block, body_json, delete_key, doc, not_found, rfc3339, segment, subscriptions_link, with_index,
    Api, ApiResult, WaitQuery,
};
use crate::driver::Request;
use rarangi_core::{ConfigKey, Written};

/// The configuration key of application `name`.
fn app_key(name: &str) -> ConfigKey {
    ConfigKey::App {
        name: name.to_owned(),
    }
}

pub(super) async fn list_apps(State(api): State<Api>, Query(q): Query<WaitQuery>) -> ApiResult {
    let view = block(&api, "/app/", &q).await?;
    let names: Vec<&str> = view
        .keys_with_prefix(ConfigKey::APPS_PREFIX)
        .map(|r| &r.key[ConfigKey::APPS_PREFIX.len()..])
        .collect();
    Ok(with_index(Json(names).into_response(), view.index))
}

pub(super) async fn get_app(
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult {
    let name = segment(&name)?;
    let view = block(&api, &format!("/app/{name}"), &q).await?;
    let rec = view
        .key(&app_key(name).to_key())
        .ok_or_else(|| not_found(format!("no application {name:?}")))?;
    Ok(with_index(Json(doc(rec)).into_response(), view.index))
}

pub(super) async fn put_app(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let name = segment(&name)?.to_owned();
    let mut v = body_json(&api, body)?;
    if v.get("config").is_none() {
        return Err(bad("body needs a \"config\" attribute"));
    }
    v["updated_at"] = Value::String(rfc3339(crate::clock::now_ms()));
    let key = app_key(&name);
    let value = v.to_string();
    let written = ask(&api, |reply| Request::SetKey { key, value, reply }).await??;
    let status = if written == Written::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(v)).into_response())
}

pub(super) async fn delete_app(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    let name = segment(&name)?;
    delete_key(&api, app_key(name), format!("no application {name:?}")).await
}

pub(super) async fn head_app(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    let name = segment(&name)?;
    let found = api.view().key(&app_key(name).to_key()).is_some();
    let status = if found {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    let mut h = HeaderMap::new();
    h.insert(header::LINK, subscriptions_link(&format!("/app/{name}")));
    Ok((status, h).into_response())
}
