//! Property tests: encode→parse is the identity for every message, and
//! parsing arbitrary bytes never panics.

use proptest::prelude::*;
use rarangi_proto::*;

fn catalogue() -> impl Strategy<Value = CatalogueUri> {
    ("[a-z][a-z0-9.-]{0,20}", 1u16..).prop_map(|(h, p)| CatalogueUri::from_addr(&format!("{h}:{p}")).unwrap())
}

fn service() -> impl Strategy<Value = ServiceUri> {
    (
        "[a-z][a-z0-9+.-]{0,8}",
        "[a-z0-9.]{1,15}",
        proptest::option::of(1u16..),
        "[^ /?#\\p{Cc}]{1,12}",
        "(/[^ \\p{Cc}]{0,12})?",
    )
        .prop_map(|(scheme, host, port, name, rest)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            ServiceUri::parse(&format!("{scheme}://{host}{port}/{name}{rest}")).unwrap()
        })
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._-]{0,20}"
}

fn env() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9-]{0,20}"
}

fn key() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._/-]{1,30}"
}

fn ts() -> impl Strategy<Value = Ts> {
    any::<u64>().prop_map(Ts)
}

fn attrs() -> impl Strategy<Value = Attrs> {
    proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..4).prop_map(Attrs)
}

fn bound() -> impl Strategy<Value = Bound> {
    prop_oneof![Just(Bound::Unbounded), ".{0,20}".prop_map(Bound::Key)]
}

fn ordered_pair() -> impl Strategy<Value = (CatalogueUri, CatalogueUri)> {
    (catalogue(), catalogue())
        .prop_filter("distinct", |(a, b)| a != b)
        .prop_map(|(a, b)| if a < b { (a, b) } else { (b, a) })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (catalogue(), name(), env()).prop_map(|(catalogue, cluster, environment)| Message::Welcome {
            catalogue,
            cluster,
            environment
        }),
        Just(Message::Heartbeat),
        ("[a-z-]{1,12}", ".{0,40}").prop_map(|(c, text)| Message::Error {
            code: ErrorCode::from_wire(&c),
            text
        }),
        (ordered_pair(), ts()).prop_map(|((a, b), ts)| Message::AddLink { a, b, ts }),
        (ordered_pair(), ts()).prop_map(|((a, b), ts)| Message::DelLink { a, b, ts }),
        (service(), catalogue(), name(), ts(), attrs()).prop_map(
            |(service, catalogue, cluster, ts, attrs)| Message::AddServ {
                service,
                catalogue,
                cluster,
                ts,
                attrs
            }
        ),
        (service(), catalogue(), name(), ts()).prop_map(|(service, catalogue, cluster, ts)| {
            Message::DelServ {
                service,
                catalogue,
                cluster,
                ts,
            }
        }),
        (service(), attrs()).prop_map(|(service, attrs)| Message::RegServ { service, attrs }),
        ".{0,40}".prop_map(|regex| Message::SubServ { regex }),
        (key(), catalogue(), ts(), ".{0,60}").prop_map(|(key, origin, ts, value)| Message::SetKey {
            key,
            origin,
            ts,
            value
        }),
        (key(), catalogue(), ts()).prop_map(|(key, origin, ts)| Message::DelKey { key, origin, ts }),
        service().prop_map(|service| Message::UnregServ { service }),
        ".{0,40}".prop_map(|regex| Message::UnsubServ { regex }),
        Just(Message::SubLink),
        Just(Message::UnsubLink),
        (catalogue(), name(), ts()).prop_map(|(catalogue, cluster, ts)| Message::Catalogue {
            catalogue,
            cluster,
            ts
        }),
        (bound(), bound(), any::<u64>(), any::<u64>()).prop_map(|(lo, hi, count, fingerprint)| {
            Message::Sync {
                lo,
                hi,
                count,
                fingerprint,
            }
        }),
        (bound(), bound()).prop_map(|(lo, hi)| Message::SyncPull { lo, hi }),
        any::<bool>().prop_map(|last| Message::SyncMark { last }),
        (catalogue(), proptest::collection::vec(catalogue(), 1..5))
            .prop_map(|(leader, reachable)| Message::Reachable { leader, reachable }),
        (catalogue(), name(), ts(), 0..3u8).prop_map(|(catalogue, cluster, ts, r)| Message::Left {
            catalogue,
            cluster,
            ts,
            reason: [Departure::Left, Departure::Reaped, Departure::Forced][usize::from(r)],
        }),
        catalogue().prop_map(|catalogue| Message::ForceLeave { catalogue }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encode_then_parse_is_identity(m in message()) {
        let line = m.encode();
        prop_assert!(!line.contains('\n') && !line.contains('\r'));
        let back = parse_line(line.as_bytes());
        prop_assert_eq!(back, Ok(m));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_line(&bytes);
    }

    #[test]
    fn mutated_lines_never_panic(m in message(), pos in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut line = m.encode().into_bytes();
        let i = pos.index(line.len());
        line[i] = b;
        let _ = parse_line(&line);
    }
}
