use super::*;
use axum::http::StatusCode;

#[test]
fn go_durations_as_consul_reads_wait() {
    assert_eq!(go_duration("10s"), Some(Duration::from_secs(10)));
    assert_eq!(go_duration("5m"), Some(Duration::from_secs(300)));
    assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(go_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(go_duration("0"), Some(Duration::ZERO));
    for bad in ["", "10", "s", "10x", "-1s", "1e9h", "99999999h", "1..5s"] {
        assert_eq!(go_duration(bad), None, "{bad:?}");
    }
    assert_eq!(go_duration(&"1".repeat(100)), None);
}

#[test]
fn params_parse_like_consul() {
    let p = Params::parse(Some(
        "index=42&wait=20m&tag=a%3Db&tag=c+d&dc=east&passing&stale&ns=x&near=_agent",
    ))
    .unwrap();
    assert_eq!(p.index, Some(42));
    assert_eq!(p.wait, Some(MAX_WAIT), "a longer wait is clamped, as in Consul");
    assert_eq!(p.tags, vec!["a=b".to_owned(), "c d".to_owned()]);
    assert_eq!(p.dc.as_deref(), Some("east"));
    assert!(p.passing);
    assert_eq!(Params::parse(None).unwrap(), Params::default());
    assert_eq!(
        Params::parse(Some("index=x")).unwrap_err().0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        Params::parse(Some("index=-1")).unwrap_err().0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        Params::parse(Some("wait=soon")).unwrap_err().0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        Params::parse(Some("tag=%zz")).unwrap_err().0,
        StatusCode::BAD_REQUEST
    );
    assert!(Params::parse(Some(&"a".repeat(MAX_QUERY + 1))).is_err());
}

#[test]
fn node_ids_are_stable_uuids() {
    let c = CatalogueUri::from_addr("127.0.0.1:4760").unwrap();
    let id = node_id(&c);
    assert_eq!(id, node_id(&c));
    assert_eq!(id.len(), 36);
    assert_eq!(id.matches('-').count(), 4);
    assert_ne!(id, node_id(&CatalogueUri::from_addr("127.0.0.1:4761").unwrap()));
    assert_eq!(catalogue_host(&c), "127.0.0.1");
    assert_eq!(tag("k", ""), "k");
    assert_eq!(tag("k", "v=w"), "k=v=w");
}
