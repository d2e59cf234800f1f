//! Behaviour of one catalogue state machine as its clients and peers see it.

use rarangi_core::{Catalogue, ClientId, Config, Durable, Notice, Output};
use rarangi_proto::{parse_line, Attrs, CatalogueUri, ErrorCode, Message, ServiceUri, Ts};

const T0: u64 = 1_700_000_000_000;

fn uri(addr: &str) -> CatalogueUri {
    CatalogueUri::from_addr(addr).unwrap()
}

fn catalogue(addr: &str) -> Catalogue {
    Catalogue::new(
        Config::new(uri(addr), "eu", "production"),
        Durable::default(),
        Ts(0),
        T0,
    )
}

fn msg(line: &str) -> Message {
    parse_line(line.as_bytes()).unwrap()
}

fn to_client(outs: &[Output], id: ClientId) -> Vec<String> {
    outs.iter()
        .filter_map(Output::client_messages)
        .filter(|(client, _)| *client == id)
        .flat_map(|(_, msgs)| msgs.iter().map(Message::encode))
        .collect()
}

fn error_code(line: &str) -> ErrorCode {
    match msg(line) {
        Message::Error { code, .. } => code,
        other => panic!("expected an ERROR, got {other:?}"),
    }
}

#[test]
fn subscriber_gets_snapshot_marker_then_changes() {
    let mut c = catalogue("a:1");
    let (svc, sub) = (ClientId(1), ClientId(2));
    c.client_connected(svc, true);
    c.client_connected(sub, false);
    c.client_message(T0, svc, msg("7 tcp://10.0.0.1:80/orders weight=10"));
    c.client_message(T0, svc, msg("REG_SERV tcp://10.0.0.2:80/billing"));
    c.drain();
    c.client_message(T0, sub, msg("8 orders"));
    let lines = to_client(&c.drain(), sub);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("5 tcp://10.0.0.1:80/orders x-tvnetcs://a:1/ eu "));
    assert!(lines[0].ends_with(" weight=10"));
    assert_eq!(lines[1], "8 orders");

    c.client_message(T0 + 1, svc, msg("7 tcp://10.0.0.3:80/orders"));
    c.client_message(T0 + 2, svc, msg("7 tcp://10.0.0.4:80/search"));
    let lines = to_client(&c.drain(), sub);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("5 tcp://10.0.0.3:80/orders "));

    c.client_disconnected(T0 + 3, svc);
    let lines = to_client(&c.drain(), sub);
    assert_eq!(lines.len(), 2, "both orders instances go with the connection");
    assert!(lines.iter().all(|l| l.starts_with("6 ")));
    assert_eq!(c.services().count(), 0);

    c.client_message(T0 + 4, sub, msg("12 orders"));
    assert_eq!(to_client(&c.drain(), sub), ["12 orders"]);
}

#[test]
fn bad_requests_get_errors_and_nothing_changes() {
    let mut c = catalogue("a:1");
    let (local, remote) = (ClientId(1), ClientId(2));
    c.client_connected(local, true);
    c.client_connected(remote, false);
    c.client_message(T0, local, msg("7 tcp://10.0.0.1:80/orders"));
    c.drain();

    c.client_message(T0, remote, msg("7 tcp://10.0.0.9:80/orders"));
    let out = c.drain();
    assert_eq!(error_code(&to_client(&out, remote)[0]), ErrorCode::NotAllowed);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Notice(Notice::ClientRefused { .. }))));

    c.client_message(T0, local, msg("8 (unclosed"));
    assert_eq!(error_code(&to_client(&c.drain(), local)[0]), ErrorCode::BadRegex);

    let huge = format!("8 {}", "a".repeat(5000));
    c.client_message(T0, local, msg(&huge));
    assert_eq!(error_code(&to_client(&c.drain(), local)[0]), ErrorCode::Limit);

    // A regex that compiles to more than the size limit.
    c.client_message(T0, local, msg("8 (\\w{100}){100}"));
    assert_eq!(error_code(&to_client(&c.drain(), local)[0]), ErrorCode::Limit);

    c.client_message(T0, local, msg("5 tcp://h:1/x x-tvnetcs://b:1/ eu 5"));
    assert_eq!(
        error_code(&to_client(&c.drain(), local)[0]),
        ErrorCode::NotAllowed
    );

    c.client_message(T0, local, msg("11 tcp://10.0.0.7:80/none"));
    assert!(to_client(&c.drain(), local)[0].starts_with("2 not-found"));

    assert_eq!(c.services().count(), 1, "the good registration is untouched");
}

