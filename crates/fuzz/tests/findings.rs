//! Failures the fuzzer found, kept as minimal replays so they stay fixed.

use rarangi_fuzz::catalogue::Op;
use rarangi_fuzz::{Catalogues, Target};

/// Case seed 9405614409555228014 (`rarangi-fuzz --target catalogue --seed
/// 9405614409555228014 --replay`): a peer still in the handshake sends an
/// ADD_LINK naming the receiver and itself. The receiver stores it (mid-
/// handshake it is "not yet sure either way"), and when that link closes
/// before it came up, `drop_peer` emits no DEL_LINK (only links that were
/// `Up` get one), so the other catalogues keep a phantom link: they count
/// the peer as reachable, the receiver does not, and they can disagree on
/// the leader.
#[test]
fn add_link_naming_us_during_handshake_is_refuted() {
    Catalogues::default().check(&vec![
        Op::FakeUp { node: 2, fake: 2 },
        Op::Fake {
            node: 2,
            fake: 2,
            line: "3 x-tvnetcs://n2:4760/ x-tvnetcs://zz:1/ 111411200719716354".into(),
        },
    ]);
}

/// The same bug reached through a third catalogue (case seed
/// 7819175254598876311): a fake peer tells n0 about a link n1–zz; n0
/// floods it to n1, whose own connection to zz is mid-handshake, so n1
/// keeps it and never refutes it when that connection closes.
#[test]
fn flooded_add_link_naming_us_during_handshake_is_refuted() {
    Catalogues::default().check(&vec![
        Op::LinkUp { a: 0, b: 1 },
        Op::LinkUp { a: 1, b: 2 },
        Op::Deliver {
            from: 2,
            to: 1,
            max: 6,
        },
        Op::FakeUp { node: 1, fake: 2 },
        Op::Deliver {
            from: 1,
            to: 0,
            max: 5,
        },
        Op::FakeUp { node: 0, fake: 1 },
        Op::Time { delta_ms: 506_703 },
        Op::Fake {
            node: 0,
            fake: 1,
            line: "3 x-tvnetcs://n1:4760/ x-tvnetcs://zz:1/ 111411221535129603".into(),
        },
        Op::Deliver {
            from: 0,
            to: 1,
            max: 8,
        },
    ]);
}

/// Case seed 2240396145278844549: two fake peers send one configuration key
/// with the same version (timestamp and origin) but different values. Each
/// catalogue kept the first it saw and counted the other as equal, so they
/// never converged. The version order now ends with a digest of the
/// content, so every catalogue keeps the same one.
#[test]
fn one_version_with_two_contents_converges() {
    Catalogues::default().check(&vec![
        Op::FakeUp { node: 2, fake: 0 },
        Op::FakeUp { node: 0, fake: 2 },
        Op::Fake {
            node: 2,
            fake: 0,
            line: "9 hookstate/srv/orders/h2 x-tvnetcs://zz:1/ 0 not%20json".into(),
        },
        Op::Fake {
            node: 0,
            fake: 2,
            line: "9 hookstate/srv/orders/h2 x-tvnetcs://zz:1/ 0 {\"name\":\"h1\",\"endpoint\":\"http://127.0.0.1:9/\"}"
                .into(),
        },
    ]);
}
