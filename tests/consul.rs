//! The Consul-compatible API against real catalogue processes: each
//! endpoint's shape (as Consul's docs give it), blocking queries, tokens,
//! registration with TTL checks; and the real clients: VictoriaMetrics's
//! `consul_sd_configs` and Traefik's `consulCatalog` provider (skipped
//! with a message where they are not installed; `.ci/run` installs them).

#[path = "consul/clients.rs"]
mod clients;
#[allow(unused_imports)]
mod common;

use common::http::*;
use common::*;
use serde_json::{json, Value};

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// GET with a token header; status, `X-Consul-Index` and JSON body.
async fn consul_get(addr: &str, path: &str, token: &[(&str, &str)]) -> (u16, u64, Value) {
    let (status, headers, body) = http_with(addr, "GET", path, token, None).await;
    let index = header(&headers, "x-consul-index")
        .and_then(|i| i.parse().ok())
        .unwrap_or(0);
    if status == 200 {
        assert!(index > 0, "{path}: X-Consul-Index must be > 0: {headers:?}");
        assert_eq!(header(&headers, "x-consul-knownleader"), Some("true"), "{path}");
        assert_eq!(header(&headers, "x-consul-lastcontact"), Some("0"), "{path}");
    }
    (status, index, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn get(addr: &str, path: &str) -> (u16, u64, Value) {
    consul_get(addr, path, &[]).await
}

/// The `Service.ID`s of `GET /v1/health/service/...`.
fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["Service"]["ID"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `path` at `addr` lists exactly these service ids.
async fn eventually_ids(addr: &str, path: &str, want: &[&str]) -> Value {
    let deadline = Deadline::default();
    loop {
        let (_, _, v) = get(addr, path).await;
        if ids(&v) == want {
            return v;
        }
        deadline
            .retry(|| format!("{path} at {addr}: want {want:?}, got {v}"))
            .await;
    }
}

/// `PUT /v1/agent/service/register` (or another write) with a body.
async fn consul_put(addr: &str, path: &str, body: Value, token: &[(&str, &str)]) -> (u16, String) {
    let (s, _, b) = http_with(addr, "PUT", path, token, Some(body.to_string().as_bytes())).await;
    (s, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_in_consuls_shapes() {
    let a = cat("development", "east", &[]);
    let b = cat("development", "west", &[&a.addr]);
    let mut line = spawn_register(&a, "tcp://127.0.0.1:9001/web");
    let reg = json!({
        "Name": "web", "ID": "web-b", "Address": "127.0.0.2", "Port": 9002,
        "Tags": ["primary", "traefik.enable=true"], "Meta": {"version": "2"},
        "Weights": {"Passing": 3, "Warning": 1},
    });
    assert_eq!(
        consul_put(&b.http, "/v1/agent/service/register", reg, &[])
            .await
            .0,
        200
    );
    let b_id = format!("web-b@{}", b.addr);
    let v = eventually_ids(&a.http, "/v1/health/service/web", &["127.0.0.1:9001", &b_id]).await;

    // Nearest first: a's own instance, then b's, each with its node.
    let (local, remote) = (&v[0], &v[1]);
    assert_eq!(local["Node"]["Node"], json!(a.addr));
    assert_eq!(local["Node"]["Datacenter"], json!("east"));
    let a_host = a.addr.rsplit_once(':').unwrap().0;
    assert_eq!(local["Node"]["Address"], json!(a_host));
    assert_eq!(local["Service"]["Port"], json!(9001));
    assert_eq!(local["Service"]["Tags"], json!(["zone=a"]));
    assert_eq!(local["Service"]["Meta"], json!({"zone": "a"}));
    assert_eq!(remote["Node"]["Node"], json!(b.addr));
    assert_eq!(remote["Node"]["Datacenter"], json!("west"));
    assert!(remote["Node"]["ID"].as_str().is_some_and(|id| id.len() == 36));
    let s = &remote["Service"];
    assert_eq!(s["Service"], json!("web"));
    assert_eq!(s["Address"], json!("127.0.0.2"));
    assert_eq!(s["Port"], json!(9002));
    assert_eq!(
        s["Tags"],
        json!(["primary", "traefik.enable=true", "version=2", "weight=3"])
    );
    assert_eq!(s["Meta"]["version"], json!("2"));
    assert_eq!(s["Weights"], json!({"Passing": 3, "Warning": 1}));
    let check = &remote["Checks"][0];
    assert_eq!(check["Status"], json!("passing"));
    assert_eq!(check["ServiceID"], json!(b_id));
    assert_eq!(check["CheckID"], json!(format!("service:{b_id}")));
    // b shows its own instance under its plain id.
    eventually_ids(
        &b.http,
        "/v1/health/service/web?near=_agent",
        &["web-b", &format!("127.0.0.1:9001@{}", a.addr)],
    )
    .await;

    // Filters: dc, tags (all must match), passing; unknown parameters ignored.
    let (_, _, v) = get(
        &a.http,
        "/v1/health/service/web?dc=west&passing&stale&ns=default&x=1",
    )
    .await;
    assert_eq!(ids(&v), vec![b_id.clone()]);
    let (_, _, v) = get(
        &a.http,
        "/v1/health/service/web?tag=primary&tag=traefik.enable%3Dtrue",
    )
    .await;
    assert_eq!(ids(&v), vec![b_id.clone()]);
    let (_, _, v) = get(&a.http, "/v1/health/service/web?tag=primary&tag=zone%3Da").await;
    assert_eq!(v, json!([]));
    let (s, _, v) = get(&a.http, "/v1/health/service/nothing").await;
    assert_eq!((s, v), (200, json!([])));

    // The catalogue's views: same order as /health (Traefik pairs them).
    let (_, _, v) = get(&a.http, "/v1/catalog/service/web").await;
    let sids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ServiceID"].as_str().unwrap())
        .collect();
    assert_eq!(sids, vec!["127.0.0.1:9001", b_id.as_str()]);
    assert_eq!(v[1]["ServiceAddress"], json!("127.0.0.2"));
    assert_eq!(v[1]["ServicePort"], json!(9002));
    assert_eq!(v[1]["Datacenter"], json!("west"));
    assert_eq!(v[1]["ServiceMeta"]["version"], json!("2"));
    let (_, _, v) = get(&a.http, "/v1/catalog/services").await;
    assert_eq!(
        v,
        json!({"web": ["primary", "traefik.enable=true", "version=2", "weight=3", "zone=a"]})
    );
    let (_, _, v) = get(&a.http, "/v1/catalog/services?dc=east").await;
    assert_eq!(v, json!({"web": ["zone=a"]}));
    let (_, _, v) = get(&a.http, "/v1/catalog/nodes").await;
    let mut nodes: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["Node"].as_str().unwrap().into(),
                n["Datacenter"].as_str().unwrap().into(),
            )
        })
        .collect();
    nodes.sort();
    let mut want = vec![
        (a.addr.clone(), "east".to_owned()),
        (b.addr.clone(), "west".to_owned()),
    ];
    want.sort();
    assert_eq!(nodes, want);

    // The agent and the status endpoints.
    let (_, _, v) = get(&a.http, "/v1/agent/self").await;
    assert_eq!(v["Config"]["Datacenter"], json!("east"));
    assert_eq!(v["Config"]["NodeName"], json!(a.addr));
    assert!(v["Config"]["Version"].is_string());
    assert_eq!(v["Member"]["Status"], json!(1));
    assert_eq!(v["Member"]["Addr"], json!(a_host));
    let (_, _, leader) = get(&a.http, "/v1/status/leader").await;
    let (_, topo) = get_json(&a.http, "/v1/topology").await;
    let leader_uri = topo["leader"].as_str().unwrap();
    assert!(
        leader_uri.contains(leader.as_str().unwrap()),
        "{leader} vs {leader_uri}"
    );
    let (_, _, peers) = get(&a.http, "/v1/status/peers").await;
    assert_eq!(peers, json!([a.addr]));
    let (_, _, v) = get(&b.http, "/v1/agent/services").await;
    assert_eq!(v["web-b"]["Port"], json!(9002));
    assert_eq!(
        v["web-b"]["Tags"],
        json!(["primary", "traefik.enable=true", "version=2", "weight=3"])
    );

    // Bad index or wait: 400, as in Consul.
    assert_eq!(get(&a.http, "/v1/health/service/web?index=x").await.0, 400);
    assert_eq!(get(&a.http, "/v1/catalog/services?wait=soon").await.0, 400);
    line.kill().unwrap();
    line.wait().unwrap();
    eventually_ids(&a.http, "/v1/health/service/web", &[&b_id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_queries_follow_consuls_rules() {
    let a = cat("development", "east", &[]);
    let (_, i0, v) = get(&a.http, "/v1/health/service/web").await;
    assert_eq!(v, json!([]));
    // A change to the service answers a query blocked on its index.
    let http = a.http.clone();
    let blocked =
        tokio::spawn(async move { get(&http, &format!("/v1/health/service/web?index={i0}&wait=5m")).await });
    let reg = json!({"Name": "web", "Address": "127.0.0.1", "Port": 8080});
    assert_eq!(
        consul_put(&a.http, "/v1/agent/service/register", reg, &[])
            .await
            .0,
        200
    );
    let (s, i1, v) = tokio::time::timeout(DEADLINE, blocked).await.unwrap().unwrap();
    assert_eq!(s, 200);
    assert!(i1 > i0, "the index rises with the change: {i0} -> {i1}");
    assert_eq!(ids(&v), vec!["web"]);
    // Another service's change leaves this service's index alone, and
    // the list of all services follows both.
    let (_, all1, _) = get(&a.http, "/v1/catalog/services").await;
    let reg = json!({"Name": "db", "Address": "127.0.0.1", "Port": 5432});
    assert_eq!(
        consul_put(&a.http, "/v1/agent/service/register", reg, &[])
            .await
            .0,
        200
    );
    let (_, all2, v) = get(&a.http, &format!("/v1/catalog/services?index={all1}&wait=1m")).await;
    assert!(all2 > all1 && v.get("db").is_some(), "{all1} -> {all2}: {v}");
    assert_eq!(get(&a.http, "/v1/health/service/web").await.1, i1);
    // The wait ends without a change: the same index comes back.
    let (s, i, v) = get(&a.http, &format!("/v1/health/service/web?index={i1}&wait=300ms")).await;
    assert_eq!((s, i, ids(&v)), (200, i1, vec!["web".to_owned()]));
    // An index ahead of the catalogue's (a client failing over from
    // another catalogue) answers at once instead of hanging for 5 min.
    let ahead = format!("/v1/health/service/web?index={}&wait=5m", all2 + 1000);
    let (s, i, _) = tokio::time::timeout(DEADLINE, get(&a.http, &ahead))
        .await
        .expect("no hang");
    assert_eq!((s, i), (200, i1));
    // index=0 does not block.
    let (s, _, _) = tokio::time::timeout(DEADLINE, get(&a.http, "/v1/catalog/nodes?index=0&wait=5m"))
        .await
        .expect("no hang");
    assert_eq!(s, 200);
    // A deregistration answers a blocked query too.
    let http = a.http.clone();
    let blocked =
        tokio::spawn(async move { get(&http, &format!("/v1/health/service/web?index={i1}")).await });
    assert_eq!(
        consul_put(&a.http, "/v1/agent/service/deregister/web", json!({}), &[])
            .await
            .0,
        200
    );
    let (_, i2, v) = tokio::time::timeout(DEADLINE, blocked).await.unwrap().unwrap();
    assert!(i2 > i1);
    assert_eq!(v, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_ttl_checks_and_tokens() {
    let dir = rarangi_harness::TempDir::new("consul-tokens").unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "w-1 write\nr-1 read\n").unwrap();
    let a = Cat::options("development")
        .bin(BIN)
        .args(["--http-token-file", &tokens.display().to_string()])
        .start()
        .unwrap();
    let write = [("X-Consul-Token", "w-1")];
    let read = [("X-Consul-Token", "r-1")];
    let bearer = [("Authorization", "Bearer w-1")];
    let reg = json!({
        "Name": "api", "ID": "api-1", "Address": "127.0.0.1", "Port": 7001,
        "Tags": ["v1"], "Check": {"TTL": "2s", "DeregisterCriticalServiceAfter": "1m"},
    });
    let path = "/v1/agent/service/register";
    assert_eq!(consul_put(&a.http, path, reg.clone(), &[]).await.0, 401);
    assert_eq!(consul_put(&a.http, path, reg.clone(), &read).await.0, 403);
    assert_eq!(consul_get(&a.http, "/v1/catalog/services", &[]).await.0, 401);
    assert_eq!(consul_put(&a.http, path, reg.clone(), &bearer).await.0, 200);
    let health = "/v1/health/service/api";
    let pass = "/v1/agent/check/pass/service:api-1";
    assert_eq!(consul_put(&a.http, pass, json!({}), &read).await.0, 403);
    // Passes keep it listed (each one renews the TTL, or registers it
    // again once it lapsed), to readers and line-protocol clients alike.
    let deadline = Deadline::default();
    loop {
        assert_eq!(consul_put(&a.http, pass, json!({}), &write).await.0, 200);
        let (s, _, v) = consul_get(&a.http, health, &read).await;
        let seen = lookup(&a.opts(), "api").await.unwrap();
        if s == 200 && ids(&v) == ["api-1"] && seen.contains("tcp://127.0.0.1:7001/api/api-1") {
            assert_eq!(v[0]["Service"]["Tags"], json!(["v1"]));
            break;
        }
        deadline
            .retry(|| format!("api-1 listed after a pass: {v}, {seen:?}"))
            .await;
    }
    // Without passes the TTL lapses; fail withdraws; update passing
    // brings it back.
    let listed = |want: bool| {
        let a = a.http.clone();
        async move {
            let deadline = Deadline::default();
            loop {
                let (_, _, v) = consul_get(&a, "/v1/health/service/api", &[("X-Consul-Token", "r-1")]).await;
                if (ids(&v) == ["api-1"]) == want {
                    return;
                }
                deadline.retry(|| format!("api-1 listed: {want}: {v}")).await;
            }
        }
    };
    listed(false).await;
    assert_eq!(consul_put(&a.http, pass, json!({}), &write).await.0, 200);
    let fail = "/v1/agent/check/fail/service:api-1";
    assert_eq!(consul_put(&a.http, fail, json!({}), &write).await.0, 200);
    listed(false).await;
    let update = "/v1/agent/check/update/service:api-1";
    assert_eq!(
        consul_put(&a.http, update, json!({"Status": "bogus"}), &write)
            .await
            .0,
        400
    );
    assert_eq!(
        consul_put(&a.http, update, json!({"Status": "passing"}), &write)
            .await
            .0,
        200
    );
    listed(true).await;

    // Re-registering the id elsewhere moves it: one id is one instance.
    let moved = json!({"Name": "api", "ID": "api-1", "Address": "127.0.0.1", "Port": 7002});
    assert_eq!(consul_put(&a.http, path, moved, &write).await.0, 200);
    let deadline = Deadline::default();
    loop {
        let (_, _, v) = consul_get(&a.http, health, &read).await;
        if ids(&v) == ["api-1"] && v[0]["Service"]["Port"] == json!(7002) {
            break;
        }
        deadline.retry(|| format!("api-1 moved to 7002: {v}")).await;
    }
    // No TTL check any more: a pass names an unknown check.
    assert_eq!(consul_put(&a.http, pass, json!({}), &write).await.0, 404);

    // Bad registrations are refused with a reason.
    let (s, body) = consul_put(&a.http, path, json!({"Name": "x", "Tags": ["id=7"]}), &write).await;
    assert!(s == 400 && body.contains("instance model"), "{s} {body}");
    assert_eq!(consul_put(&a.http, path, json!({"ID": "x"}), &write).await.0, 400);

    // Deregistration withdraws it; a second one is 404.
    let dereg = "/v1/agent/service/deregister/api-1";
    assert_eq!(consul_put(&a.http, dereg, json!({}), &write).await.0, 200);
    listed(false).await;
    assert_eq!(consul_put(&a.http, dereg, json!({}), &write).await.0, 404);
    eventually_lookup(&a, "api", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn victoria_metrics_discovers_and_follows_instances() {
    clients::victoria_metrics().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_routes_to_registered_backends_and_drops_a_dead_one() {
    clients::traefik().await;
}
