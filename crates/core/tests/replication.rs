//! One catalogue as its peers see it: clock skew, owner authority,
//! configuration, tie-breaks, replication between a few catalogues.

mod common;

use common::*;
use rarangi_core::{Catalogue, ClientId, Config, Durable, Notice, Output};
use rarangi_proto::{parse_line, CatalogueUri, ErrorCode, Message, Ts};

#[test]
fn clock_skew_is_refused() {
    let mut a = catalogue("a:1");
    let b = uri("b:1");
    a.link_up(T0, &b);
    let far = Ts::from_parts(T0 + 120_000, 0);
    a.peer_message(T0, &b, msg(&format!("9 app/x x-tvnetcs://b:1/ {} 1", far.0)));
    let out = a.drain();
    assert!(out.iter().any(|o| matches!(
        o,
        Output::ToPeer {
            msg: Message::Error {
                code: ErrorCode::ClockSkew,
                ..
            },
            ..
        }
    )));
    assert!(a.keys().is_empty());
}

#[test]
fn owner_refutes_stale_copies_of_its_services() {
    // A restarted catalogue receives its previous incarnation's service back.
    let mut a = Catalogue::new(
        Config::new(uri("a:1"), "eu", "production"),
        Durable::default(),
        Ts::from_parts(T0, 5),
        T0,
    );
    let b = uri("b:1");
    a.link_up(T0, &b);
    a.peer_message(
        T0,
        &b,
        msg(&format!("15 x-tvnetcs://b:1/ eu {}", Ts::from_parts(T0, 0).0)),
    );
    a.drain();
    // Same incarnation, but we hold no such service: refute with a newer DEL.
    let ts = Ts(a.incarnation().0 + 1);
    a.peer_message(
        T0,
        &b,
        msg(&format!("5 tcp://h:1/x x-tvnetcs://a:1/ eu {}", ts.0)),
    );
    let out = a.drain();
    let refuted = out
        .iter()
        .any(|o| matches!(o, Output::ToPeer { msg: Message::DelServ { ts: t, .. }, .. } if *t > ts));
    assert!(refuted, "{out:?}");
    assert_eq!(a.services().count(), 0);
}

#[test]
fn configuration_is_persisted_and_restored() {
    let mut a = catalogue("a:1");
    let ts = a.set_key(T0, "app/orders", "{\"config\":{}}").unwrap();
    let mut durable = Durable::default();
    for o in a.drain() {
        if let Output::Persist(op) = o {
            durable.apply(&op);
        }
    }
    assert!(matches!(durable.keys.as_slice(), [r] if r.ts == ts));
    assert!(a.set_key(T0, "bad key", "x").is_err());
    let b = Catalogue::new(
        Config::new(uri("a:1"), "eu", "production"),
        durable.clone(),
        a.clock(),
        T0,
    );
    assert_eq!(
        b.key("app/orders").unwrap().value.as_deref(),
        Some("{\"config\":{}}")
    );
    assert!(b.clock() > ts);

    // Deletes are tombstones, collected after the horizon but remembered.
    let mut b = b;
    b.del_key(T0 + 1, "app/orders").unwrap();
    b.tick(T0 + 2 * 3_600_000);
    for o in b.drain() {
        if let Output::Persist(op) = o {
            durable.apply(&op);
        }
    }
    assert!(durable.keys.is_empty());
    assert!(matches!(&durable.collected[..], [(k, _)] if k == "app/orders"));
}

#[test]
fn keys_with_a_prefix_are_listed_without_the_rest() {
    let mut a = catalogue("a:1");
    for k in [
        "app/x",
        "hook/srv/orders/h1",
        "hook/app/x/h2",
        "hookstate/srv/orders/h1",
        "hook/srv/gone/h3",
    ] {
        a.set_key(T0, k, "{}").unwrap();
    }
    a.del_key(T0, "hook/srv/gone/h3").unwrap();
    let keys: Vec<String> = a.keys_with_prefix("hook/").into_iter().map(|r| r.key).collect();
    assert_eq!(keys, ["hook/app/x/h2", "hook/srv/orders/h1"]);
    assert_eq!(a.keys_with_prefix("app/").len(), 1);
    assert!(a.keys_with_prefix("nothing/").is_empty());
}

