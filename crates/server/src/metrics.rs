//! The metrics registry (`GET /metrics`, `http/metrics.rs`): counters and
//! histograms bumped where things happen (connections, the driver, the
//! store, webhooks, DNS, health probes), and gauges computed from the
//! published [`View`] at scrape time, never per change.
//!
//! One process-wide set ([`metrics`]): the daemon runs one catalogue per
//! process, and the call sites (DNS, webhooks, the store) need no handle
//! passed down. The hot path (a line read or written) is one relaxed atomic
//! add on a counter chosen by index: label sets are made once per kind.

use std::sync::{Arc, LazyLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rarangi_proto::MessageKind;

use crate::driver::view::View;

/// A one-label set with static key and value.
type Label = [(&'static str, &'static str); 1];
/// A two-label set with static keys and values.
type Labels2 = [(&'static str, &'static str); 2];

/// Message kinds, by wire code (as many as `MessageKind::MAX_CODE + 1`).
const KINDS: usize = MessageKind::MAX_CODE as usize + 1;

/// Counters for one direction (in or out) per message kind, picked by the
/// kind's code so counting a line allocates nothing.
pub(crate) struct PerKind {
    lines_family: Family<Label, Counter>,
    bytes_family: Family<Label, Counter>,
    lines: Vec<Counter>,
    bytes: Vec<Counter>,
}

impl PerKind {
    fn new() -> Self {
        let lines_family = Family::<Label, Counter>::default();
        let bytes_family = Family::<Label, Counter>::default();
        let kinds = (0..KINDS as u8).filter_map(|c| MessageKind::from_field(&c.to_string()));
        let (mut lines, mut bytes) = (Vec::new(), Vec::new());
        for kind in kinds {
            let label = [("kind", kind.keyword())];
            lines.push(lines_family.get_or_create(&label).clone());
            bytes.push(bytes_family.get_or_create(&label).clone());
        }
        Self {
            lines_family,
            bytes_family,
            lines,
            bytes,
        }
    }

    /// Counts one line of `kind` and `len` bytes (its newline included).
    pub(crate) fn count(&self, kind: MessageKind, len: usize) {
        let i = usize::from(kind.code());
        if let (Some(l), Some(b)) = (self.lines.get(i), self.bytes.get(i)) {
            l.inc();
            b.inc_by(len as u64);
        }
    }

    /// Counts an outgoing encoded line (without its newline), by its first
    /// field; lines of no known kind are not counted.
    pub(crate) fn count_text(&self, line: &str) {
        let first = line.split_once(' ').map_or(line, |(f, _)| f);
        if let Some(kind) = MessageKind::from_field(first) {
            self.count(kind, line.len() + 1);
        }
    }
}

/// Every counter, gauge and histogram not computed at scrape time.
pub(crate) struct Metrics {
    /// Lines and bytes read, by message kind.
    pub(crate) received: PerKind,
    /// Lines and bytes written, by message kind.
    pub(crate) sent: PerKind,
    /// Links that went down.
    pub(crate) link_flaps: Counter,
    /// Client connections open.
    pub(crate) clients: Gauge,
    /// Bytes queued for writing on every connection.
    pub(crate) send_queue_bytes: Gauge,
    /// Connections dropped for not reading, by `who` (client, peer).
    pub(crate) drops: Family<Label, Counter>,
    /// Refused requests by reason and status family.
    pub(crate) refused: Family<Labels2, Counter>,
    /// Approximate propagation delay of peers' service changes.
    pub(crate) propagation: Histogram,
    /// Store commit latency.
    pub(crate) store_commit: Histogram,
    /// Store commits that failed.
    pub(crate) store_failures: Counter,
    /// Webhook deliveries attempted, and failed.
    pub(crate) webhook_deliveries: Counter,
    /// Webhook deliveries that failed.
    pub(crate) webhook_failures: Counter,
    /// DNS queries by type and response code.
    pub(crate) dns_queries: Family<Labels2, Counter>,
    /// Health probes by result.
    pub(crate) health_probes: Family<Label, Counter>,
}

/// A client connection counted in `rarangi_clients` while it lives.
pub(crate) struct ClientOpen;

impl Drop for ClientOpen {
    fn drop(&mut self) {
        metrics().clients.dec();
    }
}

/// The process's metrics.
pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
        received: PerKind::new(),
        sent: PerKind::new(),
        link_flaps: Counter::default(),
        clients: Gauge::default(),
        send_queue_bytes: Gauge::default(),
        drops: Family::default(),
        refused: Family::default(),
        // 1 ms to ~65 s.
        propagation: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
        // 50 µs to ~1.6 s.
        store_commit: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
        store_failures: Counter::default(),
        webhook_deliveries: Counter::default(),
        webhook_failures: Counter::default(),
        dns_queries: Family::default(),
        health_probes: Family::default(),
    });
    &METRICS
}

