//! The HTTP API's trust, against real catalogue processes: tokens, the
//! loopback default, the start rule for an exposed API, the registration
//! rule on PUT /srv, and safe webhooks (URI checks, https, --hook-allow).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use common::http::*;
use common::*;
use rarangi_harness::{Error as HarnessError, TempDir};
use serde_json::{json, Value};
use tokio::net::TcpSocket;

/// A directory of the test's own (removed on drop) holding `text` as `name`.
fn temp_file(name: &str, text: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(name).unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A free TCP port on `ip`.
fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_guard_reads_and_writes() {
    let (_dir, tokens) = temp_file("tokens", "# operators\nw-7f3a write\n\nr-91bc read\n");
    let mut cat = Cat::options("development")
        .bin(BIN)
        .args(["--http-token-file", &tokens.display().to_string()])
        .start()
        .unwrap();
    // No token, or one we do not know: 401, JSON, and a Bearer challenge.
    for headers in [&[][..], &[("Authorization", "Bearer nope")][..]] {
        let (s, h, b) = http_with(&cat.http, "GET", "/app", headers, None).await;
        assert_eq!(s, 401, "{b}");
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["status"], json!(401), "{v}");
        assert!(v["error"].is_string(), "{v}");
        assert!(
            header(&h, "www-authenticate").is_some_and(|c| c.starts_with("Bearer")),
            "{h:?}"
        );
        assert_eq!(put_app(&cat.http, headers).await.0, 401);
    }
    // Unknown paths are not told apart from known ones without a token.
    assert_eq!(http(&cat.http, "GET", "/no/such/thing", None).await.0, 401);

    // A read token reads, with each of the three headers, and cannot write.
    for h in [
        ("Authorization", "Bearer r-91bc"),
        ("X-Rarangi-Token", "r-91bc"),
        ("X-Consul-Token", "r-91bc"),
    ] {
        let (s, _, b) = http_with(&cat.http, "GET", "/app", &[h], None).await;
        assert_eq!((s, b.as_str()), (200, "[]"), "{h:?}");
    }
    let (s, _, b) = put_app(&cat.http, &[("X-Rarangi-Token", "r-91bc")]).await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(serde_json::from_str::<Value>(&b).unwrap()["status"], json!(403));

    // A write token writes (and reads), with each header.
    assert_eq!(
        put_app(&cat.http, &[("Authorization", "Bearer w-7f3a")]).await.0,
        201
    );
    assert_eq!(put_app(&cat.http, &[("X-Rarangi-Token", "w-7f3a")]).await.0, 200);
    assert_eq!(put_app(&cat.http, &[("X-Consul-Token", "w-7f3a")]).await.0, 200);
    let (s, _, b) = http_with(&cat.http, "GET", "/app", &[("X-Consul-Token", "w-7f3a")], None).await;
    assert_eq!((s, b.as_str()), (200, "[\"orders\"]"));

    // SIGHUP re-reads the file: the new token works, the removed one not.
    std::fs::write(&tokens, "w-new write\n").unwrap();
    hangup(&cat);
    eventually_status(&cat.http, &[("X-Rarangi-Token", "w-new")], 200).await;
    eventually_status(&cat.http, &[("X-Rarangi-Token", "r-91bc")], 401).await;
    // A file that breaks on reload keeps the tokens we had.
    std::fs::write(&tokens, "w-new write\nbroken\n").unwrap();
    hangup(&cat);
    let deadline = Deadline::after(DEADLINE);
    while !cat.log().contains("kept the previous HTTP tokens") {
        deadline
            .retry(|| format!("no reload error logged\n{}", cat.log()))
            .await;
    }
    assert_eq!(
        http_with(&cat.http, "GET", "/app", &[("X-Rarangi-Token", "w-new")], None)
            .await
            .0,
        200
    );
    // A malformed file stops the start, naming the line.
    cat.kill();
    let e = cat.restart().unwrap_err().to_string();
    assert!(e.contains(":2:"), "{e}");
}

