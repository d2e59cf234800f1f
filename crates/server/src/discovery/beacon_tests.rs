use super::*;

const KEY: &[u8] = b"0123456789abcdef";

fn cfg() -> BeaconConfig {
    BeaconConfig {
        port: 1,
        key: Arc::from(KEY),
        environment: "testing".into(),
        cluster: "c".into(),
        uri: CatalogueUri::parse("x-tvnetcs://10.0.0.1:4780/").unwrap(),
        incarnation: 7,
    }
}

fn beacon(uri: &str, env: &str) -> Beacon {
    Beacon {
        environment: env.into(),
        cluster: "c".into(),
        uri: uri.into(),
        incarnation: 9,
    }
}

#[test]
fn a_beacon_round_trips_and_its_tag_is_checked() {
    let b = beacon("x-tvnetcs://10.0.0.2:4780/", "testing");
    let d = b.encode(KEY).unwrap();
    assert_eq!(Beacon::decode(&d, KEY).unwrap(), b);
    assert_eq!(
        Beacon::decode(&d, b"another key of 16+").unwrap_err(),
        BeaconError::BadTag
    );
    // Any flipped bit breaks the tag.
    for i in 0..d.len() {
        let mut bad = d.clone();
        bad[i] ^= 1;
        assert!(Beacon::decode(&bad, KEY).is_err(), "byte {i}");
    }
    // Every cut is refused, never a panic.
    for n in 0..d.len() {
        assert!(Beacon::decode(&d[..n], KEY).is_err());
    }
    assert_eq!(
        Beacon::decode(&vec![0; MAX_DATAGRAM + 1], KEY).unwrap_err(),
        BeaconError::TooLarge
    );
    let long = beacon(&format!("x-tvnetcs://{}:1/", "a".repeat(2000)), "testing");
    assert_eq!(long.encode(KEY).unwrap_err(), BeaconError::TooLarge);
}

#[test]
fn receivers_drop_other_environments_and_their_own() {
    let from: SocketAddr = "10.0.0.9:5".parse().unwrap();
    let ok = beacon("x-tvnetcs://10.0.0.2:4780/", "testing")
        .encode(KEY)
        .unwrap();
    assert_eq!(
        accept(&ok, from, &cfg()).unwrap(),
        (
            "x-tvnetcs://10.0.0.2:4780/".into(),
            "10.0.0.2:4780".parse().unwrap(),
            9
        )
    );
    let other = beacon("x-tvnetcs://10.0.0.2:4780/", "production")
        .encode(KEY)
        .unwrap();
    assert_eq!(accept(&other, from, &cfg()).unwrap_err(), "another environment");
    let own = beacon("x-tvnetcs://10.0.0.1:4780/", "testing")
        .encode(KEY)
        .unwrap();
    assert_eq!(accept(&own, from, &cfg()).unwrap_err(), "our own");
    // A host name: dialed at the address the beacon came from.
    let named = beacon("x-tvnetcs://cat-b.lan:4781/", "testing")
        .encode(KEY)
        .unwrap();
    assert_eq!(
        accept(&named, from, &cfg()).unwrap().1,
        "10.0.0.9:4781".parse().unwrap()
    );
    let bad_uri = beacon("not a uri", "testing").encode(KEY).unwrap();
    assert!(accept(&bad_uri, from, &cfg()).is_err());
}