impl Metrics {
    /// Counts a refusal: `reason` is the `2 CODE` reason (or a short word
    /// for HTTP), `status` the HTTP status family ("4xx", "5xx") or "line"
    /// for the line protocol.
    pub(crate) fn refused(&self, reason: &'static str, status: &'static str) {
        self.refused
            .get_or_create(&[("reason", reason), ("status", status)])
            .inc();
    }

    /// Counts a line written (without its newline) of `bytes` bytes with
    /// the newline; the queued bytes leave the send-queue gauge.
    pub(crate) fn sent_line(&self, line: &str, bytes: usize) {
        self.sent.count_text(line);
        self.send_queue_bytes.dec_by(bytes as i64);
    }

    /// Counts a client connection open until the guard is dropped.
    pub(crate) fn client_open(&self) -> ClientOpen {
        self.clients.inc();
        ClientOpen
    }

    /// Records a store commit's latency, and its failure.
    pub(crate) fn committed(&self, took: std::time::Duration, ok: bool) {
        self.store_commit.observe(took.as_secs_f64());
        if !ok {
            self.store_failures.inc();
        }
    }

    /// Records the approximate propagation delay of a peer's service
    /// change received at `now_ms` (wall clock): now minus the record's
    /// clock time, 0 if that is ahead of ours.
    pub(crate) fn arrived(&self, msg: &rarangi_proto::Message, now_ms: u64) {
        use rarangi_proto::Message::{AddServ, DelServ};
        if let AddServ { ts, .. } | DelServ { ts, .. } = msg {
            let ms = now_ms.saturating_sub(ts.millis());
            self.propagation.observe(ms as f64 / 1000.0);
        }
    }

    /// Counts a DNS query by type (the usual ones by name, the rest as
    /// "other": a client picks the type, and must not pick the number of
    /// series) and response code.
    pub(crate) fn dns_query(&self, qtype: Option<&str>, rcode: &'static str) {
        let qtype = match qtype {
            Some(t) => ["A", "AAAA", "SRV", "ANY", "SOA", "NS", "TXT", "PTR", "CNAME"]
                .into_iter()
                .find(|k| *k == t)
                .unwrap_or("other"),
            None => "none",
        };
        self.dns_queries
            .get_or_create(&[("type", qtype), ("rcode", rcode)])
            .inc();
    }

    /// Counts a webhook delivery and whether it failed.
    pub(crate) fn webhook(&self, ok: bool) {
        self.webhook_deliveries.inc();
        if !ok {
            self.webhook_failures.inc();
        }
    }

    /// Counts a connection dropped for not reading its queue.
    pub(crate) fn dropped(&self, who: &'static str) {
        self.drops.get_or_create(&[("who", who)]).inc();
    }

    /// Counts a health probe's result ("passing", "critical").
    pub(crate) fn probed(&self, ok: bool) {
        let result = if ok { "passing" } else { "critical" };
        self.health_probes.get_or_create(&[("result", result)]).inc();
    }
}