/// PUT /app/orders with these headers.
async fn put_app(addr: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, String) {
    let body = json!({"config": 1}).to_string();
    http_with(addr, "PUT", "/app/orders", headers, Some(body.as_bytes())).await
}

fn hangup(cat: &Cat) {
    let pid = cat.pid().expect("running").to_string();
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(ok.success());
}

async fn eventually_status(addr: &str, headers: &[(&str, &str)], want: u16) {
    let deadline = Deadline::default();
    loop {
        let (s, _, b) = http_with(addr, "GET", "/app", headers, None).await;
        if s == want {
            return;
        }
        deadline
            .retry(|| format!("GET /app with {headers:?} gave {s} {b}, want {want}"))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_listens_on_loopback_by_default() {
    // Testing, side B: its well-known HTTP port, 4783, with no --http.
    let cat = Cat::options("testing")
        .bin(BIN)
        .args(["--side", "b"])
        .http(None, "127.0.0.1:4783")
        .start()
        .unwrap();
    // Logged as the port starts serving, which may follow the first accept.
    eventually("the HTTP address logged", || {
        cat.log().contains("http=127.0.0.1:4783")
    })
    .await;
    assert_eq!(get_json(&cat.http, "/app").await.0, 200);
    // Another loopback address of the same machine is not listened on.
    let e = tokio::net::TcpStream::connect("127.0.0.2:4783")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exposed_api_needs_tokens_or_http_insecure() {
    let port = free_port("0.0.0.0");
    let all = format!("0.0.0.0:{port}");
    let reach = format!("127.0.0.1:{port}");
    let refused = Cat::options("development")
        .bin(BIN)
        .http(Some(&all), &reach)
        .start();
    match refused {
        Err(HarnessError::Exited { log, .. }) => {
            assert!(
                log.contains("--http-insecure") && log.contains("--http-token-file"),
                "{log}"
            )
        }
        other => panic!("an exposed API without tokens started: {other:?}"),
    }
    let cat = Cat::options("development")
        .bin(BIN)
        .http(Some(&all), &reach)
        .args(["--http-insecure"])
        .start()
        .unwrap();
    assert!(
        cat.log().contains("beyond loopback without tokens"),
        "{}",
        cat.log()
    );
    assert_eq!(get_json(&cat.http, "/app").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_endpoints_must_be_plain_http_uris() {
    let cat = cat("development", "c1", &[]);
    for (endpoint, why) in [
        ("http://127.0.0.1:9/x\r\nX-Evil: 1", "not a valid URI"),
        ("http://127.0.0.1:9/x y", "not a valid URI"),
        ("http://user:pw@127.0.0.1:9/", "user information"),
        ("gopher://127.0.0.1:9/", "http"),
    ] {
        let hook = json!({"name": "h", "endpoint": endpoint}).to_string();
        let (s, _, b) = http(&cat.http, "POST", "/app/x/web-hooks", Some(hook.as_bytes())).await;
        assert_eq!(s, 400, "{endpoint:?}: {b}");
        assert!(b.contains(why), "{endpoint:?}: {b}");
        let hook = json!({"endpoint": endpoint}).to_string();
        let (s, _, b) = http(&cat.http, "PUT", "/srv/x/web-hooks/h", Some(hook.as_bytes())).await;
        assert_eq!(s, 400, "{endpoint:?}: {b}");
    }
    assert_eq!(get_json(&cat.http, "/app/x/web-hooks").await.1, json!([]));
}

/// This machine's first IPv4 address outside loopback, if it has one.
fn non_loopback_ipv4() -> Option<IpAddr> {
    let trie = std::fs::read_to_string("/proc/net/fib_trie").ok()?;
    let lines: Vec<&str> = trie.lines().collect();
    lines.windows(2).find_map(|w| {
        let ip: IpAddr = w[0].trim().strip_prefix("|-- ")?.parse().ok()?;
        (w[1].contains("/32 host LOCAL") && !ip.is_loopback()).then_some(ip)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_srv_obeys_the_registration_rule() {
    let Some(ip) = non_loopback_ipv4() else {
        eprintln!("skipped: this machine has no address outside loopback");
        return;
    };
    // The API listens on that address only, and the client connects from
    // it: traffic that never leaves the machine, from a stranger's address.
    let at = format!("{ip}:{}", free_port(&ip.to_string()));
    let start = |extra: &[&str]| {
        Cat::options("development")
            .bin(BIN)
            .http(Some(&at), &at)
            .args(["--http-insecure"])
            .args(extra)
            .start()
            .unwrap()
    };
    let from_ip = || async {
        let s = TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::new(ip, 0)).unwrap();
        s.connect(at.parse().unwrap()).await.unwrap()
    };
    let body = json!({"endpoints": ["http://10.9.9.9:80"], "ttl": 60}).to_string();
    let cat = start(&[]);
    let (s, _, b) = http_over(
        from_ip().await,
        &at,
        "PUT",
        "/srv/web/node1",
        &[],
        Some(body.as_bytes()),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    assert!(
        b.contains("--allow-register") && b.contains(&ip.to_string()),
        "{b}"
    );
    let (s, _, _) = http_over(from_ip().await, &at, "DELETE", "/srv/web/node1", &[], None).await;
    assert_eq!(s, 403);
    // Reads are not registrations.
    let (s, _, _) = http_over(from_ip().await, &at, "GET", "/srv", &[], None).await;
    assert_eq!(s, 200);
    drop(cat);

    let cat = start(&["--allow-register", &format!("{ip}/32")]);
    let (s, _, b) = http_over(
        from_ip().await,
        &at,
        "PUT",
        "/srv/web/node1",
        &[],
        Some(body.as_bytes()),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    drop(cat);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_webhooks_trust_the_hook_ca() {
    let receiver_addr = fresh_addr();
    let host = receiver_addr.rsplit_once(':').unwrap().0.to_owned();
    let (ca_pem, acceptor) = tls_receiver_config(&host);
    let (_dir, ca) = temp_file("hook-ca.pem", &ca_pem);
    let r = Receiver::start_tls(&receiver_addr, acceptor).await;
    let cat = Cat::options("development")
        .bin(BIN)
        .args(["--hook-ca", &ca.display().to_string()])
        .start()
        .unwrap();
    let hook = json!({"name": "tls", "endpoint": format!("https://{receiver_addr}/in")}).to_string();
    let (s, _, b) = http(&cat.http, "POST", "/app/orders/web-hooks", Some(hook.as_bytes())).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(put(&cat.http, "/app/orders", json!({"config": 1})).await, 201);
    eventually("the https webhook arrives", || r.whats() == ["created"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_allow_keeps_webhooks_from_other_addresses() {
    let receiver_addr = fresh_addr();
    let r = Receiver::start(&receiver_addr).await;
    let cat = Cat::options("development")
        .bin(BIN)
        .args(["--hook-allow", "192.0.2.0/24"])
        .start()
        .unwrap();
    let hook = json!({"name": "h", "endpoint": format!("http://{receiver_addr}/in")}).to_string();
    let (s, _, b) = http(&cat.http, "POST", "/app/orders/web-hooks", Some(hook.as_bytes())).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(put(&cat.http, "/app/orders", json!({"config": 1})).await, 201);
    let deadline = Deadline::default();
    while !cat.log().contains("--hook-allow does not permit") {
        deadline
            .retry(|| format!("no refusal logged\n{}", cat.log()))
            .await;
    }
    // Refused before connecting: the receiver never saw a request.
    assert!(r.got().is_empty() && r.refused() == 0, "{:?}", r.got());
}

/// A CA (PEM, for --hook-ca) and a TLS acceptor whose certificate, signed
/// by it, names the IP address `host`.
fn tls_receiver_config(host: &str) -> (String, tokio_rustls::TlsAcceptor) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![host.to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    (ca_cert.pem(), tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
