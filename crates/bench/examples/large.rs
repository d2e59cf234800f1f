//! Times forming a large simulated network and one change on it:
//! `cargo run --release -p rarangi-bench --example large -- 1000`.

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let t = rarangi_harness::clock::now();
    let row = rarangi_bench::simbench::large(n);
    println!(
        "{n} catalogues, {} links: {} lines to form, {} lines for one change; {:.1} s wall",
        row.edges,
        row.form_lines,
        row.change_lines,
        t.elapsed().as_secs_f64()
    );
}
