//! `GET /metrics`: the exposition parses (every family has HELP and TYPE),
//! counters move, and Debian's `prometheus` scrapes a catalogue (with a
//! read token) and answers a query with the right value.

mod common;

use std::process::{Child, Command, Stdio};

use common::http::*;
use common::*;
use rarangi_harness::TempDir;
use serde_json::Value;

/// The value of the sample `series` (name and labels as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// GET /metrics with a bearer token.
async fn scrape(addr: &str, token: &str) -> String {
    let auth = format!("Bearer {token}");
    let (status, headers, body) = http_with(addr, "GET", "/metrics", &[("Authorization", &auth)], None).await;
    assert_eq!(status, 200, "{body}");
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-type" && v.starts_with("application/openmetrics-text")));
    body
}

/// A catalogue whose HTTP API needs a token; the read token is "r-1".
fn cat_with_token(dir: &TempDir) -> Cat {
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "r-1 read\n").unwrap();
    Cat::options("development")
        .bin(BIN)
        .args(["--http-token-file", &tokens.display().to_string()])
        .start()
        .unwrap()
}

#[tokio::test]
async fn the_exposition_parses_and_counters_move() {
    let dir = TempDir::new("metrics-direct").unwrap();
    let a = cat_with_token(&dir);
    eventually("the catalogue started", || a.log().contains("catalogue started")).await;
    // Behind the read-token rule like every read.
    assert_eq!(http(&a.http, "GET", "/metrics", None).await.0, 401);
    let mut reg = spawn_register(&a, "tcp://10.0.0.1:80/orders");
    let deadline = Deadline::default();
    let text = loop {
        let text = scrape(&a.http, "r-1").await;
        if sample(&text, "rarangi_services") == Some(1.0) {
            break text;
        }
        assert!(deadline.next().await, "no service counted:\n{text}");
    };
    let _ = reg.kill();
    let _ = reg.wait();
    assert_eq!(sample(&text, "rarangi_services_local"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "rarangi_catalogues_known"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "rarangi_is_leader"), Some(1.0), "{text}");
    let leader = text
        .lines()
        .find(|l| l.starts_with("rarangi_leader{catalogue="))
        .unwrap_or_default();
    assert!(leader.contains(&a.addr) && leader.ends_with("} 1"), "{text}");
    assert!(
        sample(&text, "rarangi_lines_received_total{kind=\"REG_SERV\"}").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "rarangi_lines_sent_total{kind=\"WELCOME\"}").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    // Every family has HELP and TYPE; every sample belongs to one.
    let mut families = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(text.contains(&format!("# HELP {name} ")), "no HELP for {name}");
            assert!(name.starts_with("rarangi_"), "{name}");
            families.push(name.to_owned());
        }
    }
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        assert!(
            families.iter().any(|f| line.starts_with(f.as_str())),
            "sample of no family: {line}"
        );
    }
    for name in [
        "rarangi_store_commit_seconds",
        "rarangi_propagation_delay_seconds",
        "rarangi_slow_drops",
    ] {
        assert!(families.iter().any(|f| f == name), "{name} missing");
    }
}

/// Debian's Prometheus (`apt-get install -y prometheus`).
fn prometheus() -> Option<&'static str> {
    let path = "/usr/bin/prometheus";
    std::path::Path::new(path).exists().then_some(path)
}

/// Ends the Prometheus this test started, by its PID.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn prometheus_scrapes_a_catalogue() {
    let Some(bin) = prometheus() else {
        eprintln!("skipped: prometheus is not installed (apt-get install -y prometheus; .ci/run does)");
        return;
    };
    let dir = TempDir::new("metrics-prometheus").unwrap();
    let a = cat_with_token(&dir);
    let mut reg = spawn_register(&a, "tcp://10.0.0.1:80/orders");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: rarangi\n    authorization:\n      type: Bearer\n      credentials: r-1\n    static_configs:\n      - targets: ['{}']\n",
            a.http
        ),
    )
    .unwrap();
    let web = fresh_addr();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let _prometheus = Running(child);
    let deadline = Deadline::after(DEADLINE);
    loop {
        let answer = try_http(&web, "GET", "/api/v1/query?query=rarangi_services", None).await;
        let value = answer.ok().and_then(|(_, _, body)| {
            let v: Value = serde_json::from_str(&body).ok()?;
            let r = v["data"]["result"].as_array()?.first()?.clone();
            Some((
                r["metric"]["instance"].as_str()?.to_owned(),
                r["value"][1].as_str()?.to_owned(),
            ))
        });
        if let Some((instance, value)) = &value {
            if value == "1" {
                assert_eq!(instance, &a.http);
                break;
            }
        }
        assert!(
            deadline.next().await,
            "prometheus has no rarangi_services = 1: {value:?}"
        );
    }
    let _ = reg.kill();
    let _ = reg.wait();
}
