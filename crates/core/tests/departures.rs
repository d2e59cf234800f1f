//! Departures: graceful leave, restart, reaping, force-leave, and no
//! resurrection from stale copies.

mod common;

use common::*;
use rarangi_core::{Catalogue, ClientId, Config, Durable, Notice, Output};
use rarangi_proto::{Departure, ErrorCode, Message, Ts};

const SECOND: u64 = 1000;

fn with_reap(addr: &str, reap_after_ms: u64, floor: Ts, now: u64) -> Catalogue {
    let mut cfg = Config::new(uri(addr), "eu", "production");
    cfg.reap_after_ms = reap_after_ms;
    Catalogue::new(cfg, Durable::default(), floor, now)
}

fn knows(c: &Catalogue, addr: &str) -> bool {
    let t = c.topology();
    let u = uri(addr);
    t.catalogues.contains_key(&u)
        || t.reachable.contains(&u)
        || t.links.iter().any(|(a, b)| *a == u || *b == u)
}

fn left_notices(outs: &[Output]) -> Vec<(String, Departure)> {
    notices(outs)
        .into_iter()
        .filter_map(|n| match n {
            Notice::Left { catalogue, reason } => Some((catalogue.addr().to_owned(), reason)),
            _ => None,
        })
        .collect()
}

