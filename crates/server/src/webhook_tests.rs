//! Tests of endpoint checks and the address rule of webhook delivery.

use super::*;

#[test]
fn endpoints_are_uris_without_tricks() {
    let ok = Endpoint::parse("http://127.0.0.1:9/x/y?z=1").unwrap();
    assert_eq!((ok.host.as_str(), ok.port, ok.https), ("127.0.0.1", 9, false));
    assert_eq!(ok.uri.path_and_query().unwrap().as_str(), "/x/y?z=1");
    let s = Endpoint::parse("https://hooks.example.com/in").unwrap();
    assert_eq!(
        (s.host.as_str(), s.port, s.https),
        ("hooks.example.com", 443, true)
    );
    assert_eq!(Endpoint::parse("http://h").unwrap().port, 80);
    assert_eq!(Endpoint::parse("http://[::1]:8080/").unwrap().host, "::1");
    let refused = |s: &str| Endpoint::parse(s).unwrap_err();
    assert!(matches!(
        refused("http://127.0.0.1:9/x\r\nX-Evil: 1"),
        EndpointError::NotUri(_)
    ));
    assert!(matches!(
        refused("http://127.0.0.1:9/x\nX-Evil: 1"),
        EndpointError::NotUri(_)
    ));
    assert!(matches!(refused("http://h/a b"), EndpointError::NotUri(_)));
    assert!(matches!(refused("ftp://h/"), EndpointError::Scheme));
    assert!(matches!(refused("/relative"), EndpointError::Scheme));
    assert!(matches!(refused("http://user:pw@h/"), EndpointError::UserInfo));
    assert!(matches!(refused("http://@h/"), EndpointError::UserInfo));
}

#[test]
fn where_hooks_may_go() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(Allow::Any.permits(ip("127.0.0.1")));
    let public = Allow::NotLocal;
    for local in [
        "127.0.0.1",
        "::1",
        "0.0.0.0",
        "169.254.169.254",
        "fe80::1",
        "::ffff:127.0.0.1",
    ] {
        assert!(!public.permits(ip(local)), "{local}");
    }
    assert!(public.permits(ip("10.0.0.1")) && public.permits(ip("2001:db8::1")));
    let nets = Allow::Nets(vec!["10.0.0.0/8".parse().unwrap()]);
    assert!(nets.permits(ip("10.1.2.3")) && nets.permits(ip("::ffff:10.1.2.3")));
    assert!(!nets.permits(ip("127.0.0.1")) && !nets.permits(ip("11.0.0.1")));
}

#[tokio::test]
async fn a_refused_address_is_never_contacted() {
    // A listener that would accept: the rule must stop the POST before it.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hooks = Webhooks {
        allow: Allow::Nets(vec!["10.0.0.0/8".parse().unwrap()]),
        extra_roots: Arc::default(),
        tls: Arc::default(),
        failing: Arc::default(),
    };
    let ep = Endpoint::parse(&format!("http://{addr}/")).unwrap();
    let e = hooks.deliver(&ep, "{}").await.unwrap_err();
    assert!(matches!(e, DeliveryError::NotAllowed { .. }), "{e}");
    assert!(!hooks.post(&format!("http://{addr}/"), "{}").await);
    assert!(!hooks.post("http://127.0.0.1:9/x\r\nX-Evil: 1", "{}").await);
    // Each failure counted against its endpoint (what the log rate uses).
    assert_eq!(
        hooks.failing.lock().unwrap().get(&format!("http://{addr}/")),
        Some(&1)
    );
}

#[test]
fn repeated_failures_are_logged_at_a_decaying_rate() {
    let logged: Vec<u64> = (1..=100).filter(|&n| worth_logging(n)).collect();
    assert_eq!(logged, [1, 2, 4, 8, 16, 32, 64]);
}
