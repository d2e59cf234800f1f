//! Memory bounds a client can reach: the memory-pressure flag, and large
//! snapshots shared rather than built again per subscription.

mod common;

use common::*;
use rarangi_core::{ClientId, Output};
use rarangi_proto::{ErrorCode, Message};

#[test]
fn under_memory_pressure_new_registrations_and_subscriptions_are_refused() {
    let mut c = catalogue("a:1");
    let (svc, sub) = (ClientId(1), ClientId(2));
    c.client_connected(svc, true);
    c.client_connected(sub, false);
    c.client_message(T0, svc, msg("7 tcp://10.0.0.1:80/orders"));
    c.client_message(T0, sub, msg("8 orders"));
    c.drain();

    c.set_memory_pressure(true);
    c.client_message(T0, svc, msg("7 tcp://10.0.0.2:80/orders"));
    let lines = to_client(&c.drain(), svc);
    assert_eq!(error_code(&lines[0]), ErrorCode::Limit, "{lines:?}");
    assert!(lines[0].contains("memory"), "{lines:?}");
    c.client_message(T0, sub, msg("8 billing"));
    assert_eq!(error_code(&to_client(&c.drain(), sub)[0]), ErrorCode::Limit);
    // What is already held goes on: a repeat is answered as before.
    c.client_message(T0, svc, msg("7 tcp://10.0.0.1:80/orders"));
    assert!(to_client(&c.drain(), svc).is_empty());
    c.client_message(T0, sub, msg("8 orders"));
    assert_eq!(
        to_client(&c.drain(), sub).last().map(String::as_str),
        Some("8 orders")
    );
    assert_eq!(c.services().count(), 1);

    c.set_memory_pressure(false);
    c.client_message(T0, svc, msg("7 tcp://10.0.0.2:80/orders"));
    assert!(to_client(&c.drain(), svc).is_empty());
    assert_eq!(c.services().count(), 2);
}

/// The shared slice a subscription's snapshot came in.
fn snapshot(outs: &[Output], id: ClientId) -> std::sync::Arc<[Message]> {
    outs.iter()
        .find_map(|o| match o {
            Output::ToClientMany { client, msgs } if *client == id => Some(msgs.clone()),
            _ => None,
        })
        .expect("a snapshot")
}

#[test]
fn a_large_snapshot_is_built_once_per_change_however_often_it_is_asked_for() {
    let mut c = catalogue("a:1");
    let (svc, sub) = (ClientId(1), ClientId(2));
    c.client_connected(svc, true);
    c.client_connected(sub, false);
    for i in 0..1000 {
        let line = format!("7 tcp://10.0.{}.{}:80/svc{i}", i / 250, i % 250);
        c.client_message(T0, svc, msg(&line));
    }
    c.drain();
    c.client_message(T0, sub, msg("8 ."));
    let first = snapshot(&c.drain(), sub);
    assert_eq!(first.len(), 1000);
    c.client_message(T0, sub, msg("8 ."));
    let again = snapshot(&c.drain(), sub);
    assert!(
        std::sync::Arc::ptr_eq(&first, &again),
        "the same snapshot, shared"
    );

    c.client_message(T0 + 1, svc, msg("7 tcp://10.9.0.1:80/new"));
    c.drain();
    c.client_message(T0 + 1, sub, msg("8 ."));
    let after = snapshot(&c.drain(), sub);
    assert_eq!(after.len(), 1001, "a change makes a new one");
}

#[test]
fn under_memory_pressure_new_leases_are_refused_and_held_ones_renewed() {
    use rarangi_core::{LeaseError, LimitError};
    use rarangi_proto::{Attrs, ServiceUri};
    let svc = |s: &str| ServiceUri::parse(s).unwrap();
    let mut c = catalogue("a:1");
    c.lease(T0, svc("nesoi://h1/orders"), Attrs::default(), 60_000)
        .unwrap();
    c.set_memory_pressure(true);
    let e = c
        .lease(T0, svc("nesoi://h2/orders"), Attrs::default(), 60_000)
        .unwrap_err();
    assert_eq!(e, LeaseError::Limit(LimitError::MemoryPressure));
    assert!(rarangi_core::LimitError::MemoryPressure
        .to_string()
        .contains("--memory-limit"));
    // A held lease is renewed, even with new attributes.
    let attrs: Attrs = [("v", "2".to_owned())].into_iter().collect();
    assert!(c.lease(T0, svc("nesoi://h1/orders"), attrs, 60_000).is_ok());
    c.set_memory_pressure(false);
    assert!(c
        .lease(T0, svc("nesoi://h2/orders"), Attrs::default(), 60_000)
        .is_ok());
}
