//! Tests of settings: defaults, every file key, precedence.

use std::error::Error as _;

use clap::Parser;

use super::*;

fn user() -> UserDirs {
    UserDirs {
        euid: 1000,
        runtime_dir: Some("/run/user/1000".into()),
        state_home: None,
        home: Some("/home/u".into()),
        temp_dir: "/tmp".into(),
    }
}

fn chain(e: &ConfigError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

fn file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rarangi-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn defaults_follow_the_well_known_ports_and_the_user() {
    let s = ServeArgs::default().resolve_for(&user()).unwrap();
    assert_eq!(s.env, "development");
    assert_eq!(s.listen.port(), 4790);
    assert!(s.uri.as_str().ends_with(":4790/"));
    assert_eq!(
        s.data_dir,
        PathBuf::from("/home/u/.local/state/rarangi/development-a")
    );
    assert_eq!(s.unix, PathBuf::from("/run/user/1000/rarangi/development-a.sock"));
    assert_eq!(s.heartbeat, Duration::from_millis(DEFAULT_HEARTBEAT_MS));
    assert_eq!(s.http.map(|a| a.port()), Some(4792));
    let root = UserDirs { euid: 0, ..user() };
    let b = ServeArgs {
        env: Some("production".into()),
        side: Some(SideArg::B),
        ..ServeArgs::default()
    }
    .resolve_for(&root)
    .unwrap();
    assert_eq!(b.listen.port(), 4761);
    assert_eq!(b.data_dir, PathBuf::from("/var/lib/rarangi/production-b"));
    assert_eq!(b.unix, PathBuf::from("/run/rarangi/production-b.sock"));
}

#[test]
fn bad_settings_say_what_to_do() {
    let e = ServeArgs {
        env: Some("qa".into()),
        ..ServeArgs::default()
    }
    .resolve_for(&user())
    .unwrap_err();
    assert!(chain(&e).contains("--listen"), "{e}");
    let e = ServeArgs {
        allow_register: vec!["nope".into()],
        ..ServeArgs::default()
    }
    .resolve_for(&user())
    .unwrap_err();
    assert!(chain(&e).contains("CIDR"), "{e}");
    let e = ServeArgs {
        cluster: Some("Not Valid".into()),
        ..ServeArgs::default()
    }
    .resolve_for(&user())
    .unwrap_err();
    assert!(matches!(e, ConfigError::Name(_)), "{e}");
}

#[test]
fn every_file_key_applies_under_flags() {
    let path = file(
        "all.toml",
        r#"
env = "staging"
side = "b"
cluster = "eu"
listen = "127.0.0.1:4771"
advertise = "127.0.0.1:5000"
unix = "/tmp/x.sock"
peers = ["127.0.0.1:4770"]
data-dir = "/tmp/data"
heartbeat-ms = 200
dead-after-ms = 900
log-format = "json"
allow-register = ["10.0.0.0/8"]
max-line = 2048
tombstone-ms = 5000
reap-after = "30m"
http = "127.0.0.1:4773"
http-body-limit = 4096
client-queue = 7
client-queue-bytes = 100000
peer-queue-bytes = 20000000
max-connections = 300
max-connections-per-ip = 0
handshake-timeout-ms = 1500
http-header-timeout-ms = 2500
memory-limit = "1GiB"
"#,
    );
    let s = ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    }
    .resolve_for(&user())
    .unwrap();
    assert_eq!(
        (s.env.as_str(), s.side, s.cluster.as_str()),
        ("staging", Side::B, "eu")
    );
    assert_eq!(s.listen.to_string(), "127.0.0.1:4771");
    assert_eq!(s.uri.as_str(), "x-tvnetcs://127.0.0.1:5000/");
    assert_eq!(s.unix, PathBuf::from("/tmp/x.sock"));
    assert_eq!(s.peers, ["127.0.0.1:4770"]);
    assert_eq!(s.data_dir, PathBuf::from("/tmp/data"));
    assert_eq!(
        (s.heartbeat, s.dead_after),
        (Duration::from_millis(200), Duration::from_millis(900))
    );
    assert_eq!(s.log_format, LogFormat::Json);
    assert_eq!(s.allow_register, vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]);
    assert_eq!((s.max_line, s.tombstone_ms), (2048, 5000));
    assert_eq!(s.reap_after, Duration::from_secs(1800));
    assert_eq!(s.http.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:4773"));
    assert_eq!((s.http_body_limit, s.client_queue), (4096, 7));
    assert_eq!((s.client_queue_bytes, s.peer_queue_bytes), (100_000, 20_000_000));
    assert_eq!((s.max_connections, s.max_connections_per_ip), (Some(300), None));
    assert_eq!(
        (s.handshake_timeout, s.http_header_timeout),
        (Duration::from_millis(1500), Duration::from_millis(2500))
    );
    assert_eq!(s.memory_limit, MemoryLimit::Bytes(1 << 30));

    // A flag wins over the file.
    let s = ServeArgs {
        config: Some(path),
        cluster: Some("us".into()),
        peers: vec!["127.0.0.1:1".into()],
        ..ServeArgs::default()
    }
    .resolve_for(&user())
    .unwrap();
    assert_eq!((s.cluster.as_str(), s.peers[0].as_str()), ("us", "127.0.0.1:1"));

    // `peer`, the flag's name, names the same setting.
    let old = file("peer.toml", "peer = [\"127.0.0.1:4779\"]\nhttp = \"off\"\n");
    let s = ServeArgs {
        config: Some(old),
        ..ServeArgs::default()
    }
    .resolve_for(&user())
    .unwrap();
    assert_eq!((s.peers, s.http), (vec!["127.0.0.1:4779".to_owned()], None));

    let bogus = file("bogus.toml", "bogus = 1\n");
    let e = ServeArgs {
        config: Some(bogus),
        ..ServeArgs::default()
    }
    .resolve_for(&user())
    .unwrap_err();
    assert!(chain(&e).contains("bogus"), "{}", chain(&e));
}

