//! The benchmark report: sections and aims collected by the parts, then
//! written to docs/BENCHMARKS.md with a plot.

use std::fmt::Write as _;

use anyhow::Result;

use crate::os::first_line;

/// What the parts measured, in the order they ran.
#[derive(Default)]
pub struct Report {
    pub(crate) sections: Vec<(String, String)>,
    pub(crate) plot: Vec<(String, usize, f64, f64)>,
    /// (aim, what we measured, met?)
    pub(crate) targets: Vec<(String, String, bool)>,
    pub(crate) scale_rows: Vec<String>,
}

impl Report {
    /// Adds a section, or replaces the one with the same title (parts that
    /// run at several sizes grow their table).
    pub fn section(&mut self, title: &str, body: String) {
        println!("\n## {title}\n\n{body}");
        match self.sections.iter_mut().find(|(t, _)| t == title) {
            Some(s) => s.1 = body,
            None => self.sections.push((title.to_owned(), body)),
        }
    }
}

/// Milliseconds with two decimals below 10, one above.
pub(crate) fn ms(d: f64) -> String {
    if d < 10.0 {
        format!("{d:.2}")
    } else {
        format!("{d:.1}")
    }
}

/// What profiling found, fixed and left: kept with the numbers.
const PROFILING: &str = "
## What profiling found

Tools: perf (CPU), heaptrack and the dhat allocator (`--example memory`, memory), on this machine.

- **Memory per replicated service** (1,463 → about 280 bytes of RSS). heaptrack on a replica showed three copies of each service key (item map, a map of visible records, a per-owner index), a full copy of every visible record, and two per-instance indexes in the HTTP layer. Now a service is one boxed item in one ordered map: a `shown` flag replaces the visible map, service keys start with their owner so a partition rechecks a key range instead of an index, owner URIs and cluster names are shared, HTTP change indexes are kept per service name, and the server uses mimalloc. A service's URI is stored once, in its key, and read back from there when a message or view is built. What is left per service is its key (about 66 bytes), the item (96: cluster names are thin shared pointers, configuration text is boxed) and B-tree nodes. Services with attributes cost more: each non-empty attribute map is its own B-tree.
- **Lookups** (line protocol 15k → about 250k/s, HTTP 19k → 55-74k/s across runs, with the load generator on the same 2 cores). perf showed a quarter of the catalogue's CPU in regular-expression matching: every lookup scanned every service. A lookup's snapshot is now cached per expression until the next change to visible services, and GET /srv/NAME bodies are cached per name until the next change. perf then showed the line protocol's time in encoding the same snapshot lines again for every lookup and in waking connection tasks once per line: the server now encodes a cached snapshot once and hands it to each connection as one shared block, the driver handles every queued event before writing out, and field encoding copies unescaped runs whole. The line-protocol load generator was also made lighter (it counts answers by their first field instead of parsing them): with the client library's full parsing, the generator, not the catalogue, was the limit at about 45k/s. HTTP time is now mostly the kernel (TCP on loopback and thread wake-ups shared with wrk) and hyper; the catalogue serves about 65k requests per core-second.
- **Propagation at 50 catalogues**: one change to a 50-catalogue two-masters layout is 451 lines, parsed, applied and written by 50 processes sharing 2 cores; the time is CPU, not waiting. Per hop a line costs about 0.1-0.2 ms here (chain of 50: 5-9 ms). Most of that is the platform: on this machine a bare tokio relay with the same task structure (read a line, pass it to another task, write it) took 0.24 ms median from an idle start and 0.14 ms warm, against 0.14-0.18 ms and 0.04-0.06 ms for a catalogue's registration-to-subscriber path; strace shows no system calls between reading the line and writing the answer. Handling every queued event before writing out (one wake-up per batch) is in. Running catalogues with one runtime thread instead of two made no consistent difference over three alternating runs, so the default stays.
- **The read model** (since the structure work): HTTP reads (and next DNS and the Consul-compatible API) take a published, immutable view instead of queueing behind the driver: services by name in a persistent B-tree (`imbl`), so publishing is O(1) and a read by name is a range. The view keeps its own record of every visible instance, about 160-180 bytes per service on top of the core's (replica RSS per service about 460-490 bytes, was 274-310; the core's heap is unchanged at 212). The 300-byte aim is therefore not met any more. Next step: one immutable record per service shared by the core's item map and the view, so the view adds only its tree entry.
- **Large simulations**: perf shows a third of the time comparing keys with long common prefixes (catalogue URIs) in B-trees; formation grows with E² lines and the simulation's memory with N·(N+E).
";

