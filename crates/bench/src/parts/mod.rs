//! The benchmark parts, each adding its section to the [`Report`].

mod compare;
mod consul;
mod discovery;
mod dns;
mod heal;
mod health;
mod latency;
mod load;
mod scale;
mod sim;
mod tls;

use anyhow::Result;
use rarangi_client::Connection;
use rarangi_proto::{Attrs, Message, ServiceUri};
use rarangi_sim::Topology;

pub use compare::{etcd_side_by_side, serf_side_by_side};
pub use consul::consul;
pub use discovery::discovery;
pub use dns::dns;
pub use heal::heal;
pub use health::health;
pub use latency::{propagation, withdrawal};
pub use load::{churn, lookups};
pub use scale::scale;
pub use sim::sim;
pub use tls::tls_cost;

#[cfg(doc)]
use crate::report::Report;

/// The layouts measured, with their names in the tables.
pub(crate) fn layouts() -> Vec<(Topology, &'static str)> {
    vec![
        (Topology::Chain, "chain"),
        (Topology::Ring, "ring"),
        (Topology::TwoMasters { cluster_size: 5 }, "two-masters"),
        (Topology::Random { extra_tenths: 5 }, "random deg~3"),
    ]
}

pub(crate) fn edges_of(t: Topology, n: usize) -> Vec<(usize, usize)> {
    use rand::SeedableRng;
    t.edges(n, &mut rand_chacha::ChaCha8Rng::seed_from_u64(9))
        .into_iter()
        .collect()
}

/// Registers `uri` on `conn` (not waiting for an answer).
pub(crate) async fn reg(conn: &mut Connection, uri: &str) -> Result<()> {
    let service = ServiceUri::parse(uri).map_err(|e| anyhow::anyhow!("{e}"))?;
    conn.send(&Message::RegServ {
        service,
        attrs: Attrs::default(),
    })
    .await?;
    Ok(())
}

pub(crate) async fn unreg(conn: &mut Connection, uri: &str) -> Result<()> {
    let service = ServiceUri::parse(uri).map_err(|e| anyhow::anyhow!("{e}"))?;
    conn.send(&Message::UnregServ { service }).await?;
    Ok(())
}
