//! Unit tests of the DNS handler over the sample view: whole packets in,
//! whole packets out, parsed with hickory's message type.

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RData, RecordType};

use super::answer_for_fuzzing;

fn ask_with(name: &str, qtype: RecordType, edns: Option<u16>, tcp: bool) -> Message {
    let mut m = Message::new(42, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.edns = Some(e);
    }
    let packet = m.to_vec().unwrap();
    let out = answer_for_fuzzing(&packet, tcp).expect("an answer");
    Message::from_vec(&out).expect("a valid answer")
}

fn ask(name: &str, qtype: RecordType) -> Message {
    ask_with(name, qtype, None, false)
}

fn rdata(m: &Message) -> Vec<String> {
    m.answers.iter().map(|r| r.data.to_string()).collect()
}

#[test]
fn a_records_in_locality_order_ignoring_case() {
    let m = ask("WEB.Service.Rarangi.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    // This catalogue first (web, then Web), then its cluster, then the rest.
    assert_eq!(rdata(&m), ["10.0.0.1", "10.0.0.9", "10.0.0.2", "10.0.0.3"]);
    assert!(m.answers.iter().all(|r| r.ttl == 0));
    let m = ask("web.service.rarangi.", RecordType::AAAA);
    assert_eq!(rdata(&m), ["fd00::1"]);
    let m = ask("web.service.consul.", RecordType::A);
    assert_eq!(m.answers.len(), 4, "the alternative domain answers too");
}

#[test]
fn srv_with_priority_weight_and_resolvable_targets() {
    let m = ask("_web._tcp.service.rarangi.", RecordType::SRV);
    let srv: Vec<String> = rdata(&m);
    assert_eq!(srv[0], "1 5 81 0a000001.addr.rarangi.");
    assert!(srv.contains(&"1 1 84 fd000000000000000000000000000001.addr.rarangi.".to_owned()));
    assert!(srv.contains(&"2 1 82 0a000002.addr.rarangi.".to_owned()));
    assert_eq!(srv.last().unwrap(), "3 1 83 0a000003.addr.rarangi.");
    assert_eq!(m.additionals.len(), 5, "one A/AAAA per target");
    let target = m.additionals[0].name.to_string();
    let a = ask(&target, RecordType::A);
    assert_eq!(rdata(&a), ["10.0.0.1"]);
    let host = ask("host.service.rarangi.", RecordType::SRV);
    assert_eq!(rdata(&host), ["1 1 5432 db.example.com."]);
    assert!(host.additionals.is_empty());
}

#[test]
fn cluster_limited_names() {
    let m = ask("web.service.eu.rarangi.", RecordType::A);
    assert_eq!(rdata(&m), ["10.0.0.3"]);
    let m = ask("web.service.nowhere.rarangi.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn nxdomain_and_nodata_carry_the_soa() {
    for name in [
        "nope.service.rarangi.",
        "web.node.rarangi.",
        "bad_name.service.rarangi.",
    ] {
        let m = ask(name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert_eq!(m.authorities.len(), 1, "{name}");
        assert!(matches!(m.authorities[0].data, RData::SOA(_)), "{name}");
    }
    let m = ask("noport.service.rarangi.", RecordType::SRV);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert!(matches!(m.authorities[0].data, RData::SOA(_)));
    let m = ask("web.service.rarangi.", RecordType::TXT);
    assert_eq!(
        (m.metadata.response_code, m.answers.len()),
        (ResponseCode::NoError, 0)
    );
    let m = ask("rarangi.", RecordType::SOA);
    assert!(matches!(m.answers[0].data, RData::SOA(_)));
    let m = ask("example.com.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn udp_answers_are_cut_to_the_client_size_tcp_in_full() {
    let m = ask("many.service.rarangi.", RecordType::SRV);
    assert!(m.metadata.truncation);
    assert!(!m.answers.is_empty() && m.answers.len() < 40);
    let m = ask_with("many.service.rarangi.", RecordType::SRV, Some(4096), false);
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 40);
    let m = ask_with("many.service.rarangi.", RecordType::SRV, None, true);
    assert!(!m.metadata.truncation);
    assert_eq!((m.answers.len(), m.additionals.len()), (40, 40));
}

#[test]
fn bad_packets_get_formerr_or_nothing() {
    assert_eq!(answer_for_fuzzing(&[], false), None);
    assert_eq!(answer_for_fuzzing(&[1, 2, 3], false), None);
    // A header claiming a question that is not there.
    let packet = [0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    let out = answer_for_fuzzing(&packet, false).expect("FORMERR");
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(
        (m.metadata.id, m.metadata.response_code),
        (7, ResponseCode::FormErr)
    );
    // Responses are not answered (no reflection).
    let mut resp = Message::new(1, MessageType::Response, OpCode::Query);
    resp.add_query(Query::query(
        Name::from_ascii("web.service.rarangi.").unwrap(),
        RecordType::A,
    ));
    assert_eq!(answer_for_fuzzing(&resp.to_vec().unwrap(), false), None);
    // Two questions: FORMERR.
    let mut two = Message::new(2, MessageType::Query, OpCode::Query);
    for _ in 0..2 {
        two.add_query(Query::query(
            Name::from_ascii("web.service.rarangi.").unwrap(),
            RecordType::A,
        ));
    }
    let out = answer_for_fuzzing(&two.to_vec().unwrap(), false).unwrap();
    assert_eq!(
        Message::from_vec(&out).unwrap().metadata.response_code,
        ResponseCode::FormErr
    );
}
