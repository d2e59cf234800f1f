//! Bounded by design: items too large to replicate are refused where they
//! enter, services are capped per owning catalogue, services of catalogues
//! with no record are refused, compiled regexes stay within budgets.

mod common;

use common::*;
use rarangi_core::{Catalogue, ClientId, Config, Durable, KeyError, LeaseError, LimitError, Notice, Output};
use rarangi_proto::limits::{DOCUMENT_GUARANTEED, MAX_ATTRS, MAX_ITEM_LINE, MAX_SERVICE_LINE};
use rarangi_proto::{Attrs, ErrorCode, Message, ServiceUri, TooLarge, Ts};

fn catalogue_with(addr: &str, limits: impl FnOnce(&mut rarangi_core::Limits)) -> Catalogue {
    let mut cfg = Config::new(uri(addr), "eu", "production");
    limits(&mut cfg.limits);
    Catalogue::new(cfg, Durable::default(), Ts(0), T0)
}

fn refused(outs: &[Output]) -> Vec<String> {
    notices(outs)
        .into_iter()
        .filter_map(|n| match n {
            Notice::ItemRefused { detail, .. } => Some(detail),
            _ => None,
        })
        .collect()
}

fn svc(s: &str) -> ServiceUri {
    ServiceUri::parse(s).unwrap()
}

/// Control bytes, each percent-encoded as three bytes on the wire.
fn control(n: usize) -> String {
    "\u{1}".repeat(n)
}

#[test]
fn a_registration_whose_add_serv_would_not_fit_gets_limit() {
    let mut c = catalogue("a:1");
    let id = ClientId(1);
    c.client_connected(id, true);
    // 22 KB of control bytes: a 66 KB line once encoded.
    let attrs: Attrs = [("x", control(22_000))].into_iter().collect();
    let service = svc("tcp://h:1/orders");
    c.client_message(
        T0,
        id,
        Message::RegServ {
            service: service.clone(),
            attrs,
        },
    );
    let lines = to_client(&c.drain(), id);
    assert_eq!(error_code(&lines[0]), ErrorCode::Limit, "{}", &lines[0][..200]);
    assert!(
        lines[0].contains(&format!("limit of {MAX_SERVICE_LINE} bytes")),
        "names the limit"
    );
    let many: Attrs = (0..=MAX_ATTRS).map(|i| (format!("k{i}"), "v")).collect();
    c.client_message(T0, id, Message::RegServ { service, attrs: many });
    assert_eq!(error_code(&to_client(&c.drain(), id)[0]), ErrorCode::Limit);
    assert_eq!(c.services().count(), 0, "nothing registered");
}

#[test]
fn a_lease_too_large_is_refused() {
    let mut c = catalogue("a:1");
    let attrs: Attrs = [("x", "y".repeat(MAX_SERVICE_LINE))].into_iter().collect();
    let e = c.lease(T0, svc("tcp://h:1/orders"), attrs, 1000).unwrap_err();
    assert!(
        matches!(e, LeaseError::Limit(LimitError::TooLarge(TooLarge::Line { .. }))),
        "{e:?}"
    );
    assert_eq!(c.services().count(), 0);
    assert!(c.drain().iter().all(|o| !matches!(o, Output::ToPeer { .. })));
}

#[test]
fn documents_up_to_the_guarantee_are_accepted_and_larger_encoded_ones_refused() {
    let mut c = catalogue("a:1");
    c.write_key(T0, "app/worst", &control(DOCUMENT_GUARANTEED))
        .unwrap();
    let e = c
        .write_key(T0, "app/big", &" ".repeat(MAX_ITEM_LINE / 3 + 1))
        .unwrap_err();
    match e {
        KeyError::TooLarge(TooLarge::Line { size, limit, .. }) => {
            assert!(size > MAX_ITEM_LINE && limit == MAX_ITEM_LINE)
        }
        other => panic!("{other:?}"),
    }
    assert!(c.key("app/big").is_none());
    let spec = format!("{{\"endpoint\":\"{}\"}}", "%".repeat(MAX_ITEM_LINE / 3));
    assert!(matches!(
        c.put_hook(T0, rarangi_core::HookKind::App, "worst", "h", &spec),
        Err(KeyError::TooLarge(_))
    ));
    assert_eq!(c.keys().len(), 1, "neither the hook nor its marker was written");
}

#[test]
fn oversized_items_from_a_peer_are_refused_and_the_link_stays_up() {
    let (mut a, mut b) = (catalogue("a:1"), catalogue("b:1"));
    mesh(T0, &mut [&mut a, &mut b]);
    let big = Message::SetKey {
        key: "app/big".into(),
        origin: uri("b:1"),
        ts: Ts::from_parts(T0, 9),
        value: "%".repeat(MAX_ITEM_LINE / 3 + 1),
    };
    a.peer_message(T0, &uri("b:1"), big);
    let out = a.drain();
    assert_eq!(refused(&out).len(), 1, "{:?}", notices(&out));
    assert!(a.key("app/big").is_none());
    assert!(a.is_linked(&uri("b:1")));
    // Later items still replicate.
    b.write_key(T0 + 1, "app/small", "{}").unwrap();
    pump(T0 + 1, &mut [&mut a, &mut b]);
    assert!(a.key("app/small").is_some());
}