#[derive(Parser)]
struct Cmd {
    #[command(flatten)]
    args: ServeArgs,
}

/// The only test that sets RARANGI_* variables (the others build
/// `ServeArgs` directly), so no other test sees them.
#[test]
fn flags_win_over_variables_which_win_over_the_file() {
    let path = file(
        "prec.toml",
        "cluster = \"file\"\nenv = \"staging\"\nheartbeat-ms = 300\n",
    );
    std::env::set_var("RARANGI_CLUSTER", "variable");
    std::env::set_var("RARANGI_PEERS", "127.0.0.1:1,127.0.0.1:2");
    let parse = |flags: &[&str]| {
        let mut argv = vec!["serve", "--config", path.to_str().unwrap()];
        argv.extend_from_slice(flags);
        Cmd::try_parse_from(argv)
            .unwrap()
            .args
            .resolve_for(&user())
            .unwrap()
    };
    let by_var = parse(&[]);
    let by_flag = parse(&["--cluster", "flag", "--peer", "127.0.0.1:3"]);
    std::env::remove_var("RARANGI_CLUSTER");
    std::env::remove_var("RARANGI_PEERS");
    assert_eq!(by_var.cluster, "variable");
    assert_eq!(by_var.peers, ["127.0.0.1:1", "127.0.0.1:2"]);
    assert_eq!(
        (by_var.env.as_str(), by_var.heartbeat),
        ("staging", Duration::from_millis(300))
    );
    assert_eq!(by_flag.cluster, "flag");
    assert_eq!(by_flag.peers, ["127.0.0.1:3"]);
}

#[test]
fn memory_limits_are_shares_sizes_or_off() {
    let parse = |s: &str| s.parse::<MemoryLimit>().ok();
    assert_eq!(parse("80%"), Some(MemoryLimit::Share(80)));
    assert_eq!(parse("off"), Some(MemoryLimit::Off));
    assert_eq!(parse("512MiB"), Some(MemoryLimit::Bytes(512 << 20)));
    assert_eq!(parse("2G"), Some(MemoryLimit::Bytes(2 << 30)));
    assert_eq!(parse("4096"), Some(MemoryLimit::Bytes(4096)));
    for bad in ["0%", "101%", "lots", "0", "12 parsecs", ""] {
        assert_eq!(parse(bad), None, "{bad}");
    }
    let s = ServeArgs::default().resolve_for(&user()).unwrap();
    assert_eq!(s.memory_limit, MemoryLimit::Share(80));
    assert_eq!(s.max_connections_per_ip, Some(DEFAULT_MAX_CONNECTIONS_PER_IP));
}

