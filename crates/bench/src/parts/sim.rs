//! The in-memory network: flooding cost, re-link traffic, large networks.

use std::fmt::Write as _;

use rarangi_harness::clock;

use super::layouts;
use crate::report::Report;

/// Runs the in-memory benchmarks.
pub fn sim(r: &mut Report, quick: bool) {
    let mut body = String::from("In-memory network (crates/sim), every line through the real encoder and parser.\n\n### Lines per change against the flooding bound 2E−N+1\n\n| catalogues | layout | links E | bound | lines for one ADD_SERV |\n| --- | --- | --- | --- | --- |\n");
    for n in [5, 20, 50] {
        for (t, _) in layouts() {
            let row = crate::simbench::flooding(n, t);
            let _ = writeln!(
                body,
                "| {} | {} | {} | {} | {} |",
                row.n, row.layout, row.edges, row.bound, row.lines
            );
        }
    }
    body.push_str("\n### Re-link after a 1-second partition\n\n| services | changes during the partition | re-link lines | re-link bytes | bytes of a full copy |\n| --- | --- | --- | --- | --- |\n");
    let services = if quick { 2_000 } else { 20_000 };
    let row = crate::simbench::relink(services, 100);
    r.targets.push((
        "re-link traffic proportional to the changes missed".into(),
        format!(
            "{} bytes for 100 changes vs {} for a full copy of {services}",
            row.relink_bytes, row.full_bytes
        ),
        row.relink_bytes * 10 < row.full_bytes,
    ));
    let _ = writeln!(
        body,
        "| {} | {} | {} | {} | {} |",
        row.services, row.changes, row.relink_lines, row.relink_bytes, row.full_bytes
    );
    body.push_str("\n### Large networks (random, average degree about 3, 0-1 ms per hop)\n\n| catalogues | links | lines to form the network | simulated ms to form | lines for one registration | simulated ms for it to reach everyone | memory of the whole simulation (MiB) | wall time (s) |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    let sizes: &[usize] = if quick { &[200] } else { &[1_000, 2_000] };
    let mut per_cat_kib = 0.0;
    let (mut last_edges, mut last_form, mut last_wall) = (1.0, 0.0, 0.0);
    let last_n = *sizes.last().expect("a size");
    let f = 10_000.0 / last_n as f64;
    for &n in sizes {
        let t = clock::now();
        let row = crate::simbench::large(n);
        let wall = t.elapsed().as_secs_f64();
        per_cat_kib = row.rss_kib as f64 / n as f64;
        (last_edges, last_form, last_wall) = (row.edges as f64, row.form_lines as f64, wall);
        let _ = writeln!(
            body,
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} |",
            row.n,
            row.edges,
            row.form_lines,
            row.form_ms,
            row.change_lines,
            row.change_ms,
            row.rss_kib / 1024,
            wall
        );
        println!("sim {n} catalogues: {wall:.1} s wall, {} MiB", row.rss_kib / 1024);
    }
    let _ = write!(
        body,
        "\nEvery catalogue keeps the whole topology (N catalogue records and E links), so the simulation, which holds all N catalogues in one process, needs memory that grows with N·(N+E): about {:.1} MiB per catalogue at the largest size above ({last_n}). At 10,000 each catalogue would hold {f:.0} times as much and there would be {f:.0} times as many: about {:.0} GiB, beyond this machine's memory, so that size was not run. A real catalogue holds one copy: at most about {:.0} MiB at 10,000 catalogues by the same measure, which also counts the simulation's own queues. Forming a network floods every new link to every catalogue, E links × up to 2E lines, so formation lines grow with E² as the table shows; a change on a formed network costs at most 2E−N+1 lines and reaches everyone within a few simulated milliseconds (one hop is 0-1 ms). Reachability is updated incrementally as links join, which made forming 500 catalogues 8 times faster (same lines).\n\nWhat 10,000 catalogues would cost by the same rules (predicted, not run): with about {e10:.0} links at the same average degree, one registration takes 2E−N+1 = {c10:.0} lines; forming the network takes about {fl10:.0} million lines (the {last_n}-catalogue run's lines per E², times E²), about {h10:.1} hours of simulation at that run's speed.\n",
        per_cat_kib / 1024.0,
        per_cat_kib * last_n as f64 * f * f / (1024.0 * 1024.0),
        per_cat_kib * f / 1024.0,
        e10 = last_edges * f,
        c10 = 2.0 * last_edges * f - 10_000.0 + 1.0,
        fl10 = last_form / (last_edges * last_edges) * (last_edges * f).powi(2) / 1e6,
        h10 = last_wall * f * f / 3600.0,
    );
    r.section("Simulation", body);
}
