use super::*;
use crate::check::CheckKind;

fn watch(fails: u32, passes: u32) -> Watch {
    Watch::new(Check {
        kind: CheckKind::Tcp("h:1".into()),
        interval_ms: 1000,
        timeout_ms: 500,
        fails,
        passes,
    })
}

fn flap(limit: u32) -> Flap {
    Flap {
        flap_limit: limit,
        flap_window_ms: 10_000,
        hold_down_ms: 5_000,
    }
}

#[test]
fn thresholds_count_consecutive_results() {
    let (mut w, f) = (watch(3, 2), flap(100));
    assert_eq!(w.record(false, 1, &f), None);
    assert_eq!(w.record(false, 2, &f), None);
    assert_eq!(w.record(true, 3, &f), None, "a pass resets the failures");
    assert_eq!(w.record(false, 4, &f), None);
    assert_eq!(w.record(false, 5, &f), None);
    assert_eq!(w.record(false, 6, &f), Some(Change::Critical(None)));
    assert_eq!(w.record(false, 7, &f), None, "already critical");
    assert_eq!(w.record(true, 8, &f), None);
    assert_eq!(w.record(false, 9, &f), None, "a failure resets the passes");
    assert_eq!(w.record(true, 10, &f), None);
    assert_eq!(w.record(true, 11, &f), Some(Change::Healthy));
    assert_eq!(w.record(true, 12, &f), None);
}

#[test]
fn flapping_is_held_critical_then_released_by_passes() {
    let (mut w, f) = (watch(1, 1), flap(2));
    assert_eq!(w.record(false, 1000, &f), Some(Change::Critical(None)));
    assert_eq!(w.record(true, 2000, &f), Some(Change::Healthy));
    // The third change within the window is one too many.
    assert_eq!(w.record(false, 3000, &f), Some(Change::Critical(Some(8000))));
    assert_eq!(w.record(true, 4000, &f), None, "held down");
    assert_eq!(w.record(true, 7999, &f), None, "held down");
    assert_eq!(w.record(true, 8000, &f), Some(Change::Healthy));
    // The history started again at the hold: the release and one more
    // change are fine, the next is one too many.
    assert_eq!(w.record(false, 9000, &f), Some(Change::Critical(None)));
    assert_eq!(w.record(true, 9500, &f), Some(Change::HeldDown(14_500)));
}

#[test]
fn a_recovery_that_flaps_is_held_down_instead() {
    let (mut w, f) = (watch(1, 1), flap(1));
    assert_eq!(w.record(false, 1000, &f), Some(Change::Critical(None)));
    assert_eq!(w.record(true, 2000, &f), Some(Change::HeldDown(7000)));
    assert!(w.critical);
    assert_eq!(w.record(true, 7000, &f), Some(Change::Healthy));
}

#[test]
fn changes_older_than_the_window_do_not_count() {
    let (mut w, f) = (watch(1, 1), flap(2));
    assert_eq!(w.record(false, 1000, &f), Some(Change::Critical(None)));
    assert_eq!(w.record(true, 2000, &f), Some(Change::Healthy));
    assert_eq!(w.record(false, 20_000, &f), Some(Change::Critical(None)));
    assert_eq!(w.changes.len(), 1);
}
