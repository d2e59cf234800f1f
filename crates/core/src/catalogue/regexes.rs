//! Compiled subscription regexes and their memory budget (DESIGN §9).
//!
//! The regex crate cannot say how big a compiled regex is, so each is
//! compiled under the smallest of a few size limits that admits it and
//! charged that limit plus its lazy DFA's (twice as much). The charge
//! counts once per catalogue however many clients share the regex, and in
//! full against each connection that uses it. Ordinary expressions take
//! the first tier (48 KiB charged); one near the 1 MiB ceiling is charged
//! 3 MiB.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rarangi_proto::Message;
use regex::Regex;

use crate::config::Limits;
use crate::output::ClientId;

/// Size limits tried before the configured ceiling
/// ([`Limits::regex_compiled_size`]).
const TIERS: [usize; 2] = [16 << 10, 128 << 10];

/// Regexes no client uses are kept for reuse up to this many (and within
/// the budget); then they are all dropped.
const IDLE_REGEX_MAX: usize = 256;

/// A compiled subscription regex, the clients using it, and the snapshot
/// it last produced with the services generation it was taken at.
#[derive(Debug)]
pub(super) struct Compiled {
    pub(super) regex: Regex,
    pub(super) users: BTreeSet<ClientId>,
    pub(super) snapshot: Option<(u64, Arc<[Message]>)>,
    /// Bytes charged: the size limit it compiled under plus its DFA's.
    pub(super) cost: usize,
}

/// Why a regex cannot be used: the ERROR code's reason, for the client.
#[derive(Debug)]
pub(super) enum Refused {
    /// Over a budget (`2 limit`).
    Limit(String),
    /// Not a regular expression (`2 bad-regex`).
    Bad(String),
}

/// Every compiled regex, by source, with the bytes they are charged.
#[derive(Debug, Default)]
pub(super) struct Regexes {
    map: HashMap<String, Compiled>,
    bytes: usize,
}

impl Regexes {
    pub(super) fn get(&self, source: &str) -> Option<&Compiled> {
        self.map.get(source)
    }

    pub(super) fn get_mut(&mut self, source: &str) -> Option<&mut Compiled> {
        self.map.get_mut(source)
    }

    /// Caches `source`'s snapshot taken at services generation `gen`.
    /// Snapshots of older generations are dropped; if the current ones
    /// would pass `max_lines` in all, the others are dropped too (any one
    /// snapshot is kept whatever its size).
    pub(super) fn cache_snapshot(
        &mut self,
        source: &str,
        gen: u64,
        snapshot: &Arc<[Message]>,
        max_lines: usize,
    ) {
        let mut others = 0;
        for (s, c) in &mut self.map {
            match &c.snapshot {
                Some((g, m)) if *g == gen && s != source => others += m.len(),
                _ => c.snapshot = None,
            }
        }
        if others + snapshot.len() > max_lines {
            for c in self.map.values_mut() {
                c.snapshot = None;
            }
        }
        if let Some(c) = self.map.get_mut(source) {
            c.snapshot = Some((gen, snapshot.clone()));
        }
    }

    /// The regexes some client uses.
    pub(super) fn in_use(&self) -> impl Iterator<Item = &Compiled> {
        self.map.values().filter(|c| !c.users.is_empty())
    }

    /// Bytes charged for every compiled regex.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Makes `source` compiled for a client with `room` bytes left in its
    /// budget (`usize::MAX` when it already uses the regex); returns the
    /// bytes to charge the client.
    pub(super) fn prepare(&mut self, source: &str, limits: &Limits, room: usize) -> Result<usize, Refused> {
        if let Some(c) = self.map.get(source) {
            return over_client(c.cost, room, limits).map_or(Ok(c.cost), Err);
        }
        if self.map.len() >= limits.regexes_total && self.idle().next().is_none() {
            return Err(self.full(limits));
        }
        // What the catalogue could hold once every idle regex is dropped:
        // tiers beyond either budget are not even compiled.
        let idle_bytes: usize = self.idle().map(|(_, c)| c.cost).sum();
        let shared_room = limits.regex_bytes_total.saturating_sub(self.bytes - idle_bytes);
        let (regex, cost) = match compile(source, limits.regex_compiled_size, room.min(shared_room)) {
            Ok(compiled) => compiled,
            Err(Compile::Bad(text)) => return Err(Refused::Bad(text)),
            Err(Compile::TooBig) => {
                return Err(Refused::Limit(format!(
                    "{source:?} compiles to more than the limit of {} bytes; simplify it",
                    limits.regex_compiled_size
                )))
            }
            Err(Compile::OverBudget(cost)) if room <= shared_room => {
                return Err(over_client(cost, room, limits).expect("over"))
            }
            Err(Compile::OverBudget(_)) => return Err(self.full(limits)),
        };
        self.make_room(cost, limits);
        self.bytes += cost;
        self.map.insert(
            source.to_owned(),
            Compiled {
                regex,
                users: BTreeSet::new(),
                snapshot: None,
                cost,
            },
        );
        Ok(cost)
    }

