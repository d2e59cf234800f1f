//! The `rarangi` command line against real catalogues: exact lookups
//! and `--regex`, filters, the JSON instance model, `watch --exec`, and
//! `watch` going stale and resynchronising when its catalogue restarts.

#[allow(unused_imports)] // the shared re-exports this file does not use
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use rarangi_client::{register, Attrs, Registration};
use serde_json::Value;

/// `rarangi ARGS --env ENV --catalogue ADDR`: exit code and stdout.
fn run(cat: &Cat, args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .args(["--env", &cat.env, "--catalogue", &cat.addr])
        .output()
        .expect("run rarangi");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

async fn reg(cat: &Cat, uri: &str, attrs: &[(&str, &str)]) -> Registration {
    let attrs: Attrs = attrs.iter().copied().collect();
    register(&cat.opts(), uri, attrs).await.unwrap()
}

/// A scratch directory of this test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rarangi-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A child process killed (by its PID) when the test ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `rarangi watch ARGS` at `cat`, stdout and stderr into files in `dir`.
fn spawn_watch(cat: &Cat, dir: &Path, args: &[&str]) -> Proc {
    let out = std::fs::File::create(dir.join("stdout")).unwrap();
    let err = std::fs::File::create(dir.join("stderr")).unwrap();
    Proc(
        Command::new(BIN)
            .arg("watch")
            .args(args)
            .args(["--env", &cat.env, "--catalogue", &cat.addr])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap(),
    )
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn lookup_matches_the_name_exactly_and_filters() {
    let a = cat("clitest", "east", &[]);
    let _o1 = reg(&a, "tcp://10.0.0.1:80/orders", &[("zone", "a"), ("tier", "1")]).await;
    let _o2 = reg(&a, "tcp://10.0.0.2:80/orders/v2", &[("zone", "b")]).await;
    let _db = reg(&a, "tcp://orders-db.local:5432/pg", &[]).await;
    let _od = reg(&a, "tcp://10.0.0.3:80/orders-db", &[]).await;
    eventually_lookup(
        &a,
        "",
        &[
            "tcp://10.0.0.1:80/orders",
            "tcp://10.0.0.2:80/orders/v2",
            "tcp://orders-db.local:5432/pg",
            "tcp://10.0.0.3:80/orders-db",
        ],
    )
    .await;

    let (code, out) = run(&a, &["lookup", "orders"]);
    assert_eq!(code, 0);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["tcp://10.0.0.1:80/orders", "tcp://10.0.0.2:80/orders/v2"]);

    // The old behaviour, as a pattern.
    let (_, out) = run(&a, &["lookup", "--regex", "orders"]);
    assert_eq!(out.lines().count(), 4, "{out}");
    let (_, out) = run(&a, &["lookup", "--regex", "^tcp://orders-db"]);
    assert_eq!(out.trim(), "tcp://orders-db.local:5432/pg");

    let (_, out) = run(&a, &["lookup", "orders", "--attr", "zone=a", "--attr", "tier=1"]);
    assert_eq!(out.trim(), "tcp://10.0.0.1:80/orders");
    let (code, out) = run(&a, &["lookup", "orders", "--attr", "zone=a", "--attr", "tier=2"]);
    assert_eq!((code, out.as_str()), (1, ""));
    let (_, out) = run(&a, &["lookup", "orders", "--cluster", "east"]);
    assert_eq!(out.lines().count(), 2);
    let (code, _) = run(&a, &["lookup", "orders", "--cluster", "west"]);
    assert_eq!(code, 1);
    let (code, _) = run(&a, &["lookup", "nothing"]);
    assert_eq!(code, 1);

    // The instance model (docs/MODEL.md).
    let (_, out) = run(&a, &["lookup", "orders", "--attr", "zone=a", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let i = &v.as_array().unwrap()[0];
    assert_eq!(i["name"], "orders");
    assert_eq!(i["id"], "10.0.0.1:80");
    assert_eq!(i["service"], "tcp://10.0.0.1:80/orders");
    assert_eq!(i["address"], "10.0.0.1");
    assert_eq!(i["port"], 80);
    assert_eq!(i["cluster"], "east");
    assert_eq!(i["catalogue"], format!("x-tvnetcs://{}/", a.addr));
    assert_eq!(i["attrs"], serde_json::json!({"zone": "a", "tier": "1"}));
    assert_eq!(i["master"], false);
    assert!(i["updated_at"].as_str().unwrap().ends_with('Z'), "{i}");
}

#[tokio::test]
async fn watch_runs_its_handler_with_the_instances_and_again_on_change() {
    let a = cat("clitest", "east", &[]);
    let _o1 = reg(&a, "tcp://10.0.0.1:80/orders", &[]).await;
    let _db = reg(&a, "tcp://orders-db.local:5432/pg", &[]).await;
    eventually_lookup(
        &a,
        "",
        &["tcp://10.0.0.1:80/orders", "tcp://orders-db.local:5432/pg"],
    )
    .await;
    let dir = scratch("exec");
    let handler = format!("cat > {0}/last.json; echo run >> {0}/runs", dir.display());
    let _w = spawn_watch(&a, &dir, &["orders", "--exec", &handler]);
    let names = |dir: &Path| -> Option<Vec<String>> {
        let v: Value = serde_json::from_str(&read(&dir.join("last.json"))).ok()?;
        let mut n: Vec<String> = v
            .as_array()?
            .iter()
            .map(|i| i["service"].as_str().unwrap().to_owned())
            .collect();
        n.sort();
        Some(n)
    };
    eventually("the handler sees the first snapshot", || {
        names(&dir) == Some(vec!["tcp://10.0.0.1:80/orders".into()])
    })
    .await;
    let o2 = reg(&a, "tcp://10.0.0.2:80/orders", &[]).await;
    eventually("the handler sees the new instance", || {
        names(&dir)
            == Some(vec![
                "tcp://10.0.0.1:80/orders".into(),
                "tcp://10.0.0.2:80/orders".into(),
            ])
    })
    .await;
    drop(o2);
    eventually("the handler sees it go", || {
        names(&dir) == Some(vec!["tcp://10.0.0.1:80/orders".into()])
    })
    .await;
    eventually("exit statuses reported", || {
        read(&dir.join("stderr")).contains("handler exited with")
    })
    .await;
    let out = read(&dir.join("stdout"));
    assert!(out.starts_with("tcp://10.0.0.1:80/orders\n"), "{out}");
    assert!(
        out.contains("+ tcp://10.0.0.2:80/orders\n") && out.contains("- tcp://10.0.0.2:80/orders\n"),
        "{out}"
    );
    assert!(!out.contains("orders-db"), "{out}");
}

#[tokio::test]
async fn watch_goes_stale_and_resynchronises_when_its_catalogue_restarts() {
    let mut a = cat("clitest", "east", &[]);
    let gone = reg(&a, "tcp://10.0.0.1:80/orders", &[]).await;
    eventually_lookup(&a, "", &["tcp://10.0.0.1:80/orders"]).await;
    let dir = scratch("stale");
    let _w = spawn_watch(&a, &dir, &["orders"]);
    eventually("the snapshot", || {
        read(&dir.join("stdout")) == "tcp://10.0.0.1:80/orders\n"
    })
    .await;
    a.kill();
    drop(gone);
    eventually("the stale mark", || {
        read(&dir.join("stdout")).contains("! stale: catalogue lost, reconnecting\n")
    })
    .await;
    assert!(read(&dir.join("stderr")).contains("lost catalogue"));
    a.restart().unwrap();
    let _new = reg(&a, "tcp://10.0.0.2:80/orders", &[]).await;
    eventually("the resync", || {
        let out = read(&dir.join("stdout"));
        out.contains("- tcp://10.0.0.1:80/orders\n")
            && out.contains("+ tcp://10.0.0.2:80/orders\n")
            && out.contains("! synced: ")
    })
    .await;
    assert!(read(&dir.join("stderr")).contains("is back"));
}

#[tokio::test]
async fn watch_json_reports_events_and_staleness() {
    let mut a = cat("clitest", "east", &[]);
    let _o = reg(&a, "tcp://10.0.0.1:80/orders", &[("zone", "a")]).await;
    eventually_lookup(&a, "", &["tcp://10.0.0.1:80/orders"]).await;
    let dir = scratch("json");
    let _w = spawn_watch(&a, &dir, &["orders", "--json"]);
    let events = |dir: &Path| -> Vec<Value> {
        read(&dir.join("stdout"))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    eventually("the snapshot", || events(&dir).len() == 2).await;
    let ev = events(&dir);
    assert_eq!(ev[0]["event"], "added");
    assert_eq!(ev[0]["snapshot"], true);
    assert_eq!(ev[0]["instance"]["attrs"]["zone"], "a");
    assert_eq!(ev[1], serde_json::json!({"event": "synced"}));
    a.kill();
    eventually("the stale event", || {
        events(&dir).contains(&serde_json::json!({"event": "stale"}))
    })
    .await;
}

#[tokio::test]
async fn register_says_when_it_loses_its_catalogue_and_when_it_is_back() {
    let mut a = cat("clitest", "east", &[]);
    let dir = scratch("register");
    let err = std::fs::File::create(dir.join("stderr")).unwrap();
    let _r = Proc(
        Command::new(BIN)
            .args(["register", "tcp://10.0.0.9:80/orders"])
            .args(["--env", &a.env, "--catalogue", &a.addr])
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap(),
    );
    eventually_lookup(&a, "", &["tcp://10.0.0.9:80/orders"]).await;
    a.kill();
    eventually("the loss reported", || {
        read(&dir.join("stderr")).contains("lost catalogue")
    })
    .await;
    a.restart().unwrap();
    eventually("the return reported", || {
        read(&dir.join("stderr")).contains("registered tcp://10.0.0.9:80/orders again at")
    })
    .await;
    eventually_lookup(&a, "", &["tcp://10.0.0.9:80/orders"]).await;
}

#[tokio::test]
async fn members_lists_catalogues_reachability_leader_and_links() {
    let a = cat("clitest", "east", &[]);
    let mut b = cat("clitest", "west", &[&a.addr]);
    let members = |a: &Cat| -> Vec<Value> {
        let (code, out) = run(a, &["members", "--json"]);
        assert_eq!(code, 0, "{out}");
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let deadline = Deadline::default();
    loop {
        let m = members(&a);
        if m.len() == 2 && m.iter().all(|c| c["reachable"] == true && c["links"] == 1) {
            assert_eq!(m.iter().filter(|c| c["leader"] == true).count(), 1, "{m:?}");
            let west = m.iter().find(|c| c["cluster"] == "west").unwrap();
            assert_eq!(west["uri"], format!("x-tvnetcs://{}/", b.addr));
            break;
        }
        deadline.retry(|| format!("members {m:?}")).await;
    }
    let (_, text) = run(&a, &["members"]);
    assert!(text.contains("leader") && text.contains("reachable"), "{text}");
    b.kill();
    let deadline = Deadline::default();
    loop {
        let m = members(&a);
        if m.iter()
            .any(|c| c["cluster"] == "west" && c["reachable"] == false)
        {
            break;
        }
        deadline.retry(|| format!("members {m:?}")).await;
    }
}

/// `rarangi ARGS --http ADDR [more]` with `stdin`: exit code, stdout, stderr.
fn run_http(addr: &str, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--http", addr])
        .env_remove("RARANGI_HTTP_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn config_round_trip_from_a_file_and_stdin_and_watch() {
    let a = cat("clitest", "east", &[]);
    let dir = scratch("config");
    let file = dir.join("billing.json");
    std::fs::write(&file, r#"{"rate": 1}"#).unwrap();
    let h = a.http.as_str();
    let (code, _, err) = run_http(
        h,
        &["config", "put", "billing", &file.display().to_string()],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run_http(h, &["config", "get", "billing"], None);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        serde_json::json!({"rate": 1})
    );
    let (_, out, _) = run_http(h, &["config", "get", "billing", "--json"], None);
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["config"]["rate"], 1);
    assert!(doc["updated_at"].is_string(), "{doc}");

    // A body that is not JSON is refused before anything is sent.
    let (code, _, err) = run_http(h, &["config", "put", "billing"], Some("rate = 2"));
    assert_eq!(code, 2);
    assert!(err.contains("not JSON"), "{err}");

    let wdir = scratch("config-watch");
    let out_file = std::fs::File::create(wdir.join("stdout")).unwrap();
    let _w = Proc(
        Command::new(BIN)
            .args(["config", "watch", "billing", "--http", h])
            .stdout(out_file)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually("the first version", || {
        read(&wdir.join("stdout")) == "{\"rate\":1}\n"
    })
    .await;
    let (code, _, err) = run_http(h, &["config", "put", "billing", "-"], Some(r#"{"rate": 2}"#));
    assert_eq!(code, 0, "{err}");
    eventually("the new version", || {
        read(&wdir.join("stdout")) == "{\"rate\":1}\n{\"rate\":2}\n"
    })
    .await;
    let (_, out, _) = run_http(h, &["config", "list"], None);
    assert_eq!(out, "billing\n");
    let (_, out, _) = run_http(h, &["config", "list", "--json"], None);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        serde_json::json!(["billing"])
    );
    let (code, _, err) = run_http(h, &["config", "delete", "billing"], None);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_http(h, &["config", "get", "billing"], None);
    assert_eq!(code, 2);
    assert!(err.contains("404"), "{err}");
    eventually("the deletion", || read(&wdir.join("stdout")).ends_with("null\n")).await;

    // Nothing listening: a clear error.
    let (code, _, err) = run_http(&fresh_addr(), &["config", "list"], None);
    assert_eq!(code, 2);
    assert!(err.contains("no catalogue HTTP API at"), "{err}");
}

#[tokio::test]
async fn config_and_hooks_with_a_token() {
    let dir = scratch("token");
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, "w-7f3a write\n").unwrap();
    let a = Cat::options("clitest")
        .bin(BIN)
        .args(["--http-token-file", &tokens.display().to_string()])
        .start()
        .unwrap();
    let h = a.http.as_str();
    let (code, _, err) = run_http(h, &["config", "list"], None);
    assert_eq!(code, 2);
    assert!(err.contains("needs a token: --token"), "{err}");
    let t = ["--token", "w-7f3a"];
    let args = |a: &[&'static str]| -> Vec<&'static str> { a.iter().chain(&t).copied().collect() };
    let (code, _, err) = run_http(h, &args(&["config", "put", "orders"]), Some("{}"));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_http(
        h,
        &args(&["hooks", "add", "orders", "notify", "http://127.0.0.1:9/notify"]),
        None,
    );
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run_http(h, &args(&["hooks", "list", "orders"]), None);
    assert_eq!(out, "notify\thttp://127.0.0.1:9/notify\n");
    let (_, out, _) = run_http(h, &args(&["hooks", "list", "orders", "--json"]), None);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["name"], "notify");
    let (code, _, err) = run_http(
        h,
        &args(&["hooks", "add", "orders", "--srv", "s1", "http://127.0.0.1:9/s"]),
        None,
    );
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run_http(h, &args(&["hooks", "list", "--srv", "orders"]), None);
    assert_eq!(out, "s1\thttp://127.0.0.1:9/s\n");
    let (code, _, err) = run_http(h, &args(&["hooks", "delete", "orders", "notify"]), None);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run_http(h, &args(&["hooks", "list", "orders"]), None);
    assert_eq!(out, "");
    // The token from the environment works too.
    let out = Command::new(BIN)
        .args(["config", "list", "--http", h])
        .env("RARANGI_HTTP_TOKEN", "w-7f3a")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "orders\n");
}