#[test]
fn tls_needs_all_three_files_and_peer_allow_takes_cidrs() {
    let e = ServeArgs {
        tls_ca: Some("ca.pem".into()),
        ..ServeArgs::default()
    }
    .resolve_for(&user())
    .unwrap_err();
    assert!(chain(&e).contains("--tls-key"), "{e}");
    let path = file(
        "tls.toml",
        "tls-ca = \"ca.pem\"\ntls-cert = \"c.pem\"\ntls-key = \"k.pem\"\npeer-allow = [\"10.0.0.0/8\"]\nregister-uid = [0]\n",
    );
    let s = ServeArgs {
        config: Some(path),
        ..ServeArgs::default()
    }
    .resolve_for(&user())
    .unwrap();
    let tls = s.tls.expect("TLS on");
    assert_eq!(tls.key, PathBuf::from("k.pem"));
    assert_eq!(s.peer_allow, vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]);
    assert_eq!(s.register_uid, vec![0]);
    let e = ServeArgs {
        peer_allow: vec!["nope".into()],
        ..ServeArgs::default()
    }
    .resolve_for(&user())
    .unwrap_err();
    assert!(chain(&e).contains("--peer-allow"), "{e}");
}

#[test]
fn the_http_api_stays_on_loopback_unless_secured_or_insecure() {
    let s = ServeArgs::default().resolve_for(&user()).unwrap();
    assert_eq!(s.http.unwrap().to_string(), "127.0.0.1:4792");
    assert!(s.http_tokens.is_none() && s.hook_allow.is_empty());
    let exposed = || ServeArgs {
        http: Some("0.0.0.0:4762".into()),
        ..ServeArgs::default()
    };
    let e = chain(&exposed().resolve_for(&user()).unwrap_err());
    assert!(
        e.contains("--http-insecure") && e.contains("--http-token-file"),
        "{e}"
    );
    let insecure = ServeArgs {
        http_insecure: true,
        ..exposed()
    };
    assert!(insecure.resolve_for(&user()).unwrap().http_insecure);
    let tokens = file("tokens", "# ops\nabc write\n");
    let cfg = file(
        "trust.toml",
        &format!(
            "http = \"0.0.0.0:4762\"\nhttp-token-file = {:?}\nhook-allow = [\"10.0.0.0/8\"]\n",
            tokens.display()
        ),
    );
    let s = ServeArgs {
        config: Some(cfg),
        ..ServeArgs::default()
    }
    .resolve_for(&user())
    .unwrap();
    assert_eq!(s.http_tokens.unwrap().path(), tokens);
    assert_eq!(s.hook_allow, vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]);
    let bad = file("bad-tokens", "abc write\nabc\n");
    let e = ServeArgs {
        http_token_file: Some(bad),
        ..ServeArgs::default()
    }
    .resolve_for(&user())
    .unwrap_err();
    assert!(chain(&e).contains("bad-tokens:2:"), "{}", chain(&e));
}

#[test]
fn dev_mode_keeps_everything_on_loopback_and_in_a_temporary_directory() {
    let root = UserDirs { euid: 0, ..user() };
    let s = ServeArgs {
        dev: true,
        ..ServeArgs::default()
    }
    .resolve_for(&root)
    .unwrap();
    let dir = s.dev_dir.clone().expect("a temporary directory");
    assert!(dir.starts_with("/tmp"), "{dir:?}");
    assert!(s.listen.ip().is_loopback(), "{}", s.listen);
    assert!(s.http.is_some_and(|a| a.ip().is_loopback()));
    assert!(s.unix.starts_with(&dir) && s.data_dir.starts_with(&dir), "{s:?}");
    // Explicit flags still win.
    let s = ServeArgs {
        dev: true,
        data_dir: Some("/srv/r".into()),
        ..ServeArgs::default()
    }
    .resolve_for(&root)
    .unwrap();
    assert_eq!(s.data_dir, PathBuf::from("/srv/r"));
}

#[test]
fn https_by_default_only_when_tls_is_configured_and_the_api_is_exposed() {
    let tls = |http: &str, mode: Option<HttpTls>| ServeArgs {
        tls_ca: Some("ca.pem".into()),
        tls_cert: Some("c.pem".into()),
        tls_key: Some("k.pem".into()),
        http: Some(http.into()),
        http_insecure: true,
        http_tls: mode,
        ..ServeArgs::default()
    };
    let https = |args: ServeArgs| args.resolve_for(&user()).map(|s| s.http_tls);
    assert!(
        !https(tls("127.0.0.1:4792", None)).unwrap(),
        "loopback: plain HTTP"
    );
    assert!(https(tls("0.0.0.0:4792", None)).unwrap(), "exposed: HTTPS");
    assert!(https(tls("127.0.0.1:4792", Some(HttpTls::On))).unwrap());
    assert!(!https(tls("0.0.0.0:4792", Some(HttpTls::Off))).unwrap());
    let plain = ServeArgs {
        http: Some("0.0.0.0:4792".into()),
        http_insecure: true,
        ..ServeArgs::default()
    };
    assert!(!https(plain.clone()).unwrap(), "no TLS: plain HTTP");
    let e = https(ServeArgs {
        http_tls: Some(HttpTls::On),
        ..plain
    })
    .unwrap_err();
    assert!(chain(&e).contains("--http-tls on needs --tls-ca"), "{e}");
    let toml: ServeArgs = toml::from_str("http-tls = \"on\"").unwrap();
    assert_eq!(toml.http_tls, Some(HttpTls::On));
}

