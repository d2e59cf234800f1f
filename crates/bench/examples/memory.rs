//! Heap bytes per replicated service in the core state machine, counted by
//! the dhat allocator (no process or allocator slack):
//! `cargo run --release -p rarangi-bench --example memory -- 100000`.
//!
//! Two catalogues are wired back to back in memory; N services register at
//! the first and flood to the second; then the first is dropped and the
//! second's growth is divided by N.

use rarangi_core::{Catalogue, ClientId, Config, Durable, Output};
use rarangi_proto::{Attrs, CatalogueUri, Message, ServiceUri, Ts};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn pump(a: &mut Catalogue, b: &mut Catalogue) {
    while forward(a, b) | forward(b, a) {}
}

/// Delivers what `from` sent; true if anything moved.
fn forward(from: &mut Catalogue, to: &mut Catalogue) -> bool {
    let me = from.config().uri.clone();
    let mut moved = false;
    for o in from.drain() {
        if let Output::ToPeer { msg, .. } = o {
            to.peer_message(1_000, &me, msg);
            moved = true;
        }
    }
    moved
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let _profiler = dhat::Profiler::builder().testing().build();
    let uri = |s: &str| CatalogueUri::parse(s).expect("uri");
    let (ua, ub) = (uri("x-tvnetcs://127.0.0.1:1/"), uri("x-tvnetcs://127.0.0.1:2/"));
    let mut a = Catalogue::new(
        Config::new(ua.clone(), "c", "testing"),
        Durable::default(),
        Ts(0),
        1_000,
    );
    let mut b = Catalogue::new(
        Config::new(ub.clone(), "c", "testing"),
        Durable::default(),
        Ts(0),
        1_000,
    );
    a.link_up(1_000, &ub);
    b.link_up(1_000, &ua);
    pump(&mut a, &mut b);
    let before = dhat::HeapStats::get().curr_bytes;
    for k in 0..n {
        // One client per 1,000 services: a connection's registrations are limited.
        let client = ClientId((k / 1_000) as u64);
        if k % 1_000 == 0 {
            a.client_connected(client, true);
        }
        let service = format!(
            "tcp://10.{}.{}.{}:8080/service-{}",
            k >> 16,
            (k >> 8) & 255,
            k & 255,
            k % 97
        );
        let service = ServiceUri::parse(&service).expect("service uri");
        a.client_message(
            1_000,
            client,
            Message::RegServ {
                service,
                attrs: Attrs::default(),
            },
        );
        if k % 1_000 == 999 {
            pump(&mut a, &mut b);
        }
    }
    pump(&mut a, &mut b);
    assert_eq!(b.services().count(), n, "every service replicated");
    drop(a);
    let after = dhat::HeapStats::get().curr_bytes;
    let per = (after.saturating_sub(before)) as f64 / n as f64;
    println!("{n} services: {per:.0} heap bytes per replicated service");
}
