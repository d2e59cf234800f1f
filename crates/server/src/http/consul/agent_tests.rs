use super::*;

fn reg(body: Value) -> Result<(String, Reg), ApiError> {
    registration("10.9.9.9", body.as_object().unwrap())
}

#[test]
fn a_registration_becomes_an_instance_whose_tags_come_back() {
    let (id, r) = reg(json!({
        "Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Port": 8080,
        "Tags": ["primary", "traefik.http.routers.web.rule=Host(`a`)"],
        "Meta": {"version": "2"},
        "Weights": {"Passing": 5, "Warning": 1},
        "Check": {"TTL": "15s"},
    }))
    .unwrap();
    assert_eq!(id, "web-1");
    assert_eq!(r.service.as_str(), "tcp://10.0.0.1:8080/web/web-1");
    assert_eq!(r.ttl_ms, 15_000);
    assert_eq!(r.ttl_checks, vec!["service:web-1".to_owned()]);
    assert_eq!(r.attrs.get("id"), Some("web-1"));
    let tags: Vec<String> = instance::user_attrs(&r.attrs).map(|(k, v)| tag(k, v)).collect();
    for t in [
        "primary",
        "traefik.http.routers.web.rule=Host(`a`)",
        "version=2",
        "weight=5",
    ] {
        assert!(tags.contains(&t.to_owned()), "{t} in {tags:?}");
    }
}

#[test]
fn defaults_and_checks() {
    let (id, r) = reg(json!({"name": "db"})).unwrap();
    assert_eq!(id, "db");
    assert_eq!(
        r.service.as_str(),
        "tcp://10.9.9.9/db/db",
        "the node's address, no port"
    );
    assert_eq!(r.ttl_ms, rarangi_core::MAX_LEASE_MS, "no TTL: the longest lease");
    let (_, r) = reg(json!({
        "Name": "db", "Address": "fd00::1", "Port": 5432,
        "Checks": [
            {"HTTP": "http://[fd00::1]:5432/health", "Interval": "10s", "Timeout": "1s"},
            {"CheckID": "db-ttl", "TTL": "30s", "DeregisterCriticalServiceAfter": "1m"},
            {"TCP": "[fd00::1]:5432", "Interval": "5s"},
        ],
    }))
    .unwrap();
    assert_eq!(r.service.as_str(), "tcp://[fd00::1]:5432/db/db");
    assert_eq!(r.attrs.get("check"), Some("http://[fd00::1]:5432/health"));
    assert_eq!(r.attrs.get("check-interval"), Some("10000ms"));
    assert_eq!(r.attrs.get("check-timeout"), Some("1000ms"));
    assert_eq!(r.ttl_checks, vec!["db-ttl".to_owned()]);
    assert_eq!(r.ttl_ms, 30_000);
    let (_, r) = reg(json!({"Name": "db", "Check": {"TCP": "x:1", "Interval": "2s"}})).unwrap();
    assert_eq!(r.attrs.get("check"), Some("tcp"));
    assert_eq!(r.attrs.get("check-interval"), Some("2000ms"));
}

#[test]
fn bad_registrations_are_refused() {
    for body in [
        json!({}),
        json!({"Name": "a/b"}),
        json!({"Name": "web", "ID": "a b"}),
        json!({"Name": "web", "ID": "a@b"}),
        json!({"Name": "web", "Address": "h/x"}),
        json!({"Name": "web", "Address": "u@h"}),
        json!({"Name": "web", "Port": 70000}),
        json!({"Name": "web", "Port": "80"}),
        json!({"Name": "web", "Tags": "a"}),
        json!({"Name": "web", "Tags": [1]}),
        json!({"Name": "web", "Tags": ["id=x"]}),
        json!({"Name": "web", "Tags": ["=x"]}),
        json!({"Name": "web", "Tags": ["a=1", "a=2"]}),
        json!({"Name": "web", "Tags": ["a=1"], "Meta": {"a": "2"}}),
        json!({"Name": "web", "Meta": {"a": 1}}),
        json!({"Name": "web", "Check": {"TTL": "soon"}}),
        json!({"Name": "web", "Check": {"TTL": "25h"}}),
        json!({"Name": "web", "Checks": {}}),
        json!({"Name": "web", "Weights": {"Passing": 0}}),
    ] {
        assert!(reg(body.clone()).is_err(), "{body}");
    }
    // The same value twice is one attribute.
    assert!(reg(json!({"Name": "web", "Tags": ["a=1"], "Meta": {"a": "1"}})).is_ok());
}

#[test]
fn the_registry_is_bounded() {
    let r = Registry::default();
    let one = reg(json!({"Name": "web"})).unwrap().1;
    for i in 0..MAX_REGS {
        r.put(&format!("w{i}"), one.clone()).unwrap();
    }
    assert_eq!(
        r.put("one-more", one.clone()).unwrap_err().0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    r.put("w0", one.clone()).unwrap();
    assert!(r.remove("w1").is_some());
    r.put("one-more", one).unwrap();
    assert_eq!(r.by_check("service:web").map(|(id, _)| id), None);
}
