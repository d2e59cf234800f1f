//! Helpers shared by the catalogue tests.

#![allow(dead_code, unreachable_pub)] // each test file uses some of them

use rarangi_core::{Catalogue, ClientId, Config, Durable, Output};
use rarangi_proto::{parse_line, CatalogueUri, ErrorCode, Message, Ts};

pub const T0: u64 = 1_700_000_000_000;

pub fn uri(addr: &str) -> CatalogueUri {
    CatalogueUri::from_addr(addr).unwrap()
}

pub fn catalogue(addr: &str) -> Catalogue {
    Catalogue::new(
        Config::new(uri(addr), "eu", "production"),
        Durable::default(),
        Ts(0),
        T0,
    )
}

pub fn msg(line: &str) -> Message {
    parse_line(line.as_bytes()).unwrap()
}

pub fn to_client(outs: &[Output], id: ClientId) -> Vec<String> {
    outs.iter()
        .filter_map(Output::client_messages)
        .filter(|(client, _)| *client == id)
        .flat_map(|(_, msgs)| msgs.iter().map(Message::encode))
        .collect()
}

pub fn error_code(line: &str) -> ErrorCode {
    match msg(line) {
        Message::Error { code, .. } => code,
        other => panic!("expected an ERROR, got {other:?}"),
    }
}

/// Delivers peer messages between catalogues (through the encoder and
/// parser) until nothing moves; returns the first catalogue's other outputs.
pub fn pump(nodes: &mut [&mut Catalogue]) -> Vec<Output> {
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
