//! Watchdog checks: the core decides from probe results; critical
//! instances are withdrawn everywhere and come back without re-registering.

mod common;

use common::*;
use rarangi_core::{CheckKind, ClientId, Flap, LeaseError, Notice, Probe};
use rarangi_proto::{Attrs, ErrorCode, ServiceUri};

const SVC: &str = "tcp://10.0.0.1:8080/orders";

fn svc() -> ServiceUri {
    ServiceUri::parse(SVC).unwrap()
}

/// A catalogue with one service registered with `attrs` on client 1 and
/// a subscriber (client 2) to everything.
fn registered(attrs: &str) -> rarangi_core::Catalogue {
    let mut c = catalogue("a:1");
    c.client_connected(ClientId(1), true);
    c.client_message(T0, ClientId(1), msg(&format!("7 {SVC} {attrs}")));
    subscriber(&mut c, T0, ClientId(2), "");
    c
}

fn fail(c: &mut rarangi_core::Catalogue, now: u64, n: usize) {
    for i in 0..n {
        assert!(c.probe(now + i as u64, &svc(), false));
    }
}

#[test]
fn probes_are_due_at_once_then_every_interval() {
    let mut c = registered("check=tcp&check-interval=200ms");
    assert_eq!(c.next_probe_ms(), Some(T0));
    let probes = c.due_probes(T0);
    assert_eq!(probes.len(), 1);
    let Probe { service, check } = &probes[0];
    assert_eq!(service, &svc());
    assert_eq!(check.kind, CheckKind::Tcp("10.0.0.1:8080".into()));
    assert_eq!(check.timeout_ms, 100);
    assert_eq!(c.next_probe_ms(), Some(T0 + 200));
    assert!(c.due_probes(T0 + 199).is_empty());
    assert_eq!(c.due_probes(T0 + 200).len(), 1);
    // A driver that fell far behind gets one probe, not a burst.
    assert_eq!(c.due_probes(T0 + 10_000).len(), 1);
    assert_eq!(c.next_probe_ms(), Some(T0 + 10_200));
    // Unchecked registrations are never probed.
    let mut plain = registered("zone=a");
    assert_eq!(plain.next_probe_ms(), None);
    assert!(!plain.probe(T0, &svc(), false));
}

#[test]
fn critical_instances_are_withdrawn_and_return_without_reregistering() {
    let mut c = registered("check=tcp");
    let mut peer = catalogue("b:1");
    mesh(T0, &mut [&mut c, &mut peer]);
    assert_eq!(peer.services().count(), 1);
    let first_ts = c.services().next().unwrap().ts;

    fail(&mut c, T0 + 1, 2);
    assert!(
        to_client(&c.drain(), ClientId(2)).is_empty(),
        "two failures are not enough"
    );
    fail(&mut c, T0 + 3, 1);
    let outs = pump(T0 + 3, &mut [&mut c, &mut peer]);
    let lines = to_client(&outs[0], ClientId(2));
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with(&format!("6 {SVC} ")), "{lines:?}");
    assert!(notices(&outs[0]).contains(&Notice::Critical {
        service: svc(),
        held_until: None
    }));
    assert_eq!(c.services().count(), 0);
    assert_eq!(peer.services().count(), 0, "withdrawn at the peer too");
    assert_eq!(c.is_critical(&svc()), Some(true));

    // Still registered: the same REG_SERV again changes nothing.
    c.client_message(T0 + 5, ClientId(1), msg(&format!("7 {SVC} check=tcp")));
    assert!(to_client(&c.drain(), ClientId(2)).is_empty());

    c.probe(T0 + 10, &svc(), true);
    c.probe(T0 + 11, &svc(), true);
    let outs = pump(T0 + 11, &mut [&mut c, &mut peer]);
    let lines = to_client(&outs[0], ClientId(2));
    assert!(lines[0].starts_with(&format!("5 {SVC} ")), "{lines:?}");
    let back = peer.services().next().expect("back at the peer");
    assert!(back.ts > first_ts, "re-announced with a new version");
    assert_eq!(back.attrs.get("check"), Some("tcp"), "check attributes replicate");
    assert_eq!(c.is_critical(&svc()), Some(false));
}

