//! Trust, against real catalogue processes with certificates made by
//! `rarangi tls`: mutual TLS between catalogues, identity from the
//! certificate, clients with and without certificates, SIGHUP reloads,
//! `--peer-allow` without TLS, and `--register-uid` on the Unix socket.

mod common;
#[path = "tls_https.rs"]
mod https;

#[allow(unused_imports)]
use common::eventually as _;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::http::*;
use common::*;
use rarangi_client::TlsOptions;
use rarangi_harness::TempDir;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// `rarangi tls ...` in `dir`, which must succeed.
fn tls(args: &[&str]) {
    let out = Command::new(BIN).arg("tls").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "rarangi tls {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA in a fresh directory, with a certificate for each host given.
fn ca_with(hosts: &[&str]) -> TempDir {
    let dir = TempDir::new("tls-ca").unwrap();
    let d = dir.path().display().to_string();
    tls(&["ca", &d]);
    for h in hosts {
        tls(&["cert", &d, h]);
    }
    dir
}

fn host(addr: &str) -> &str {
    addr.rsplit_once(':').unwrap().0
}

fn files(ca: &Path, name: &str) -> (PathBuf, PathBuf) {
    (ca.join(format!("{name}.pem")), ca.join(format!("{name}-key.pem")))
}

/// A catalogue at `addr` with TLS from `ca`, dialing `peers`.
fn tls_cat(ca: &Path, addr: &str, peers: &[&str], extra: &[&str]) -> Cat {
    let (cert, key) = files(ca, host(addr));
    let tls_args = [
        "--tls-ca".to_owned(),
        ca.join("ca.pem").display().to_string(),
        "--tls-cert".to_owned(),
        cert.display().to_string(),
        "--tls-key".to_owned(),
        key.display().to_string(),
    ];
    Cat::options("development")
        .bin(BIN)
        .at(addr)
        .peers(peers)
        .args(tls_args.iter().map(String::as_str).chain(extra.iter().copied()))
        .start()
        .unwrap()
}

/// Client TLS options: the CA, and the certificate of `name` if given.
fn client_tls(ca: &Path, name: Option<&str>) -> TlsOptions {
    TlsOptions {
        ca: ca.join("ca.pem"),
        cert: name.map(|n| files(ca, n)),
    }
}

/// A raw TLS connection to `addr` trusting `ca`, presenting the
/// certificate of `name` (made in `ca`) if given.
async fn tls_raw(
    addr: &str,
    ca: &Path,
    cert_of: Option<(&Path, &str)>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match cert_of {
        None => b.with_no_client_auth(),
        Some((dir, name)) => {
            let (cert, key) = files(dir, name);
            let chain = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            b.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap())
                .unwrap()
        }
    };
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(host(addr).to_owned()).unwrap();
    let s = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    // TLS 1.3 reports a refused client certificate only on the first read.
    Ok(s)
}

/// Sends `bytes` and a HEARTBEAT fence after the WELCOME; returns the
/// lines before the fence's answer, or all lines until the close.
async fn exchange_on<S: AsyncRead + AsyncWrite + Unpin>(s: S, bytes: &str) -> (Vec<String>, bool) {
    let mut s = BufReader::new(s);
    let mut welcome = String::new();
    if s.read_line(&mut welcome).await.unwrap_or(0) == 0 {
        return (vec![], true);
    }
    let _ = s.get_mut().write_all(format!("{bytes}\n1\n").as_bytes()).await;
    let _ = s.get_mut().flush().await;
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        let read = tokio::time::timeout(DEADLINE, s.read_line(&mut l))
            .await
            .expect("an answer or a close");
        match read {
            Ok(0) | Err(_) => return (lines, true),
            Ok(_) if l.trim_end() == "1" => return (lines, false),
            Ok(_) => lines.push(l.trim_end().to_owned()),
        }
    }
}

