//! `rarangi watch`: the selected instances, then their changes; stale
//! while the catalogue is lost; a handler run on each change (`--exec`).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{ExitCode, ExitStatus};

use anyhow::Result;
use rarangi_client::{subscribe, CatalogueUri, Event, Instance};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

use super::select::{Filter, Selection};
use crate::Target;

/// What `watch` shows: the selected instances by (URI, catalogue).
type View = BTreeMap<(String, String), Instance>;

/// Runs `--exec` handlers: at most one in flight; changes during a run
/// ask for exactly one more run after it.
struct Handler {
    cmd: String,
    running: Option<JoinHandle<std::io::Result<ExitStatus>>>,
    again: bool,
}

impl Handler {
    /// A change: run now, or once more after the run in flight.
    fn changed(&mut self, input: String) {
        if self.running.is_some() {
            self.again = true;
            return;
        }
        let cmd = self.cmd.clone();
        self.running = Some(tokio::spawn(async move {
            let mut child = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .stdin(std::process::Stdio::piped())
                .spawn()?;
            let mut stdin = child.stdin.take().expect("piped");
            // Written apart from the wait: a handler that does not read
            // its input must not block us.
            tokio::spawn(async move {
                let _ = stdin.write_all(input.as_bytes()).await;
            });
            child.wait().await
        }));
    }

    /// Waits for the run in flight (pending forever when there is none).
    async fn done(&mut self) -> std::io::Result<ExitStatus> {
        match &mut self.running {
            Some(h) => {
                let r = h.await.unwrap_or_else(|e| Err(std::io::Error::other(e)));
                self.running = None;
                r
            }
            None => std::future::pending().await,
        }
    }
}

/// Prints the view's lines and reports on stderr.
struct Printer {
    json: bool,
    out: std::io::Stdout,
}

impl Printer {
    fn line(&mut self, line: &str) -> Result<()> {
        writeln!(self.out, "{line}")?;
        self.out.flush()?;
        Ok(())
    }

    fn event(&mut self, v: serde_json::Value) -> Result<()> {
        self.line(&v.to_string())
    }

    fn stale(&mut self, lost: Option<&CatalogueUri>) -> Result<()> {
        match lost {
            Some(c) => eprintln!("rarangi: lost catalogue {c}; reconnecting"),
            None => eprintln!("rarangi: lost the catalogue; reconnecting"),
        }
        if self.json {
            self.event(json!({"event": "stale"}))
        } else {
            self.line("! stale: catalogue lost, reconnecting")
        }
    }

    fn back(&mut self, at: Option<&CatalogueUri>) -> Result<()> {
        let at = at.map(ToString::to_string).unwrap_or_default();
        eprintln!("rarangi: catalogue {at} is back; view resynchronised");
        if self.json {
            self.event(json!({"event": "synced", "resync": true, "catalogue": at}))
        } else {
            self.line(&format!("! synced: {at}"))
        }
    }
}

/// Whether any catalogue's copy of `uri` is in the view.
fn shown(view: &View, uri: &str) -> bool {
    view.range((uri.to_owned(), String::new())..)
        .next()
        .is_some_and(|((u, _), _)| u == uri)
}

/// `rarangi watch`.
pub(crate) async fn watch(
    sel: &Selection,
    as_json: bool,
    exec: Option<String>,
    target: &Target,
) -> Result<ExitCode> {
    let filter: Filter = sel.filter()?;
    let mut sub = subscribe(&target.options(), &filter.regex).await?;
    let mut status = sub.connected();
    let mut home = status.borrow_and_update().clone();
    let mut handler = exec.map(|cmd| Handler {
        cmd,
        running: None,
        again: false,
    });
    let mut p = Printer {
        json: as_json,
        out: std::io::stdout(),
    };
    let mut view = View::new();
    let (mut synced, mut stale) = (false, false);
    loop {
        let ev = tokio::select! {
            biased;
            _ = crate::wait_for_signal() => break,
            r = status.changed() => {
                if r.is_err() {
                    break;
                }
                let now = status.borrow_and_update().clone();
                if !stale {
                    stale = true;
                    p.stale(home.as_ref())?;
                }
                if now.is_some() {
                    home = now;
                }
                continue;
            }
            r = async { handler.as_mut().expect("some").done().await }, if handler.as_ref().is_some_and(|h| h.running.is_some()) => {
                let h = handler.as_mut().expect("some");
                match r {
                    Ok(s) => eprintln!("rarangi: handler exited with {s}"),
                    Err(e) => eprintln!("rarangi: handler failed: {e}"),
                }
                if std::mem::take(&mut h.again) {
                    h.changed(instances_json(&sub, &view));
                }
                continue;
            }
            ev = sub.next_event() => ev,
        };
        let Some(ev) = ev else { break };
        let changed = match ev {
            Event::Added(i) | Event::Removed(i) if !filter.matches(&i) && !view.contains_key(&key(&i)) => {
                false
            }
            Event::Added(i) if filter.matches(&i) => {
                let (k, uri) = (key(&i), i.service.to_string());
                let was = shown(&view, &uri);
                view.insert(k, i.clone());
                if synced {
                    if p.json {
                        p.event(json!({"event": "added", "snapshot": false, "instance": i.to_json()}))?;
                    } else if !was {
                        p.line(&format!("+ {uri}"))?;
                    }
                }
                true
            }
            Event::Added(i) | Event::Removed(i) => {
                let uri = i.service.to_string();
                let Some(old) = view.remove(&key(&i)) else {
                    continue;
                };
                if synced {
                    if p.json {
                        p.event(json!({"event": "removed", "snapshot": false, "instance": old.to_json()}))?;
                    } else if !shown(&view, &uri) {
                        p.line(&format!("- {uri}"))?;
                    }
                }
                true
            }
            Event::Synced => {
                if !synced {
                    synced = true;
                    snapshot(&mut p, &sub, &view)?;
                    if let Some(h) = &mut handler {
                        h.changed(instances_json(&sub, &view));
                    }
                } else if stale || status.has_changed().unwrap_or(false) {
                    if !stale {
                        p.stale(home.as_ref())?;
                    }
                    stale = false;
                    home = status.borrow_and_update().clone();
                    p.back(home.as_ref())?;
                }
                false
            }
        };
        if changed && synced {
            if let Some(h) = &mut handler {
                h.changed(instances_json(&sub, &view));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn key(i: &Instance) -> (String, String) {
    (i.service.to_string(), i.catalogue.to_string())
}

/// The first snapshot: one URI per line, or one JSON event per instance
/// then `{"event":"synced"}`.
fn snapshot(p: &mut Printer, sub: &rarangi_client::Subscription, view: &View) -> Result<()> {
    if p.json {
        for i in view.values() {
            p.event(json!({"event": "added", "snapshot": true, "instance": i.to_json()}))?;
        }
        return p.event(json!({"event": "synced"}));
    }
    for i in sub.nearest(view.values().cloned().collect()) {
        p.line(i.service.as_str())?;
    }
    Ok(())
}

/// The handler's stdin: the current instances, nearest first, one per URI.
fn instances_json(sub: &rarangi_client::Subscription, view: &View) -> String {
    let list = sub.nearest(view.values().cloned().collect());
    super::select::to_json(&list).to_string()
}