/// Writes docs/BENCHMARKS.md and docs/bench-propagation.png.
pub fn write_docs(r: &Report, mode: &str) -> Result<()> {
    let sh = first_line;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let mut doc = format!(
        "# Benchmarks\n\nWritten by `rarangi-bench {mode}` on {date}.\n\n- machine: {cores} cores ({cpu}), {mem}, {kernel}\n- {rustc}; rarangi {ver}\n- all traffic on loopback; one process per catalogue; times measured in the bench process\n\nReproduce:\n\n```sh\ncargo build --release -p rarangi -p rarangi-bench --bins --examples\ntarget/release/rarangi-bench all --compare   # or `quick`; --compare adds etcd and Serf (apt)\ntarget/release/rarangi-bench all --only scale # one part, printed, nothing written\n```\n\nThese are single-machine numbers on 2 shared cores: many catalogues share two cores here, so they measure the software's overheads more than a network.\n",
        date = sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        cores = sh("nproc", &[]),
        mem = sh("sh", &["-c", "free -h | awk '/Mem:/{print $2\" RAM\"}'"]),
        kernel = sh("uname", &["-sr"]),
        rustc = sh("rustc", &["--version"]),
        ver = env!("CARGO_PKG_VERSION"),
    );
    doc.push_str("\n## Where we stand against the aims\n\n| aim | measured | met |\n| --- | --- | --- |\n");
    for (aim, got, met) in &r.targets {
        let _ = writeln!(doc, "| {aim} | {got} | {} |", if *met { "yes" } else { "**no**" });
    }
    doc.push_str("\nSide by side with `--compare` (installed with apt if missing): etcd 3.4 and Serf, in their own sections below.\n");
    doc.push_str(PROFILING);
    for (title, body) in &r.sections {
        let _ = write!(doc, "\n## {title}\n\n{body}");
    }
    doc.push_str("\n![propagation](bench-propagation.png)\n");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs");
    std::fs::write(format!("{root}/BENCHMARKS.md"), doc)?;
    plot(&r.plot, &format!("{root}/bench-propagation.png"))?;
    println!("\nwrote docs/BENCHMARKS.md and docs/bench-propagation.png");
    Ok(())
}

fn plot(points: &[(String, usize, f64, f64)], path: &str) -> Result<()> {
    use plotters::prelude::*;
    let font = std::fs::read("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");
    let Ok(font) = font else {
        println!("no DejaVu font (apt-get install fonts-dejavu-core); skipping the plot");
        return Ok(());
    };
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, font);
    let root = BitMapBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_n = points.iter().map(|p| p.1).max().unwrap_or(5) as f64;
    let max_y = points.iter().map(|p| p.3).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption("Propagation to every catalogue (loopback)", ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..max_n + 2.0, 0f64..max_y)?;
    chart
        .configure_mesh()
        .x_desc("catalogues")
        .y_desc("ms (solid: median, dashed: p99)")
        .label_style(("sans-serif", 15))
        .draw()?;
    let colors = [RED, BLUE, GREEN, MAGENTA];
    let mut names: Vec<&String> = points.iter().map(|p| &p.0).collect();
    names.dedup();
    names.sort();
    names.dedup();
    for (i, name) in names.iter().enumerate() {
        let c = colors[i % colors.len()];
        let pts: Vec<&(String, usize, f64, f64)> = points.iter().filter(|p| &p.0 == *name).collect();
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.1 as f64, p.2)),
                c.stroke_width(2),
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
        chart.draw_series(DashedLineSeries::new(
            pts.iter().map(|p| (p.1 as f64, p.3)),
            6,
            4,
            c.into(),
        ))?;
        chart.draw_series(pts.iter().map(|p| Circle::new((p.1 as f64, p.2), 4, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    root.present()?;
    Ok(())
}
