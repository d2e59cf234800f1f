//! CI smoke: a fixed number of cases of each target, so `cargo test`
//! covers the fuzz targets (bounded by count, never by time).

use rarangi_fuzz::{run_batch, Catalogues, Dns, Parser};

/// A fixed master seed: the smoke run is the same every time.
const SEED: u64 = 0x5EED;

#[test]
fn parser_smoke() {
    let tally = run_batch(&Parser, SEED, 0, 20_000);
    assert_eq!(tally.execs, 20_000);
    assert!(tally.failures.is_empty(), "{}", tally.failures[0]);
}

#[test]
fn catalogue_smoke() {
    let target = Catalogues::default();
    let tally = run_batch(&target, SEED, 0, 2_000);
    assert_eq!(tally.execs, 2_000);
    assert!(tally.failures.is_empty(), "{}", tally.failures[0]);
}

#[test]
fn dns_smoke() {
    let tally = run_batch(&Dns, SEED, 0, 20_000);
    assert_eq!(tally.execs, 20_000);
    assert!(tally.failures.is_empty(), "{}", tally.failures[0]);
}