/// What a peer that just linked would send to take over: WELCOME, a forged
/// CATALOGUE record of `victim`, a delete of `service`, a configuration write.
fn rogue_lines(claimed: &str, victim: &str, service: &str) -> String {
    format!(
        "0 x-tvnetcs://{claimed}/ default development\n\
         15 x-tvnetcs://{claimed}/ default 99999999999999\n\
         18 1\n\
         15 x-tvnetcs://{victim}/ default 99999999999999\n\
         6 {service} x-tvnetcs://{victim}/ default 99999999999999\n\
         9 app/orders x-tvnetcs://{claimed}/ 99999999999999 evil"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn three_tls_catalogues_link_replicate_and_refuse_strangers() {
    let (a, b, c) = (fresh_addr(), fresh_addr(), fresh_addr());
    let ca = ca_with(&[host(&a), host(&b), host(&c), "127.0.0.1"]);
    let other = ca_with(&["127.0.0.1"]);
    let ca = ca.path();
    let cats = [
        tls_cat(ca, &a, &[], &[]),
        tls_cat(ca, &b, &[&a], &[]),
        tls_cat(ca, &c, &[&b], &[]),
    ];
    let with_cert = |cat: &Cat| cat.opts().with_tls(Some(client_tls(ca, Some(host(&cat.addr)))));
    let svc = "tcp://10.0.0.1:80/orders";
    let held = rarangi_client::register(&with_cert(&cats[0]), svc, Default::default())
        .await
        .unwrap();
    for cat in &cats {
        let opts = cat.opts().with_tls(Some(client_tls(ca, None)));
        let deadline = Deadline::default();
        while !lookup(&opts, "").await.unwrap().contains(svc) {
            deadline
                .retry(|| format!("{svc} not at {}\n{}", cat.addr, cat.log()))
                .await;
        }
    }
    assert_eq!(
        put(&cats[0].http, "/app/orders", json!({"config": {"workers": 4}})).await,
        201
    );
    for cat in &cats {
        eventually_json(&cat.http, "/app/orders", "configuration replicated", |s, v| {
            s == 200 && config_of(v) == json!({"workers": 4})
        })
        .await;
    }

    // A client without a certificate looks up but may not register.
    let mut plain_client =
        rarangi_client::Connection::connect(&cats[0].opts().with_tls(Some(client_tls(ca, None))))
            .await
            .unwrap();
    let reg = rarangi_proto::Message::RegServ {
        service: rarangi_proto::ServiceUri::parse("tcp://10.0.0.9:1/x").unwrap(),
        attrs: Default::default(),
    };
    let e = plain_client.request(&reg).await.unwrap_err();
    assert!(e.to_string().contains("not-allowed"), "{e}");
    assert!(
        e.to_string()
            .contains("client certificate signed by the catalogue's CA"),
        "{e}"
    );

    // A plain-text dialer: refused during the handshake, logged with its address.
    let s = TcpStream::connect(&a).await.unwrap();
    let (lines, closed) = exchange_on(s, &rogue_lines("127.0.0.1:1", &b, svc)).await;
    assert!(closed && lines.is_empty(), "{lines:?}");
    // A dialer with a certificate of another CA: refused at the handshake.
    let wrong = tls_raw(&a, ca, Some((other.path(), "127.0.0.1"))).await;
    if let Ok(s) = wrong {
        let (lines, closed) = exchange_on(s, &rogue_lines("127.0.0.1:1", &b, svc)).await;
        assert!(closed && lines.is_empty(), "{lines:?}");
    }
    // Without a certificate: may not become a peer.
    let s = tls_raw(&a, ca, None).await.unwrap();
    let (lines, closed) = exchange_on(s, &rogue_lines("127.0.0.1:1", &b, svc)).await;
    assert!(
        closed && lines.iter().any(|l| l.starts_with("2 not-allowed")),
        "{lines:?}"
    );
    // With a valid certificate for 127.0.0.1, claiming B's URI: refused.
    let s = tls_raw(&a, ca, Some((ca, "127.0.0.1"))).await.unwrap();
    let (lines, closed) = exchange_on(s, &rogue_lines(&b, &b, svc)).await;
    assert!(
        closed && lines.iter().any(|l| l.starts_with("2 not-allowed")),
        "{lines:?}"
    );

    // Nothing changed anywhere: the service and configuration stand.
    for cat in &cats {
        let opts = cat.opts().with_tls(Some(client_tls(ca, None)));
        assert!(lookup(&opts, "").await.unwrap().contains(svc), "{}", cat.log());
        let (_, v) = get_json(&cat.http, "/app/orders").await;
        assert_eq!(config_of(&v), json!({"workers": 4}));
    }
    let log = cats[0].log();
    assert!(log.contains("TLS handshake failed"), "{log}");
    assert!(log.contains("refused a catalogue link"), "{log}");
    drop(held);
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_a_renewed_certificate_and_links_stay_up() {
    let (a, b) = (fresh_addr(), fresh_addr());
    let dir = ca_with(&[host(&a), host(&b)]);
    let ca = dir.path();
    let cats = [tls_cat(ca, &a, &[], &[]), tls_cat(ca, &b, &[&a], &[])];
    let svc = "tcp://10.0.0.2:80/billing";
    let opts_b = cats[1].opts().with_tls(Some(client_tls(ca, Some(host(&b)))));
    let _reg = rarangi_client::register(&opts_b, svc, Default::default())
        .await
        .unwrap();
    let opts_a = cats[0].opts().with_tls(Some(client_tls(ca, None)));
    let deadline = Deadline::default();
    while !lookup(&opts_a, "").await.unwrap().contains(svc) {
        deadline.retry(|| format!("no link\n{}", cats[0].log())).await;
    }
    let served = |s: &tokio_rustls::client::TlsStream<TcpStream>| {
        s.get_ref().1.peer_certificates().unwrap()[0].clone()
    };
    let before = served(&tls_raw(&a, ca, None).await.unwrap());
    tls(&["cert", &ca.display().to_string(), host(&a), "--force"]);
    let renewed = CertificateDer::from_pem_file(files(ca, host(&a)).0).unwrap();
    assert_ne!(before, renewed);
    let pid = cats[0].pid().unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let deadline = Deadline::default();
    while served(&tls_raw(&a, ca, None).await.unwrap()) != renewed {
        deadline
            .retry(|| format!("old certificate still served\n{}", cats[0].log()))
            .await;
    }
    // The link stayed up: the service never left A.
    assert!(lookup(&opts_a, "").await.unwrap().contains(svc));
    assert!(!cats[0].log().contains("link down"), "{}", cats[0].log());
}

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: &str, to: &str) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse::<SocketAddr>().unwrap())
        .unwrap();
    sock.connect(to.parse().unwrap()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_text_peer_allow_refuses_strangers() {
    let a = Cat::options("development")
        .bin(BIN)
        .args(["--peer-allow", "127.0.0.1/32"])
        .start()
        .unwrap();
    let b = cat("development", "default", &[&a.addr]);
    let svc = "tcp://10.0.0.3:80/x";
    let _held = rarangi_client::register(&b.opts(), svc, Default::default())
        .await
        .unwrap();
    eventually_lookup(&a, "", &[svc]).await;
    let s = connect_from("127.0.0.5", &a.addr).await;
    let (lines, closed) = exchange_on(s, &rogue_lines("127.0.0.5:1", &b.addr, svc)).await;
    assert!(
        closed && lines.iter().any(|l| l.starts_with("2 not-allowed")),
        "{lines:?}"
    );
    eventually_lookup(&a, "", &[svc]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unix_registration_from_another_uid_is_not_allowed() {
    let uid = rustix_uid();
    if uid != 0 || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and setpriv to run a client as another user");
        return;
    }
    let a = Cat::options("development")
        .bin(BIN)
        .args(["--register-uid", "0"])
        .start()
        .unwrap();
    let sock = a.unix_socket();
    // Let the other user reach the socket: the uid rule, not the file
    // mode, must refuse it.
    for p in [a.dir(), sock.as_path()] {
        Command::new("chmod").arg("a+rwx").arg(p).status().unwrap();
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(["register", "tcp://10.0.0.4:80/x", "--unix"])
        .arg(&sock)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not-allowed"), "{err}");
}

/// This process's real uid, from /proc (no libc call needed).
fn rustix_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap()
}