#[test]
fn a_critical_instance_goes_for_good_with_its_connection() {
    let mut c = registered("check=tcp");
    fail(&mut c, T0, 3);
    c.drain();
    c.client_disconnected(T0 + 5, ClientId(1));
    assert!(to_client(&c.drain(), ClientId(2)).is_empty(), "already withdrawn");
    assert_eq!(c.is_critical(&svc()), None);
    assert_eq!(c.next_probe_ms(), None);
    assert!(!c.probe(T0 + 6, &svc(), true));
    assert_eq!(c.services().count(), 0);
}

#[test]
fn dropping_the_check_brings_a_critical_instance_back() {
    let mut c = registered("check=tcp");
    fail(&mut c, T0, 3);
    c.drain();
    c.client_message(T0 + 5, ClientId(1), msg(&format!("7 {SVC} zone=a")));
    let lines = to_client(&c.drain(), ClientId(2));
    assert!(lines[0].starts_with(&format!("5 {SVC} ")), "{lines:?}");
    assert_eq!(c.services().next().unwrap().attrs.get("zone"), Some("a"));
    assert_eq!(c.next_probe_ms(), None);
}

#[test]
fn bad_check_attributes_refuse_the_registration() {
    let mut c = catalogue("a:1");
    c.client_connected(ClientId(1), true);
    c.client_message(T0, ClientId(1), msg(&format!("7 {SVC} check=tcp&check-fails=0")));
    let lines = to_client(&c.drain(), ClientId(1));
    assert_eq!(error_code(&lines[0]), ErrorCode::BadMessage);
    assert!(lines[0].contains("check-fails"), "{lines:?}");
    assert_eq!(c.services().count(), 0);

    let attrs = Attrs::parse("check=ftp").unwrap();
    let e = c.lease(T0, svc(), attrs, 10_000).unwrap_err();
    assert!(matches!(e, LeaseError::Check(_)), "{e:?}");
}

#[test]
fn leases_lapse_while_critical() {
    let mut c = catalogue("a:1");
    let attrs = Attrs::parse("check=tcp&check-fails=1").unwrap();
    c.lease(T0, svc(), attrs, 10_000).unwrap();
    c.probe(T0 + 1, &svc(), false);
    assert!(c.is_leased(&svc()));
    assert_eq!(c.leases().count(), 1);
    c.tick(T0 + 10_000);
    assert!(notices(&c.drain()).contains(&Notice::LeaseExpired { service: svc() }));
    assert!(!c.is_leased(&svc()));
    assert_eq!(c.is_critical(&svc()), None);
}

#[test]
fn flapping_instances_are_held_critical() {
    let mut cfg = rarangi_core::Config::new(uri("a:1"), "eu", "production");
    cfg.flap = Flap {
        flap_limit: 2,
        flap_window_ms: 60_000,
        hold_down_ms: 30_000,
    };
    let mut c = rarangi_core::Catalogue::new(cfg, Default::default(), rarangi_proto::Ts(0), T0);
    c.client_connected(ClientId(1), true);
    c.client_message(
        T0,
        ClientId(1),
        msg(&format!("7 {SVC} check=tcp&check-fails=1&check-passes=1")),
    );
    c.probe(T0 + 1000, &svc(), false);
    c.probe(T0 + 2000, &svc(), true);
    c.probe(T0 + 3000, &svc(), false);
    let held = Notice::Critical {
        service: svc(),
        held_until: Some(T0 + 33_000),
    };
    assert!(notices(&c.drain()).contains(&held));
    c.probe(T0 + 4000, &svc(), true);
    assert_eq!(c.services().count(), 0, "held down");
    c.probe(T0 + 33_000, &svc(), true);
    assert_eq!(c.services().count(), 1, "back after the hold-down");
}
