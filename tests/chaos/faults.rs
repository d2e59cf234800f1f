//! The fault schedule: on a thread of its own (every fault is a blocking
//! command or a process operation), it starts a random fault every 0.3-2.5 s
//! while fewer than three are in force, ends each after its random
//! duration, and ends all of them when the soak is over.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rarangi_harness::{clock, Deadline};

use super::Net;

/// Faults in force at once, at most.
const MAX_ACTIVE: usize = 3;
/// How often the schedule looks at the clock.
const TICK: Duration = Duration::from_millis(50);

/// What the schedule did.
#[derive(Debug, Default)]
pub struct FaultLog {
    /// Faults started, by kind.
    pub started: BTreeMap<&'static str, usize>,
    /// Catalogues that did not come back after SIGKILL, with why (their
    /// log): no process fault touches them again.
    pub failed_restarts: BTreeMap<usize, String>,
}

/// A fault in force and what ends it.
#[derive(Debug)]
enum Fault {
    /// Both directions of a link dropped.
    LinkDown(usize, usize),
    /// Packets from the first dropped by the second only.
    OneWay(usize, usize),
    /// One catalogue cut from every other one.
    Partition(usize),
    /// SIGSTOP; SIGCONT at the end.
    Stop(usize),
    /// SIGKILL; restarted (same data directory) at the end.
    Kill(usize),
}

impl Fault {
    fn kind(&self) -> &'static str {
        match self {
            Fault::LinkDown(..) => "link down (both directions)",
            Fault::OneWay(..) => "one-way drop",
            Fault::Partition(_) => "partition (one catalogue cut from all)",
            Fault::Stop(_) => "SIGSTOP then SIGCONT",
            Fault::Kill(_) => "SIGKILL then restart",
        }
    }

    /// The unordered pairs it cuts (network faults) or the catalogue it
    /// holds (process faults): two faults never share either.
    fn claims(&self, n: usize) -> (Vec<(usize, usize)>, Option<usize>) {
        let pair = |a: usize, b: usize| (a.min(b), a.max(b));
        match *self {
            Fault::LinkDown(a, b) | Fault::OneWay(a, b) => (vec![pair(a, b)], None),
            Fault::Partition(i) => ((0..n).filter(|&j| j != i).map(|j| pair(i, j)).collect(), None),
            Fault::Stop(i) | Fault::Kill(i) => (Vec::new(), Some(i)),
        }
    }
}

/// Runs the schedule until `soak` passes, then ends every fault.
pub fn run(seed: u64, net: &Net, soak: Deadline) -> FaultLog {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut log = FaultLog::default();
    let mut active: Vec<(Instant, Fault)> = Vec::new();
    let mut next = clock::now();
    while !soak.passed() {
        let now = clock::now();
        let (due, rest): (Vec<_>, Vec<_>) = active.into_iter().partition(|(until, _)| *until <= now);
        active = rest;
        for (_, f) in due {
            end(net, f, &mut log);
        }
        if now >= next && active.len() < MAX_ACTIVE {
            if let Some(f) = pick(&mut rng, net, &active, &log) {
                *log.started.entry(f.kind()).or_default() += 1;
                begin(net, &f);
                let ms = match f {
                    Fault::Stop(_) => rng.gen_range(300..6000),
                    Fault::Kill(_) => rng.gen_range(100..3000),
                    _ => rng.gen_range(1000..8000),
                };
                active.push((now + Duration::from_millis(ms), f));
            }
            next = now + Duration::from_millis(rng.gen_range(300..2500));
        }
        std::thread::sleep(TICK);
    }
    for (_, f) in active {
        end(net, f, &mut log);
    }
    log
}

/// A random fault that shares no link and no catalogue with those in force.
fn pick(rng: &mut ChaCha8Rng, net: &Net, active: &[(Instant, Fault)], log: &FaultLog) -> Option<Fault> {
    let n = net.addrs.len();
    let (mut pairs, mut held) = (BTreeSet::new(), BTreeSet::new());
    held.extend(log.failed_restarts.keys().copied());
    for (_, f) in active {
        let (p, c) = f.claims(n);
        pairs.extend(p);
        held.extend(c);
    }
    let &(a, b) = net.links.choose(rng)?;
    let (a, b) = if rng.gen_bool(0.5) { (a, b) } else { (b, a) };
    let i = rng.gen_range(0..n);
    let f = match rng.gen_range(0..5) {
        0 => Fault::LinkDown(a, b),
        1 => Fault::OneWay(a, b),
        2 => Fault::Partition(i),
        3 => Fault::Stop(i),
        _ => Fault::Kill(i),
    };
    let (p, c) = f.claims(n);
    let free = p.iter().all(|x| !pairs.contains(x)) && c.is_none_or(|c| !held.contains(&c));
    free.then_some(f)
}

fn begin(net: &Net, f: &Fault) {
    let mut lab = net.lab.lock().expect("lab");
    let done = match *f {
        Fault::LinkDown(a, b) => lab.cut(a, b),
        Fault::OneWay(from, to) => lab.drop_from(from, to),
        Fault::Partition(i) => (0..lab.len()).filter(|&j| j != i).try_for_each(|j| lab.cut(i, j)),
        Fault::Stop(i) => net.cat(i).stop(),
        Fault::Kill(i) => {
            net.cat(i).kill();
            Ok(())
        }
    };
    done.unwrap_or_else(|e| panic!("cannot start fault {f:?}: {e:?}"));
}

fn end(net: &Net, f: Fault, log: &mut FaultLog) {
    let mut lab = net.lab.lock().expect("lab");
    let done = match f {
        Fault::LinkDown(a, b) | Fault::OneWay(a, b) => lab.mend(a, b),
        Fault::Partition(i) => (0..lab.len())
            .filter(|&j| j != i)
            .try_for_each(|j| lab.mend(i, j)),
        Fault::Stop(i) => net.cat(i).resume(),
        Fault::Kill(i) => {
            drop(lab);
            let mut cat = net.cat(i);
            if let Err(e) = cat.restart() {
                log.failed_restarts.insert(i, format!("{}: {e:?}", cat.addr));
            }
            return;
        }
    };
    done.unwrap_or_else(|e| panic!("cannot end fault {f:?}: {e:?}"));
}
