//! The DNS server (docs/OPERATIONS.md "DNS"): `NAME.service.rarangi.` A,
//! AAAA and SRV from the published view, over UDP and TCP.
//!
//! hickory-server parses requests ([`Request`]), frames and truncates
//! responses ([`MessageResponseBuilder`]); [`Handler`] is its
//! [`RequestHandler`] over the view. The sockets are ours, not
//! hickory's `Server`: it spawns a task per UDP datagram and has no cap
//! on TCP connections, where here a fixed set of UDP workers answers in
//! turn and TCP connections are capped ([`MAX_TCP_CONNECTIONS`]) and
//! closed when idle ([`TCP_IDLE`]).

mod answer;
mod names;
mod sample;

pub use sample::answer_for_fuzzing;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_server::net::runtime::{Time, TokioTime};
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Name, Record};
use hickory_server::proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::driver::view::View;
use crate::settings::DnsSettings;
use answer::Zone;

/// TCP connections served at once; more are closed as they arrive.
pub const MAX_TCP_CONNECTIONS: usize = 256;
/// A TCP connection that sends no complete request for this long is
/// closed (writing an answer is bounded by the same time).
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// Tasks answering UDP datagrams, each one at a time.
const UDP_WORKERS: usize = 2;
/// Largest UDP request read; longer datagrams arrive cut and get FORMERR.
const UDP_REQUEST_MAX: usize = 4096;

/// The request handler: answers from the latest published view.
pub(crate) struct Handler {
    view: watch::Receiver<Arc<View>>,
    zone: Zone,
}

impl Handler {
    /// A handler over `view` for this catalogue.
    pub(crate) fn new(
        view: watch::Receiver<Arc<View>>,
        dns: &DnsSettings,
        here: rarangi_proto::CatalogueUri,
        cluster: &str,
    ) -> Self {
        let domains = std::iter::once(&dns.domain)
            .chain(&dns.alt_domain)
            .filter_map(|d| Name::from_ascii(d).ok())
            .map(|d| d.to_lowercase())
            .collect();
        Self {
            view,
            zone: Zone {
                domains,
                ttl: dns.ttl,
                here,
                cluster: cluster.into(),
            },
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        // Answer in the client's EDNS size (at least 512) when it sent EDNS.
        let edns = request.edns.as_ref().map(|_| {
            let mut e = Edns::new();
            e.set_max_payload(request.max_payload());
            e
        });
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let view = self.view.borrow().clone();
        let reply = match request.request_info() {
            _ if request.metadata.op_code != OpCode::Query => Err(ResponseCode::NotImp),
            Err(_) => Err(ResponseCode::FormErr),
            Ok(info) if !matches!(info.query.query_class(), DNSClass::IN | DNSClass::ANY) => {
                Err(ResponseCode::Refused)
            }
            Ok(info) => Ok(self
                .zone
                .answer(&view, &Name::from(info.query.name()), info.query.query_type())),
        };
        let sent = match reply {
            Err(code) => {
                metadata.authoritative = false;
                metadata.response_code = code;
                response.send_response(builder.build_no_records(metadata)).await
            }
            Ok(reply) => {
                metadata.response_code = reply.code;
                metadata.authoritative = reply.code != ResponseCode::Refused;
                let none: [&Record; 0] = [];
                let msg = builder.build(metadata, &reply.answers, none, &reply.soa, &reply.additionals);
                response.send_response(msg).await
            }
        };
        let qtype = request
            .request_info()
            .ok()
            .map(|i| i.query.query_type().to_string());
        crate::metrics::metrics().dns_query(qtype.as_deref(), metadata.response_code.to_str());
        sent.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "DNS answer not sent");
            metadata.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            })
        })
    }
}

/// A response handler that keeps the encoded answer, truncated (TC set)
/// to the client's size over UDP: 512 bytes, or its EDNS size.
#[derive(Clone)]
struct Capture {
    protocol: Protocol,
    out: Arc<Mutex<Vec<u8>>>,
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let max = match self.protocol {
            Protocol::Udp => response.edns().map_or(512, |e| e.max_payload().max(512)),
            _ => u16::MAX,
        };
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        let info = response.destructive_emit(&mut encoder)?;
        *self.out.lock().unwrap_or_else(|p| p.into_inner()) = bytes;
        Ok(info)
    }
}

