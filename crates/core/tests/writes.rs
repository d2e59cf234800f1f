//! Local configuration writes in two phases: a prepared write changes
//! nothing (not served, not replicated, no `Persist` output) until it is
//! committed after the store has made its records durable; a failed
//! commit is simply dropped. A replicated version the store could not take
//! is put back to what the store holds.

mod common;

use common::*;
use rarangi_core::{Catalogue, ConfigKey, Durable, HookKind, Output, PersistOp, Written};
use rarangi_proto::Message;

const SPEC: &str = r#"{"endpoint":"http://127.0.0.1:9/h","name":"h1"}"#;

/// Two linked catalogues, reconciled.
fn pair() -> (Catalogue, Catalogue) {
    let mut a = catalogue("a:1");
    let mut b = catalogue("b:1");
    mesh(T0, &mut [&mut a, &mut b]);
    (a, b)
}

fn persists(outs: &[Output]) -> usize {
    outs.iter().filter(|o| matches!(o, Output::Persist(_))).count()
}

fn key_lines(outs: &[Output]) -> Vec<&Message> {
    outs.iter()
        .filter_map(|o| match o {
            Output::ToPeer { msg, .. } if matches!(msg, Message::SetKey { .. } | Message::DelKey { .. }) => {
                Some(msg)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_prepared_write_changes_nothing_until_committed() {
    let (mut a, mut b) = pair();
    let prepared = a.prepare_key_write(T0 + 1, "app/x", "{\"v\":1}").unwrap();
    assert_eq!(prepared.written(), Written::Created);
    assert_eq!(prepared.records().len(), 1);
    assert_eq!(prepared.records()[0].value.as_deref(), Some("{\"v\":1}"));
    let outs = a.drain();
    assert!(a.key("app/x").is_none(), "not served before it is durable");
    assert!(key_lines(&outs).is_empty(), "not replicated: {outs:?}");
    assert_eq!(persists(&outs), 0);

    let ts = prepared.ts().unwrap();
    a.commit_write(prepared);
    assert_eq!(a.key("app/x").unwrap().ts, ts);
    let outs = a.drain();
    assert_eq!(persists(&outs), 0, "the driver persisted it already");
    assert_eq!(key_lines(&outs).len(), 1, "flooded once committed");
    // Deliver it: the peer holds the same version.
    for o in outs {
        if let Output::ToPeer { msg, .. } = o {
            b.peer_message(T0 + 1, &uri("a:1"), msg);
        }
    }
    assert_eq!(b.key("app/x").unwrap().ts, ts);
}

#[test]
fn a_dropped_write_leaves_the_old_value_and_later_writes_win() {
    let (mut a, mut b) = pair();
    a.write_key(T0, "app/x", "{\"v\":1}").unwrap();
    pump(T0, &mut [&mut a, &mut b]);
    // The store failed: the prepared write is dropped.
    let failed = a.prepare_key_write(T0 + 1, "app/x", "{\"v\":2}").unwrap();
    assert_eq!(failed.written(), Written::Updated);
    drop(failed);
    pump(T0 + 1, &mut [&mut a, &mut b]);
    assert_eq!(a.key("app/x").unwrap().value.as_deref(), Some("{\"v\":1}"));
    assert_eq!(b.key("app/x").unwrap().value.as_deref(), Some("{\"v\":1}"));
    // Once the store works, the next write goes through everywhere.
    let next = a.prepare_key_write(T0 + 2, "app/x", "{\"v\":3}").unwrap();
    a.commit_write(next);
    pump(T0 + 2, &mut [&mut a, &mut b]);
    assert_eq!(b.key("app/x").unwrap().value.as_deref(), Some("{\"v\":3}"));
}

#[test]
fn deletes_and_hooks_are_prepared_too() {
    let mut a = catalogue("a:1");
    assert!(!a.prepare_key_delete(T0, "app/none").existed());
    assert!(a.prepare_key_delete(T0, "app/none").records().is_empty());
    a.write_key(T0, "app/x", "{}").unwrap();
    a.drain();

    let del = a.prepare_key_delete(T0 + 1, "app/x");
    assert!(del.existed());
    assert!(a.key("app/x").is_some(), "still there until committed");
    a.commit_write(del);
    assert!(a.key("app/x").is_none());

    let hook = a
        .prepare_put_hook(T0 + 2, HookKind::App, "x", "h1", SPEC)
        .unwrap();
    let keys: Vec<&str> = hook.records().iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["hookstate/app/x/h1", "hook/app/x/h1"], "marker first");
    assert!(a.keys_with_prefix("hook").is_empty());
    a.commit_write(hook);
    assert_eq!(a.keys_with_prefix("hook").len(), 2);

    let del = a.prepare_del_hook(T0 + 3, HookKind::App, "x", "h1");
    assert!(del.existed());
    assert_eq!(del.records().len(), 2);
    assert_eq!(a.keys_with_prefix("hook").len(), 2);
    a.commit_write(del);
    assert!(a.keys_with_prefix("hook").is_empty());
    assert!(a
        .prepare_put_hook(T0, HookKind::App, "bad name", "h1", SPEC)
        .is_err());
}

#[test]
fn a_webhook_marker_is_written_only_when_committed() {
    let mut a = catalogue("a:1");
    a.put_hook(T0, HookKind::App, "x", "h1", SPEC).unwrap();
    a.write_key(T0, "app/x", "{}").unwrap();
    let d = a
        .drain()
        .into_iter()
        .find_map(|o| match o {
            Output::Webhook(d) => Some(d),
            _ => None,
        })
        .expect("a delivery");
    let marker = ConfigKey::HookState {
        kind: HookKind::App,
        name: "x".into(),
        hook: "h1".into(),
    };
    let before = a.key(&marker.to_key()).unwrap().value;
    let prepared = a
        .prepare_webhook_done(T0 + 1, &d.marker, &d.version, true)
        .unwrap();
    assert_eq!(a.key(&marker.to_key()).unwrap().value, before);
    // The marker could not be stored: reported as a failure, retried.
    drop(prepared);
    assert!(a
        .prepare_webhook_done(T0 + 1, &d.marker, &d.version, false)
        .is_none());
    a.tick(T0 + 2_000);
    let again = a.drain().into_iter().any(|o| matches!(o, Output::Webhook(_)));
    assert!(again, "delivered again after the retry wait");
}

#[test]
fn the_one_call_forms_still_emit_persist_outputs() {
    let mut a = catalogue("a:1");
    a.write_key(T0, "app/x", "{}").unwrap();
    assert_eq!(persists(&a.drain()), 1);
    a.put_hook(T0, HookKind::App, "x", "h1", SPEC).unwrap();
    assert_eq!(persists(&a.drain()), 2);
    assert!(a.del_hook(T0, HookKind::App, "x", "h1"));
    assert_eq!(persists(&a.drain()), 2);
    a.del_key(T0, "app/x").unwrap();
    assert_eq!(persists(&a.drain()), 1);
}

#[test]
fn a_replicated_version_the_store_refused_is_put_back() {
    let (mut a, mut b) = pair();
    b.write_key(T0, "app/x", "{\"v\":1}").unwrap();
    pump(T0, &mut [&mut a, &mut b]);
    // What a's store holds: version 1.
    let mut disk = Durable::default();
    let v1 = a.key("app/x").unwrap();
    disk.apply(&PersistOp::Key(v1.clone()));
    // b writes version 2 and a (whose store then fails) applies it...
    b.write_key(T0 + 1, "app/x", "{\"v\":2}").unwrap();
    b.write_key(T0 + 1, "app/new", "{}").unwrap();
    pump(T0 + 1, &mut [&mut a, &mut b]);
    assert_eq!(a.key("app/x").unwrap().value.as_deref(), Some("{\"v\":2}"));
    // ...and puts back what its store holds.
    a.restore_keys(&["app/x".to_owned(), "app/new".to_owned()], &disk);
    assert_eq!(a.key("app/x"), Some(v1));
    assert!(a.key("app/new").is_none());
    assert_eq!(persists(&a.drain()), 0);
    // A new link reconciles them back.
    a.link_down(T0 + 2, &uri("b:1"));
    b.link_down(T0 + 2, &uri("a:1"));
    mesh(T0 + 3, &mut [&mut a, &mut b]);
    assert_eq!(a.key("app/x").unwrap().value.as_deref(), Some("{\"v\":2}"));
    assert!(a.key("app/new").is_some());
}
