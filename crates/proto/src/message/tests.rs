//! Examples of the wire form.

use super::*;
use crate::{CatalogueUri, ErrorCode, Ts};

fn cat(s: &str) -> CatalogueUri {
    CatalogueUri::from_addr(s).unwrap()
}

#[test]
fn seed_examples_parse() {
    let m = parse_line(b"0 x-tvnetcs://h1:4760/ eu production\r\n").unwrap();
    assert_eq!(
        m,
        Message::Welcome {
            catalogue: cat("h1:4760"),
            cluster: "eu".into(),
            environment: "production".into()
        }
    );
    let m = parse_line(b"add_serv tcp://10.1.2.3:8080/orders x-tvnetcs://h1:4760/ eu 42 weight=10").unwrap();
    assert_eq!(m.kind(), MessageKind::AddServ);
    assert_eq!(
        m.encode(),
        "5 tcp://10.1.2.3:8080/orders x-tvnetcs://h1:4760/ eu 42 weight=10"
    );
}

#[test]
fn link_ends_are_normalised() {
    let m = parse_line(b"3 x-tvnetcs://b:1/ x-tvnetcs://a:1/ 7").unwrap();
    assert_eq!(
        m,
        Message::AddLink {
            a: cat("a:1"),
            b: cat("b:1"),
            ts: Ts(7)
        }
    );
}

#[test]
fn errors_say_what_to_send() {
    let e = parse_line(b"99 x").unwrap_err();
    assert_eq!(e.code, ErrorCode::BadMessage);
    let e = parse_line(b"7 tcp://h:1").unwrap_err();
    assert_eq!(e.code, ErrorCode::BadUri);
    assert!(e.text.contains("first segment"), "{}", e.text);
    let e = parse_line(b"7").unwrap_err();
    assert!(e.text.contains("missing field <service-uri>"), "{}", e.text);
    let e = parse_line_with_limit(&[b'1'; 100], 10).unwrap_err();
    assert_eq!(e.code, ErrorCode::LineTooLong);
    let e = parse_line(b"1 extra").unwrap_err();
    assert!(e.text.contains("extra field"));
    let e = parse_line(b"5 tcp://h:1/x x-tvnetcs://h:1/ c 1x").unwrap_err();
    assert!(e.text.contains("decimal"));
}

#[test]
fn error_text_roundtrips_with_spaces() {
    let m = Message::error(ErrorCode::Limit, "too many  subscriptions (64)");
    assert_eq!(parse_line(m.encode().as_bytes()).unwrap(), m);
}

#[test]
fn sync_bounds() {
    let m = Message::Sync {
        lo: Bound::Unbounded,
        hi: Bound::Key("-".into()),
        count: 3,
        fingerprint: u64::MAX,
    };
    assert_eq!(m.encode(), format!("16 - %2D 3 {}", u64::MAX));
    assert_eq!(parse_line(m.encode().as_bytes()).unwrap(), m);
}

#[test]
fn reachable_lists_the_leader_then_the_set() {
    let m = Message::Reachable {
        leader: cat("a:1"),
        reachable: vec![cat("a:1"), cat("b:1")],
    };
    assert_eq!(
        m.encode(),
        "19 x-tvnetcs://a:1/ x-tvnetcs://a:1/ x-tvnetcs://b:1/"
    );
    assert_eq!(parse_line(m.encode().as_bytes()).unwrap(), m);
    assert_eq!(
        parse_line(b"reachable x-tvnetcs://a:1/ x-tvnetcs://a:1/")
            .unwrap()
            .kind(),
        MessageKind::Reachable
    );
    let e = parse_line(b"19 x-tvnetcs://a:1/").unwrap_err();
    assert!(e.text.contains("missing field <catalogue-uri>"), "{}", e.text);
}

#[test]
fn departures_parse() {
    let m = parse_line(b"LEFT x-tvnetcs://h1:4760/ eu 42 left").unwrap();
    assert_eq!(
        m,
        Message::Left {
            catalogue: cat("h1:4760"),
            cluster: "eu".into(),
            ts: Ts(42),
            reason: Departure::Left
        }
    );
    assert_eq!(m.encode(), "20 x-tvnetcs://h1:4760/ eu 42 left");
    let e = parse_line(b"20 x-tvnetcs://h1:4760/ eu 42 gone").unwrap_err();
    assert!(e.text.contains("<reason>"), "{}", e.text);
    let m = parse_line(b"force_leave x-tvnetcs://h1:4760/").unwrap();
    assert_eq!(m.encode(), "21 x-tvnetcs://h1:4760/");
}
