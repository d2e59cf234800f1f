//! One catalogue as its clients see it: registrations, subscriptions,
//! lookups, limits, topology followers.

mod common;

use common::*;
use rarangi_core::{Catalogue, ClientId, Config, Durable, Notice, Output};
use rarangi_proto::{parse_line, Attrs, ErrorCode, Message, ServiceUri, Ts};

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
fn topology_followers_get_catalogues_links_reachability_and_marker() {
    let mut a = catalogue("a:1");
    let b = uri("b:1");
    a.client_connected(ClientId(1), false);
    a.client_message(T0, ClientId(1), Message::SubLink);
    let lines = to_client(&a.drain(), ClientId(1));
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("15 x-tvnetcs://a:1/ eu "));
    assert_eq!(
        lines[1], "19 x-tvnetcs://a:1/ x-tvnetcs://a:1/",
        "leader, then reachable"
    );
    assert_eq!(lines[2], "13");
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
    assert_eq!(
        lines.last().map(String::as_str),
        Some("19 x-tvnetcs://a:1/ x-tvnetcs://a:1/ x-tvnetcs://b:1/"),
        "reachability follows the link: {lines:?}"
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
    assert_eq!(
        lines.last().map(String::as_str),
        Some("19 x-tvnetcs://a:1/ x-tvnetcs://a:1/"),
        "{lines:?}"
    );
    // Nothing reachable changes: no REACHABLE line.
    a.client_message(T0 + 11, ClientId(1), Message::Heartbeat);
    assert_eq!(to_client(&a.drain(), ClientId(1)), ["1"]);
}

#[test]
fn the_leader_is_the_lowest_reachable_uri_and_followers_are_told() {
    let mut b = catalogue("b:1");
    let a = uri("a:1");
    b.client_connected(ClientId(1), false);
    b.client_message(T0, ClientId(1), Message::SubLink);
    b.drain();
    b.link_up(T0, &a);
    b.peer_message(
        T0,
        &a,
        msg(&format!("15 x-tvnetcs://a:1/ eu {}", Ts::from_parts(T0, 0).0)),
    );
    b.peer_message(T0, &a, msg("16 - - 2 77"));
    b.peer_message(T0, &a, msg("18 0"));
    b.peer_message(T0, &a, msg("18 1"));
    let outs = b.drain();
    assert!(
        outs.contains(&Output::Notice(Notice::Leader(a.clone()))),
        "{outs:?}"
    );
    assert_eq!(b.leader(), &a);
    assert_eq!(
        to_client(&outs, ClientId(1)).last().map(String::as_str),
        Some("19 x-tvnetcs://a:1/ x-tvnetcs://a:1/ x-tvnetcs://b:1/")
    );
    b.link_down(T0 + 10, &a);
    let outs = b.drain();
    assert!(
        outs.contains(&Output::Notice(Notice::Leader(uri("b:1")))),
        "{outs:?}"
    );
    assert_eq!(b.leader(), &uri("b:1"));
}

#[test]
fn unsubscribed_and_disconnected_clients_get_no_more_events() {
    let mut c = catalogue("a:1");
    let (svc, s1, s2) = (ClientId(1), ClientId(2), ClientId(3));
    for id in [svc, s1, s2] {
        c.client_connected(id, true);
    }
    c.client_message(T0, s1, msg("8 orders"));
    c.client_message(T0, s1, msg("8 ord"));
    c.client_message(T0, s2, msg("8 orders"));
    c.drain();
    c.client_message(T0, svc, msg("7 tcp://10.0.0.1:80/orders"));
    let outs = c.drain();
    assert_eq!(to_client(&outs, s1).len(), 1, "two matching regexes, one event");
    assert_eq!(to_client(&outs, s2).len(), 1);
    c.client_message(T0, s1, msg("12 orders"));
    c.client_disconnected(T0, s2);
    c.drain();
    c.client_message(T0, svc, msg("7 tcp://10.0.0.2:80/orders"));
    let outs = c.drain();
    assert_eq!(to_client(&outs, s1).len(), 1, "still subscribed with \"ord\"");
    c.client_message(T0, s1, msg("12 ord"));
    c.drain();
    c.client_message(T0, svc, msg("7 tcp://10.0.0.3:80/orders"));
    assert!(to_client(&c.drain(), s1).is_empty());
    // A new subscriber reuses the kept regex and gets the full snapshot.
    c.client_message(T0, s1, msg("8 orders"));
    assert_eq!(to_client(&c.drain(), s1).len(), 4);
}
