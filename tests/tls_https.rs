//! HTTPS on the HTTP API (`--http-tls`) with the catalogue's certificate,
//! and the registration refusal over TLS. A module of `tls.rs`, whose
//! helpers it uses.

use super::*;

/// A free port on the host of `addr`, as `HOST:PORT` (the certificate of
/// that host then serves both ports).
fn beside(addr: &str) -> String {
    let l = std::net::TcpListener::bind((host(addr), 0)).unwrap();
    format!("{}:{}", host(addr), l.local_addr().unwrap().port())
}

/// A catalogue at `addr` with TLS from `ca` and HTTPS (`--http-tls on`) on
/// a port beside it, with write token `w-1` and read token `r-1`.
fn https_cat(ca: &Path, addr: &str) -> Cat {
    let (cert, key) = files(ca, host(addr));
    let tokens = ca.join("tokens");
    std::fs::write(&tokens, "w-1 write\nr-1 read\n").unwrap();
    let http = beside(addr);
    let args = [
        "--tls-ca".to_owned(),
        ca.join("ca.pem").display().to_string(),
        "--tls-cert".to_owned(),
        cert.display().to_string(),
        "--tls-key".to_owned(),
        key.display().to_string(),
        "--http-tls".to_owned(),
        "on".to_owned(),
        "--http-token-file".to_owned(),
        tokens.display().to_string(),
    ];
    Cat::options("development")
        .bin(BIN)
        .at(addr)
        .http(Some(&http), &http)
        .args(&args)
        .start()
        .unwrap()
}

/// One HTTPS request to `cat`, trusting `ca`, presenting the certificate
/// of `cert` (made in `ca`) if given.
async fn https(
    cat: &Cat,
    ca: &Path,
    cert: Option<&str>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> (u16, String) {
    let s = tls_raw(&cat.http, ca, cert.map(|c| (ca, c))).await.unwrap();
    let (status, _, body) = http_over(s, &cat.http, method, path, headers, body).await;
    (status, body)
}

const WRITE: &[(&str, &str)] = &[("Authorization", "Bearer w-1")];
const READ: &[(&str, &str)] = &[("X-Rarangi-Token", "r-1")];

#[tokio::test(flavor = "multi_thread")]
async fn https_serves_the_api_with_tokens_and_refuses_plain_http() {
    let addr = fresh_addr();
    let dir = ca_with(&[host(&addr)]);
    let ca = dir.path();
    let cat = https_cat(ca, &addr);
    let doc = json!({"config": {"workers": 4}}).to_string();

    // Writes and reads over HTTPS, with the tokens' rules.
    let put = https(&cat, ca, None, "PUT", "/app/orders", WRITE, Some(doc.as_bytes())).await;
    assert_eq!(put.0, 201, "{put:?}\n{}", cat.log());
    let (s, body) = https(&cat, ca, None, "GET", "/app/orders", READ, None).await;
    assert_eq!(s, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(config_of(&v), json!({"workers": 4}));
    let (s, _) = https(&cat, ca, None, "GET", "/app/orders", &[], None).await;
    assert_eq!(s, 401, "a token is still needed over HTTPS");
    let (s, _) = https(&cat, ca, None, "PUT", "/app/orders", READ, Some(doc.as_bytes())).await;
    assert_eq!(s, 403);

    // curl with the CA file, as an operator would.
    let url = format!("https://{}/app/orders", cat.http);
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(ca.join("ca.pem"))
        .args(["-H", "Authorization: Bearer r-1", &url])
        .output()
        .expect("curl (installed by .ci/run)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("workers"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Plain HTTP to the HTTPS port: a 400 saying so, not a hang or garbage.
    let (s, _, body) = try_http(&cat.http, "GET", "/app", None).await.unwrap();
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("this port speaks HTTPS"), "{body}");

    // PUT /srv over HTTPS follows REG_SERV over TLS: a client certificate.
    let inst = json!({"endpoints": ["http://10.9.9.9:80"], "ttl": 60}).to_string();
    let (s, body) = https(
        &cat,
        ca,
        None,
        "PUT",
        "/srv/web/node1",
        WRITE,
        Some(inst.as_bytes()),
    )
    .await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body.contains("client certificate signed by the catalogue's CA"),
        "{body}"
    );
    let (s, body) = https(
        &cat,
        ca,
        Some(host(&addr)),
        "PUT",
        "/srv/web/node1",
        WRITE,
        Some(inst.as_bytes()),
    )
    .await;
    assert!((200..300).contains(&s), "{s} {body}");
    let (s, body) = https(&cat, ca, None, "GET", "/srv/web", READ, None).await;
    assert!(s == 200 && body.contains("10.9.9.9"), "{s} {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_renews_the_https_certificate() {
    let addr = fresh_addr();
    let dir = ca_with(&[host(&addr)]);
    let ca = dir.path();
    let cat = https_cat(ca, &addr);
    let served = |s: &tokio_rustls::client::TlsStream<TcpStream>| {
        s.get_ref().1.peer_certificates().unwrap()[0].clone()
    };
    let before = served(&tls_raw(&cat.http, ca, None).await.unwrap());
    tls(&["cert", &ca.display().to_string(), host(&addr), "--force"]);
    let renewed = CertificateDer::from_pem_file(files(ca, host(&addr)).0).unwrap();
    assert_ne!(before, renewed);
    let pid = cat.pid().unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let deadline = Deadline::default();
    while served(&tls_raw(&cat.http, ca, None).await.unwrap()) != renewed {
        deadline
            .retry(|| format!("old certificate still served over HTTPS\n{}", cat.log()))
            .await;
    }
    let (s, body) = https(&cat, ca, None, "GET", "/app", READ, None).await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_a_registration_without_a_certificate_is_told_the_tls_rule() {
    let addr = fresh_addr();
    let dir = ca_with(&[host(&addr)]);
    let ca = dir.path();
    // --allow-register covers the client's address: over TLS it is not
    // the rule, and the refusal must not point there.
    let cat = tls_cat(ca, &addr, &[], &["--allow-register", "127.0.0.0/8"]);
    let s = tls_raw(&addr, ca, None).await.unwrap();
    let (lines, _) = exchange_on(s, "7 tcp://10.0.0.9:1/x").await;
    let refusal = lines
        .iter()
        .find(|l| l.starts_with("2 not-allowed"))
        .unwrap_or_else(|| panic!("no refusal in {lines:?}\n{}", cat.log()));
    let Ok(rarangi_proto::Message::Error { text, .. }) = rarangi_proto::parse_line(refusal.as_bytes()) else {
        panic!("not an ERROR: {refusal}");
    };
    assert!(
        text.contains("client certificate signed by the catalogue's CA"),
        "{refusal}"
    );
    // With a certificate the same line registers.
    let s = tls_raw(&addr, ca, Some((ca, host(&addr)))).await.unwrap();
    let (lines, closed) = exchange_on(s, "7 tcp://10.0.0.9:1/x").await;
    assert!(!closed && lines.iter().all(|l| !l.starts_with('2')), "{lines:?}");
}
