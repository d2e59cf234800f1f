//! Webhook decisions: which hook fires for which change, only on the
//! leader, with retries and delivery markers.

mod common;

use common::{catalogue, mesh, pump, uri, webhooks, T0};
use rarangi_core::{Catalogue, ConfigKey, Delivery, HookKind, Output, What, Written, ABSENT_VERSION};
use rarangi_proto::{Attrs, ServiceUri};

const SPEC: &str = r#"{"name":"h1","endpoint":"http://127.0.0.1:9/hook"}"#;

fn marker(kind: HookKind, name: &str) -> ConfigKey {
    ConfigKey::HookState {
        kind,
        name: name.into(),
        hook: "h1".into(),
    }
}

/// The deliveries a catalogue emits now, reporting each as `ok`.
fn deliver(c: &mut Catalogue, now: u64, ok: bool) -> Vec<Delivery> {
    let ds = webhooks(&c.drain());
    for d in &ds {
        c.webhook_done(now, &d.marker, &d.version, ok);
    }
    ds
}

#[test]
fn app_hooks_report_created_updated_deleted_once_each() {
    let mut c = catalogue("a:1");
    assert_eq!(
        c.put_hook(T0, HookKind::App, "orders", "h1", SPEC),
        Ok(Written::Created)
    );
    assert_eq!(
        c.key("hookstate/app/orders/h1").and_then(|r| r.value).as_deref(),
        Some(ABSENT_VERSION),
        "the marker starts at the current version"
    );
    assert!(webhooks(&c.drain()).is_empty(), "nothing changed yet");

    let w = c.write_key(T0 + 1, "app/orders", "{\"config\":1}").unwrap();
    assert_eq!(w.written, Written::Created);
    let ds = deliver(&mut c, T0 + 1, true);
    assert_eq!(
        ds,
        [Delivery {
            marker: marker(HookKind::App, "orders"),
            version: w.ts.to_string(),
            endpoint: "http://127.0.0.1:9/hook".into(),
            name: "h1".into(),
            what: What::Created,
            path: "/app/orders".into(),
        }]
    );
    assert_eq!(
        c.key("hookstate/app/orders/h1").and_then(|r| r.value),
        Some(w.ts.to_string()),
        "delivered: the marker records it"
    );
    c.tick(T0 + 10_000);
    assert!(webhooks(&c.drain()).is_empty(), "nothing is sent twice");

    let w = c.write_key(T0 + 20_000, "app/orders", "{\"config\":2}").unwrap();
    assert_eq!(w.written, Written::Updated);
    assert_eq!(deliver(&mut c, T0 + 20_000, true)[0].what, What::Updated);
    assert!(c.del_key(T0 + 30_000, "app/orders").is_some());
    let ds = deliver(&mut c, T0 + 30_000, true);
    assert_eq!(
        (ds[0].what, ds[0].version.as_str()),
        (What::Deleted, ABSENT_VERSION)
    );
    c.tick(T0 + 40_000);
    assert!(webhooks(&c.drain()).is_empty());
}

#[test]
fn service_hooks_follow_instances_and_nothing_else() {
    let mut c = catalogue("a:1");
    c.put_hook(T0, HookKind::Srv, "orders", "h1", SPEC).unwrap();
    c.drain();
    let s = ServiceUri::parse("nesoi://h1/orders").unwrap();
    c.lease(T0, s.clone(), Attrs::default(), 60_000).unwrap();
    let ds = deliver(&mut c, T0, true);
    assert_eq!(ds.len(), 1);
    assert_eq!((ds[0].what, ds[0].path.as_str()), (What::Created, "/srv/orders"));

    // Other services and configuration do not touch it.
    c.lease(
        T0 + 1,
        ServiceUri::parse("nesoi://h1/billing").unwrap(),
        Attrs::default(),
        60_000,
    )
    .unwrap();
    c.write_key(T0 + 1, "app/orders", "{}").unwrap();
    assert!(deliver(&mut c, T0 + 1, true).is_empty());

    c.lease(
        T0 + 2,
        ServiceUri::parse("nesoi://h2/orders").unwrap(),
        Attrs::default(),
        60_000,
    )
    .unwrap();
    assert_eq!(deliver(&mut c, T0 + 2, true)[0].what, What::Updated);
    c.tick(T0 + 70_000);
    let ds = deliver(&mut c, T0 + 70_000, true);
    assert_eq!(ds.len(), 1, "{ds:?}");
    assert_eq!(ds[0].what, What::Deleted, "both leases lapsed");
}

#[test]
fn a_failed_delivery_is_retried_with_back_off() {
    let mut c = catalogue("a:1");
    c.put_hook(T0, HookKind::App, "orders", "h1", SPEC).unwrap();
    c.write_key(T0, "app/orders", "{}").unwrap();
    let first = deliver(&mut c, T0, false);
    assert_eq!(first.len(), 1);
    c.tick(T0 + 499);
    assert!(webhooks(&c.drain()).is_empty(), "waits 500 ms");
    c.tick(T0 + 500);
    let again = deliver(&mut c, T0 + 500, false);
    assert_eq!(again, first, "the same notification");
    c.tick(T0 + 500 + 999);
    assert!(webhooks(&c.drain()).is_empty(), "then 1 s");
    c.tick(T0 + 1500);
    assert_eq!(deliver(&mut c, T0 + 1500, true), first);
    c.tick(T0 + 100_000);
    assert!(webhooks(&c.drain()).is_empty());
}

