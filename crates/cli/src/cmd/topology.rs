//! `rarangi topology` and `rarangi members`: the catalogue's topology
//! snapshot (SUB_LINK). Reachability and the leader are the catalogue's own
//! REACHABLE line, never computed again here.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::{bail, Result};
use rarangi_client::Connection;
use rarangi_proto::{CatalogueUri, Message};
use serde_json::json;

use crate::Target;

/// One topology snapshot as the catalogue asked sees it.
struct Topology {
    /// The catalogue that answered.
    me: CatalogueUri,
    /// Every catalogue and its cluster ("" when only a link names it).
    catalogues: BTreeMap<CatalogueUri, String>,
    links: BTreeSet<(CatalogueUri, CatalogueUri)>,
    leader: CatalogueUri,
    reachable: BTreeSet<CatalogueUri>,
}

impl Topology {
    async fn read(target: &Target) -> Result<Self> {
        let mut conn = Connection::connect(&target.options()).await?;
        conn.send(&Message::SubLink).await?;
        let mut catalogues: BTreeMap<CatalogueUri, String> = BTreeMap::new();
        let mut links: BTreeSet<(CatalogueUri, CatalogueUri)> = BTreeSet::new();
        let mut reach: Option<(CatalogueUri, BTreeSet<CatalogueUri>)> = None;
        loop {
            match conn.recv().await? {
                Some(Message::SubLink) => break,
                Some(Message::Catalogue {
                    catalogue, cluster, ..
                }) => {
                    catalogues.insert(catalogue, cluster);
                }
                Some(Message::AddLink { a, b, .. }) => {
                    links.insert((a, b));
                }
                Some(Message::Reachable { leader, reachable }) => {
                    reach = Some((leader, reachable.into_iter().collect()));
                }
                Some(Message::Error { code, text }) => bail!("{code}: {text}"),
                Some(_) => {}
                None => bail!("the catalogue closed the connection"),
            }
        }
        let Some((leader, reachable)) = reach else {
            bail!("the catalogue sent no REACHABLE line before the end of its topology snapshot; it is older than this rarangi: upgrade it");
        };
        for (a, b) in &links {
            catalogues.entry(a.clone()).or_default();
            catalogues.entry(b.clone()).or_default();
        }
        Ok(Self {
            me: conn.catalogue.clone(),
            catalogues,
            links,
            leader,
            reachable,
        })
    }

    /// Whether `u` is reachable from the catalogue asked (itself included).
    fn reaches(&self, u: &CatalogueUri) -> bool {
        *u == self.me || self.reachable.contains(u)
    }

    /// How many links name `u`.
    fn link_count(&self, u: &CatalogueUri) -> usize {
        self.links.iter().filter(|(a, b)| a == u || b == u).count()
    }
}

/// `rarangi topology`.
pub(crate) async fn topology(as_json: bool, target: &Target) -> Result<ExitCode> {
    let t = Topology::read(target).await?;
    if as_json {
        let cats: Vec<_> = t
            .catalogues
            .iter()
            .map(|(u, c)| json!({"uri": u.as_str(), "cluster": c, "reachable": t.reachable.contains(u)}))
            .collect();
        let ls: Vec<_> = t
            .links
            .iter()
            .map(|(a, b)| json!([a.as_str(), b.as_str()]))
            .collect();
        let v = json!({"catalogue": t.me.as_str(), "leader": t.leader.as_str(), "catalogues": cats, "links": ls,
            "reachable": t.reachable.iter().map(|u| u.as_str()).collect::<Vec<_>>()});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("catalogue {}", t.me);
        println!("leader    {}", t.leader);
        println!("catalogues:");
        for (u, c) in &t.catalogues {
            let mark = if *u == t.me {
                "self"
            } else if t.reachable.contains(u) {
                "reachable"
            } else {
                "UNREACHABLE"
            };
            println!("  {u}  cluster={c}  {mark}");
        }
        println!("links:");
        for (a, b) in &t.links {
            println!("  {a} -- {b}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `rarangi members`: one line (or JSON object) per catalogue.
pub(crate) async fn members(as_json: bool, target: &Target) -> Result<ExitCode> {
    let t = Topology::read(target).await?;
    if as_json {
        let list: Vec<_> = t
            .catalogues
            .iter()
            .map(|(u, c)| {
                json!({"uri": u.as_str(), "cluster": c, "reachable": t.reaches(u),
                    "leader": *u == t.leader, "self": *u == t.me, "links": t.link_count(u)})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<40} {:<16} {:<12} {:<7} LINKS",
        "CATALOGUE", "CLUSTER", "STATUS", "ROLE"
    );
    for (u, c) in &t.catalogues {
        let status = if t.reaches(u) { "reachable" } else { "UNREACHABLE" };
        let role = if *u == t.leader { "leader" } else { "" };
        let me = if *u == t.me { " (asked)" } else { "" };
        println!(
            "{:<40} {:<16} {:<12} {:<7} {}{me}",
            u.as_str(),
            c,
            status,
            role,
            t.link_count(u)
        );
    }
    Ok(ExitCode::SUCCESS)
}