fn lost_notices(outs: &[Output]) -> Vec<String> {
    notices(outs)
        .into_iter()
        .flat_map(|n| match n {
            Notice::Reachability { lost, .. } => lost.iter().map(|c| c.addr().to_owned()).collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// a, b, c fully linked, with `tcp://10.0.0.3:80/orders` registered at c.
fn three(reap_after_ms: u64) -> (Catalogue, Catalogue, Catalogue) {
    let mut a = with_reap("a:1", reap_after_ms, Ts(0), T0);
    let mut b = with_reap("b:1", reap_after_ms, Ts(0), T0);
    let mut c = with_reap("c:1", reap_after_ms, Ts(0), T0);
    c.client_connected(ClientId(9), true);
    c.client_message(T0, ClientId(9), msg("7 tcp://10.0.0.3:80/orders"));
    mesh(T0, &mut [&mut a, &mut b, &mut c]);
    assert!(knows(&a, "c:1") && knows(&b, "c:1"));
    assert_eq!(a.services().count(), 1);
    (a, b, c)
}

#[test]
fn a_graceful_leave_is_not_a_partition() {
    let (mut a, mut b, mut c) = three(u64::MAX);
    subscriber(&mut a, T0, ClientId(1), "orders");
    c.leave(T0 + 1);
    let outs = pump(T0 + 1, &mut [&mut a, &mut b, &mut c]);
    assert!(
        !knows(&a, "c:1"),
        "dropped from the topology at once: {:?}",
        a.topology()
    );
    assert!(!knows(&b, "c:1"));
    assert_eq!(a.services().count(), 0, "its services are withdrawn");
    let del = to_client(&outs[0], ClientId(1));
    assert!(
        del.iter().any(|l| l.starts_with("6 tcp://10.0.0.3:80/orders")),
        "{del:?}"
    );
    assert_eq!(left_notices(&outs[0]), [("c:1".to_owned(), Departure::Left)]);
    // Then its connections close: still no partition.
    a.link_down(T0 + 2, &uri("c:1"));
    b.link_down(T0 + 2, &uri("c:1"));
    let outs = pump(T0 + 2, &mut [&mut a, &mut b]);
    assert_eq!(lost_notices(&outs[0]), Vec::<String>::new());
    assert_eq!(lost_notices(&outs[1]), Vec::<String>::new());
    assert!(!knows(&a, "c:1") && !knows(&b, "c:1"));
    assert!(a.is_linked(&uri("b:1")), "the others stay linked");
}

#[test]
fn a_restart_after_leaving_is_welcome_and_old_leaves_do_not_remove_it() {
    let (mut a, mut b, mut c) = three(u64::MAX);
    c.leave(T0 + 1);
    pump(T0 + 1, &mut [&mut a, &mut b, &mut c]);
    let old_leave = format!("20 x-tvnetcs://c:1/ eu {} left", c.clock().0);
    a.link_down(T0 + 2, &uri("c:1"));
    b.link_down(T0 + 2, &uri("c:1"));
    // Restarted with its persisted clock: a newer incarnation.
    let mut c = with_reap("c:1", u64::MAX, c.clock(), T0 + 3);
    c.client_connected(ClientId(9), true);
    c.client_message(T0 + 3, ClientId(9), msg("7 tcp://10.0.0.3:80/orders"));
    for (x, y) in [("a:1", "c:1"), ("b:1", "c:1")] {
        let x_cat = if x == "a:1" { &mut a } else { &mut b };
        x_cat.link_up(T0 + 3, &uri(y));
        c.link_up(T0 + 3, &uri(x));
    }
    pump(T0 + 3, &mut [&mut a, &mut b, &mut c]);
    assert!(knows(&a, "c:1") && knows(&b, "c:1"), "back: {:?}", a.topology());
    assert_eq!(a.services().count(), 1, "its service returns");
    // A stale copy of the old leave, from a slow path: older than the new
    // incarnation, so it changes nothing.
    a.peer_message(T0 + 4, &uri("b:1"), msg(&old_leave));
    pump(T0 + 4, &mut [&mut a, &mut b, &mut c]);
    assert!(knows(&a, "c:1") && knows(&b, "c:1"));
    assert_eq!(a.services().count(), 1);
}

#[test]
fn a_restart_with_its_clock_behind_the_leave_starts_a_newer_incarnation() {
    let (mut a, mut b, mut c) = three(u64::MAX);
    c.leave(T0 + 10 * SECOND);
    pump(T0 + 10 * SECOND, &mut [&mut a, &mut b, &mut c]);
    a.link_down(T0 + 10 * SECOND, &uri("c:1"));
    b.link_down(T0 + 10 * SECOND, &uri("c:1"));
    // Its store was lost and its clock reads earlier than the leave.
    let mut c = with_reap("c:1", u64::MAX, Ts(0), T0 + SECOND);
    a.link_up(T0 + SECOND, &uri("c:1"));
    c.link_up(T0 + SECOND, &uri("a:1"));
    pump(T0 + SECOND, &mut [&mut a, &mut b, &mut c]);
    assert!(knows(&a, "c:1") && knows(&b, "c:1"), "{:?}", a.topology());
    assert!(c.incarnation().millis() >= T0 + 10 * SECOND);
}

#[test]
fn an_unreachable_catalogue_is_reaped_by_the_leader_and_stays_gone() {
    let (mut a, mut b, c) = three(10 * SECOND);
    let stale_record = format!("15 x-tvnetcs://c:1/ eu {}", c.incarnation().0);
    let stale_service = c
        .services()
        .next()
        .map(|v| {
            Message::AddServ {
                service: v.service,
                catalogue: v.catalogue,
                cluster: v.cluster,
                ts: v.ts,
                attrs: v.attrs,
            }
            .encode()
        })
        .expect("c's service");
    // c crashes: no leave.
    a.link_down(T0, &uri("c:1"));
    b.link_down(T0, &uri("c:1"));
    let outs = pump(T0, &mut [&mut a, &mut b]);
    assert_eq!(lost_notices(&outs[0]), ["c:1"], "a crash is a partition");
    a.tick(T0 + SECOND);
    b.tick(T0 + SECOND);
    a.tick(T0 + 5 * SECOND);
    b.tick(T0 + 5 * SECOND);
    pump(T0 + 5 * SECOND, &mut [&mut a, &mut b]);
    assert!(knows(&a, "c:1"), "not yet");
    // b is not the leader: it waits for a.
    b.tick(T0 + 12 * SECOND);
    pump(T0 + 12 * SECOND, &mut [&mut a, &mut b]);
    assert!(knows(&b, "c:1"));
    a.tick(T0 + 12 * SECOND);
    let outs = pump(T0 + 12 * SECOND, &mut [&mut a, &mut b]);
    assert!(!knows(&a, "c:1") && !knows(&b, "c:1"));
    assert_eq!(left_notices(&outs[1]), [("c:1".to_owned(), Departure::Reaped)]);
    // Stale copies from a catalogue that was away: refused.
    a.peer_message(T0 + 13 * SECOND, &uri("b:1"), msg(&stale_record));
    a.peer_message(T0 + 13 * SECOND, &uri("b:1"), msg(&stale_service));
    pump(T0 + 13 * SECOND, &mut [&mut a, &mut b]);
    assert!(!knows(&a, "c:1") && !knows(&b, "c:1"));
    assert_eq!(a.services().count(), 0);
    // Long after, the departure is collected; old copies still cannot
    // bring c back.
    let later = T0 + 2 * 3600 * SECOND;
    a.tick(later);
    b.tick(later);
    pump(later, &mut [&mut a, &mut b]);
    assert_eq!(a.departed().count(), 0, "the departure was collected");
    a.peer_message(later, &uri("b:1"), msg(&stale_record));
    a.peer_message(later, &uri("b:1"), msg(&stale_service));
    pump(later, &mut [&mut a, &mut b]);
    assert!(!knows(&a, "c:1") && !knows(&b, "c:1"), "{:?}", a.topology());
    assert_eq!(a.services().count(), 0);
}

#[test]
fn a_reaped_catalogue_that_was_alive_comes_back_with_a_new_incarnation() {
    let (mut a, mut b, mut c) = three(10 * SECOND);
    for (x, y) in [(&mut a, "c:1"), (&mut b, "c:1")] {
        x.link_down(T0, &uri(y));
    }
    c.link_down(T0, &uri("a:1"));
    c.link_down(T0, &uri("b:1"));
    pump(T0, &mut [&mut a, &mut b]);
    c.drain();
    a.tick(T0 + SECOND);
    a.tick(T0 + 11 * SECOND);
    pump(T0 + 11 * SECOND, &mut [&mut a, &mut b]);
    assert!(!knows(&a, "c:1"));
    // The partition heals: c hears of its removal and starts anew.
    a.link_up(T0 + 12 * SECOND, &uri("c:1"));
    c.link_up(T0 + 12 * SECOND, &uri("a:1"));
    pump(T0 + 12 * SECOND, &mut [&mut a, &mut b, &mut c]);
    assert!(knows(&a, "c:1") && knows(&b, "c:1"), "{:?}", b.topology());
    assert_eq!(b.services().count(), 1, "its service is back");
}

#[test]
fn force_leave_removes_an_unreachable_catalogue_now() {
    let (mut a, mut b, c) = three(u64::MAX);
    let (admin, outsider) = (ClientId(1), ClientId(2));
    a.client_connected(admin, true);
    a.client_connected(outsider, false);
    let force = |x: &mut Catalogue, who, target: &str| {
        x.client_message(T0, who, msg(&format!("FORCE_LEAVE x-tvnetcs://{target}/")));
        to_client(&x.drain(), who)
    };
    let refused = force(&mut a, admin, "c:1");
    assert_eq!(error_code(&refused[0]), ErrorCode::NotAllowed);
    assert!(refused[0].contains("reachable"), "{refused:?}");
    assert!(force(&mut a, admin, "a:1")[0].contains("this catalogue"));
    assert!(force(&mut a, admin, "zz:1")[0].contains("no such catalogue"));
    drop(c);
    a.link_down(T0, &uri("c:1"));
    b.link_down(T0, &uri("c:1"));
    pump(T0, &mut [&mut a, &mut b]);
    assert!(force(&mut a, outsider, "c:1")[0].contains("not allowed"));
    a.client_message(T0, admin, msg("FORCE_LEAVE x-tvnetcs://c:1/"));
    let outs = pump(T0, &mut [&mut a, &mut b]);
    assert_eq!(to_client(&outs[0], admin), ["21 x-tvnetcs://c:1/"]);
    assert!(
        !knows(&a, "c:1") && !knows(&b, "c:1"),
        "{:?}\n{:?}",
        a.topology(),
        b.topology()
    );
    assert_eq!(left_notices(&outs[1]), [("c:1".to_owned(), Departure::Forced)]);
}

#[test]
fn a_departure_at_our_incarnations_very_timestamp_is_answered_with_a_new_one() {
    let (mut a, mut b, mut c) = three(u64::MAX);
    let inc = c.incarnation();
    // Another clock issued the same value: the departure wins the tie
    // (delete over add), so c must move past it.
    c.peer_message(
        T0 + 1,
        &uri("a:1"),
        msg(&format!("20 x-tvnetcs://c:1/ eu {} reaped", inc.0)),
    );
    pump(T0 + 1, &mut [&mut a, &mut b, &mut c]);
    assert!(c.incarnation() > inc);
    assert!(knows(&a, "c:1") && knows(&b, "c:1"));
    assert_eq!(b.services().count(), 1);
}
