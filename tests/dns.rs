//! DNS against real catalogues: `dig` (Debian's dnsutils) and
//! hickory-resolver ask a catalogue's DNS port on loopback for A, SRV, the
//! RFC 2782 form, cluster-limited and mixed-case names, unknown names,
//! truncated UDP answers retried over TCP, and an instance whose process
//! dies. No timing is asserted (see crates/bench, part `dns`).

#[allow(unused_imports)] // tests share common/; this one needs less of it
mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::*;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::Resolver;
use rarangi_client::{register, Attrs, Registration};

/// `dig @DNS ARGS...`'s output (one try, short timeout: a lost datagram
/// is retried by the caller's polling).
async fn dig(dns: &str, args: &[&str]) -> String {
    let addr: SocketAddr = dns.parse().unwrap();
    let mut cmd = Command::new("dig");
    cmd.arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+time=2", "+tries=1"])
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("dig (Debian package dnsutils)"))
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dig +short`'s lines.
async fn short(dns: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec!["+short"];
    all.extend_from_slice(args);
    dig(dns, &all).await.lines().map(str::to_owned).collect()
}

/// Polls `dig +short` until it shows `want`.
async fn eventually_short(dns: &str, args: &[&str], want: &[&str]) {
    let deadline = Deadline::default();
    loop {
        let got = short(dns, args).await;
        if got == want {
            return;
        }
        deadline
            .retry(|| format!("dig {args:?} at {dns} shows {got:?}, want {want:?}"))
            .await;
    }
}

async fn reg(cat: &Cat, uri: &str, attrs: &[(&str, &str)]) -> Registration {
    register(&cat.opts(), uri, attrs.iter().copied().collect::<Attrs>())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_reads_a_srv_rfc2782_cluster_limited_and_mixed_case_names() {
    let a = cat("development", "c1", &[]);
    let b = cat("development", "c2", &[&a.addr]);
    let _here = reg(&a, "tcp://127.0.0.10:8080/web", &[("weight", "3")]).await;
    let _there = reg(&b, "tcp://127.0.0.11:8081/web", &[]).await;

    // This catalogue's instance first, then the other cluster's.
    eventually_short(
        &a.dns,
        &["A", "web.service.rarangi"],
        &["127.0.0.10", "127.0.0.11"],
    )
    .await;
    let srv = short(&a.dns, &["SRV", "web.service.rarangi"]).await;
    assert_eq!(
        srv,
        [
            "1 3 8080 7f00000a.addr.rarangi.",
            "3 1 8081 7f00000b.addr.rarangi."
        ]
    );
    assert_eq!(short(&a.dns, &["SRV", "_web._tcp.service.rarangi"]).await, srv);
    // Targets resolve at the same server, and come in the additional section.
    assert_eq!(
        short(&a.dns, &["A", "7f00000b.addr.rarangi"]).await,
        ["127.0.0.11"]
    );
    let full = dig(&a.dns, &["SRV", "web.service.rarangi"]).await;
    assert!(full.contains("ADDITIONAL SECTION"), "{full}");
    assert!(
        full.contains("7f00000a.addr.rarangi.\t0\tIN\tA\t127.0.0.10"),
        "{full}"
    );
    // One cluster; any case.
    assert_eq!(
        short(&a.dns, &["A", "web.service.c2.rarangi"]).await,
        ["127.0.0.11"]
    );
    assert_eq!(
        short(&a.dns, &["A", "WEB.Service.C1.RARANGI"]).await,
        ["127.0.0.10"]
    );
    // Unknown names: NXDOMAIN with our SOA.
    let nx = dig(&a.dns, &["A", "nope.service.rarangi"]).await;
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    assert!(
        nx.contains("AUTHORITY SECTION") && nx.contains("SOA\tns.rarangi. hostmaster.rarangi."),
        "{nx}"
    );
    // A known name without records of the type: NODATA with the SOA.
    let nodata = dig(&a.dns, &["TXT", "web.service.rarangi"]).await;
    assert!(
        nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0"),
        "{nodata}"
    );
    assert!(nodata.contains("SOA"), "{nodata}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_udp_answer_is_given_in_full_over_tcp() {
    let a = cat("development", "c1", &[]);
    let mut regs = Vec::new();
    for i in 0..40 {
        regs.push(reg(&a, &format!("tcp://127.0.1.{i}:80/many"), &[]).await);
    }
    let deadline = Deadline::default();
    while short(&a.dns, &["+tcp", "SRV", "many.service.rarangi"])
        .await
        .len()
        < 40
    {
        deadline.retry(|| "40 instances over TCP".to_owned()).await;
    }
    // 512 bytes without EDNS: cut, with TC set; dig is told not to retry.
    let udp = dig(&a.dns, &["+noedns", "+ignore", "SRV", "many.service.rarangi"]).await;
    assert!(udp.contains("flags: qr aa tc"), "{udp}");
    let answers = udp
        .lines()
        .filter(|l| l.starts_with("many.service.rarangi.") && l.contains("SRV"))
        .count();
    assert!(answers > 0 && answers < 40, "{udp}");
    let tcp = dig(&a.dns, &["+tcp", "+noedns", "SRV", "many.service.rarangi"]).await;
    assert!(tcp.contains("ANSWER: 40") && !tcp.contains(" tc"), "{tcp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_process_dies_leaves_dns() {
    let a = cat("development", "c1", &[]);
    let mut service = spawn_register(&a, "tcp://127.0.0.20:9000/doomed");
    eventually_short(&a.dns, &["A", "doomed.service.rarangi"], &["127.0.0.20"]).await;
    let _ = service.kill();
    let _ = service.wait();
    let deadline = Deadline::default();
    loop {
        let out = dig(&a.dns, &["A", "doomed.service.rarangi"]).await;
        if out.contains("status: NXDOMAIN") {
            break;
        }
        deadline.retry(|| format!("doomed still in DNS:\n{out}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hickory_resolver_reads_srv_and_a() {
    let a = cat("development", "c1", &[]);
    let _r = reg(&a, "tcp://127.0.0.30:7000/api", &[("weight", "9")]).await;
    let dns: SocketAddr = a.dns.parse().unwrap();
    let mut udp = ConnectionConfig::udp();
    udp.port = dns.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = dns.port();
    let config =
        ResolverConfig::from_name_servers(vec![NameServerConfig::new(dns.ip(), true, vec![udp, tcp])]);
    let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    builder.options_mut().cache_size = 0;
    let resolver = builder.build().unwrap();
    let deadline = Deadline::default();
    let srv = loop {
        match resolver.lookup("api.service.rarangi.", RecordType::SRV).await {
            Ok(l) if !l.answers().is_empty() => break l,
            other => deadline.retry(|| format!("SRV lookup: {other:?}")).await,
        }
    };
    let RData::SRV(s) = &srv.answers()[0].data else {
        panic!("not SRV: {srv:?}")
    };
    assert_eq!((s.priority, s.weight, s.port), (1, 9, 7000));
    let ips = resolver
        .lookup("api.service.rarangi.", RecordType::A)
        .await
        .unwrap();
    let got: Vec<String> = ips.answers().iter().map(|r| r.data.to_string()).collect();
    assert_eq!(got, ["127.0.0.30"]);
    let missing = resolver.lookup("nope.service.rarangi.", RecordType::A).await;
    assert!(missing.is_err(), "{missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_port_in_use_is_a_clear_start_error() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // TCP may be free there: UDP is the one that fails.
    let err = Cat::options("development")
        .bin(BIN)
        .dns(Some(&addr))
        .start()
        .unwrap_err();
    let text = format!("{err}");
    assert!(text.contains("for DNS"), "{text}");
}
