//! The engine: runs a target's cases from a master seed, catches panics
//! (a failed check is a panic), shrinks a failing case and reports how
//! to replay it.

use std::cell::{Cell, RefCell};
use std::fmt::Debug;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use crate::gen::Gen;

/// Something to fuzz: a generator of inputs and a check that panics when
/// an input breaks a property.
pub trait Target {
    /// One case.
    type Input: Clone + Debug;

    /// The name used on the command line.
    fn name(&self) -> &'static str;

    /// Draws one case.
    fn generate(&self, g: &mut Gen) -> Self::Input;

    /// Runs one case; panics if a property fails.
    fn check(&self, input: &Self::Input);

    /// Smaller variants of `input` to try while shrinking a failure.
    fn smaller(&self, input: &Self::Input) -> Vec<Self::Input>;
}

/// A failing case.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The target's name.
    pub target: &'static str,
    /// The case seed: `--target T --seed S --replay` runs it again.
    pub seed: u64,
    /// The panic message and where it was raised.
    pub message: String,
    /// The shrunk input, printed with `{:#?}`.
    pub minimal: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "FAILURE in target {} (case seed {})", self.target, self.seed)?;
        writeln!(f, "  panic: {}", self.message)?;
        writeln!(
            f,
            "  replay: rarangi-fuzz --target {} --seed {} --replay",
            self.target, self.seed
        )?;
        write!(f, "  minimal input:\n{}", self.minimal)
    }
}

/// The seed of case `i` of a run with master seed `master` (SplitMix64, so
/// neighbouring cases are unrelated).
pub fn case_seed(master: u64, i: u64) -> u64 {
    let mut z = master.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

thread_local! {
    /// Whether this thread is running a case (its panics are findings).
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    /// The last panic of a case on this thread.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static QUIET: Once = Once::new();

/// Installs, once per process, a panic hook that records the panics of
/// cases instead of printing them (shrinking panics thousands of times);
/// other panics go to the previous hook.
pub fn quiet_panics() {
    QUIET.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CAPTURING.with(Cell::get) {
                return previous(info);
            }
            let payload = info.payload();
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".to_owned());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{text}{at}")));
        }));
    });
}

/// Runs one input; the panic message if a check failed.
pub fn try_input<T: Target>(target: &T, input: &T::Input) -> Result<(), String> {
    quiet_panics();
    LAST_PANIC.with(|p| p.borrow_mut().take());
    CAPTURING.with(|c| c.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| target.check(input)));
    CAPTURING.with(|c| c.set(false));
    match result {
        Ok(()) => Ok(()),
        Err(_) => Err(LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "panic".to_owned())),
    }
}

/// Runs the case with seed `seed`; on failure, shrinks it if `shrinking`
/// (else `minimal` is the whole input).
pub fn run_case<T: Target>(target: &T, seed: u64, shrinking: bool) -> Result<(), Failure> {
    let input = target.generate(&mut Gen::new(seed));
    let message = match try_input(target, &input) {
        Ok(()) => return Ok(()),
        Err(m) => m,
    };
    let minimal = if shrinking {
        shrink(target, input, 4000)
    } else {
        input
    };
    Err(Failure {
        target: target.name(),
        seed,
        message,
        minimal: format!("{minimal:#?}"),
    })
}

/// Greedy shrinking: keeps taking the first smaller variant that still
/// fails (any failure), within `budget` runs.
pub fn shrink<T: Target>(target: &T, mut input: T::Input, mut budget: usize) -> T::Input {
    'outer: while budget > 0 {
        for candidate in target.smaller(&input) {
            if budget == 0 {
                break 'outer;
            }
            budget -= 1;
            if try_input(target, &candidate).is_err() {
                input = candidate;
                continue 'outer;
            }
        }
        break;
    }
    input
}

/// Shrink candidates for a sequence: without each half, quarter, ...,
/// single element (largest chunks first).
pub fn smaller_vec<X: Clone>(xs: &[X]) -> Vec<Vec<X>> {
    let mut out = Vec::new();
    let mut chunk = xs.len().div_ceil(2);
    while chunk >= 1 {
        let mut start = 0;
        while start < xs.len() {
            let end = (start + chunk).min(xs.len());
            let mut v = xs[..start].to_vec();
            v.extend_from_slice(&xs[end..]);
            out.push(v);
            start = end;
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    out
}

/// Counts of one target's run.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Cases run.
    pub execs: u64,
    /// Failures found (each shrunk and reported).
    pub failures: Vec<Failure>,
}

/// Runs `count` cases of `target` from master seed `master`, starting at
/// case number `first`; returns the failures.
pub fn run_batch<T: Target>(target: &T, master: u64, first: u64, count: u64) -> Tally {
    let mut tally = Tally::default();
    for i in first..first + count {
        tally.execs += 1;
        if let Err(f) = run_case(target, case_seed(master, i), true) {
            tally.failures.push(f);
        }
    }
    tally
}