#[test]
fn per_connection_limits() {
    let mut cfg = Config::new(uri("a:1"), "eu", "production");
    cfg.limits.registrations_per_client = 2;
    cfg.limits.subscriptions_per_client = 1;
    let mut c = Catalogue::new(cfg, Durable::default(), Ts(0), T0);
    let id = ClientId(1);
    c.client_connected(id, true);
    for i in 0..3 {
        c.client_message(T0, id, msg(&format!("7 tcp://10.0.0.{i}:80/x")));
    }
    let lines = to_client(&c.drain(), id);
    assert_eq!(lines.len(), 1);
    assert_eq!(error_code(&lines[0]), ErrorCode::Limit);
    assert_eq!(c.services().count(), 2);
    c.client_message(T0, id, msg("8 a"));
    c.client_message(T0, id, msg("8 b"));
    let lines = to_client(&c.drain(), id);
    assert_eq!(error_code(lines.last().unwrap()), ErrorCode::Limit);
}

#[test]
fn heartbeat_is_answered() {
    let mut c = catalogue("a:1");
    c.client_connected(ClientId(1), false);
    c.client_message(T0, ClientId(1), Message::Heartbeat);
    assert_eq!(to_client(&c.drain(), ClientId(1)), ["1"]);
}

#[test]
fn lookup_orders_by_locality_and_lists_a_uri_once() {
    let mut a = catalogue("a:1");
    let mut b = Catalogue::new(
        Config::new(uri("b:1"), "eu", "production"),
        Durable::default(),
        Ts(0),
        T0,
    );
    let mut z = Catalogue::new(
        Config::new(uri("z:1"), "us", "production"),
        Durable::default(),
        Ts(0),
        T0,
    );
    let nodes = [(&mut a, uri("a:1")), (&mut b, uri("b:1")), (&mut z, uri("z:1"))];
    // Wire a-b and a-z by hand and run to quiescence.
    let links = [(0usize, 1usize), (0, 2)];
    for (i, j) in links {
        let (ui, uj) = (nodes[i].1.clone(), nodes[j].1.clone());
        nodes[i].0.link_up(T0, &uj);
        nodes[j].0.link_up(T0, &ui);
    }
    let reg = |c: &mut Catalogue, s: &str| {
        c.client_connected(ClientId(9), true);
        c.client_message(
            T0,
            ClientId(9),
            Message::RegServ {
                service: ServiceUri::parse(s).unwrap(),
                attrs: Attrs::default(),
            },
        );
    };
    reg(nodes[2].0, "tcp://10.0.0.3:80/orders");
    reg(nodes[1].0, "tcp://10.0.0.2:80/orders");
    reg(nodes[0].0, "tcp://10.0.0.1:80/orders");
    reg(nodes[2].0, "tcp://10.0.0.9:80/orders");
    reg(nodes[1].0, "tcp://10.0.0.9:80/orders");
    loop {
        let mut moved = false;
        for i in 0..3 {
            let from = nodes[i].1.clone();
            for out in nodes[i].0.drain() {
                if let Output::ToPeer { peer, msg } = out {
                    let j = nodes.iter().position(|n| n.1 == peer).unwrap();
                    let msg = parse_line(msg.encode().as_bytes()).unwrap();
                    nodes[j].0.peer_message(T0, &from, msg);
                    moved = true;
                }
            }
        }
        if !moved {
            break;
        }
    }
    let found = a.lookup(&regex::Regex::new("orders").unwrap());
    let order: Vec<(&str, &str)> = found
        .iter()
        .map(|v| (v.service.as_str(), v.catalogue.addr()))
        .collect();
    assert_eq!(
        order,
        [
            ("tcp://10.0.0.1:80/orders", "a:1"),
            ("tcp://10.0.0.2:80/orders", "b:1"),
            ("tcp://10.0.0.9:80/orders", "b:1"),
            ("tcp://10.0.0.3:80/orders", "z:1"),
        ]
    );
    assert_eq!(a.topology().reachable.len(), 3);
    assert_eq!(a.leader().addr(), "a:1");
}

