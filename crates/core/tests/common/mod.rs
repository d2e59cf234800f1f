//! Helpers shared by the catalogue tests.

#![allow(dead_code, unreachable_pub)] // each test file uses some of them

use rarangi_core::{Catalogue, ClientId, Config, Delivery, Durable, Notice, Output};
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

/// Links every pair of `nodes` and delivers peer messages until quiet;
/// returns each node's other outputs.
pub fn mesh(now: u64, nodes: &mut [&mut Catalogue]) -> Vec<Vec<Output>> {
    for i in 0..nodes.len() {
        for j in 0..nodes.len() {
            if i != j {
                let peer = nodes[j].config().uri.clone();
                nodes[i].link_up(now, &peer);
            }
        }
    }
    pump(now, nodes)
}

/// Delivers peer messages between catalogues (through the encoder and
/// parser) until nothing moves; returns each node's other outputs.
pub fn pump(now: u64, nodes: &mut [&mut Catalogue]) -> Vec<Vec<Output>> {
    let mut rest: Vec<Vec<Output>> = nodes.iter().map(|_| Vec::new()).collect();
    loop {
        let mut moved = false;
        for i in 0..nodes.len() {
            let from = nodes[i].config().uri.clone();
            for out in nodes[i].drain() {
                match out {
                    Output::ToPeer { peer, msg } => {
                        let Some(j) = nodes.iter().position(|n| n.config().uri == peer) else {
                            continue;
                        };
                        let msg = parse_line(msg.encode().as_bytes()).unwrap();
                        nodes[j].peer_message(now, &from, msg);
                        moved = true;
                    }
                    other => rest[i].push(other),
                }
            }
        }
        if !moved {
            return rest;
        }
    }
}

/// The webhook deliveries among outputs.
pub fn webhooks(outs: &[Output]) -> Vec<Delivery> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Webhook(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

/// The notices among outputs.
pub fn notices(outs: &[Output]) -> Vec<Notice> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Notice(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// Connects client `id` to `c` and subscribes it to `regex`, dropping the
/// snapshot.
pub fn subscriber(c: &mut Catalogue, now: u64, id: ClientId, regex: &str) {
    c.client_connected(id, false);
    c.client_message(now, id, Message::SubServ { regex: regex.into() });
    c.drain();
}
