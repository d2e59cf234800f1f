//! Target `dns`: the catalogue's DNS server answering arbitrary and
//! near-valid request packets (`rarangi_server::dns::answer_for_fuzzing`,
//! the code path of its UDP and TCP listeners, over a small fixed view).
//!
//! Checks: it never panics; an answer has the request's id and the QR bit;
//! over UDP, a request without additional records (so without EDNS) gets
//! at most 512 bytes.

use rarangi_server::dns::answer_for_fuzzing;

use crate::engine::{smaller_vec, Target};
use crate::gen::Gen;

/// The DNS target.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dns;

/// One request packet, over UDP or TCP.
#[derive(Clone)]
pub struct Packet {
    /// The bytes (without TCP's length prefix).
    pub bytes: Vec<u8>,
    /// Over TCP (no size limit) rather than UDP.
    pub tcp: bool,
}

impl std::fmt::Debug for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = if self.tcp { "tcp" } else { "udp" };
        write!(
            f,
            "Packet({proto}, {} bytes) b\"{}\"",
            self.bytes.len(),
            self.bytes.escape_ascii()
        )
    }
}

/// Names the sample view answers, and some it does not.
const NAMES: [&str; 12] = [
    "web.service.rarangi",
    "WEB.Service.Rarangi",
    "_web._tcp.service.rarangi",
    "web.service.eu.rarangi",
    "many.service.rarangi",
    "many.service.consul",
    "host.service.rarangi",
    "0a000001.addr.rarangi",
    "rarangi",
    "nope.service.rarangi",
    "example.com",
    "",
];

/// Record types: A, NS, SOA, TXT, AAAA, SRV, OPT, AXFR, ANY, and odd ones.
const TYPES: [u16; 11] = [1, 2, 6, 16, 28, 33, 41, 252, 255, 0, 65535];

impl Target for Dns {
    type Input = Packet;

    fn name(&self) -> &'static str {
        "dns"
    }

    fn generate(&self, g: &mut Gen) -> Packet {
        let tcp = g.chance(1, 4);
        let bytes = match g.below(6) {
            0 => g.bytes(600),
            1 => query(g),
            _ => {
                let mut p = query(g);
                for _ in 0..=g.below(4) {
                    mutate(g, &mut p);
                }
                p
            }
        };
        Packet { bytes, tcp }
    }

    fn check(&self, input: &Packet) {
        let Some(out) = answer_for_fuzzing(&input.bytes, input.tcp) else {
            return;
        };
        assert!(out.len() >= 12, "answer shorter than a header: {out:?}");
        assert_eq!(out[..2], input.bytes[..2], "answer id differs");
        assert!(out[2] & 0x80 != 0, "answer without QR");
        let arcount = u16::from_be_bytes([input.bytes[10], input.bytes[11]]);
        if !input.tcp && arcount == 0 {
            assert!(out.len() <= 512, "{} bytes over UDP without EDNS", out.len());
        }
    }

    fn smaller(&self, input: &Packet) -> Vec<Packet> {
        smaller_vec(&input.bytes)
            .into_iter()
            .map(|bytes| Packet {
                bytes,
                tcp: input.tcp,
            })
            .collect()
    }
}

/// A well-formed query: one question, sometimes an EDNS OPT record.
fn query(g: &mut Gen) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&(g.u64() as u16).to_be_bytes());
    // Flags: a standard query, recursion desired or not.
    p.extend_from_slice(&[if g.chance(1, 2) { 1 } else { 0 }, 0]);
    let edns = g.chance(1, 2);
    p.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
    for label in g.pick(&NAMES).split('.').filter(|l| !l.is_empty()) {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&g.pick(&TYPES).to_be_bytes());
    p.extend_from_slice(&[0, if g.chance(7, 8) { 1 } else { 3 }]);
    if edns {
        let size = g.pick(&[0u16, 100, 512, 1232, 4096, 65535]);
        // Root name, type OPT, class = UDP size, TTL (ext. rcode, version,
        // flags), no options.
        p.push(0);
        p.extend_from_slice(&41u16.to_be_bytes());
        p.extend_from_slice(&size.to_be_bytes());
        p.extend_from_slice(&[0, g.pick(&[0, 1]), 0, 0, 0, 0]);
    }
    p
}

/// One mutation of a packet's bytes.
fn mutate(g: &mut Gen, p: &mut Vec<u8>) {
    if p.is_empty() {
        p.push(g.u64() as u8);
        return;
    }
    let at = g.below(p.len());
    match g.below(7) {
        0 => p[at] = g.u64() as u8,
        1 => p.truncate(at),
        2 => p.insert(at, g.pick(&[0, 63, 64, 0xc0, 0xff, b'.', b'_'])),
        // A count in the header set to an edge value.
        3 => {
            let field = 4 + 2 * g.below(4);
            let v: u16 = g.pick(&[0, 1, 2, 255, 65535]);
            if p.len() >= field + 2 {
                p[field..field + 2].copy_from_slice(&v.to_be_bytes());
            }
        }
        // A compression pointer, maybe to itself.
        4 => {
            let to = g.below(p.len()) as u16;
            let ptr = (0xc000 | to).to_be_bytes();
            p.splice(at..at, ptr);
        }
        // The opcode or flags byte.
        5 if p.len() > 3 => p[2 + g.below(2)] = g.u64() as u8,
        _ => p.extend(g.bytes(64)),
    }
}