#[test]
fn services_of_a_catalogue_without_a_record_are_refused() {
    let (mut a, mut b) = (catalogue("a:1"), catalogue("b:1"));
    mesh(T0, &mut [&mut a, &mut b]);
    let ghost = |i: u32| {
        msg(&format!(
            "5 tcp://h:{}/orders x-tvnetcs://ghost:1/ eu {}",
            i + 1,
            Ts::from_parts(T0, 1).0
        ))
    };
    a.peer_message(T0, &uri("b:1"), ghost(0));
    let out = a.drain();
    assert_eq!(refused(&out).len(), 1);
    assert!(
        out.iter().all(|o| !matches!(o, Output::ToPeer { .. })),
        "not flooded"
    );
    assert_eq!(a.topology().catalogues.len(), 2);
    // Once the owner's record is known, its services are accepted.
    let record = msg(&format!("15 x-tvnetcs://ghost:1/ eu {}", Ts::from_parts(T0, 0).0));
    a.peer_message(T0, &uri("b:1"), record);
    a.peer_message(T0, &uri("b:1"), ghost(1));
    assert!(refused(&a.drain()).is_empty());
}

#[test]
fn services_relayed_by_a_third_catalogue_follow_their_owners_record() {
    let (mut x, mut a, mut c) = (catalogue("x:1"), catalogue("a:1"), catalogue("c:1"));
    mesh(T0, &mut [&mut x, &mut a]);
    x.lease(T0, svc("tcp://h:1/orders"), Attrs::default(), 60_000)
        .unwrap();
    pump(T0, &mut [&mut x, &mut a]);
    // c links to a only; x's record and service both come from a.
    a.link_up(T0 + 1, &uri("c:1"));
    c.link_up(T0 + 1, &uri("a:1"));
    let rest = pump(T0 + 1, &mut [&mut a, &mut c]);
    assert!(rest.iter().all(|o| refused(o).is_empty()), "{rest:?}");
    assert_eq!(c.services().count(), 1);
    // And a new one flooded while linked.
    x.lease(T0 + 2, svc("tcp://h:2/orders"), Attrs::default(), 60_000)
        .unwrap();
    pump(T0 + 2, &mut [&mut x, &mut a, &mut c]);
    assert_eq!(c.services().count(), 2);
}

#[test]
fn services_are_capped_per_owning_catalogue() {
    let mut a = catalogue_with("a:1", |l| l.services_per_catalogue = 2);
    let mut b = catalogue("b:1");
    mesh(T0, &mut [&mut a, &mut b]);
    for i in 0..3 {
        b.lease(
            T0,
            svc(&format!("tcp://h:{}/orders", i + 1)),
            Attrs::default(),
            60_000,
        )
        .unwrap();
    }
    let rest = pump(T0, &mut [&mut a, &mut b]);
    assert_eq!(refused(&rest[0]).len(), 1, "{:?}", rest[0]);
    assert_eq!(a.services().count(), 2);
    assert!(a.is_linked(&uri("b:1")));
    // Own registrations: the third is refused with `2 limit`.
    let id = ClientId(1);
    a.client_connected(id, true);
    for i in 0..2 {
        a.client_message(T0, id, msg(&format!("7 tcp://a:{}/x", i + 1)));
    }
    a.drain();
    a.client_message(T0, id, msg("7 tcp://a:9/x"));
    let lines = to_client(&a.drain(), id);
    assert_eq!(error_code(&lines[0]), ErrorCode::Limit, "{lines:?}");
    assert!(matches!(
        a.lease(T0, svc("tcp://a:8/x"), Attrs::default(), 1000),
        Err(LeaseError::Limit(LimitError::Full { held: 2, limit: 2 }))
    ));
}

fn answer(c: &mut Catalogue, id: ClientId, regex: String) -> String {
    c.client_message(T0, id, Message::SubServ { regex });
    to_client(&c.drain(), id).pop().unwrap()
}

#[test]
fn compiled_regexes_stay_within_the_connection_and_catalogue_budgets() {
    let mut c = catalogue_with("a:1", |l| {
        l.regex_bytes_per_client = 4 << 20;
        l.regex_bytes_total = 7 << 20;
    });
    // Compiles under the 1 MiB ceiling only: charged 3 MiB.
    let huge = |i: usize| format!("\\w{{6}}x{i}");
    let (one, two, three, four) = (ClientId(1), ClientId(2), ClientId(3), ClientId(4));
    for id in [one, two, three, four] {
        c.client_connected(id, false);
    }
    assert!(answer(&mut c, one, huge(1)).starts_with("8 "));
    let second = answer(&mut c, one, huge(2));
    assert_eq!(error_code(&second), ErrorCode::Limit, "per connection: {second}");
    assert!(second.contains("per connection"), "{second}");
    assert!(answer(&mut c, two, huge(3)).starts_with("8 "));
    // Shared: charged to the connection, counted once for the catalogue
    // (else the small one below would not fit).
    assert!(answer(&mut c, three, huge(1)).starts_with("8 "));
    assert!(answer(&mut c, four, "^tcp://.*/orders$".into()).starts_with("8 "));
    let over = answer(&mut c, four, huge(4));
    assert_eq!(error_code(&over), ErrorCode::Limit, "per catalogue: {over}");
    assert!(over.contains("this catalogue's regexes"), "{over}");
    c.client_disconnected(T0, one);
    c.client_disconnected(T0, three);
    assert!(
        answer(&mut c, four, huge(4)).starts_with("8 "),
        "idle ones make room"
    );
}

#[test]
fn hundreds_of_ordinary_subscriptions_fit_the_default_budgets() {
    let mut c = catalogue("a:1");
    for conn in 0..8 {
        let id = ClientId(conn);
        c.client_connected(id, false);
        for i in 0..64 {
            let re = format!("^tcp://[^/]+/(svc{conn}x{i}|orders)(/.*)?$");
            assert!(answer(&mut c, id, re).starts_with("8 "));
        }
    }
}
