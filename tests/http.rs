//! The HTTP API over real HTTP against real catalogue processes.

mod common;

use std::collections::BTreeSet;

use common::http::*;
use common::*;
use rarangi_client::{register, Attrs};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_replicates_and_survives_killing_every_catalogue() {
    let mut a = cat("development", "c1", &[]);
    let mut b = cat("development", "c1", &[&a.addr]);
    let mut c = cat("development", "c1", &[&b.addr]);
    assert_eq!(
        put(&a.http, "/app/orders", json!({"config": {"workers": 4}})).await,
        201
    );
    eventually_json(&c.http, "/app/orders", "replication to c", |s, v| {
        s == 200 && config_of(v) == json!({"workers": 4})
    })
    .await;
    // Acknowledged means durable: kill everything right after the answer.
    assert_eq!(put(&b.http, "/app/billing", json!({"config": "fast"})).await, 201);
    assert_eq!(
        put(&c.http, "/app/orders", json!({"config": {"workers": 8}})).await,
        200
    );
    for cat in [&mut a, &mut b, &mut c] {
        cat.kill();
    }
    for cat in [&mut a, &mut b, &mut c] {
        cat.restart().unwrap();
    }
    for cat in [&a, &b, &c] {
        eventually_json(&cat.http, "/app", "names after restart", |s, v| {
            s == 200 && *v == json!(["billing", "orders"])
        })
        .await;
        eventually_json(&cat.http, "/app/orders", "latest value", |_, v| {
            config_of(v) == json!({"workers": 8})
        })
        .await;
    }
    // A catalogue that was down catches up when it comes back.
    c.kill();
    assert_eq!(http(&a.http, "DELETE", "/app/billing", None).await.0, 204);
    assert_eq!(put(&a.http, "/app/search", json!({"config": 1})).await, 201);
    c.restart().unwrap();
    eventually_json(&c.http, "/app", "c caught up", |_, v| {
        *v == json!(["orders", "search"])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_on_both_sides_of_a_partition_agree_after_heal() {
    let a = cat("development", "west", &[]);
    let b = cat("development", "east", &[]);
    let proxy = proxy_to(&b.addr).await;
    let a2 = cat("development", "west", &[&a.addr, &proxy.addr]);
    assert_eq!(put(&a.http, "/app/x", json!({"config": "before"})).await, 201);
    eventually_json(&b.http, "/app/x", "initial value everywhere", |_, v| {
        config_of(v) == json!("before")
    })
    .await;
    proxy.cut();
    for cat in [&a, &b] {
        eventually_json(&cat.http, "/v1/topology", "partition seen", |_, v| {
            v["reachable"].as_array().is_some_and(|r| r.len() < 3)
        })
        .await;
    }
    assert_eq!(put(&a.http, "/app/x", json!({"config": "west"})).await, 200);
    assert_eq!(put(&b.http, "/app/x", json!({"config": "east"})).await, 200);
    proxy.heal();
    let winner = eventually_json(&a2.http, "/app/x", "a value", |s, _| s == 200).await;
    let mut seen = BTreeSet::new();
    let deadline = Deadline::default();
    loop {
        seen.clear();
        for cat in [&a, &b, &a2] {
            seen.insert(get_json(&cat.http, "/app/x").await.1.to_string());
        }
        if seen.len() == 1 && !seen.contains(&json!({"config": "before"}).to_string()) {
            break;
        }
        deadline.retry(|| format!("agreement: {seen:?}")).await;
    }
    let value = config_of(&serde_json::from_str(seen.first().unwrap()).unwrap());
    assert!(
        value == json!("west") || value == json!("east"),
        "{value} (first read {winner})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_arrive_after_the_receiver_returns_even_if_the_leader_dies() {
    let a = cat("development", "c1", &[]);
    let b = cat("development", "c1", &[&a.addr]);
    let c = cat("development", "c1", &[&a.addr, &b.addr]);
    let mut cats = vec![a, b, c];
    for cat in &cats {
        eventually_json(&cat.http, "/v1/topology", "all linked", |_, v| {
            v["reachable"].as_array().is_some_and(|r| r.len() == 3)
        })
        .await;
    }
    // Receiver 1 is up: a plain delivery.
    let addr1 = fresh_addr();
    let r1 = Receiver::start(&addr1).await;
    let hook = json!({"name": "node1-test", "endpoint": format!("http://{addr1}/notify")});
    let (s, _, body) = http(
        &cats[1].http,
        "POST",
        "/app/test/web-hooks",
        Some(hook.to_string().as_bytes()),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(put(&cats[2].http, "/app/test", json!({"config": 1})).await, 201);
    eventually("the webhook arrives", || r1.whats() == ["created"]).await;
    let n = &r1.got()[0];
    assert_eq!(
        (n["name"].as_str(), n["what"].as_str()),
        (Some("node1-test"), Some("created")),
        "{n}"
    );
    assert!(n["uri"].as_str().unwrap().ends_with("/app/test"), "{n}");

    // Receiver 2 refuses while the change happens and the leader retries.
    let addr2 = fresh_addr();
    let r2 = Receiver::refusing(&addr2).await;
    let hook2 = json!({"name": "late", "endpoint": format!("http://{addr2}/")});
    assert_eq!(
        http(
            &cats[0].http,
            "POST",
            "/app/test/web-hooks",
            Some(hook2.to_string().as_bytes())
        )
        .await
        .0,
        201
    );
    assert_eq!(put(&cats[0].http, "/app/test", json!({"config": 2})).await, 200);
    // Fenced by the next notification: a repeated delivery of the first
    // change would have come before it.
    eventually("receiver 1 hears of the update", || r1.got().len() >= 2).await;
    assert_eq!(r1.whats(), ["created", "updated"], "{:?}", r1.got());
    eventually("the leader tried receiver 2", || r2.refused() > 0).await;
    let (_, topo) = get_json(&cats[0].http, "/v1/topology").await;
    let leader = topo["leader"].as_str().unwrap().to_owned();
    let i = cats
        .iter()
        .position(|c| leader.contains(&c.addr))
        .expect("leader is one of ours");
    cats[i].kill();
    r2.accept();
    eventually("the next leader delivers the pending notification", || {
        !r2.got().is_empty()
    })
    .await;
    assert_eq!(r2.got()[0]["what"], json!("updated"), "{:?}", r2.got());
    cats.remove(i);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_webhooks_follow_the_instances_and_nothing_else() {
    let a = cat("development", "c1", &[]);
    let b = cat("development", "c1", &[&a.addr]);
    eventually_json(&a.http, "/v1/topology", "linked", |_, v| {
        v["reachable"].as_array().is_some_and(|r| r.len() == 2)
    })
    .await;
    let addr = fresh_addr();
    let r = Receiver::start(&addr).await;
    let hook = json!({"name": "orders-hook", "endpoint": format!("http://{addr}/")});
    let (s, _, body) = http(
        &b.http,
        "POST",
        "/srv/orders/web-hooks",
        Some(hook.to_string().as_bytes()),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let whats = || r.whats();

    let mut one = spawn_register(&b, "tcp://10.0.0.1:80/orders");
    eventually("created", || whats() == ["created"]).await;
    let mut two = spawn_register(&a, "tcp://10.0.0.2:80/orders");
    eventually("updated", || whats() == ["created", "updated"]).await;
    // Another service comes and goes: nothing is sent for this hook. Each
    // time, the next change of orders fences it: a notification for
    // billing would arrive before that change's and make one too many.
    let stop = |p: &mut std::process::Child| {
        p.kill().unwrap();
        p.wait().unwrap();
    };
    let mut other = spawn_register(&a, "tcp://10.0.0.3:80/billing");
    eventually_lookup(&b, "billing", &["tcp://10.0.0.3:80/billing"]).await;
    stop(&mut two);
    eventually("updated again", || whats().len() >= 3).await;
    stop(&mut other);
    eventually_lookup(&b, "billing", &[]).await;
    stop(&mut one);
    eventually("deleted", || {
        whats().last().map(String::as_str) == Some("deleted")
    })
    .await;
    assert_eq!(whats(), ["created", "updated", "updated", "deleted"]);
    assert!(
        r.got()[0]["uri"].as_str().unwrap().ends_with("/srv/orders"),
        "{:?}",
        r.got()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_queries_wake_on_change_and_sse_streams_changes() {
    let a = cat("development", "c1", &[]);
    let b = cat("development", "c1", &[&a.addr]);
    let (s, headers, _) = http(&a.http, "GET", "/app", None).await;
    assert_eq!(s, 200);
    let index: u64 = headers
        .iter()
        .find(|(k, _)| k == "x-rarangi-index")
        .expect("index header")
        .1
        .parse()
        .unwrap();

    let a_http = a.http.clone();
    let waiter = tokio::spawn(async move {
        http(
            &a_http,
            "GET",
            &format!("/app/watched?index={index}&wait=20s"),
            None,
        )
        .await
    });
    // A change elsewhere does not wake it: its answer, below, must be the
    // change it waits for.
    assert_eq!(put(&a.http, "/app/other", json!({"config": 0})).await, 201);
    assert!(
        !waiter.is_finished(),
        "a blocking query returned before its resource changed"
    );

    // SSE on the other catalogue.
    let mut sse = TcpStream::connect(&b.http).await.unwrap();
    sse.write_all(
        format!(
            "GET /v1/events?prefix=/app/watched HTTP/1.1\r\nHost: {}\r\n\r\n",
            b.http
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut sse = BufReader::new(sse);
    let mut line = String::new();
    sse.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");

    assert_eq!(put(&a.http, "/app/watched", json!({"config": "v1"})).await, 201);
    let (s, headers, body) = tokio::time::timeout(DEADLINE, waiter)
        .await
        .expect("woke")
        .unwrap();
    assert_eq!(s, 200, "{body}");
    let new_index: u64 = headers
        .iter()
        .find(|(k, _)| k == "x-rarangi-index")
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert!(new_index > index);
    assert_eq!(config_of(&serde_json::from_str(&body).unwrap()), json!("v1"));

    let mut events = Vec::new();
    let deadline = Deadline::default();
    while !events
        .iter()
        .any(|l: &String| l.contains("\"path\":\"/app/watched\""))
    {
        let mut l = String::new();
        tokio::time::timeout(deadline.remaining(), sse.read_line(&mut l))
            .await
            .expect("an SSE event")
            .unwrap();
        events.push(l);
    }
    assert!(events.iter().any(|l| l.contains("event: created")), "{events:?}");

    // A query whose index is already behind answers at once.
    let (s, _, _) = http(
        &a.http,
        "GET",
        &format!("/app/watched?index={index}&wait=20s"),
        None,
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_store_nothing() {
    let a = cat("development", "c1", &[]);
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("PUT", "/app/x", b"{not json".to_vec(), 400),
        ("PUT", "/app/x", b"[1,2]".to_vec(), 400),
        ("PUT", "/app/x", br#"{"no":"config"}"#.to_vec(), 400),
        ("PUT", "/app/x", vec![b' '; (2 << 20) + 1], 413),
        ("PUT", "/app/a%20b", br#"{"config":1}"#.to_vec(), 400),
        ("PUT", "/srv/web/node1", br#"{"ttl":5}"#.to_vec(), 400),
        (
            "PUT",
            "/srv/web/node1",
            br#"{"endpoints":[],"ttl":-1}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/app/x/web-hooks",
            br#"{"name":"h","endpoint":"ftp://x"}"#.to_vec(),
            400,
        ),
        ("POST", "/app/x", br#"{"config":1}"#.to_vec(), 405),
        ("GET", "/nothing/here", vec![], 404),
        ("DELETE", "/app/never", vec![], 404),
    ];
    for (method, path, body, want) in cases {
        let (status, _, text) = http(&a.http, method, path, Some(&body)).await;
        assert_eq!(status, want, "{method} {path}: {text}");
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text:?}"));
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    }
    assert_eq!(get_json(&a.http, "/app").await, (200, json!([])));
    assert_eq!(get_json(&a.http, "/srv").await, (200, json!([])));
    assert_eq!(put(&a.http, "/app/ok", json!({"config": true})).await, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_line_protocol_instances_are_one_catalogue() {
    let a = cat("development", "c1", &[]);
    let b = cat("development", "c1", &[&a.addr]);
    let _line = register(
        &a.opts(),
        "tcp://10.0.0.1:8080/web",
        [("zone", "a")].into_iter().collect(),
    )
    .await
    .unwrap();
    let watcher = watch(&a, "/web$").await;
    let body = json!({
        "endpoints": {"http": "http://10.0.0.2:80"},
        "master": true,
        "ttl": 2,
        "attrs": {"weight": "5"},
    });
    assert_eq!(put(&b.http, "/srv/web/node1", body).await, 201);
    // Line-protocol clients get an address they can connect to.
    eventually("a line subscriber sees the HTTP instance", || {
        watcher.uris().contains("http://10.0.0.2:80/web")
    })
    .await;
    let v = eventually_json(&a.http, "/srv/web", "both kinds", |_, v| {
        v.as_object().is_some_and(|o| o.len() == 2)
    })
    .await;
    // One model for both kinds (docs/MODEL.md).
    let node1 = &v["node1"];
    assert_eq!(node1["id"], json!("node1"), "{v}");
    assert_eq!(node1["name"], json!("web"), "{v}");
    assert_eq!(node1["address"], json!("10.0.0.2"), "{v}");
    assert_eq!(node1["port"], json!(80), "{v}");
    assert_eq!(node1["master"], json!(true), "{v}");
    assert_eq!(node1["attrs"], json!({"weight": "5"}), "{v}");
    assert_eq!(node1["endpoints"], json!({"http": "http://10.0.0.2:80"}), "{v}");
    assert_eq!(node1["catalogue"], json!(format!("x-tvnetcs://{}/", b.addr)), "{v}");
    assert_eq!(node1["health"], json!("passing"), "{v}");
    let line = &v["10.0.0.1:8080"];
    assert_eq!(line["service"], json!("tcp://10.0.0.1:8080/web"), "{v}");
    assert_eq!(line["address"], json!("10.0.0.1"), "{v}");
    assert_eq!(line["port"], json!(8080), "{v}");
    assert_eq!(line["master"], json!(false), "{v}");
    assert_eq!(line["attrs"], json!({"zone": "a"}), "{v}");
    assert_eq!(line["endpoints"], json!({"tcp": "tcp://10.0.0.1:8080/web"}), "{v}");
    assert!(line["updated_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
    for k in [&v["node1"], &v["10.0.0.1:8080"]] {
        let keys: BTreeSet<&str> = k.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "name", "id", "service", "address", "port", "catalogue", "cluster", "attrs",
                "endpoints", "master", "updated_at", "health"
            ]),
            "{v}"
        );
    }
    // Nesoi's master rule.
    let (s, m) = get_json(&a.http, "/srv/web?master").await;
    assert_eq!((s, &m["id"]), (200, &json!("node1")), "{m}");
    let (s, one) = get_json(&a.http, "/srv/web/node1").await;
    assert_eq!((s, &one["address"]), (200, &json!("10.0.0.2")), "{one}");
    let (s, headers, _) = http(&a.http, "HEAD", "/srv/web", None).await;
    assert_eq!(s, 200);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "link" && v.contains("/srv/web/web-hooks")));
    // Not refreshed: the TTL lapses and it goes everywhere.
    eventually("the TTL removes it", || {
        !watcher.uris().contains("http://10.0.0.2:80/web")
    })
    .await;
    eventually_json(&b.http, "/srv/web", "only the line instance", |_, v| {
        v.as_object().is_some_and(|o| o.len() == 1)
    })
    .await;
    assert_eq!(get_json(&a.http, "/srv/web?master").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_instance_is_one_id_whatever_its_endpoints() {
    let a = cat("development", "c1", &[]);
    let watcher = watch(&a, "/api$").await;
    let first = json!({"endpoints": ["10.0.0.7:9000"], "ttl": 60});
    assert_eq!(put(&a.http, "/srv/api/h1", first).await, 201);
    eventually("the first endpoint", || watcher.uris().contains("tcp://10.0.0.7:9000/api")).await;
    // The same id moves: one instance, at its new address.
    let moved = json!({"endpoints": {"grpc": "10.0.0.8:9001"}, "ttl": 60});
    assert_eq!(put(&a.http, "/srv/api/h1", moved).await, 200);
    eventually("only the new endpoint", || {
        watcher.uris() == BTreeSet::from(["grpc://10.0.0.8:9001/api".to_owned()])
    })
    .await;
    // No endpoint with a port: still listed, by its id.
    let bare = json!({"endpoints": {"note": "none"}, "ttl": 60});
    assert_eq!(put(&a.http, "/srv/api/h2", bare).await, 201);
    let v = eventually_json(&a.http, "/srv/api", "two", |_, v| {
        v.as_object().is_some_and(|o| o.len() == 2)
    })
    .await;
    assert_eq!(v["h2"]["address"], json!("h2"), "{v}");
    assert_eq!(v["h2"]["port"], Value::Null, "{v}");
    let internal = json!({"endpoints": [], "attrs": {"id": "x"}});
    assert_eq!(put(&a.http, "/srv/api/h3", internal).await, 400);
    let (s, _, _) = http(&a.http, "DELETE", "/srv/api/h1", None).await;
    assert_eq!(s, 204);
    eventually("deleted by id", || !watcher.uris().iter().any(|u| u.contains("10.0.0.8"))).await;
}

/// Every route in docs/openapi.yaml is served, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_describes_exactly_the_served_routes() {
    let yaml =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml")).unwrap();
    let mut documented = BTreeSet::new();
    let mut in_paths = false;
    let mut path = String::new();
    for line in yaml.lines() {
        if line == "paths:" {
            in_paths = true;
            continue;
        }
        if in_paths && !line.starts_with(' ') && !line.is_empty() {
            break;
        }
        if let Some(p) = line.strip_prefix("  /") {
            path = format!("/{}", p.trim_end_matches(':'));
        } else if let Some(m) = line.strip_prefix("    ").and_then(|l| l.strip_suffix(':')) {
            if ["get", "put", "post", "delete", "head"].contains(&m) {
                documented.insert((m.to_owned(), path.clone()));
            }
        }
    }
    let served: BTreeSet<(String, String)> = rarangi_server::http::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, served);

    // And the server really answers each of them (not 404 "no such
    // resource" or 405).
    let a = cat("development", "c1", &[]);
    for (method, p) in &served {
        let path = p
            .replace("{name}", "x")
            .replace("{hook}", "h")
            .replace("{host}", "n1");
        if path == "/v1/events" {
            continue; // a stream that never ends; covered by the SSE test
        }
        let (status, _, body) = http(&a.http, &method.to_uppercase(), &path, Some(b"{}")).await;
        assert!(
            status != 405 && !body.contains("no such resource"),
            "{method} {path}: {status} {body}"
        );
    }
}