/// Two writes of one key with the same timestamp from two origins, each
/// held on one side: reconciliation on link-up must settle on the same
/// winner (higher origin URI), not take them for equal.
#[test]
fn equal_timestamps_from_two_origins_reconcile() {
    let (ua, ub) = (uri("a:1"), uri("b:1"));
    let mut a = catalogue("a:1");
    let mut b = catalogue("b:1");
    let ts = Ts::from_parts(T0, 7);
    // Each learnt one version from a third catalogue, now gone.
    // Both also hold the same 40 other keys, so reconciliation splits the
    // key space and compares the range holding app/k on its own.
    for (c, origin, value) in [(&mut a, "x:1", "1"), (&mut b, "y:1", "2")] {
        let third = uri(origin);
        c.link_up(T0, &third);
        c.peer_message(
            T0,
            &third,
            msg(&format!(
                "15 x-tvnetcs://{origin}/ eu {}",
                Ts::from_parts(T0, 0).0
            )),
        );
        for i in 0..40 {
            c.peer_message(
                T0,
                &third,
                msg(&format!("9 app/common{i:02} x-tvnetcs://z:1/ {} same", ts.0)),
            );
        }
        c.peer_message(
            T0,
            &third,
            msg(&format!("9 app/k x-tvnetcs://{origin}/ {} {value}", ts.0)),
        );
        c.link_down(T0, &third);
        c.drain();
    }
    a.link_up(T0, &ub);
    b.link_up(T0, &ua);
    let relay = |from: &mut Catalogue, to: &mut Catalogue, from_uri: &CatalogueUri| {
        for o in from.drain() {
            if let Output::ToPeer { msg, .. } = o {
                to.peer_message(T0, from_uri, parse_line(msg.encode().as_bytes()).unwrap());
            }
        }
    };
    for _ in 0..20 {
        relay(&mut a, &mut b, &ua);
        relay(&mut b, &mut a, &ub);
    }
    let (ka, kb) = (a.key("app/k").unwrap(), b.key("app/k").unwrap());
    assert_eq!(ka, kb);
    assert_eq!(ka.origin, uri("y:1"), "ties go to the higher origin URI");
}

#[test]
fn subscribers_follow_a_remote_service_through_updates_partitions_and_restarts() {
    let (mut a, mut b) = (catalogue("a:1"), catalogue("b:1"));
    a.link_up(T0, &uri("b:1"));
    b.link_up(T0, &uri("a:1"));
    let (svc, sub) = (ClientId(1), ClientId(2));
    a.client_connected(sub, false);
    a.client_message(T0, sub, msg("8 orders"));
    b.client_connected(svc, true);
    b.client_message(T0, svc, msg("7 tcp://10.0.0.2:80/orders weight=1"));
    let first = pump(T0, &mut [&mut a, &mut b]).swap_remove(0);
    let seen = |outs: Vec<Output>| {
        to_client(&outs, sub)
            .into_iter()
            .filter(|l| !l.starts_with("8 "))
            .map(|l| l.split(' ').next().unwrap().to_owned() + &l[l.rfind(' ').unwrap()..])
            .collect::<Vec<_>>()
    };
    assert_eq!(seen(first), ["5 weight=1"]);
    assert_eq!(a.services().count(), 1);

    // New attributes: shown again as an ADD.
    b.client_message(T0, svc, msg("7 tcp://10.0.0.2:80/orders weight=2"));
    assert_eq!(
        seen(pump(T0, &mut [&mut a, &mut b]).swap_remove(0)),
        ["5 weight=2"]
    );

    // b unreachable: withdrawn; reachable again: shown again.
    a.link_down(T0, &uri("b:1"));
    b.link_down(T0, &uri("a:1"));
    assert_eq!(seen(a.drain()).len(), 1, "one DEL_SERV");
    assert_eq!(a.services().count(), 0);
    a.link_up(T0, &uri("b:1"));
    b.link_up(T0, &uri("a:1"));
    assert_eq!(
        seen(pump(T0, &mut [&mut a, &mut b]).swap_remove(0)),
        ["5 weight=2"]
    );

    // b's record announces a new incarnation: its old services died with
    // the old one, and the subscriber is told.
    let later = b.incarnation().0 + (1 << 20);
    a.peer_message(T0, &uri("b:1"), msg(&format!("15 x-tvnetcs://b:1/ eu {later}")));
    let lines = to_client(&a.drain(), sub);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("6 tcp://10.0.0.2:80/orders x-tvnetcs://b:1/ eu "),
        "{lines:?}"
    );
    assert_eq!(a.services().count(), 0);
}