#[test]
fn topology_followers_get_catalogues_links_and_marker() {
    let mut a = catalogue("a:1");
    let b = uri("b:1");
    a.client_connected(ClientId(1), false);
    a.client_message(T0, ClientId(1), Message::SubLink);
    let lines = to_client(&a.drain(), ClientId(1));
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("15 x-tvnetcs://a:1/ eu "));
    assert_eq!(lines[1], "13");
    a.link_up(T0, &b);
    a.peer_message(
        T0,
        &b,
        msg(&format!("15 x-tvnetcs://b:1/ eu {}", Ts::from_parts(T0, 0).0)),
    );
    a.peer_message(T0, &b, msg("16 - - 2 77"));
    a.peer_message(T0, &b, msg("18 0"));
    a.peer_message(T0, &b, msg("18 1"));
    let lines = to_client(&a.drain(), ClientId(1));
    assert!(
        lines.iter().any(|l| l.starts_with("15 x-tvnetcs://b:1/")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("3 x-tvnetcs://a:1/ x-tvnetcs://b:1/ ")),
        "{lines:?}"
    );
    assert!(a.is_linked(&b));
    a.link_down(T0 + 10, &b);
    let lines = to_client(&a.drain(), ClientId(1));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("4 x-tvnetcs://a:1/ x-tvnetcs://b:1/ ")),
        "{lines:?}"
    );
}

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

/// Delivers peer messages between catalogues (through the encoder and
/// parser) until nothing moves; returns the first catalogue's other outputs.
fn pump(nodes: &mut [&mut Catalogue]) -> Vec<Output> {
    let mut rest = Vec::new();
    loop {
        let mut moved = false;
        for i in 0..nodes.len() {
            let from = nodes[i].config().uri.clone();
            for out in nodes[i].drain() {
                if let Output::ToPeer { peer, msg } = out {
                    let j = nodes.iter().position(|n| n.config().uri == peer).unwrap();
                    let msg = parse_line(msg.encode().as_bytes()).unwrap();
                    nodes[j].peer_message(T0, &from, msg);
                    moved = true;
                } else if i == 0 {
                    rest.push(out);
                }
            }
        }
        if !moved {
            return rest;
        }
    }
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
    let first = pump(&mut [&mut a, &mut b]);
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
    assert_eq!(seen(pump(&mut [&mut a, &mut b])), ["5 weight=2"]);

    // b unreachable: withdrawn; reachable again: shown again.
    a.link_down(T0, &uri("b:1"));
    b.link_down(T0, &uri("a:1"));
    assert_eq!(seen(a.drain()).len(), 1, "one DEL_SERV");
    assert_eq!(a.services().count(), 0);
    a.link_up(T0, &uri("b:1"));
    b.link_up(T0, &uri("a:1"));
    assert_eq!(seen(pump(&mut [&mut a, &mut b])), ["5 weight=2"]);

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
    let lines = to_client(&pump(&mut [&mut b, &mut a]), sub);
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
    let lines = to_client(&pump(&mut [&mut b, &mut a]), sub);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("6 {wire} x-tvnetcs://a:1/ eu ")),
        "{lines:?}"
    );
    assert_eq!(b.services().count(), 0);
}
