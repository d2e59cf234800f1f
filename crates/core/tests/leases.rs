//! Services registered with a TTL (HTTP `PUT /srv/NAME/HOST`): leases held
//! by the core, withdrawn in `tick` when they lapse.

mod common;

use common::{catalogue, mesh, notices, pump, subscriber, to_client, uri, T0};
use rarangi_core::{ClientId, LeaseError, Notice, Registered, MAX_LEASE_MS};
use rarangi_proto::{Attrs, Message, ServiceUri};

fn svc(s: &str) -> ServiceUri {
    ServiceUri::parse(s).unwrap()
}

fn attrs(pairs: &[(&str, &str)]) -> Attrs {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

const SUB: ClientId = ClientId(7);

#[test]
fn a_lapsed_lease_is_withdrawn_in_tick_and_subscribers_hear_it() {
    let mut c = catalogue("a:1");
    subscriber(&mut c, T0, SUB, "orders");
    let s = svc("nesoi://h1/orders");
    assert_eq!(
        c.lease(T0, s.clone(), Attrs::default(), 1000),
        Ok(Registered::Created)
    );
    let lines = to_client(&c.drain(), SUB);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("5 nesoi://h1/orders "), "{lines:?}");
    assert!(c.is_leased(&s));
    assert_eq!(c.leases().collect::<Vec<_>>(), [(&s, T0 + 1000)]);

    c.tick(T0 + 999);
    assert!(to_client(&c.drain(), SUB).is_empty(), "not yet");
    assert_eq!(c.services().count(), 1);

    c.tick(T0 + 1000);
    let outs = c.drain();
    let lines = to_client(&outs, SUB);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("6 nesoi://h1/orders "), "{lines:?}");
    assert!(notices(&outs).contains(&Notice::LeaseExpired { service: s.clone() }));
    assert_eq!(c.services().count(), 0);
    assert!(!c.is_leased(&s));
}

#[test]
fn refreshing_before_expiry_keeps_the_service() {
    let mut c = catalogue("a:1");
    let s = svc("nesoi://h1/orders");
    let a = attrs(&[("ttl", "1")]);
    c.lease(T0, s.clone(), a.clone(), 1000).unwrap();
    subscriber(&mut c, T0, SUB, "orders");
    assert_eq!(
        c.lease(T0 + 800, s.clone(), a.clone(), 1000),
        Ok(Registered::Refreshed)
    );
    assert!(to_client(&c.drain(), SUB).is_empty(), "a refresh is not a change");
    c.tick(T0 + 1500);
    assert_eq!(c.services().count(), 1, "the refresh moved the deadline");
    assert_eq!(
        c.lease(T0 + 1600, s.clone(), attrs(&[("ttl", "2")]), 1000),
        Ok(Registered::Updated)
    );
    let lines = to_client(&c.drain(), SUB);
    assert!(lines.len() == 1 && lines[0].ends_with(" ttl=2"), "{lines:?}");
    c.tick(T0 + 2599);
    assert_eq!(c.services().count(), 1);
    c.tick(T0 + 2600);
    assert_eq!(c.services().count(), 0);
}

#[test]
fn unlease_withdraws_at_once() {
    let mut c = catalogue("a:1");
    let s = svc("nesoi://h1/orders");
    assert!(!c.unlease(T0, &s), "nothing to end");
    c.lease(T0, s.clone(), Attrs::default(), 60_000).unwrap();
    subscriber(&mut c, T0, SUB, "orders");
    assert!(c.unlease(T0 + 1, &s));
    let lines = to_client(&c.drain(), SUB);
    assert!(lines.len() == 1 && lines[0].starts_with("6 "), "{lines:?}");
    assert!(!c.unlease(T0 + 2, &s));
    c.tick(T0 + 120_000);
    assert!(notices(&c.drain()).is_empty(), "no expiry of an ended lease");
}

#[test]
fn ttls_are_bounded() {
    let mut c = catalogue("a:1");
    let s = svc("nesoi://h1/orders");
    assert_eq!(
        c.lease(T0, s.clone(), Attrs::default(), 0),
        Err(LeaseError::ZeroTtl)
    );
    let huge = 18_446_744_073_709_551;
    let err = c.lease(T0, s.clone(), Attrs::default(), huge).unwrap_err();
    assert_eq!(
        err,
        LeaseError::TooLong {
            ttl_ms: huge,
            max_ms: MAX_LEASE_MS
        }
    );
    assert!(err.to_string().contains("24 h"), "{err}");
    assert_eq!(c.services().count(), 0, "refused leases register nothing");
    assert!(c.drain().is_empty());
    // The bound itself is fine, even at the end of time.
    assert_eq!(
        c.lease(u64::MAX - 10, s.clone(), Attrs::default(), MAX_LEASE_MS),
        Ok(Registered::Created)
    );
    assert_eq!(c.leases().next().map(|(_, t)| t), Some(u64::MAX));
}

#[test]
fn a_connection_and_a_lease_hold_one_registration_together() {
    let mut c = catalogue("a:1");
    let s = svc("tcp://10.0.0.1:80/orders");
    let conn = ClientId(1);
    c.client_connected(conn, true);
    c.client_message(
        T0,
        conn,
        Message::RegServ {
            service: s.clone(),
            attrs: Attrs::default(),
        },
    );
    assert_eq!(
        c.lease(T0, s.clone(), Attrs::default(), 1000),
        Ok(Registered::Refreshed),
        "already visible with the same attributes"
    );
    c.tick(T0 + 5000);
    assert_eq!(c.services().count(), 1, "the connection still holds it");
    c.lease(T0 + 5000, s.clone(), Attrs::default(), 1000).unwrap();
    c.client_disconnected(T0 + 5001, conn);
    assert_eq!(c.services().count(), 1, "the lease still holds it");
    c.tick(T0 + 6000);
    assert_eq!(c.services().count(), 0);
}

#[test]
fn leased_services_replicate_and_their_expiry_too() {
    let (mut a, mut b) = (catalogue("a:1"), catalogue("b:1"));
    mesh(T0, &mut [&mut a, &mut b]);
    subscriber(&mut b, T0, SUB, "orders");
    let s = svc("nesoi://h1/orders");
    a.lease(T0, s.clone(), Attrs::default(), 1000).unwrap();
    let outs = pump(T0, &mut [&mut a, &mut b]);
    let lines = to_client(&outs[1], SUB);
    assert!(lines.len() == 1 && lines[0].starts_with("5 nesoi://h1/orders x-tvnetcs://a:1/"));
    assert_eq!(
        b.lease(T0, s.clone(), Attrs::default(), 1000),
        Ok(Registered::Updated),
        "visible from a: not created, but b issues its own record"
    );
    pump(T0, &mut [&mut a, &mut b]);
    a.tick(T0 + 1000);
    let outs = pump(T0 + 1000, &mut [&mut a, &mut b]);
    let lines = to_client(&outs[1], SUB);
    assert!(
        lines.len() == 1 && lines[0].starts_with("6 nesoi://h1/orders x-tvnetcs://a:1/"),
        "{lines:?}"
    );
    assert_eq!(b.services().count(), 1, "b's own lease is separate");
    assert_eq!(a.services().next().unwrap().catalogue, uri("b:1"));
}
