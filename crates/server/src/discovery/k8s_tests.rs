//! EndpointSlice → addresses, and the watcher events → the published set.

use super::*;

/// A slice as the API server sends it (JSON), so the test also checks
/// that k8s-openapi reads the fields the function uses.
fn slice(name: &str, kind: &str, endpoints: serde_json::Value, ports: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "rarangi"}},
        "addressType": kind,
        "endpoints": endpoints,
        "ports": ports,
    }))
    .expect("a valid EndpointSlice")
}

fn addrs(list: &[&str]) -> BTreeSet<SocketAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

fn three_endpoints() -> serde_json::Value {
    serde_json::json!([
        {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
        {"addresses": ["10.0.0.2", "10.0.0.99"], "conditions": {"ready": false}},
        {"addresses": ["10.0.0.3"]},
        {"addresses": ["not-an-ip"]},
    ])
}

#[test]
fn ready_and_not_ready_endpoints_on_the_port_chosen_by_number() {
    let s = slice(
        "a",
        "IPv4",
        three_endpoints(),
        serde_json::json!([{"name": "line", "port": 5000}]),
    );
    assert_eq!(
        slice_addresses(&s, &K8sPort::Number(4790)),
        addrs(&["10.0.0.1:4790", "10.0.0.2:4790", "10.0.0.3:4790"]),
        "a number is used whatever the slice lists; only an endpoint's first address"
    );
}

#[test]
fn the_port_chosen_by_name_must_be_a_tcp_port_of_the_slice() {
    let ports = serde_json::json!([
        {"name": "line", "port": 4791, "protocol": "UDP"},
        {"name": "http", "port": 4792},
        {"name": "line", "port": 4790, "protocol": "TCP"},
    ]);
    let s = slice("a", "IPv4", three_endpoints(), ports);
    assert_eq!(
        slice_addresses(&s, &K8sPort::Name("line".into())),
        addrs(&["10.0.0.1:4790", "10.0.0.2:4790", "10.0.0.3:4790"])
    );
    assert!(slice_addresses(&s, &K8sPort::Name("dns".into())).is_empty());
    let unnamed = slice(
        "b",
        "IPv4",
        three_endpoints(),
        serde_json::json!([{"port": 7000}]),
    );
    assert_eq!(slice_addresses(&unnamed, &K8sPort::Name(String::new())).len(), 3);
    let no_ports = slice("c", "IPv4", three_endpoints(), serde_json::Value::Null);
    assert!(slice_addresses(&no_ports, &K8sPort::Name("line".into())).is_empty());
}

#[test]
fn ipv6_slices_count_and_fqdn_slices_do_not() {
    let v6 = slice(
        "a",
        "IPv6",
        serde_json::json!([{"addresses": ["fd00::1"]}]),
        serde_json::json!([]),
    );
    assert_eq!(
        slice_addresses(&v6, &K8sPort::Number(4790)),
        addrs(&["[fd00::1]:4790"])
    );
    let fqdn = slice(
        "b",
        "FQDN",
        serde_json::json!([{"addresses": ["db.example.com"]}]),
        serde_json::json!([]),
    );
    assert!(slice_addresses(&fqdn, &K8sPort::Number(4790)).is_empty());
}

#[test]
fn events_replace_slices_and_a_relist_publishes_only_when_complete() {
    let port = K8sPort::Number(1);
    let one = |name: &str, ip: &str| {
        slice(
            name,
            "IPv4",
            serde_json::json!([{"addresses": [ip]}]),
            serde_json::json!([]),
        )
    };
    let mut s = Slices::default();
    assert!(!s.apply(Event::Init, &port));
    assert!(!s.apply(Event::InitApply(one("a", "10.0.0.1")), &port));
    assert!(s.union().is_empty(), "nothing before the list is complete");
    assert!(s.apply(Event::InitDone, &port));
    assert_eq!(s.union(), addrs(&["10.0.0.1:1"]));
    assert!(s.apply(Event::Apply(one("b", "10.0.0.2")), &port));
    assert!(s.apply(Event::Apply(one("a", "10.0.0.3")), &port));
    assert_eq!(
        s.union(),
        addrs(&["10.0.0.2:1", "10.0.0.3:1"]),
        "a modified slice replaces its addresses"
    );
    assert!(s.apply(Event::Delete(one("b", "10.0.0.2")), &port));
    assert!(!s.apply(Event::Delete(one("zz", "10.0.0.9")), &port));
    // A relist (after 410 Gone): the old set stands until it completes,
    // then slices it did not list are gone.
    assert!(!s.apply(Event::Init, &port));
    assert!(!s.apply(Event::InitApply(one("c", "10.0.0.4")), &port));
    assert_eq!(s.union(), addrs(&["10.0.0.3:1"]));
    assert!(s.apply(Event::InitDone, &port));
    assert_eq!(s.union(), addrs(&["10.0.0.4:1"]));
}

#[test]
fn the_published_set_is_bounded() {
    let port = K8sPort::Number(1);
    let mut s = Slices::default();
    for i in 0..3u32 {
        let endpoints: Vec<_> = (0..2000u32)
            .map(|j| serde_json::json!({"addresses": [std::net::Ipv4Addr::from(i << 16 | j).to_string()]}))
            .collect();
        let sl = slice(
            &format!("s{i}"),
            "IPv4",
            serde_json::Value::from(endpoints),
            serde_json::json!([]),
        );
        s.apply(Event::Apply(sl), &port);
    }
    assert_eq!(s.union().len(), MAX_ADDRESSES);
}
