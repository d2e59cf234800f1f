//! A small fixed catalogue to answer from without a running daemon: the
//! DNS fuzz target (crates/fuzz) and the unit tests use it.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use hickory_server::net::xfer::Protocol;
use rarangi_core::TopologyView;
use rarangi_proto::{Attrs, CatalogueUri, ServiceUri, Ts};
use tokio::sync::watch;

use super::{answer, Handler};
use crate::driver::view::{Instance, View};
use crate::settings::DnsSettings;

/// This catalogue, in the sample.
pub(super) const HERE: &str = "here:4790";

/// A view holding: `web` at three catalogues and two clusters (IPv4,
/// IPv6, weight 5), `Web` (upper case), `host` with a host-name address,
/// `noport` without a port, and 40 instances of `many`.
pub(super) fn view() -> View {
    let here = CatalogueUri::from_addr(HERE).expect("valid");
    let mut v = View::new(TopologyView {
        me: here.clone(),
        catalogues: Default::default(),
        links: Default::default(),
        reachable: Default::default(),
        leader: here,
    });
    let mut put = |uri: &str, cat: &str, cluster: &str, attrs: &[(&str, &str)]| {
        v.put_instance(Instance::new(
            ServiceUri::parse(uri).expect("valid"),
            CatalogueUri::from_addr(cat).expect("valid"),
            Arc::from(cluster),
            attrs.iter().copied().collect::<Attrs>(),
            Ts(1),
        ));
    };
    put("tcp://10.0.0.3:83/web", "far:4790", "eu", &[]);
    put("tcp://10.0.0.2:82/web", "near:4790", "default", &[]);
    put("tcp://10.0.0.1:81/web", HERE, "default", &[("weight", "5")]);
    put("tcp://[fd00::1]:84/web", HERE, "default", &[]);
    put("tcp://10.0.0.9:89/Web", HERE, "default", &[]);
    put("tcp://db.example.com:5432/host", HERE, "default", &[]);
    put("nesoi://h1/noport", HERE, "default", &[]);
    for i in 0..40 {
        put(&format!("tcp://10.1.0.{i}:80/many"), HERE, "default", &[]);
    }
    v.changed("/srv/web", 7);
    v
}

/// A handler over the sample view, domains `rarangi.` and `consul.`.
pub(super) fn handler() -> Handler {
    let (tx, rx) = watch::channel(Arc::new(view()));
    // The receiver keeps the last value after the sender is gone.
    drop(tx);
    let settings = DnsSettings {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        domain: "rarangi.".into(),
        alt_domain: Some("consul.".into()),
        ttl: 0,
    };
    Handler::new(
        rx,
        &settings,
        CatalogueUri::from_addr(HERE).expect("valid"),
        "default",
    )
}

/// Answers `packet` as the DNS server would over UDP (or TCP), from a
/// small fixed catalogue: for the fuzz target. None when it gets no answer.
pub fn answer_for_fuzzing(packet: &[u8], tcp: bool) -> Option<Vec<u8>> {
    static HANDLER: OnceLock<Handler> = OnceLock::new();
    let handler = HANDLER.get_or_init(handler);
    let protocol = if tcp { Protocol::Tcp } else { Protocol::Udp };
    let src = SocketAddr::from(([127, 0, 0, 1], 5353));
    futures::executor::block_on(answer(handler, packet, src, protocol))
}
