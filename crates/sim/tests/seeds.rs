//! Random fault schedules over many seeds (DESIGN §7 invariants 1-4, 6).
//!
//! Replay one seed: `RARANGI_SEED=123 cargo test -p rarangi-sim --test seeds -- --nocapture`.
//! More seeds: `RARANGI_SEEDS=5000 cargo test -p rarangi-sim --release --test seeds`.

use std::time::Instant;

use rarangi_sim::{run_seed, ScheduleConfig};

#[test]
fn random_fault_schedules_500_seeds_all_in_memory() {
    let cfg = ScheduleConfig::default();
    let seeds: Vec<u64> = match std::env::var("RARANGI_SEED") {
        Ok(s) => vec![s.parse().expect("RARANGI_SEED must be a number")],
        Err(_) => {
            let n: u64 = std::env::var("RARANGI_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(500);
            (0..n).collect()
        }
    };
    // Wall time of the run, printed for people and never asserted.
    #[allow(clippy::disallowed_methods)]
    let started = Instant::now();
    let mut failed = Vec::new();
    let mut lines = 0;
    for &seed in &seeds {
        let out = run_seed(seed, &cfg);
        lines += out.lines;
        if !out.violations.is_empty() {
            eprintln!("seed {seed} FAILED ({} nodes, {:?}):", out.nodes, out.topology);
            for v in out.violations.iter().take(5) {
                eprintln!("  {v}");
            }
            if seeds.len() == 1 {
                for l in &out.log {
                    eprintln!("    {l}");
                }
            }
            failed.push(seed);
        }
    }
    eprintln!(
        "{} seeds, {} catalogue lines, all in memory in {:.1} s",
        seeds.len(),
        lines,
        started.elapsed().as_secs_f64()
    );
    assert!(
        failed.is_empty(),
        "{} of {} seeds failed: {:?}\nreplay one with RARANGI_SEED=<n> cargo test -p rarangi-sim --test seeds -- --nocapture",
        failed.len(),
        seeds.len(),
        &failed[..failed.len().min(20)]
    );
}
