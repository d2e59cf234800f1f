//! Keeps the in-memory benchmarks compiling and working in CI (the process
//! benchmarks do not run in CI: 2 noisy cores).

use rarangi_bench::simbench;
use rarangi_sim::Topology;

#[test]
fn in_memory_benchmarks_run_and_respect_the_bound() {
    let row = simbench::flooding(20, Topology::Random { extra_tenths: 5 });
    assert!(row.lines <= row.bound && row.lines >= 19);
    let relink = simbench::relink(500, 20);
    assert!(
        relink.relink_bytes < relink.full_bytes,
        "{} vs {}",
        relink.relink_bytes,
        relink.full_bytes
    );
    let large = simbench::large(60);
    assert!(large.change_lines <= 2 * large.edges as u64);
}
