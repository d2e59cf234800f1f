//! `/v1/topology`: catalogues, links, reachability and the leader, as the
//! core computes them, and this catalogue's alarms (e.g. the store's).

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::{Api, ApiResult};

pub(super) async fn topology(State(api): State<Api>) -> ApiResult {
    let view = api.view();
    let t = &*view.topology;
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
        "alarms": view.alarms,
    }))
    .into_response())
}
