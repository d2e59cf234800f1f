//! Honest feedback, with real processes: what the log says about clients
//! and links, start-up errors that name the problem (a second catalogue
//! on one data directory, a port taken, a Unix socket that cannot be
//! made), and HTTP answers that say what is wrong.

#[allow(unused_imports)] // not every helper is used here
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::http::*;
use common::*;
use serde_json::json;

/// A catalogue logging at debug.
fn debug_cat() -> Cat {
    Cat::options("development")
        .bin(BIN)
        .log_level("info,rarangi_server=debug")
        .start()
        .unwrap()
}

/// Runs `rarangi serve ARGS` with its log in `log`; returns its exit
/// status once it ends, or None (after killing it) if it is still running
/// once `until` holds for its log or the deadline passed.
fn serve(args: &[&str], log: &Path, until: impl Fn(&str) -> bool) -> Option<std::process::ExitStatus> {
    let file = std::fs::File::create(log).unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(["--env", "development"])
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    let deadline = Deadline::after(DEADLINE).every(Duration::from_millis(20));
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if until(&std::fs::read_to_string(log).unwrap_or_default()) || !deadline.next_blocking() {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_catalogue_on_the_same_data_directory_names_the_first() {
    let a = Cat::options("development").bin(BIN).start().unwrap();
    let data = a.dir().join("data");
    let log = a.dir().join("second.log");
    let sock = a.dir().join("second.sock");
    let (listen, http) = (fresh_addr(), fresh_addr());
    let args = [
        "--listen",
        &listen,
        "--http",
        &http,
        "--unix",
        sock.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let status = serve(&args, &log, |l| l.contains("catalogue started"));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.is_some_and(|s| !s.success()), "{text}");
    let pid = a.pid().unwrap();
    let want = format!(
        "another catalogue already runs with {} (pid {pid})",
        data.display()
    );
    assert!(text.contains(&want), "{text}");
    assert!(!sock.exists(), "no socket file left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_http_port_stops_the_start_before_it_is_announced_and_leaves_no_socket() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let dir = tempdir("port");
    let (log, sock, data) = (dir.join("log"), dir.join("s.sock"), dir.join("data"));
    let listen = fresh_addr();
    let args = [
        "--listen",
        &listen,
        "--http",
        &taken,
        "--unix",
        sock.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let status = serve(&args, &log, |l| l.contains("catalogue started"));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.is_some_and(|s| !s.success()), "{text}");
    assert!(text.contains(&format!("cannot listen on {taken}")), "{text}");
    assert!(!text.contains("catalogue started"), "{text}");
    assert!(!sock.exists(), "no socket file left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_socket_that_cannot_be_made_is_reported_in_the_start_line() {
    let dir = tempdir("nosock");
    let log = dir.join("log");
    let data = dir.join("data");
    // A directory that cannot be created, as a missing /run/rarangi can't.
    let sock = "/proc/rarangi-missing/s.sock";
    let (listen, http) = (fresh_addr(), fresh_addr());
    let args = [
        "--listen",
        &listen,
        "--http",
        &http,
        "--unix",
        sock,
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let status = serve(&args, &log, |l| l.contains("catalogue started"));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.is_none(), "it runs without the socket: {text}");
    let start = text
        .lines()
        .find(|l| l.contains("catalogue started"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        start.contains("none (/proc/rarangi-missing/s.sock: cannot create its directory"),
        "{start}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory under the system's temporary directory.
fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rarangi-feedback-{tag}-{}-{}",
        std::process::id(),
        fresh_addr().replace([':', '.'], "-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_withdrawals_refusals_and_requests_are_logged_with_the_client_address() {
    let a = debug_cat();
    let answer = exchange(
        &a.addr,
        b"7 tcp://10.0.0.1:80/orders\n11 tcp://10.0.0.1:80/orders\n8 (\n",
    )
    .await;
    assert_eq!(
        answer.lines.len(),
        1,
        "only the bad regex is answered: {answer:?}"
    );
    assert_eq!(get_json(&a.http, "/srv").await.0, 200);
    eventually("the debug lines", || {
        let log = a.log();
        let with_addr = |what: &str| {
            log.lines()
                .any(|l| l.contains(what) && l.contains("client=127.0.0.1:"))
        };
        with_addr("registration")
            && with_addr("withdrawal")
            && with_addr("refused client request")
            && log
                .lines()
                .any(|l| l.contains("HTTP request") && l.contains("/srv") && l.contains("127.0.0.1:"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_link_is_not_reachable_again() {
    let a = cat("development", "c1", &[]);
    let b = cat("development", "c1", &[&a.addr]);
    assert_eq!(put(&a.http, "/app/ready", json!({"config": 1})).await, 201);
    eventually_json(&b.http, "/app/ready", "the link", |s, _| s == 200).await;
    for c in [&a, &b] {
        assert!(c.log().contains("link up"), "{}", c.log());
        assert!(!c.log().contains("reachable again"), "{}", c.log());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_answers_say_what_is_wrong() {
    let a = cat("development", "c1", &[]);
    // POST creates a hook; a second POST of the name is a conflict, PUT replaces.
    let hook = json!({"name": "h", "endpoint": "http://127.0.0.1:9/in"}).to_string();
    let post = |body: String| {
        let http = a.http.clone();
        async move { http_req(&http, "POST", "/app/x/web-hooks", &body).await }
    };
    assert_eq!(post(hook.clone()).await.0, 201);
    let (status, text) = post(hook).await;
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("PUT"), "{text}");
    let put_body = json!({"endpoint": "http://127.0.0.1:9/other"}).to_string();
    assert_eq!(
        http_req(&a.http, "PUT", "/app/x/web-hooks/h", &put_body).await.0,
        200
    );

    // An invalid wait= is 400, with or without an index.
    for q in [
        "wait=soon",
        "wait=5h",
        "wait=-1s",
        "wait=",
        "index=1&wait=1.5s",
        "index=1&wait=11m",
    ] {
        for path in ["/app", "/app/x", "/srv", "/srv/orders"] {
            let (status, _, text) = http(&a.http, "GET", &format!("{path}?{q}"), None).await;
            assert_eq!(status, 400, "{path}?{q}: {text}");
        }
    }

    // The name rule reads as meant.
    let (status, _, text) = http(&a.http, "GET", "/app/a%20b", None).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("[0-9A-Za-z._-]+"), "{text}");

    // An index ahead of this catalogue's (a client failing over from a
    // catalogue further along) is answered at once, not after the wait.
    assert_eq!(put(&a.http, "/app/x", json!({"config": 1})).await, 201);
    let ahead = "/app/x?index=1000000&wait=10m";
    let answered = tokio::time::timeout(DEADLINE, http(&a.http, "GET", ahead, None)).await;
    let (status, headers, _) = answered.expect("answered at once, not after the wait");
    assert_eq!(status, 200);
    let index: u64 = headers
        .iter()
        .find(|(k, _)| k == "x-rarangi-index")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap();
    assert!(index < 1_000_000, "this catalogue's own index: {index}");
}

/// A request with a JSON body; status and body.
async fn http_req(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, text) = http(addr, method, path, Some(body.as_bytes())).await;
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accepting_side_says_environment_mismatch_too() {
    let prod = cat("production", "c1", &[]);
    let staging = cat("staging", "c1", &[&prod.addr]);
    eventually("the dialling side's line", || {
        staging.log().contains("environment mismatch")
    })
    .await;
    eventually("the accepting side's line", || {
        prod.log().contains("environment mismatch")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answered_could_not_be_connected_to() {
    // Bound and closed: nobody listens there.
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = nobody.local_addr().unwrap().to_string();
    drop(nobody);
    let a = cat("development", "c1", &[&addr]);
    eventually("the dial failure", || {
        a.log().contains("could not connect to peer")
    })
    .await;
    assert!(!a.log().contains("connection to peer lost"), "{}", a.log());
}