/// The exposition (OpenMetrics text, which Prometheus reads) of every
/// metric, with the gauges computed from `view` now.
pub(crate) fn render(view: Arc<View>) -> String {
    let m = metrics();
    // Shown at 0 before the first drop (a family with no series is not).
    for who in ["client", "peer"] {
        drop(m.drops.get_or_create(&[("who", who)]));
    }
    let mut r = Registry::default();
    r.register(
        "rarangi_lines_received",
        "Lines read from clients and peers, by message kind",
        m.received.lines_family.clone(),
    );
    // Bytes read are not counted: the codec yields messages, not lengths.
    r.register(
        "rarangi_lines_sent",
        "Lines written to clients and peers, by message kind",
        m.sent.lines_family.clone(),
    );
    r.register(
        "rarangi_sent_bytes",
        "Bytes of lines written to clients and peers, by message kind",
        m.sent.bytes_family.clone(),
    );
    r.register(
        "rarangi_link_flaps",
        "Links to peer catalogues that went down",
        m.link_flaps.clone(),
    );
    r.register(
        "rarangi_clients",
        "Client connections open (line protocol)",
        m.clients.clone(),
    );
    r.register(
        "rarangi_send_queue_bytes",
        "Bytes queued for writing on all connections",
        m.send_queue_bytes.clone(),
    );
    r.register(
        "rarangi_slow_drops",
        "Connections dropped for not reading what they are sent, by who (client, peer)",
        m.drops.clone(),
    );
    r.register(
        "rarangi_refused",
        "Requests refused, by reason (the 2 CODE reason, or the HTTP cause) and status (HTTP status family, or line)",
        m.refused.clone(),
    );
    r.register(
        "rarangi_propagation_delay_seconds",
        "Approximate delay from a change at its catalogue to its arrival here (now minus the record's clock time; clocks are not synchronised, so skew adds to it and negative values count as 0)",
        m.propagation.clone(),
    );
    r.register(
        "rarangi_store_commit_seconds",
        "Time to commit a batch to the store",
        m.store_commit.clone(),
    );
    r.register(
        "rarangi_store_failures",
        "Store commits that failed",
        m.store_failures.clone(),
    );
    r.register(
        "rarangi_webhook_deliveries",
        "Webhook deliveries attempted",
        m.webhook_deliveries.clone(),
    );
    r.register(
        "rarangi_webhook_failures",
        "Webhook deliveries that failed",
        m.webhook_failures.clone(),
    );
    r.register(
        "rarangi_dns_queries",
        "DNS queries answered, by query type and response code",
        m.dns_queries.clone(),
    );
    r.register(
        "rarangi_health_probes",
        "Health probes run, by result",
        m.health_probes.clone(),
    );
    r.register_collector(Box::new(ViewGauges(view)));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &r);
    out
}

/// Gauges read from the published view at scrape time.
#[derive(Debug)]
struct ViewGauges(Arc<View>);

impl ViewGauges {
    fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> std::fmt::Result {
        let g = ConstGauge::new(value);
        g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
    }
}

/// A count as a gauge value.
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Collector for ViewGauges {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let view = &self.0;
        let t = &*view.topology;
        let total = view.service_count();
        let local = view.local_count(&t.me);
        Self::gauge(
            &mut e,
            "rarangi_services",
            "Visible service instances",
            count(total),
        )?;
        Self::gauge(
            &mut e,
            "rarangi_services_local",
            "Visible service instances registered at this catalogue",
            count(local),
        )?;
        Self::gauge(
            &mut e,
            "rarangi_catalogues_known",
            "Catalogues known (this one included)",
            count(t.catalogues.len()),
        )?;
        Self::gauge(
            &mut e,
            "rarangi_catalogues_reachable",
            "Catalogues reachable from this one (this one included)",
            count(t.reachable.len()),
        )?;
        Self::gauge(
            &mut e,
            "rarangi_links_up",
            "Links up between catalogues, as known here",
            count(t.links.len()),
        )?;
        Self::gauge(
            &mut e,
            "rarangi_is_leader",
            "1 when this catalogue is the leader of its reachable set",
            i64::from(t.leader == t.me),
        )?;
        let g = ConstGauge::new(1i64);
        let mut family = e.encode_descriptor(
            "rarangi_leader",
            "The leader this catalogue sees (value 1, labelled by its URI)",
            None,
            g.metric_type(),
        )?;
        g.encode(family.encode_family(&[("catalogue", t.leader.as_str())])?)?;
        Self::gauge(
            &mut e,
            "rarangi_alarms",
            "Alarms raised (e.g. the store's)",
            count(view.alarms.len()),
        )
    }
}
