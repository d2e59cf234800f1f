//! What an operator reaches for first, against real processes: the
//! throw-away `--dev` catalogue.

mod common;

use std::process::{Command, Stdio};

use common::*;
use rarangi_client::{register, Attrs, Endpoint, Options};
use rarangi_harness::{Deadline, TempDir};

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

/// `rarangi serve --dev` keeps its socket and state in a temporary
/// directory it removes at exit, and writes nothing to the user's home or
/// state directories.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_leaves_nothing_behind() {
    let tmp = TempDir::new("dev-tmp").unwrap();
    let home = TempDir::new("dev-home").unwrap();
    let addr = fresh_addr();
    let http = fresh_addr();
    let mut child = Command::new(BIN)
        .args(["serve", "--dev", "--listen", &addr, "--http", &http])
        .env("TMPDIR", tmp.path())
        .env("HOME", home.path())
        .env("XDG_STATE_HOME", home.path().join("state"))
        .env("XDG_RUNTIME_DIR", home.path().join("run"))
        .env_remove("RARANGI_DATA_DIR")
        .env_remove("RARANGI_UNIX")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let opts = Options::endpoints("development", vec![Endpoint::Tcp(addr.clone())]);
    let deadline = Deadline::after(DEADLINE);
    let reg = loop {
        match register(&opts, "tcp://10.0.0.1:80/orders", Attrs::default()).await {
            Ok(r) => break r,
            Err(e) => {
                deadline
                    .retry(|| format!("the dev catalogue never answered: {e}"))
                    .await
            }
        }
    };
    assert_eq!(lookup(&opts, "orders").await.unwrap().len(), 1);
    let made = files_under(tmp.path());
    assert!(
        made.iter()
            .any(|f| f.starts_with("rarangi-dev-") && f.ends_with(".sock")),
        "{made:?}"
    );
    drop(reg);
    // SIGTERM: a graceful stop removes the directory.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(child.wait().unwrap().success());
    eventually("the temporary directory is removed", || {
        files_under(tmp.path()).is_empty()
    })
    .await;
    assert_eq!(files_under(home.path()), Vec::<String>::new());
}
