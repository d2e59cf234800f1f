//! DNS SRV discovery (`--discover-dns NAME`): each name's SRV records are
//! resolved with hickory-resolver, each target to its addresses (from the
//! answer's additional section, else an A/AAAA query to the same
//! resolver), and dialed on the record's port. Re-resolved when the
//! shortest TTL runs out, at least every 30 s and at most every second.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Name, TokioResolver};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Candidates, SourceError};

/// Longest wait between two resolutions.
const MAX_INTERVAL: Duration = Duration::from_secs(30);
/// Shortest wait between two resolutions (a TTL of 0 is common).
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Most candidates taken from one name: a hostile zone cannot make us
/// hold or dial without bound.
const MAX_PER_NAME: usize = 256;

/// What to resolve, and where.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// SRV names, e.g. `_rarangi-production._tcp.example.com`.
    pub names: Vec<String>,
    /// The DNS server to ask (`None`: the system's resolvers).
    pub server: Option<SocketAddr>,
}

/// Resolves the names until `stop`, publishing every address found.
/// A failed resolution keeps that name's last addresses (a DNS outage does
/// not unlink anyone) and is retried at the next round.
pub async fn run(
    cfg: DnsConfig,
    out: watch::Sender<Candidates>,
    stop: CancellationToken,
) -> Result<(), SourceError> {
    let resolver = resolver(cfg.server)?;
    let mut last: Vec<Candidates> = vec![Candidates::new(); cfg.names.len()];
    loop {
        let mut wait = MAX_INTERVAL;
        for (i, name) in cfg.names.iter().enumerate() {
            match resolve(&resolver, name).await {
                Ok((found, ttl)) => {
                    if found != last[i] {
                        tracing::info!(name = %name, addresses = ?found, "DNS SRV discovery: the records changed");
                    }
                    last[i] = found;
                    wait = wait.min(ttl);
                }
                Err(e) => {
                    tracing::warn!(name = %name, error = %crate::error_chain(&e), "DNS SRV discovery: cannot resolve; keeping the last answer");
                }
            }
        }
        let all: Candidates = last.iter().flatten().copied().collect();
        out.send_if_modified(|current| {
            let changed = *current != all;
            *current = all;
            changed
        });
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait.max(MIN_INTERVAL)) => {}
        }
    }
}

fn resolver(server: Option<SocketAddr>) -> Result<TokioResolver, SourceError> {
    let provider = TokioConnectionProvider::default();
    let mut builder = match server {
        Some(s) => {
            let group = NameServerConfigGroup::from_ips_clear(&[s.ip()], s.port(), true);
            TokioResolver::builder_with_config(ResolverConfig::from_parts(None, vec![], group), provider)
        }
        None => TokioResolver::builder(provider).map_err(SourceError::Resolver)?,
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.timeout = Duration::from_secs(3);
    opts.attempts = 2;
    // Missing records are asked again at the next round, not remembered.
    opts.negative_max_ttl = Some(MIN_INTERVAL);
    Ok(builder.build())
}

/// One name's addresses and the time until it should be asked again.
async fn resolve(
    resolver: &TokioResolver,
    name: &str,
) -> Result<(Candidates, Duration), hickory_resolver::ResolveError> {
    let srv = resolver.srv_lookup(name).await?;
    let records = srv.as_lookup().records();
    let mut ttl = records.iter().map(|r| r.ttl()).min().unwrap_or(0);
    let mut found = Candidates::new();
    for record in srv.iter() {
        let (target, port) = (record.target(), record.port());
        if port == 0 {
            continue;
        }
        let mut ips: Vec<IpAddr> = records
            .iter()
            .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA) && same(r.name(), target))
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect();
        if ips.is_empty() {
            match resolver.lookup_ip(target.clone()).await {
                Ok(answer) => {
                    ttl = ttl.min(
                        answer
                            .as_lookup()
                            .records()
                            .iter()
                            .map(|r| r.ttl())
                            .min()
                            .unwrap_or(ttl),
                    );
                    ips.extend(answer.iter());
                }
                Err(e) => {
                    tracing::warn!(name = %name, target = %target, error = %e, "DNS SRV discovery: a target has no address");
                }
            }
        }
        for ip in ips {
            if found.len() >= MAX_PER_NAME {
                break;
            }
            found.insert(SocketAddr::new(ip, port));
        }
    }
    Ok((found, Duration::from_secs(ttl.into()).min(MAX_INTERVAL)))
}

/// Whether two DNS names are the same (case and final dot aside).
fn same(a: &Name, b: &Name) -> bool {
    let norm = |n: &Name| n.to_ascii().trim_end_matches('.').to_ascii_lowercase();
    norm(a) == norm(b)
}