    fn idle(&self) -> impl Iterator<Item = (&String, &Compiled)> {
        self.map.iter().filter(|(_, c)| c.users.is_empty())
    }

    fn full(&self, limits: &Limits) -> Refused {
        Refused::Limit(format!(
            "this catalogue's regexes already take {} of its {} bytes ({} of {} regexes); subscribe with a simpler or shared regex",
            self.bytes,
            limits.regex_bytes_total,
            self.map.len(),
            limits.regexes_total
        ))
    }

    /// `client` no longer uses `source`; it stays compiled (with its
    /// snapshot) for the next subscriber while the budget allows. Returns
    /// the bytes to give back to the client.
    pub(super) fn release(&mut self, client: ClientId, source: &str) -> usize {
        self.map.get_mut(source).map_or(0, |c| {
            c.users.remove(&client);
            c.cost
        })
    }

    /// Drops idle regexes: all of them when too many are idle, else as
    /// many as it takes to fit `cost` more in the budget.
    fn make_room(&mut self, cost: usize, limits: &Limits) {
        let idle: Vec<String> = self.idle().map(|(s, _)| s.clone()).collect();
        let drop_all = idle.len() >= IDLE_REGEX_MAX;
        for source in idle {
            let fits = self.bytes + cost <= limits.regex_bytes_total && self.map.len() < limits.regexes_total;
            if fits && !drop_all {
                break;
            }
            if let Some(c) = self.map.remove(&source) {
                self.bytes -= c.cost;
            }
        }
    }
}

/// The refusal when a client's budget cannot take `cost` more bytes.
fn over_client(cost: usize, room: usize, limits: &Limits) -> Option<Refused> {
    (cost > room).then(|| {
        Refused::Limit(format!(
            "compiled regexes may take {} bytes per connection and this one would take {} more ({} left); use fewer or simpler regexes",
            limits.regex_bytes_per_client,
            cost,
            room
        ))
    })
}

/// Why [`compile`] gave no regex.
enum Compile {
    /// Not a regular expression.
    Bad(String),
    /// Too big even at the ceiling.
    TooBig,
    /// It needs a tier that would cost more than this (bytes), over budget.
    OverBudget(usize),
}

/// Compiles under the smallest size limit that admits the regex, up to
/// `ceiling` and to tiers costing at most `budget` bytes; returns it with
/// the bytes to charge.
fn compile(source: &str, ceiling: usize, budget: usize) -> Result<(Regex, usize), Compile> {
    let mut tiers: Vec<usize> = TIERS.iter().copied().filter(|t| *t < ceiling).collect();
    tiers.push(ceiling);
    for limit in tiers {
        let cost = 3 * limit;
        if cost > budget {
            return Err(Compile::OverBudget(cost));
        }
        match regex::RegexBuilder::new(source)
            .size_limit(limit)
            .dfa_size_limit(2 * limit)
            .build()
        {
            Ok(r) => return Ok((r, cost)),
            Err(regex::Error::CompiledTooBig(_)) => {}
            Err(e) => {
                let text = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
                return Err(Compile::Bad(format!(
                    "{source:?} is not a valid regular expression: {text}"
                )));
            }
        }
    }
    Err(Compile::TooBig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_regexes_take_the_first_tier_and_big_ones_are_bounded() {
        let limits = Limits::default();
        let mut r = Regexes::default();
        assert_eq!(
            r.prepare("^tcp://.*/orders$", &limits, usize::MAX).unwrap(),
            48 << 10
        );
        assert_eq!(r.prepare("\\w+", &limits, usize::MAX).unwrap(), 3 * (128 << 10));
        assert!(matches!(
            r.prepare("\\w{50}", &limits, usize::MAX),
            Err(Refused::Limit(_))
        ));
        assert!(matches!(
            r.prepare("(", &limits, usize::MAX),
            Err(Refused::Bad(_))
        ));
        assert_eq!(r.bytes(), (48 << 10) + 3 * (128 << 10));
        // Already compiled: charged to a new user, not to the catalogue.
        assert!(matches!(r.prepare("\\w+", &limits, 1000), Err(Refused::Limit(_))));
        assert_eq!(r.bytes(), (48 << 10) + 3 * (128 << 10));
    }

    #[test]
    fn idle_regexes_make_room_for_new_ones() {
        let limits = Limits {
            regex_bytes_total: 100 << 10,
            ..Limits::default()
        };
        let mut r = Regexes::default();
        r.prepare("a", &limits, usize::MAX).unwrap();
        r.get_mut("a").unwrap().users.insert(ClientId(1));
        r.prepare("b", &limits, usize::MAX).unwrap();
        let full = r.prepare("c", &limits, usize::MAX);
        assert!(full.is_ok(), "idle b dropped to make room");
        assert!(r.get("b").is_none() && r.get("a").is_some());
        r.get_mut("c").unwrap().users.insert(ClientId(2));
        assert!(matches!(
            r.prepare("d", &limits, usize::MAX),
            Err(Refused::Limit(_))
        ));
        assert_eq!(r.release(ClientId(2), "c"), 48 << 10);
        r.prepare("d", &limits, usize::MAX).unwrap();
    }
}
