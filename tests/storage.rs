//! Storage faults with real processes: a damaged or empty store is refused
//! at start with what to do; a full disk turns configuration read-only
//! (503 with the reason, nothing served or replicated, reads go on) and
//! writes resume by themselves once space is back.

#[allow(unused_imports)] // this file uses a few of the shared helpers
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::http::*;
use common::*;
use serde_json::{json, Value};

/// The store file of a catalogue started by the harness.
fn store_file(cat: &Cat) -> PathBuf {
    cat.dir().join("data").join("rarangi.redb")
}

/// A catalogue with a little configuration on disk, stopped.
async fn stopped_with_data() -> Cat {
    let mut a = cat("development", "c1", &[]);
    for i in 0..20 {
        let status = put(
            &a.http,
            &format!("/app/doc{i}"),
            json!({"config": "x".repeat(500)}),
        )
        .await;
        assert_eq!(status, 201);
    }
    a.terminate().unwrap();
    a
}

/// Restarting must fail: non-zero exit, and the log (its standard error)
/// says the store is damaged and what to do.
fn assert_refused_at_start(a: &mut Cat, what: &str) {
    let e = match a.restart() {
        Ok(()) => panic!("{what}: the catalogue started on a damaged store\n{}", a.log()),
        Err(e) => e,
    };
    let text = e.to_string();
    let log = a.log();
    assert!(
        matches!(&e, rarangi_harness::Error::Exited { status, .. } if !status.success()),
        "{what}: {text}"
    );
    assert!(log.contains("rarangi.redb is damaged"), "{what}: {log}");
    assert!(log.contains("move it aside"), "{what}: {log}");
    assert!(log.contains("rebuilds its configuration"), "{what}: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_store_is_refused_at_start() {
    let mut a = stopped_with_data().await;
    let file = store_file(&a);
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_refused_at_start(&mut a, "truncated");
    // Moved aside, it starts (empty, to be refilled by its peers).
    std::fs::rename(&file, file.with_extension("damaged")).unwrap();
    a.restart().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_length_store_is_refused_at_start() {
    let mut a = stopped_with_data().await;
    std::fs::write(store_file(&a), b"").unwrap();
    assert_refused_at_start(&mut a, "zero-length");
}

/// A small tmpfs mounted for the test; unmounted (lazily, so a process
/// still holding a file does not keep it) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// None (with the reason printed) where mounting is not permitted.
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(at.to_owned())),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs here (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros to `path` until the disk is full.
fn fill(path: &Path) {
    use std::io::Write as _;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    // Whatever is left in smaller pieces, then to the last byte.
    while f.write_all(&[0u8; 512]).is_ok() {}
    while f.write_all(&[0u8]).is_ok() {}
    let _ = f.sync_all();
}

fn alarms(topology: &Value) -> Vec<String> {
    topology["alarms"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_makes_configuration_read_only_until_space_is_back() {
    let mut a = cat("development", "c1", &[]);
    // a's data directory becomes a small tmpfs (declared after `a`, so it
    // is unmounted before a's directory is removed).
    a.kill();
    let data = a.dir().join("data");
    std::fs::remove_dir_all(&data).unwrap();
    let Some(_mount) = Tmpfs::mount(&data, "16m") else {
        return;
    };
    a.restart().unwrap();
    let b = cat("development", "c1", &[&a.addr]);
    assert_eq!(put(&a.http, "/app/before", json!({"config": 1})).await, 201);
    eventually_json(&b.http, "/app/before", "replication to b", |s, _| s == 200).await;

    let filler = data.join("filler");
    fill(&filler);
    let (status, _, body) = http(
        &a.http,
        "PUT",
        "/app/x",
        Some(json!({"config": "y".repeat(100_000)}).to_string().as_bytes()),
    )
    .await;
    assert_eq!(status, 503, "{body}\n{}", a.log());
    assert!(body.contains("read-only"), "{body}");
    assert!(body.contains("No space left"), "the reason: {body}");
    // Not served here, reads go on, and the alarm shows.
    assert_eq!(get_json(&a.http, "/app/x").await.0, 404);
    let (s, v) = get_json(&a.http, "/app/before").await;
    assert_eq!((s, config_of(&v)), (200, json!(1)));
    let topology = get_json(&a.http, "/v1/topology").await.1;
    let shown = alarms(&topology);
    assert!(
        shown.len() == 1 && shown[0].starts_with("store: ") && shown[0].contains("No space left"),
        "{topology}"
    );
    // Still read-only on a second try (redb's "previous I/O error").
    assert_eq!(put(&a.http, "/app/x", json!({"config": 2})).await, 503);
    assert!(a.log().contains("store alarm"), "{}", a.log());
    // b is unaffected; a cannot store b's write, so it waits.
    assert_eq!(put(&b.http, "/app/from-b", json!({"config": 3})).await, 201);

    // Space comes back: writes resume by themselves, no restart.
    std::fs::remove_file(&filler).unwrap();
    eventually_json(&a.http, "/v1/topology", "the alarm to clear", |s, v| {
        s == 200 && alarms(v).is_empty()
    })
    .await;
    assert!(a.log().contains("store alarm cleared"), "{}", a.log());
    assert_eq!(put(&a.http, "/app/after", json!({"config": 4})).await, 201);
    // The refused write was never replicated: b has what a wrote after it
    // (sent on the same link, so after anything sent before) and not it.
    eventually_json(&b.http, "/app/after", "replication to b", |s, _| s == 200).await;
    assert_eq!(get_json(&b.http, "/app/x").await.0, 404);
    assert_eq!(get_json(&a.http, "/app/x").await.0, 404);
    // What b wrote during the alarm reaches a once the links reconcile.
    eventually_json(&a.http, "/app/from-b", "b's write after the alarm", |s, _| {
        s == 200
    })
    .await;
    assert_eq!(put(&a.http, "/app/x", json!({"config": 5})).await, 201);
    eventually_json(&b.http, "/app/x", "replication to b", |s, _| s == 200).await;
    a.kill();
}