#[test]
fn repeated_lookups_see_every_change_between_them() {
    let mut c = catalogue("a:1");
    let svc = ClientId(1);
    c.client_connected(svc, true);
    let lookup = |c: &mut Catalogue, id: u64| {
        let client = ClientId(id);
        c.client_connected(client, false);
        c.client_message(T0, client, msg("8 orders"));
        let lines = to_client(&c.drain(), client);
        c.client_disconnected(T0, client);
        c.drain();
        lines.len() - 1
    };
    assert_eq!(lookup(&mut c, 10), 0);
    c.client_message(T0, svc, msg("7 tcp://10.0.0.1:80/orders"));
    assert_eq!(lookup(&mut c, 11), 1);
    assert_eq!(lookup(&mut c, 12), 1, "the same answer again");
    c.client_message(T0, svc, msg("7 tcp://10.0.0.2:80/orders"));
    assert_eq!(lookup(&mut c, 13), 2);
    c.client_message(T0, svc, msg("UNREG_SERV tcp://10.0.0.1:80/orders"));
    assert_eq!(lookup(&mut c, 14), 1);
    c.client_disconnected(T0, svc);
    assert_eq!(lookup(&mut c, 15), 0);
}

#[test]
fn service_uris_with_percent_escapes_survive_replication_exactly() {
    // The URI `http://h:80/a%2Fb?q=50%` travels as `http://h:80/a%252Fb?q=50%25`
    // and is stored once, percent-encoded, in its item key.
    let text = "http://h:80/a%2Fb?q=50%";
    let wire = text.replace('%', "%25");
    let (mut a, mut b) = (catalogue("a:1"), catalogue("b:1"));
    a.link_up(T0, &uri("b:1"));
    b.link_up(T0, &uri("a:1"));
    let (svc, sub) = (ClientId(1), ClientId(2));
    b.client_connected(sub, false);
    b.client_message(T0, sub, msg("8 %252F"));
    a.client_connected(svc, true);
    a.client_message(T0, svc, msg(&format!("7 {wire} k=v")));
    let lines = to_client(&pump(T0, &mut [&mut b, &mut a]).swap_remove(0), sub);
    assert!(
        lines[1].starts_with(&format!("5 {wire} x-tvnetcs://a:1/ eu ")),
        "{lines:?}"
    );
    let regex = regex::Regex::new("a%2Fb").unwrap();
    for c in [&a, &b] {
        let found = c.lookup(&regex);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].service.as_str(), text);
        assert_eq!(found[0].service.name(), "a%2Fb");
        assert_eq!(found[0].attrs.get("k"), Some("v"));
    }
    a.client_message(T0, svc, msg(&format!("UNREG_SERV {wire}")));
    let lines = to_client(&pump(T0, &mut [&mut b, &mut a]).swap_remove(0), sub);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("6 {wire} x-tvnetcs://a:1/ eu ")),
        "{lines:?}"
    );
    assert_eq!(b.services().count(), 0);
}

/// The catalogues a node's outputs said were regained and lost.
fn reachability(outs: &[Output]) -> (Vec<String>, Vec<String>) {
    let (mut regained, mut lost) = (Vec::new(), Vec::new());
    for n in notices(outs) {
        if let Notice::Reachability { lost: l, regained: r } = n {
            regained.extend(r.iter().map(ToString::to_string));
            lost.extend(l.iter().map(ToString::to_string));
        }
    }
    (regained, lost)
}

#[test]
fn only_a_catalogue_that_was_lost_is_regained() {
    let (mut a, mut b) = (catalogue("a:1"), catalogue("b:1"));
    let first = mesh(T0, &mut [&mut a, &mut b]);
    assert_eq!(reachability(&first[0]).0, Vec::<String>::new(), "the first link");
    a.link_down(T0, &uri("b:1"));
    b.link_down(T0, &uri("a:1"));
    let down = pump(T0, &mut [&mut a, &mut b]);
    assert_eq!(reachability(&down[0]).1, [uri("b:1").to_string()]);
    let again = mesh(T0, &mut [&mut a, &mut b]);
    assert_eq!(reachability(&again[0]).0, [uri("b:1").to_string()]);
}
