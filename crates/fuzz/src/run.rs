//! Time-bounded runs over one or more targets, with progress lines.

use std::fmt::Write as _;
use std::time::Duration;

use crate::catalogue::Catalogues;
use crate::clock;
use crate::dns::Dns;
use crate::engine::{case_seed, run_case, try_input, Failure, Target};
use crate::gen::Gen;
use crate::parser::Parser;

/// The targets by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetName {
    /// `parse_line` on arbitrary and near-valid lines.
    Parser,
    /// Three catalogues driven by arbitrary inputs.
    Catalogue,
    /// The DNS server on arbitrary and near-valid request packets.
    Dns,
}

impl TargetName {
    /// Every target, in reporting order.
    pub const ALL: [TargetName; 3] = [TargetName::Parser, TargetName::Catalogue, TargetName::Dns];

    /// The command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetName::Parser => "parser",
            TargetName::Catalogue => "catalogue",
            TargetName::Dns => "dns",
        }
    }

    fn runner(self, avoid_known_bugs: bool) -> Box<dyn Runner> {
        match self {
            TargetName::Parser => Box::new(Parser),
            TargetName::Catalogue => Box::new(Catalogues {
                avoid_known_bugs,
                ..Catalogues::default()
            }),
            TargetName::Dns => Box::new(Dns),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The targets, sharing the time round-robin.
    pub targets: Vec<TargetName>,
    /// Master seed; case `i` of a target uses `case_seed(seed, i)`.
    pub seed: u64,
    /// Total wall time.
    pub duration: Duration,
    /// Optional cap on cases per target.
    pub max_execs: Option<u64>,
    /// How often to print a progress line (None: never).
    pub progress: Option<Duration>,
    /// Skip inputs that trigger known, reported bugs.
    pub avoid_known_bugs: bool,
}

/// Per-target totals of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// (target, cases run, time spent on it).
    pub totals: Vec<(TargetName, u64, Duration)>,
    /// Every failure found, shrunk.
    pub failures: Vec<Failure>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

impl Report {
    /// One line per target: executions and executions per second.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (t, execs, spent) in &self.totals {
            let rate = *execs as f64 / spent.as_secs_f64().max(1e-9);
            let _ = writeln!(
                s,
                "{:>9}: {execs} execs in {:.0} s ({rate:.0} execs/s)",
                t.as_str(),
                spent.as_secs_f64()
            );
        }
        let _ = write!(
            s,
            "    total: {} execs in {:.0} s, {} failure(s)",
            self.totals.iter().map(|t| t.1).sum::<u64>(),
            self.elapsed.as_secs_f64(),
            self.failures.len()
        );
        s
    }
}

/// A target with its input type hidden, so targets share one loop.
trait Runner {
    fn run(&self, seed: u64) -> Result<(), Failure>;
    fn shrunk(&self, seed: u64) -> Result<(), Failure>;
    fn show(&self, seed: u64) -> (String, Result<(), String>);
}

impl<T: Target> Runner for T {
    fn run(&self, seed: u64) -> Result<(), Failure> {
        run_case(self, seed, false)
    }

    fn shrunk(&self, seed: u64) -> Result<(), Failure> {
        run_case(self, seed, true)
    }

    fn show(&self, seed: u64) -> (String, Result<(), String>) {
        let input = self.generate(&mut Gen::new(seed));
        let result = try_input(self, &input);
        (format!("{input:#?}"), result)
    }
}

/// Runs the plan; failures are printed as found (first of each kind in
/// full) and returned.
pub fn fuzz(plan: &Plan) -> Report {
    let start = clock::now();
    let runners: Vec<Box<dyn Runner>> = plan
        .targets
        .iter()
        .map(|t| t.runner(plan.avoid_known_bugs))
        .collect();
    let mut execs = vec![0u64; runners.len()];
    let mut spent = vec![Duration::ZERO; runners.len()];
    let mut failures: Vec<Failure> = Vec::new();
    let mut next_progress = plan.progress;
    // Each target gets a one-second slice in turn.
    let slice = Duration::from_secs(1).min(plan.duration);
    loop {
        let mut ran = false;
        for (k, runner) in runners.iter().enumerate() {
            if plan.max_execs.is_some_and(|m| execs[k] >= m) {
                continue;
            }
            if clock::since(start) >= plan.duration {
                break;
            }
            ran = true;
            let slice_start = clock::now();
            while clock::since(slice_start) < slice && plan.max_execs.is_none_or(|m| execs[k] < m) {
                let seed = case_seed(plan.seed, execs[k]);
                execs[k] += 1;
                if let Err(mut f) = runner.run(seed) {
                    // Shrinking costs thousands of runs: only for the
                    // failures printed in full.
                    if is_new(&f, &failures) {
                        f = runner.shrunk(seed).err().unwrap_or(f);
                    }
                    report_failure(&f, &failures);
                    failures.push(f);
                }
            }
            spent[k] += clock::since(slice_start);
        }
        let elapsed = clock::since(start);
        if let Some(every) = plan.progress {
            if next_progress.is_some_and(|t| elapsed >= t) {
                let counts: Vec<String> = plan
                    .targets
                    .iter()
                    .zip(&execs)
                    .zip(&spent)
                    .map(|((t, n), d)| {
                        format!(
                            "{} {n} ({:.0}/s)",
                            t.as_str(),
                            *n as f64 / d.as_secs_f64().max(1e-9)
                        )
                    })
                    .collect();
                println!(
                    "[{:>5.1} min] {}; failures {}",
                    elapsed.as_secs_f64() / 60.0,
                    counts.join(", "),
                    failures.len()
                );
                next_progress = Some(elapsed + every);
            }
        }
        if !ran || elapsed >= plan.duration {
            break;
        }
    }
    Report {
        totals: plan
            .targets
            .iter()
            .zip(execs)
            .zip(spent)
            .map(|((t, n), d)| (*t, n, d))
            .collect(),
        failures,
        elapsed: clock::since(start),
    }
}

/// What makes two failures "the same kind": the target and the start of
/// the panic message (the rest names the differing data).
fn kind_of(f: &Failure) -> (&str, String) {
    (f.target, f.message.chars().take(60).collect())
}

/// Whether `f` is among the first three of its kind.
fn is_new(f: &Failure, seen: &[Failure]) -> bool {
    seen.iter().filter(|s| kind_of(s) == kind_of(f)).count() < 3
}

/// Prints a failure in full if it is among the first three of its kind,
/// else one line.
fn report_failure(f: &Failure, seen: &[Failure]) {
    if !is_new(f, seen) {
        let first = f.message.lines().next().unwrap_or_default();
        println!("failure again in {} (case seed {}): {first}", f.target, f.seed);
    } else {
        println!("{f}");
    }
}

/// Runs one case by its case seed: the input (`{:#?}`), and the panic
/// with a shrunk input if it fails.
pub fn replay(target: TargetName, seed: u64, avoid_known_bugs: bool) -> (String, Result<(), Failure>) {
    let runner = target.runner(avoid_known_bugs);
    let (input, result) = runner.show(seed);
    (
        input,
        result.map_err(|_| runner.shrunk(seed).expect_err("the case failed once")),
    )
}
