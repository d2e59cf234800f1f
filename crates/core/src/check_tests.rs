use super::*;

fn attrs(s: &str) -> Attrs {
    Attrs::parse(s).unwrap()
}

fn svc(s: &str) -> ServiceUri {
    ServiceUri::parse(s).unwrap()
}

#[test]
fn no_check_attribute_is_no_check() {
    let s = svc("tcp://10.0.0.1:80/orders");
    assert_eq!(parse_check(&s, &attrs("zone=a")), Ok(None));
    assert_eq!(
        parse_check(&s, &attrs("check-fails=2")),
        Err(CheckError::Orphan("check-fails"))
    );
}

#[test]
fn tcp_checks_use_the_service_address_and_the_defaults() {
    let c = parse_check(&svc("tcp://10.0.0.1:8080/orders"), &attrs("check=tcp"))
        .unwrap()
        .unwrap();
    assert_eq!(
        c,
        Check {
            kind: CheckKind::Tcp("10.0.0.1:8080".into()),
            interval_ms: 1000,
            timeout_ms: 500,
            fails: 3,
            passes: 2,
        }
    );
    let other = parse_check(
        &svc("nesoi://web1/orders"),
        &attrs("check=tcp%3A%2F%2F127.0.0.1%3A81"),
    )
    .unwrap()
    .unwrap();
    assert_eq!(other.kind, CheckKind::Tcp("127.0.0.1:81".into()));
    for bad in [
        "tcp%3A%2F%2Fh",
        "tcp%3A%2F%2Fh%3A0",
        "tcp%3A%2F%2Fu%40h%3A1",
        "tcp%3A%2F%2Fh%3A1%2Fx",
    ] {
        let e = parse_check(&svc("tcp://h:1/x"), &attrs(&format!("check={bad}"))).unwrap_err();
        assert!(e.to_string().contains("tcp://HOST:PORT"), "{bad}: {e}");
    }
    let v6 = parse_check(&svc("tcp://[::1]:9/x"), &attrs("check=TCP"))
        .unwrap()
        .unwrap();
    assert_eq!(v6.kind, CheckKind::Tcp("[::1]:9".into()));
    for no_port in ["tcp://host/x", "tcp://host:0/x", "tcp://[::1]/x"] {
        let Ok(s) = ServiceUri::parse(no_port) else {
            continue;
        };
        assert_eq!(
            parse_check(&s, &attrs("check=tcp")),
            Err(CheckError::NoPort),
            "{no_port}"
        );
    }
}

#[test]
fn http_checks_and_tuning() {
    let s = svc("tcp://h:1/x");
    let a = attrs("check=http%3A%2F%2F127.0.0.1%3A9%2Fhealth&check-interval=200ms&check-timeout=100ms&check-fails=1&check-passes=100");
    let c = parse_check(&s, &a).unwrap().unwrap();
    assert_eq!(c.kind, CheckKind::Http("http://127.0.0.1:9/health".into()));
    assert_eq!(
        (c.interval_ms, c.timeout_ms, c.fails, c.passes),
        (200, 100, 1, 100)
    );
    // A short interval without a timeout gets half of it.
    let c = parse_check(&s, &attrs("check=tcp&check-interval=100ms"))
        .unwrap()
        .unwrap();
    assert_eq!(c.timeout_ms, 50);
}

#[test]
fn bad_check_attributes_are_refused_with_the_reason() {
    let s = svc("tcp://h:1/x");
    let refused = [
        ("check=udp", "check=tcp, check=tcp://HOST:PORT or check=http"),
        ("check=https%3A%2F%2Fh%2F", "or check=http://"),
        ("check=http%3A%2F%2F%2Fpath", "needs a host"),
        ("check=http%3A%2F%2Fu%40h%2F", "user information"),
        ("check=http%3A%2F%2Fh%2Fa%20b", "spaces"),
        ("check=tcp&check-interval=99ms", "100ms to 1h"),
        ("check=tcp&check-interval=2h", "100ms to 1h"),
        ("check=tcp&check-interval=1", "e.g. 500ms"),
        ("check=tcp&check-interval=99999999999999999999s", "e.g. 500ms"),
        (
            "check=tcp&check-interval=1s&check-timeout=1s",
            "shorter than the interval",
        ),
        ("check=tcp&check-timeout=0ms", "positive"),
        ("check=tcp&check-fails=0", "1 to 100"),
        ("check=tcp&check-passes=101", "1 to 100"),
        ("check=tcp&check-passes=-1", "1 to 100"),
    ];
    for (a, why) in refused {
        let e = parse_check(&s, &attrs(a)).unwrap_err();
        assert!(e.to_string().contains(why), "{a}: {e}");
    }
    let long = format!("check=http://h/{}", "a".repeat(3000));
    let mut a = Attrs::default();
    let (k, v) = long.split_once('=').unwrap();
    a.0.insert(k.into(), v.into());
    assert!(parse_check(&s, &a).unwrap_err().to_string().contains("2048"));
}

#[test]
fn durations_need_a_unit_and_never_overflow() {
    assert_eq!(parse_duration_ms("500ms"), Some(500));
    assert_eq!(parse_duration_ms("2s"), Some(2000));
    assert_eq!(parse_duration_ms("2m"), Some(120_000));
    assert_eq!(parse_duration_ms("1h"), Some(3_600_000));
    for bad in ["", "s", "1", "1.5s", "1 s", "-1s", "1d", "999999999999999h"] {
        assert_eq!(parse_duration_ms(bad), None, "{bad}");
    }
}
