//! The end of the soak: what every catalogue must show once the faults are
//! over (DESIGN §7), read over the line protocol (a lookup of every
//! service, with the catalogue that holds each) and over HTTP (`/srv`,
//! `/app` and each document, `/v1/topology`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rarangi_client::{Endpoint, Options};
use rarangi_harness::{clock, snapshot, Deadline};
use rarangi_proto::{Message, ServiceUri};
use serde_json::Value;
use tokio::time::timeout;

use super::clients::{Doc, KeyLedger, PATIENCE};
use crate::common::http::try_http;

/// What the catalogues of one environment must show.
#[derive(Default)]
pub struct Expect {
    /// Live registrations: (service URI, catalogue URI).
    pub services: BTreeSet<(String, String)>,
    /// Service URIs registered once and withdrawn since.
    pub gone: BTreeSet<String>,
    /// Every key written, with its ledger.
    pub keys: BTreeMap<String, KeyLedger>,
    /// The URIs of all its catalogues.
    pub uris: BTreeSet<String>,
}

/// What one catalogue shows.
struct Seen {
    services: BTreeSet<(String, String)>,
    srv: BTreeSet<String>,
    apps: BTreeMap<String, Doc>,
    reachable: BTreeSet<String>,
    known: BTreeSet<String>,
    leader: String,
}

/// Reads everything `addr` (line protocol) and `http` show.
async fn observe(env: &str, addr: &str, http: &str) -> Result<Seen, String> {
    let mut services = BTreeSet::new();
    let opts = Options::endpoints(env, vec![Endpoint::Tcp(addr.to_owned())]);
    let lookup = snapshot(&opts, ".", |m| {
        if let Message::AddServ {
            service, catalogue, ..
        } = m
        {
            services.insert((service.to_string(), catalogue.as_str().to_owned()));
        }
    });
    match timeout(PATIENCE, lookup).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("{addr}: lookup failed: {e:?}")),
        Err(_) => return Err(format!("{addr}: lookup not answered")),
    }
    let srv = names(&get(http, "/srv").await?);
    let mut apps = BTreeMap::new();
    for name in names(&get(http, "/app").await?) {
        // A 404 here is a key deleted between the two reads: the next
        // round reads again.
        let doc = get(http, &format!("/app/{name}")).await?;
        apps.insert(
            name,
            Doc::Config(doc.get("config").cloned().unwrap_or(Value::Null)),
        );
    }
    let t = get(http, "/v1/topology").await?;
    let uris = |v: &Value| names(v).into_iter().collect::<BTreeSet<_>>();
    Ok(Seen {
        services,
        srv,
        apps,
        reachable: uris(&t["reachable"]),
        known: t["catalogues"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["uri"].as_str().map(str::to_owned))
            .collect(),
        leader: t["leader"].as_str().unwrap_or_default().to_owned(),
    })
}

async fn get(http: &str, path: &str) -> Result<Value, String> {
    match timeout(PATIENCE, try_http(http, "GET", path, None)).await {
        Ok(Ok((200, _, body))) => {
            serde_json::from_str(&body).map_err(|e| format!("GET {path} on {http}: {e}"))
        }
        Ok(Ok((status, _, body))) => Err(format!("GET {path} on {http}: {status} {body}")),
        Ok(Err(e)) => Err(format!("GET {path} on {http}: {e}")),
        Err(_) => Err(format!("GET {path} on {http}: no answer")),
    }
}

fn names(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// Every way `seen` (at catalogue `me`) breaks `expect`, one line each.
fn problems(expect: &Expect, seen: &Seen, me: &str) -> Vec<String> {
    let mut out = Vec::new();
    for s in expect.services.difference(&seen.services) {
        out.push(format!("{me}: missing live registration {} @{}", s.0, s.1));
    }
    for s in seen.services.difference(&expect.services) {
        let what = if expect.gone.contains(&s.0) {
            "resurrected (withdrawn) registration"
        } else {
            "unknown registration"
        };
        out.push(format!("{me}: {what} {} @{}", s.0, s.1));
    }
    let want_srv: BTreeSet<String> = expect
        .services
        .iter()
        .filter_map(|s| ServiceUri::name_of(&s.0).map(str::to_owned))
        .collect();
    if seen.srv != want_srv {
        let (extra, missing) = (diff(&seen.srv, &want_srv), diff(&want_srv, &seen.srv));
        out.push(format!("{me}: GET /srv: extra {extra:?}, missing {missing:?}"));
    }
    for (name, ledger) in &expect.keys {
        let shows = seen.apps.get(name).cloned().unwrap_or(Doc::Absent);
        if !ledger.allowed().contains(&shows) {
            out.push(format!(
                "{me}: /app/{name} shows {shows:?}; last acknowledged {:?} (of {} acknowledged writes), unclear writes {:?}",
                ledger.acked, ledger.acks, ledger.maybe
            ));
        }
    }
    for name in seen.apps.keys().filter(|n| !expect.keys.contains_key(*n)) {
        out.push(format!("{me}: unknown document /app/{name}"));
    }
    if seen.reachable != expect.uris {
        out.push(format!("{me}: reaches {:?}", seen.reachable));
    }
    let foreign = diff(&seen.known, &expect.uris);
    if !foreign.is_empty() {
        out.push(format!(
            "{me}: knows catalogues of another environment: {foreign:?}"
        ));
    }
    let leader = expect.uris.first().cloned().unwrap_or_default();
    if seen.leader != leader {
        out.push(format!("{me}: leader {:?}, want {leader:?}", seen.leader));
    }
    out
}

fn diff(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Vec<String> {
    a.difference(b).cloned().collect()
}

/// Checks every catalogue (`(line address, HTTP address)` each) against
/// `expect`; an empty list when all of them agree with it.
pub async fn check_all(
    env: &str,
    cats: &[(String, String)],
    expect: &Expect,
    first_only: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for (addr, http) in cats {
        let me = format!("x-tvnetcs://{addr}/");
        match observe(env, addr, http).await {
            Ok(seen) => out.extend(problems(expect, &seen, &me)),
            Err(e) => out.push(e),
        }
        if first_only && !out.is_empty() {
            break;
        }
    }
    out
}

/// Waits up to `limit` for every catalogue to agree with `expect`; how long
/// it took, or, once the limit passed, every disagreement.
pub async fn settle(
    env: &str,
    cats: &[(String, String)],
    expect: &Expect,
    limit: Duration,
) -> Result<Duration, Vec<String>> {
    let start = clock::now();
    let deadline = Deadline::after(limit).every(Duration::from_secs(1));
    loop {
        if check_all(env, cats, expect, true).await.is_empty() {
            return Ok(start.elapsed());
        }
        if !deadline.next().await {
            return Err(check_all(env, cats, expect, false).await);
        }
    }
}
