//! `rarangi-fuzz`: runs the fuzz targets for a while and reports executions.

use std::time::Duration;

use anyhow::bail;
use clap::{Parser as _, ValueEnum};
use rarangi_fuzz::{fuzz, replay, Plan, TargetName};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Which {
    Parser,
    Catalogue,
    Dns,
    All,
}

/// Seeded fuzzing of the Rarangi line parser, catalogue core and DNS server.
#[derive(Debug, clap::Parser)]
#[command(name = "rarangi-fuzz")]
struct Args {
    /// Minutes to run (shared among the targets).
    #[arg(long, default_value_t = 1.0)]
    minutes: f64,
    /// Which target to run.
    #[arg(long, value_enum, default_value_t = Which::All)]
    target: Which,
    /// Master seed (a run), or with --replay the case seed to run again.
    #[arg(long)]
    seed: Option<u64>,
    /// Run the one case `--seed` names, print it, its result and a shrunk input.
    #[arg(long, requires = "seed")]
    replay: bool,
    /// Stop each target after this many cases.
    #[arg(long)]
    execs: Option<u64>,
    /// Skip the inputs that trigger known, reported bugs (listed in
    /// crates/fuzz/tests/findings.rs), so a run can find new ones.
    #[arg(long)]
    avoid_known_bugs: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let targets = match args.target {
        Which::Parser => vec![TargetName::Parser],
        Which::Catalogue => vec![TargetName::Catalogue],
        Which::Dns => vec![TargetName::Dns],
        Which::All => TargetName::ALL.to_vec(),
    };
    if args.replay {
        let seed = args.seed.expect("clap requires --seed with --replay");
        let [target] = targets[..] else {
            bail!("--replay needs one --target (parser, catalogue or dns)");
        };
        return replay_one(target, seed, args.avoid_known_bugs);
    }
    let seed = args.seed.unwrap_or_else(|| std::process::id().into());
    let plan = Plan {
        targets,
        seed,
        duration: Duration::from_secs_f64(args.minutes.max(0.0) * 60.0),
        max_execs: args.execs,
        progress: Some(Duration::from_secs(60)),
        avoid_known_bugs: args.avoid_known_bugs,
    };
    println!(
        "rarangi-fuzz: seeded generator (not coverage-guided), master seed {seed}, {} min, targets {:?}{}",
        args.minutes,
        plan.targets.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        if args.avoid_known_bugs {
            ", avoiding known bugs"
        } else {
            ""
        }
    );
    let report = fuzz(&plan);
    println!("{}", report.summary());
    if !report.failures.is_empty() {
        bail!("{} failing case(s); see above", report.failures.len());
    }
    Ok(())
}

fn replay_one(target: TargetName, seed: u64, avoid_known_bugs: bool) -> anyhow::Result<()> {
    let (input, result) = replay(target, seed, avoid_known_bugs);
    println!("input of case {seed}:\n{input}");
    match result {
        Ok(()) => {
            println!("passes");
            Ok(())
        }
        Err(f) => {
            println!("{f}");
            bail!("case {seed} fails")
        }
    }
}
