//! The web UI in a real browser: headless Chromium (Debian's `chromium`)
//! loads `/ui/` from real catalogues and the test reads the DOM the page
//! rendered (`--dump-dom`): a service registered during the test, a
//! catalogue killed during the test drawn as unreachable, the token prompt.
//! Skips with a message when chromium is not installed (.ci/run installs
//! it). With `RARANGI_UI_SCREENSHOTS=1` it refreshes docs/ui-*.png.

#[allow(unused_imports)] // not every harness re-export is used here
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::http::*;
use common::*;
use rarangi_harness::TempDir;
use serde_json::json;

/// The browser, if installed.
fn chromium() -> Option<&'static str> {
    let ok = Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some("chromium")
}

/// Runs headless chromium on `url` with `args` (bounded by timeout(1): a
/// browser that hangs fails the test instead of stalling it), in a
/// profile of its own; returns its stdout.
async fn browse(profile: &Path, url: &str, args: &[&str]) -> String {
    let mut cmd = Command::new("timeout");
    cmd.args([
        "60",
        "chromium",
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(["--hide-scrollbars", "--window-size=1200,800"])
    // Long enough for the page to fetch and render; virtual time runs
    // ahead when the page is idle, so this is not a wait in real time.
    .arg("--virtual-time-budget=3000")
    .args(args)
    .arg(url)
    .stdin(Stdio::null())
    .stderr(Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run chromium");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Loads `url` until its rendered DOM satisfies `ok`; returns that DOM.
async fn eventually_dom(profile: &Path, url: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Deadline::default();
    loop {
        let dom = browse(profile, url, &["--dump-dom"]).await;
        if ok(&dom) {
            return dom;
        }
        deadline
            .retry(|| format!("the UI at {url} does not show {what}; its DOM:\n{dom}"))
            .await;
    }
}

/// Screenshots `url` into the test's directory (and into docs/ when asked).
async fn screenshot(profile: &Path, url: &str, name: &str) {
    let file = profile.join(name);
    browse(profile, url, &[&format!("--screenshot={}", file.display())]).await;
    let png = std::fs::read(&file).expect("chromium wrote a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    if std::env::var_os("RARANGI_UI_SCREENSHOTS").is_some() {
        let docs = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs")).join(name);
        std::fs::write(docs, png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_shows_live_services_and_partitions() {
    if chromium().is_none() {
        eprintln!("skipped: chromium is not installed (apt-get install -y chromium; .ci/run does)");
        return;
    }
    let profile = TempDir::new("ui-chromium").unwrap();
    let a = cat("development", "east", &[]);
    let _c = cat("development", "east", &[&a.addr]);
    let mut b = cat("development", "west", &[&a.addr]);
    eventually_json(&a.http, "/v1/topology", "three reachable catalogues", |_, v| {
        v["reachable"].as_array().map_or(0, Vec::len) == 3
    })
    .await;

    // The files themselves: types, revalidation, served without a token.
    let (s, h, body) = http(&a.http, "GET", "/ui/", None).await;
    assert_eq!(s, 200, "{body}");
    let header = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(
        header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
    let tag = header("etag").unwrap();
    let (s, _, _) = http_with(&a.http, "GET", "/ui/", &[("If-None-Match", &tag)], None).await;
    assert_eq!(s, 304);
    let (s, h, _) = http(&a.http, "GET", "/ui/app.js", None).await;
    assert_eq!(s, 200);
    assert!(h
        .iter()
        .any(|(k, v)| k == "content-type" && v.starts_with("text/javascript")));

    // A service registered during the test, at another catalogue.
    let url = format!("http://{}/ui/", a.http);
    let svc = json!({"endpoints": {"http": "10.0.0.5:8080"}, "attrs": {"zone": "north"}, "ttl": 600});
    assert_eq!(put(&b.http, "/srv/orders/h1", svc).await, 201);
    let dom = eventually_dom(profile.path(), &url, "the service orders", |d| {
        d.contains(r#"data-instance="h1""#)
    })
    .await;
    for shown in [
        "zone=north",
        "10.0.0.5:8080",
        "west",
        "passing",
        r#"data-service="orders""#,
    ] {
        assert!(dom.contains(shown), "{shown} missing from\n{dom}");
    }
    screenshot(profile.path(), &url, "ui-services.png").await;

    // A partition made during the test: b dies; a draws it unreachable.
    let topo = format!("{url}#topology");
    let gone = format!(r#"data-uri="x-tvnetcs://{}/" data-state="unreachable""#, b.addr);
    b.kill();
    let dom = eventually_dom(profile.path(), &topo, "b unreachable", |d| d.contains(&gone)).await;
    assert!(
        dom.contains("cat reachable me"),
        "this catalogue is marked\n{dom}"
    );
    assert!(dom.contains("1 unreachable"), "{dom}");
    screenshot(profile.path(), &topo, "ui-topology.png").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_asks_for_a_token_when_the_api_needs_one() {
    if chromium().is_none() {
        eprintln!("skipped: chromium is not installed (apt-get install -y chromium; .ci/run does)");
        return;
    }
    let profile = TempDir::new("ui-chromium-token").unwrap();
    let tokens = profile.path().join("tokens");
    std::fs::write(&tokens, "r-1 read\n").unwrap();
    let a = Cat::options("development")
        .bin(BIN)
        .args(["--http-token-file", &tokens.display().to_string()])
        .start()
        .unwrap();
    // The page loads without a token; its API calls do not.
    assert_eq!(http(&a.http, "GET", "/ui/", None).await.0, 200);
    assert_eq!(http(&a.http, "GET", "/srv", None).await.0, 401);
    let url = format!("http://{}/ui/", a.http);
    eventually_dom(profile.path(), &url, "the token prompt", |d| {
        d.contains("This catalogue needs a token") && d.contains("need-token")
    })
    .await;
}
