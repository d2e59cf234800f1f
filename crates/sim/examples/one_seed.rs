//! Runs one random schedule and prints its outcome:
//! `cargo run --release -p rarangi-sim --example one_seed -- SEED [MIN MAX STEPS]`.

use rarangi_sim::{run_seed, ScheduleConfig};

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let seed = args.first().copied().unwrap_or(0);
    let mut cfg = ScheduleConfig::default();
    if let [_, min, max, steps, ..] = args[..] {
        cfg.min_nodes = min as usize;
        cfg.max_nodes = max as usize;
        cfg.steps = steps as usize;
    }
    // Wall time of the run, printed for people.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let out = run_seed(seed, &cfg);
    println!(
        "seed {seed}: {} catalogues, {:?}, {} lines, {} violations, {:.2} s",
        out.nodes,
        out.topology,
        out.lines,
        out.violations.len(),
        started.elapsed().as_secs_f64()
    );
    for v in &out.violations {
        println!("  {v}");
    }
}
