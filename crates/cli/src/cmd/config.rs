//! `rarangi config` (`/app` documents) and `rarangi hooks` (web-hooks on
//! documents and services) over the HTTP API.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};

use super::http::{segment, HttpTarget};

/// Largest document read from a file or stdin (the catalogue's own limit
/// is 2 MiB per item).
const MAX_DOC: u64 = 2 << 20;
/// How long one blocking query of `config watch` waits.
const WAIT: Duration = Duration::from_secs(300);

/// `rarangi config ...`.
#[derive(Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print document NAME's configuration.
    Get {
        name: String,
        /// Print the whole document ({"config", "updated_at"}) as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        http: HttpTarget,
    },
    /// Create or replace document NAME with the JSON in FILE (or stdin).
    Put {
        name: String,
        /// A JSON file; stdin when absent or `-`.
        file: Option<PathBuf>,
        #[command(flatten)]
        http: HttpTarget,
    },
    /// Delete document NAME.
    Delete {
        name: String,
        #[command(flatten)]
        http: HttpTarget,
    },
    /// Print the documents' names.
    List {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        http: HttpTarget,
    },
    /// Print document NAME's configuration, then each new version (one
    /// JSON line each), until stopped (blocking queries).
    Watch {
        name: String,
        #[command(flatten)]
        http: HttpTarget,
    },
}

/// `rarangi hooks ...`: web-hooks the leader POSTs to on every change.
#[derive(Subcommand)]
pub(crate) enum HooksCommand {
    /// List the hooks on a document (or with --srv, a service).
    List {
        #[command(flatten)]
        on: HookOn,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        http: HttpTarget,
    },
    /// Add hook HOOK posting to ENDPOINT (an http:// or https:// URL).
    Add {
        #[command(flatten)]
        on: HookOn,
        hook: String,
        endpoint: String,
        #[command(flatten)]
        http: HttpTarget,
    },
    /// Remove hook HOOK.
    Delete {
        #[command(flatten)]
        on: HookOn,
        hook: String,
        #[command(flatten)]
        http: HttpTarget,
    },
}

/// What a hook watches.
#[derive(clap::Args)]
pub(crate) struct HookOn {
    /// The document (or service, with --srv).
    name: String,
    /// NAME is a service (`/srv/NAME/web-hooks`), not a document.
    #[arg(long)]
    srv: bool,
}

impl HookOn {
    fn path(&self) -> Result<String> {
        let root = if self.srv { "srv" } else { "app" };
        Ok(format!("/{root}/{}/web-hooks", segment(&self.name)?))
    }
}

/// Reads a JSON document from FILE or stdin, bounded.
fn read_doc(file: Option<&PathBuf>) -> Result<Value> {
    let mut text = Vec::new();
    let what = match file.filter(|f| f.as_os_str() != "-") {
        Some(f) => {
            std::fs::File::open(f)
                .with_context(|| format!("cannot read {}", f.display()))?
                .take(MAX_DOC + 1)
                .read_to_end(&mut text)?;
            f.display().to_string()
        }
        None => {
            std::io::stdin().take(MAX_DOC + 1).read_to_end(&mut text)?;
            "stdin".to_owned()
        }
    };
    if text.len() as u64 > MAX_DOC {
        bail!("{what} is larger than {} MiB", MAX_DOC >> 20);
    }
    serde_json::from_slice(&text).with_context(|| format!("{what} is not JSON; nothing was sent"))
}

fn print(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `rarangi config`.
pub(crate) async fn config(cmd: &ConfigCommand) -> Result<ExitCode> {
    match cmd {
        ConfigCommand::Get { name, json, http } => {
            let path = format!("/app/{}", segment(name)?);
            let doc = http.request(Method::GET, &path, None, None).await?.ok()?.json()?;
            print(if *json { &doc } else { &doc["config"] })?;
        }
        ConfigCommand::Put { name, file, http } => {
            let config = read_doc(file.as_ref())?;
            let path = format!("/app/{}", segment(name)?);
            let body = serde_json::to_vec(&json!({ "config": config }))?;
            let a = http.request(Method::PUT, &path, Some(body), None).await?.ok()?;
            eprintln!("{} {name}", if a.status == 201 { "created" } else { "replaced" });
        }
        ConfigCommand::Delete { name, http } => {
            let path = format!("/app/{}", segment(name)?);
            http.request(Method::DELETE, &path, None, None).await?.ok()?;
            eprintln!("deleted {name}");
        }
        ConfigCommand::List { json, http } => {
            let names = http
                .request(Method::GET, "/app", None, None)
                .await?
                .ok()?
                .json()?;
            if *json {
                print(&names)?;
            } else {
                for n in names.as_array().into_iter().flatten() {
                    println!("{}", n.as_str().unwrap_or_default());
                }
            }
        }
        ConfigCommand::Watch { name, http } => watch(name, http).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Blocking queries from the last index seen; prints each new version.
async fn watch(name: &str, http: &HttpTarget) -> Result<()> {
    let path = format!("/app/{}", segment(name)?);
    let mut index = 0;
    let mut last: Option<Value> = None;
    loop {
        let q = format!("{path}?index={index}&wait={}s", WAIT.as_secs());
        let a = match http.request(Method::GET, &q, None, Some(WAIT)).await {
            Ok(a) => a,
            Err(e) => {
                // The catalogue may restart: say so, retry from scratch.
                eprintln!("rarangi: {e:#}; retrying");
                index = 0;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let new_index = a.index.unwrap_or(0);
        let doc = match a.status {
            404 => Value::Null,
            _ => a.ok()?.json()?["config"].take(),
        };
        if last.as_ref() != Some(&doc) {
            println!("{doc}");
            last = Some(doc);
        }
        if new_index == index {
            // No index header: poll, not spin.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        index = new_index;
    }
}

/// `rarangi hooks`.
pub(crate) async fn hooks(cmd: &HooksCommand) -> Result<ExitCode> {
    match cmd {
        HooksCommand::List { on, json, http } => {
            let list = http
                .request(Method::GET, &on.path()?, None, None)
                .await?
                .ok()?
                .json()?;
            if *json {
                print(&list)?;
            } else {
                for h in list.as_array().into_iter().flatten() {
                    let s = |k: &str| h[k].as_str().unwrap_or_default().to_owned();
                    println!("{}\t{}", s("name"), s("endpoint"));
                }
            }
        }
        HooksCommand::Add {
            on,
            hook,
            endpoint,
            http,
        } => {
            let body = serde_json::to_vec(&json!({"name": segment(hook)?, "endpoint": endpoint}))?;
            http.request(Method::POST, &on.path()?, Some(body), None)
                .await?
                .ok()?;
            eprintln!("added hook {hook}");
        }
        HooksCommand::Delete { on, hook, http } => {
            let path = format!("{}/{}", on.path()?, segment(hook)?);
            http.request(Method::DELETE, &path, None, None).await?.ok()?;
            eprintln!("deleted hook {hook}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