/// The answer to one request packet; None when it gets none (shorter
/// than a header, or a response: answering those would reflect).
pub(crate) async fn answer(
    handler: &Handler,
    packet: &[u8],
    src: SocketAddr,
    protocol: Protocol,
) -> Option<Vec<u8>> {
    let header = Header::read(&mut BinDecoder::new(packet)).ok()?;
    if header.metadata.message_type == MessageType::Response {
        return None;
    }
    let Ok(request) = Request::from_bytes(packet.to_vec(), src, protocol) else {
        let mut metadata = Metadata::response_from_request(&header.metadata);
        metadata.response_code = ResponseCode::FormErr;
        let mut bytes = Vec::with_capacity(12);
        Header {
            metadata,
            counts: HeaderCounts::default(),
        }
        .emit(&mut BinEncoder::new(&mut bytes))
        .ok()?;
        return Some(bytes);
    };
    let capture = Capture {
        protocol,
        out: Arc::default(),
    };
    handler
        .handle_request::<_, TokioTime>(&request, capture.clone())
        .await;
    let bytes = std::mem::take(&mut *capture.out.lock().unwrap_or_else(|p| p.into_inner()));
    (!bytes.is_empty()).then_some(bytes)
}

/// The DNS sockets, bound before the catalogue starts serving.
pub(crate) struct Sockets {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl Sockets {
    /// Binds UDP and TCP on `addr`.
    pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let tcp = TcpListener::bind(addr).await?;
        // Port 0 picks one: UDP takes the same.
        let udp = UdpSocket::bind(tcp.local_addr()?).await?;
        Ok(Self { udp, tcp })
    }
}

/// Serves DNS until `stop`.
pub(crate) async fn serve(sockets: Sockets, handler: Handler, stop: CancellationToken) {
    let handler = Arc::new(handler);
    let udp = Arc::new(sockets.udp);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..UDP_WORKERS {
        tasks.spawn(udp_worker(udp.clone(), handler.clone(), stop.clone()));
    }
    tasks.spawn(tcp_accept(sockets.tcp, handler, stop.clone()));
    stop.cancelled().await;
    tasks.shutdown().await;
}

async fn udp_worker(socket: Arc<UdpSocket>, handler: Arc<Handler>, stop: CancellationToken) {
    let mut buf = vec![0u8; UDP_REQUEST_MAX];
    loop {
        let got = tokio::select! {
            _ = stop.cancelled() => return,
            got = socket.recv_from(&mut buf) => got,
        };
        let Ok((n, src)) = got else {
            // ICMP errors from earlier sends surface here; keep serving.
            continue;
        };
        if src.port() == 0 {
            continue;
        }
        if let Some(out) = answer(&handler, &buf[..n], src, Protocol::Udp).await {
            let _ = socket.send_to(&out, src).await;
        }
    }
}

async fn tcp_accept(listener: TcpListener, handler: Arc<Handler>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, src)) = accepted else {
            // Out of descriptors, say: let some close before retrying.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%src, "DNS over TCP: too many connections; closing one");
            continue;
        };
        let handler = handler.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tcp_connection(stream, src, &handler) => {}
            }
            drop(slot);
        });
    }
}

/// Length-prefixed requests and answers (RFC 1035 4.2.2) until the client
/// closes, idles or sends what gets no answer.
async fn tcp_connection(mut stream: TcpStream, src: SocketAddr, handler: &Handler) {
    loop {
        let mut len = [0u8; 2];
        if !matches!(
            tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let mut packet = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if !matches!(
            tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut packet)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let Some(out) = answer(handler, &packet, src, Protocol::Tcp).await else {
            return;
        };
        // The encoder stops at u16::MAX bytes.
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(&out);
        if !matches!(
            tokio::time::timeout(TCP_IDLE, stream.write_all(&framed)).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