#[test]
fn a_delivery_in_flight_is_not_started_twice() {
    let mut c = catalogue("a:1");
    c.put_hook(T0, HookKind::App, "orders", "h1", SPEC).unwrap();
    c.write_key(T0, "app/orders", "{}").unwrap();
    assert_eq!(webhooks(&c.drain()).len(), 1);
    c.write_key(T0 + 1, "app/orders", "{\"x\":1}").unwrap();
    c.tick(T0 + 2);
    assert!(webhooks(&c.drain()).is_empty(), "waits for the report");
}

#[test]
fn hooks_fire_only_on_the_leader_and_a_new_leader_delivers_what_is_pending() {
    let (mut a, mut b) = (catalogue("a:1"), catalogue("b:1"));
    mesh(T0, &mut [&mut a, &mut b]);
    assert_eq!(b.leader(), &uri("a:1"));
    b.put_hook(T0, HookKind::App, "orders", "h1", SPEC).unwrap();
    b.write_key(T0, "app/orders", "{}").unwrap();
    let outs = pump(T0, &mut [&mut a, &mut b]);
    assert!(webhooks(&outs[1]).is_empty(), "b does not lead");
    let ds = webhooks(&outs[0]);
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0].what, What::Created);

    // The leader dies before reporting: the marker never moved.
    b.link_down(T0 + 1, &uri("a:1"));
    let ds2 = webhooks(&b.drain());
    assert_eq!(ds2, ds, "the new leader delivers the pending change");
    b.webhook_done(T0 + 2, &ds2[0].marker, &ds2[0].version, true);
    b.tick(T0 + 10_000);
    assert!(webhooks(&b.drain()).is_empty());
}

#[test]
fn a_marker_written_by_one_leader_stops_the_next() {
    let (mut a, mut b) = (catalogue("a:1"), catalogue("b:1"));
    mesh(T0, &mut [&mut a, &mut b]);
    a.put_hook(T0, HookKind::App, "orders", "h1", SPEC).unwrap();
    a.write_key(T0, "app/orders", "{}").unwrap();
    let outs = pump(T0, &mut [&mut a, &mut b]);
    let d = webhooks(&outs[0]).remove(0);
    a.webhook_done(T0 + 1, &d.marker, &d.version, true);
    pump(T0 + 1, &mut [&mut a, &mut b]);
    b.link_down(T0 + 2, &uri("a:1"));
    b.tick(T0 + 3);
    assert!(webhooks(&b.drain()).is_empty(), "the marker replicated");
}

#[test]
fn hooks_are_put_and_deleted_with_their_markers() {
    let mut c = catalogue("a:1");
    c.write_key(T0, "app/orders", "{}").unwrap();
    assert_eq!(
        c.put_hook(T0, HookKind::App, "orders", "h1", SPEC),
        Ok(Written::Created)
    );
    assert_eq!(
        c.put_hook(T0, HookKind::App, "orders", "h1", SPEC),
        Ok(Written::Updated)
    );
    let version = c.resource_version(HookKind::App, "orders");
    assert_ne!(version, ABSENT_VERSION);
    assert_eq!(
        c.key("hookstate/app/orders/h1").and_then(|r| r.value),
        Some(version),
        "changes before the hook existed are not reported"
    );
    assert!(webhooks(&c.drain()).is_empty());
    assert!(c.put_hook(T0, HookKind::App, "bad name", "h1", SPEC).is_err());
    assert!(
        c.key("hookstate/app/bad name/h1").is_none(),
        "nothing half-written"
    );

    assert!(c.del_hook(T0, HookKind::App, "orders", "h1"));
    assert!(c.key("hook/app/orders/h1").is_none());
    assert!(c.key("hookstate/app/orders/h1").is_none());
    assert!(!c.del_hook(T0, HookKind::App, "orders", "h1"));
    c.write_key(T0 + 1, "app/orders", "{\"x\":1}").unwrap();
    assert!(!c.drain().iter().any(|o| matches!(o, Output::Webhook(_))));
}

#[test]
fn a_report_for_a_deleted_hook_leaves_no_marker() {
    let mut c = catalogue("a:1");
    c.put_hook(T0, HookKind::App, "orders", "h1", SPEC).unwrap();
    c.write_key(T0, "app/orders", "{}").unwrap();
    let d = webhooks(&c.drain()).remove(0);
    c.del_hook(T0 + 1, HookKind::App, "orders", "h1");
    c.webhook_done(T0 + 2, &d.marker, &d.version, true);
    assert!(c.key("hookstate/app/orders/h1").is_none());
}
