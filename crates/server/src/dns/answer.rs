//! What a DNS question gets from the published view: answer, authority
//! and additional records and a response code. Pure over a [`View`], so
//! the request handler only frames it.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use rarangi_proto::CatalogueUri;

use super::names::{self, Asked};
use crate::driver::view::{Instance, View};

/// The answer to one question.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    /// NOERROR, NXDOMAIN or REFUSED.
    pub(crate) code: ResponseCode,
    /// The answer section.
    pub(crate) answers: Vec<Record>,
    /// The authority section (our SOA for NXDOMAIN and NODATA).
    pub(crate) soa: Vec<Record>,
    /// The additional section (A/AAAA of SRV targets).
    pub(crate) additionals: Vec<Record>,
}

/// What the answers depend on besides the view.
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    /// Our domains, lower case and fully qualified (`rarangi.`, then
    /// the alternative domain if any).
    pub(crate) domains: Vec<Name>,
    /// Answer TTL, seconds.
    pub(crate) ttl: u32,
    /// This catalogue (locality order).
    pub(crate) here: CatalogueUri,
    /// Its cluster.
    pub(crate) cluster: Arc<str>,
}

impl Zone {
    /// Answers `qname` (lower case) of type `qtype`.
    pub(crate) fn answer(&self, view: &View, qname: &Name, qtype: RecordType) -> Reply {
        let Some(domain) = self.domains.iter().find(|d| d.zone_of(qname)) else {
            // Not ours, and we do not recurse.
            return Reply {
                code: ResponseCode::Refused,
                ..Reply::default()
            };
        };
        let labels: Vec<&str> = qname
            .iter()
            .take(usize::from(
                qname.num_labels().saturating_sub(domain.num_labels()),
            ))
            .map(|l| std::str::from_utf8(l).unwrap_or("\u{0}"))
            .collect();
        let mut reply = Reply::default();
        match names::parse(&labels) {
            None => reply.code = ResponseCode::NXDomain,
            Some(Asked::Apex) => {
                if matches!(qtype, RecordType::SOA | RecordType::ANY) {
                    reply.answers.push(self.soa(view, domain));
                }
            }
            Some(Asked::Addr(ip)) => {
                if let Some(rec) = self.address(qname, ip, qtype) {
                    reply.answers.push(rec);
                }
            }
            Some(Asked::Service { name, cluster }) => {
                let found = self.instances(view, name, cluster);
                if found.is_empty() {
                    reply.code = ResponseCode::NXDomain;
                } else {
                    self.service(qname, domain, qtype, &found, &mut reply);
                }
            }
        }
        if reply.answers.is_empty() {
            reply.soa.push(self.soa(view, domain));
        }
        reply
    }

    /// The live instances of every service named `name` ignoring case, in
    /// one cluster or all, this catalogue's first, then its cluster's,
    /// then the rest; with their SRV priority (1, 2, 3 by that order).
    fn instances<'v>(&self, view: &'v View, name: &str, cluster: Option<&str>) -> Vec<(u16, &'v Instance)> {
        let mut found: Vec<(u16, &Instance)> = view
            .names_ignoring_case(name)
            .into_iter()
            .flat_map(|n| view.nearest(n, &self.here, &self.cluster))
            .filter(|i| cluster.is_none_or(|c| i.cluster.eq_ignore_ascii_case(c)))
            .map(|i| (self.priority(i), i))
            .collect();
        // Stable: keeps each name's own order within a rank.
        found.sort_by_key(|(p, _)| *p);
        found
    }

    fn priority(&self, i: &Instance) -> u16 {
        if i.catalogue == self.here {
            1
        } else if *i.cluster == *self.cluster {
            2
        } else {
            3
        }
    }

    fn service(
        &self,
        qname: &Name,
        domain: &Name,
        qtype: RecordType,
        found: &[(u16, &Instance)],
        reply: &mut Reply,
    ) {
        let any = qtype == RecordType::ANY;
        if matches!(qtype, RecordType::A | RecordType::AAAA) || any {
            let mut seen = Vec::new();
            for (_, i) in found {
                let Some(ip) = i.ip() else { continue };
                if seen.contains(&ip) {
                    continue;
                }
                seen.push(ip);
                if let Some(rec) = self.address(qname, ip, qtype) {
                    reply.answers.push(rec);
                }
            }
        }
        if qtype == RecordType::SRV || any {
            let mut seen = Vec::new();
            for (priority, i) in found {
                let (host, Some(port)) = i.address() else { continue };
                let ip = i.ip();
                let target = match ip {
                    Some(ip) => Name::from_ascii(format!("{}.addr", names::encode_addr(ip)))
                        .and_then(|n| n.append_domain(domain)),
                    None => Name::from_ascii(host).map(|mut n| {
                        n.set_fqdn(true);
                        n
                    }),
                };
                let Ok(target) = target else { continue };
                if seen.contains(&(port, target.clone())) {
                    continue;
                }
                seen.push((port, target.clone()));
                let srv = SRV::new(*priority, i.weight(), port, target.clone());
                reply
                    .answers
                    .push(Record::from_rdata(qname.clone(), self.ttl, RData::SRV(srv)));
                if let Some(rec) = ip.and_then(|ip| self.address(&target, ip, RecordType::ANY)) {
                    reply.additionals.push(rec);
                }
            }
        }
    }

    /// The A or AAAA record of `ip` when `qtype` asks for its family.
    fn address(&self, owner: &Name, ip: IpAddr, qtype: RecordType) -> Option<Record> {
        let rdata = match (ip, qtype) {
            (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(v4)),
            (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(v6)),
            _ => return None,
        };
        Some(Record::from_rdata(owner.clone(), self.ttl, rdata))
    }

    /// Our SOA for `domain`; the serial is the view's change index.
    fn soa(&self, view: &View, domain: &Name) -> Record {
        let host = |label: &str| {
            Name::from_ascii(label)
                .and_then(|n| n.append_domain(domain))
                .unwrap_or_else(|_| domain.clone())
        };
        // Serial arithmetic wraps (RFC 1982): the low bits are what count.
        let serial = view.index as u32;
        let soa = SOA::new(host("ns"), host("hostmaster"), serial, 3600, 600, 86400, self.ttl);
        Record::from_rdata(domain.clone(), self.ttl, RData::SOA(soa))
    }
}
