//! Kubernetes discovery (`--discover-k8s`) against a **stand-in API
//! server**: no Kubernetes API server runs on the machines these tests run
//! on (and a real one needs etcd, a kubelet, root), so the test serves
//! the few requests the catalogue makes itself (`k8s/apiserver.rs`):
//! EndpointSlice list and watch over HTTPS, with a CA and a separate leaf
//! certificate, a bearer token, ADDED/MODIFIED/DELETED/BOOKMARK events
//! and 410 Gone after a compaction. The catalogue finds it through a
//! KUBECONFIG file the test writes (server URL, CA, `tokenFile`), the way
//! `kube::Config::infer` is fed outside a cluster; in-cluster
//! configuration differs only in where the same three things are read.
//! Built only with the `k8s` feature.

#[path = "k8s/apiserver.rs"]
mod apiserver;
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use apiserver::{ApiServer, NAMESPACE};
use common::http::get_json;
use common::*;
use rarangi_harness::TempDir;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The CA of the stand-in API server (made by `rarangi tls`) and an
/// acceptor for its own certificate, which names 127.0.0.1.
fn api_tls(dir: &Path) -> tokio_rustls::TlsAcceptor {
    let d = dir.display().to_string();
    for args in [vec!["ca", &d], vec!["cert", &d, "127.0.0.1"]] {
        let out = std::process::Command::new(BIN)
            .arg("tls")
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rarangi tls {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let cert = CertificateDer::from_pem_file(dir.join("127.0.0.1.pem")).unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("127.0.0.1-key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A stand-in API server accepting `token`, and a KUBECONFIG for it whose
/// token is read from a file (returned, for rotation).
async fn api_server(dir: &Path, token: &str) -> (ApiServer, PathBuf, PathBuf) {
    let server = ApiServer::start(api_tls(dir), token).await;
    let token_file = dir.join("token");
    std::fs::write(&token_file, token).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: stand-in\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: rarangi\n  user:\n    tokenFile: {}\ncontexts:\n- name: stand-in\n  context:\n    cluster: stand-in\n    user: rarangi\n    namespace: {NAMESPACE}\ncurrent-context: stand-in\n",
        server.url,
        dir.join("ca.pem").display(),
        token_file.display()
    );
    std::fs::write(&kubeconfig, text).unwrap();
    (server, kubeconfig, token_file)
}

/// A catalogue at `addr` discovering its peers from Service `rarangi`
/// through the API server of `kubeconfig`, dialling the port named "line".
fn discovering_cat(addr: &str, kubeconfig: &Path) -> Cat {
    Cat::options("development")
        .bin(BIN)
        .at(addr)
        .launcher(["env".to_owned(), format!("KUBECONFIG={}", kubeconfig.display())])
        .args([
            "--discover-k8s",
            "rarangi",
            "--k8s-namespace",
            NAMESPACE,
            "--k8s-port",
            "line",
        ])
        .start()
        .unwrap()
}

/// Addresses on distinct loopback IPs sharing one port (the endpoints of
/// one slice share its ports), as (ip, "ip:port").
fn addrs_on_one_port(n: usize) -> (u16, Vec<(String, String)>) {
    let first = fresh_addr();
    let port: u16 = first.rsplit_once(':').unwrap().1.parse().unwrap();
    let ips = std::iter::once(first)
        .chain(std::iter::repeat_with(fresh_addr))
        .take(n)
        .map(|a| {
            let ip = a.rsplit_once(':').unwrap().0.to_owned();
            (ip.clone(), format!("{ip}:{port}"))
        })
        .collect();
    (port, ips)
}

/// Waits until `cat` reaches exactly itself and `others` (none of the
/// others dials anyone: reaching them means `cat` dialled them).
async fn reaches(cat: &Cat, others: &[&Cat], deadline: Deadline, server: &ApiServer) {
    let mut want: Vec<String> = std::iter::once(cat)
        .chain(others.iter().copied())
        .map(|c| format!("x-tvnetcs://{}/", c.addr))
        .collect();
    want.sort();
    loop {
        let (_, v) = get_json(&cat.http, "/v1/topology").await;
        let mut got: Vec<String> = v["reachable"]
            .as_array()
            .map(|r| r.iter().filter_map(|u| u.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        got.sort();
        if got == want {
            return;
        }
        deadline
            .retry(|| {
                format!(
                    "{} reaches {got:?}, want {want:?}; API server: {:?}\n{}",
                    cat.addr,
                    server.stats(),
                    cat.log()
                )
            })
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogues_follow_the_endpoint_slices_through_changes_and_a_relist() {
    let dir = TempDir::new("k8s-api").unwrap();
    let (server, kubeconfig, _) = api_server(dir.path(), "token-1").await;
    let (port, a) = addrs_on_one_port(5);
    let ip = |i: usize| a[i].0.as_str();
    let peer = |i: usize| cat_at(&a[i].1, "development", "c1", &[]);
    // Its own address is in the slice too, as in a real pod: dialling
    // itself is noticed and stopped.
    server.put_slice("rarangi-a", &[ip(0), ip(1)], port);
    let (one, two) = (peer(1), peer(2));
    let cat = discovering_cat(&a[0].1, &kubeconfig);
    reaches(&cat, &[&one], Deadline::default(), &server).await;

    // MODIFIED: a second catalogue in the same slice.
    server.put_slice("rarangi-a", &[ip(0), ip(1), ip(2)], port);
    reaches(&cat, &[&one, &two], Deadline::default(), &server).await;

    // ADDED then DELETED: a catalogue in a slice of its own is linked,
    // and once the slice is gone it is no longer dialled: when its link
    // ends, it is not dialled again.
    let mut three = peer(3);
    server.put_slice("rarangi-b", &[ip(3)], port);
    reaches(&cat, &[&one, &two, &three], Deadline::default(), &server).await;
    server.delete_slice("rarangi-b");
    let retired = format!("peer={}", a[3].1);
    let deadline = Deadline::default();
    three.kill();
    while !cat
        .log()
        .lines()
        .any(|l| l.contains("not redialing") && l.contains(&retired))
    {
        deadline
            .retry(|| format!("the deleted slice's catalogue to be retired\n{}", cat.log()))
            .await;
    }
    reaches(&cat, &[&one, &two], Deadline::default(), &server).await;

    // 410 Gone: the history is compacted while a change is made; the
    // watch resumed from an old resourceVersion is refused and only a
    // new list shows the change.
    let four = peer(4);
    let lists = server.stats().lists;
    server.compact_then(|s| s.put_slice("rarangi-a", &[ip(0), ip(1), ip(2), ip(4)], port));
    reaches(&cat, &[&one, &two, &four], Deadline::default(), &server).await;
    let stats = server.stats();
    assert!(stats.gone >= 1 && stats.lists > lists, "{stats:?}");
    assert!(stats.watches >= 2 && stats.unauthorized == 0, "{stats:?}");
    drop(three);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_file_keeps_discovery_working() {
    let dir = TempDir::new("k8s-api").unwrap();
    let (server, kubeconfig, token_file) = api_server(dir.path(), "token-1").await;
    let (port, a) = addrs_on_one_port(3);
    server.put_slice("rarangi-a", &[&a[1].0], port);
    let one = cat_at(&a[1].1, "development", "c1", &[]);
    let cat = discovering_cat(&a[0].1, &kubeconfig);
    reaches(&cat, &[&one], Deadline::default(), &server).await;

    // The kubelet writes a new token; the old one stops working and every
    // watch made with it ends. kube re-reads the token file at least once
    // a minute; until then the catalogue's requests are refused and
    // retried with back-off, so this waits longer than usual.
    std::fs::write(&token_file, "token-2").unwrap();
    server.rotate_token("token-2");
    let two = cat_at(&a[2].1, "development", "c1", &[]);
    server.put_slice("rarangi-a", &[&a[1].0, &a[2].0], port);
    reaches(&cat, &[&one, &two], Deadline::after(DEADLINE * 8), &server).await;
    eventually("the API server to have accepted the new token", || {
        server.stats().accepted.contains_key("token-2")
    })
    .await;
}