#[test]
fn reap_after_is_a_bounded_duration() {
    let with = |v: Option<&str>| {
        ServeArgs {
            reap_after: v.map(str::to_owned),
            ..ServeArgs::default()
        }
        .resolve_for(&user())
    };
    assert_eq!(with(None).unwrap().reap_after, Duration::from_secs(72 * 3600));
    assert_eq!(with(Some("2s")).unwrap().reap_after, Duration::from_secs(2));
    for bad in ["0s", "500ms", "366d", "soon"] {
        let e = chain(&with(Some(bad)).unwrap_err());
        assert!(e.contains("--reap-after"), "{bad}: {e}");
    }
}

#[test]
fn dns_is_on_loopback_at_the_well_known_port_unless_told() {
    let s = ServeArgs::default().resolve_for(&user()).unwrap();
    let dns = s.dns.unwrap();
    assert_eq!(dns.addr.to_string(), "127.0.0.1:4794");
    assert_eq!(
        (dns.domain.as_str(), dns.alt_domain, dns.ttl),
        ("rarangi.", None, 0)
    );
    let s = Cmd::try_parse_from([
        "serve",
        "--side",
        "b",
        "--dns-domain",
        "Svc.Example",
        "--dns-alt-domain",
        "consul",
        "--dns-ttl",
        "5",
    ])
    .unwrap()
    .args
    .resolve_for(&user())
    .unwrap();
    let dns = s.dns.unwrap();
    assert_eq!(dns.addr.port(), 4795);
    assert_eq!(
        (dns.domain.as_str(), dns.alt_domain.as_deref(), dns.ttl),
        ("svc.example.", Some("consul."), 5)
    );
    let off = Cmd::try_parse_from(["serve", "--dns", "off"]).unwrap();
    assert_eq!(off.args.resolve_for(&user()).unwrap().dns, None);
    let bad = Cmd::try_parse_from(["serve", "--dns-domain", "a_b."]).unwrap();
    let e = bad.args.resolve_for(&user()).unwrap_err();
    assert!(chain(&e).contains("--dns-domain"), "{}", chain(&e));
}

#[test]
fn instance_names_environment_and_side() {
    let root = UserDirs { euid: 0, ..user() };
    // Built directly, not parsed: another test sets RARANGI_* variables.
    let parse = |args: &[&str]| {
        let mut a = ServeArgs::default();
        for pair in args.chunks(2) {
            let v = Some(pair[1].to_owned());
            match pair[0] {
                "--instance" => a.instance = v,
                "--env" => a.env = v,
                "--listen" => a.listen = v,
                "--side" => a.side = Some(if pair[1] == "a" { SideArg::A } else { SideArg::B }),
                other => unreachable!("{other}"),
            }
        }
        a
    };
    let s = parse(&["--instance", "production-b"]).resolve_for(&root).unwrap();
    assert_eq!((s.env.as_str(), s.side), ("production", Side::B));
    assert_eq!(s.data_dir, PathBuf::from("/var/lib/rarangi/production-b"));
    assert_eq!(s.unix, PathBuf::from("/run/rarangi/production-b.sock"));
    // Hyphens belong to the environment; only the last part is the side.
    let s = parse(&["--instance", "qa-2-a", "--listen", "127.0.0.1:4700"])
        .resolve_for(&root)
        .unwrap();
    assert_eq!((s.env.as_str(), s.side), ("qa-2", Side::A));
    // Agreeing flags are fine; disagreeing ones and bad names are refused.
    assert!(parse(&["--instance", "staging-a", "--env", "staging"])
        .resolve_for(&root)
        .is_ok());
    for bad in [
        &["--instance", "staging-a", "--side", "b"][..],
        &["--instance", "staging-c"],
        &["--instance", "-a"],
        &["--instance", "staging"],
        &["--instance", "Prod-a"],
    ] {
        let e = parse(bad).resolve_for(&root).unwrap_err();
        assert!(
            chain(&e).contains("--instance") || matches!(e, ConfigError::Name(_)),
            "{bad:?}: {e}"
        );
    }
}
