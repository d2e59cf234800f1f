//! Consul's reads: `/v1/catalog/{services,service/NAME,nodes}`,
//! `/v1/health/service/NAME` and `/v1/status/{leader,peers}`.
//!
//! Instances are listed one per service URI, the nearest copy, in locality
//! order (this catalogue, its cluster, the rest: what `near=_agent` asks
//! of Consul), and `/catalog/service` and `/health/service` list them in
//! the same order (Traefik pairs the two answers by position).

use std::collections::BTreeSet;

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use rarangi_proto::CatalogueUri;
use serde_json::{json, Value};

use super::{answer, block, meta, node, service_id, tags, Params};
use crate::driver::view::{Instance, View};
use crate::http::{segment, Api, ApiError, ApiResult};

/// The change index of one service's instances.
fn service_index(view: &View, name: &str) -> u64 {
    view.last_change_of(&format!("/srv/{name}"))
}

/// The change index of every service.
fn services_index(view: &View) -> u64 {
    view.last_change_under("/srv/")
}

/// `GET /v1/catalog/services`: `{"NAME": [TAG, ...]}`.
pub(super) async fn services(State(api): State<Api>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref())?;
    let view = block(&api, &p, services_index).await;
    let mut out = serde_json::Map::new();
    for name in view.service_names() {
        let mut all = BTreeSet::new();
        let mut any = false;
        for i in view.instances(name).filter(|i| p.admits(i)) {
            any = true;
            all.extend(tags(i));
        }
        if any {
            out.insert(name.to_owned(), json!(all));
        }
    }
    Ok(answer(&Value::Object(out), services_index(&view)))
}

/// The instances of `name` a query admits, nearest first.
fn listed<'a>(api: &Api, view: &'a View, name: &str, p: &Params) -> Vec<&'a Instance> {
    let s = &api.shared.settings;
    view.nearest(name, &s.uri, &s.cluster)
        .into_iter()
        .filter(|i| p.admits(i))
        .collect()
}

/// Answers a per-service query: blocks on the service's index, then
/// renders each listed instance.
async fn per_service(
    api: &Api,
    name: &str,
    q: Option<&str>,
    render: impl Fn(&Instance, u64) -> Value,
) -> Result<Response, ApiError> {
    let name = segment(name)?;
    let p = Params::parse(q)?;
    let view = block(api, &p, |v| service_index(v, name)).await;
    let raw = service_index(&view, name);
    let list: Vec<Value> = listed(api, &view, name, &p)
        .into_iter()
        .map(|i| render(i, super::consul_index(raw)))
        .collect();
    Ok(answer(&Value::Array(list), raw))
}

/// `GET /v1/catalog/service/NAME`: Consul's `CatalogService` entries.
pub(super) async fn service(
    State(api): State<Api>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let here = api.shared.settings.uri.clone();
    per_service(&api, &name, q.as_deref(), |i, index| {
        let n = node(&i.catalogue, &i.cluster);
        let (address, port) = i.address();
        json!({
            "ID": n["ID"],
            "Node": n["Node"],
            "Address": n["Address"],
            "Datacenter": n["Datacenter"],
            "TaggedAddresses": n["TaggedAddresses"],
            "NodeMeta": n["Meta"],
            "ServiceKind": "",
            "ServiceID": service_id(i, &here),
            "ServiceName": i.name(),
            "ServiceTags": tags(i),
            "ServiceAddress": address,
            "ServiceTaggedAddresses": {},
            "ServiceWeights": {"Passing": i.weight(), "Warning": 1},
            "ServiceMeta": meta(i),
            "ServicePort": port.unwrap_or(0),
            "ServiceEnableTagOverride": false,
            "CreateIndex": index,
            "ModifyIndex": index,
        })
    })
    .await
}

/// `GET /v1/health/service/NAME`: Consul's `ServiceEntry` list (`Node`,
/// `Service`, `Checks`).
pub(super) async fn health_service(
    State(api): State<Api>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let here = api.shared.settings.uri.clone();
    per_service(&api, &name, q.as_deref(), |i, index| {
        let (address, port) = i.address();
        let id = service_id(i, &here);
        let tags = tags(i);
        let mut n = node(&i.catalogue, &i.cluster);
        n["CreateIndex"] = json!(index);
        n["ModifyIndex"] = json!(index);
        json!({
            "Node": n,
            "Service": {
                "ID": id,
                "Service": i.name(),
                "Tags": tags,
                "Address": address,
                "TaggedAddresses": {},
                "Meta": meta(i),
                "Port": port.unwrap_or(0),
                "Weights": {"Passing": i.weight(), "Warning": 1},
                "EnableTagOverride": false,
                "Datacenter": &*i.cluster,
                "CreateIndex": index,
                "ModifyIndex": index,
            },
            "Checks": [{
                "Node": i.catalogue.addr(),
                "CheckID": format!("service:{id}"),
                "Name": format!("Service '{}' check", i.name()),
                "Status": i.health(),
                "Notes": "",
                "Output": "",
                "ServiceID": id,
                "ServiceName": i.name(),
                "ServiceTags": tags,
                "Type": "",
                "CreateIndex": index,
                "ModifyIndex": index,
            }],
        })
    })
    .await
}

/// The reachable catalogues (this one included) with their clusters.
fn reachable<'a>(api: &'a Api, view: &'a View) -> impl Iterator<Item = (&'a CatalogueUri, &'a str)> + 'a {
    let t = &*view.topology;
    t.reachable.iter().map(move |u| {
        let cluster = if u == &t.me {
            api.shared.settings.cluster.as_str()
        } else {
            t.catalogues.get(u).map_or("", String::as_str)
        };
        (u, cluster)
    })
}

/// `GET /v1/catalog/nodes`: the reachable catalogues as nodes.
pub(super) async fn nodes(State(api): State<Api>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref())?;
    let view = block(&api, &p, |v| v.index).await;
    let list: Vec<Value> = reachable(&api, &view)
        .filter(|(_, c)| p.dc.as_deref().is_none_or(|dc| dc == *c))
        .map(|(u, c)| node(u, c))
        .collect();
    Ok(answer(&Value::Array(list), view.index))
}

/// `GET /v1/status/leader`: the leader catalogue's address, `"host:port"`.
pub(super) async fn leader(State(api): State<Api>) -> ApiResult {
    let view = api.view();
    Ok(answer(&json!(view.topology.leader.addr()), view.index))
}

/// `GET /v1/status/peers`: the reachable catalogues of this cluster.
pub(super) async fn peers(State(api): State<Api>) -> ApiResult {
    let view = api.view();
    let cluster = api.shared.settings.cluster.as_str();
    let peers: Vec<&str> = reachable(&api, &view)
        .filter(|(_, c)| *c == cluster)
        .map(|(u, _)| u.addr())
        .collect();
    Ok(answer(&json!(peers), view.index))
}
