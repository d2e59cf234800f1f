//! Connections and memory, against real catalogue processes: connection
//! caps and the descriptor reserve, handshake and HTTP header timeouts,
//! and readers that never read (a client re-sending SUB_SERV, a "peer"
//! asking for everything) dropped while memory stays bounded.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::http::*;
use common::*;
use rarangi_client::{Connection, Endpoint, Options};
use rarangi_proto::{Message, ServiceUri};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// The address the crowd of idle connections comes from.
const CROWD: &str = "127.0.0.9";

/// A catalogue with extra `serve` arguments.
fn cat_with(args: &[&str]) -> Cat {
    Cat::options("development").bin(BIN).args(args).start().unwrap()
}

/// A TCP connection to `to` from `from` (a loopback address).
async fn connect_from(from: &str, to: &str) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(format!("{from}:0").parse::<SocketAddr>().unwrap())?;
    sock.connect(to.parse().unwrap()).await
}

/// The next line, or None once the connection is closed.
async fn next_line<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Option<String> {
    let mut l = String::new();
    let read = tokio::time::timeout(DEADLINE, r.read_line(&mut l))
        .await
        .expect("neither a line nor a close within the deadline");
    match read {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(l.trim_end().to_owned()),
    }
}

/// Opens a line-protocol connection from `from` and sends a HEARTBEAT as
/// its first line: Ok with the open connection once answered, Err with
/// what the catalogue said instead (a refusal).
async fn client_from(from: &str, to: &str) -> Result<BufReader<TcpStream>, String> {
    let s = connect_from(from, to).await.map_err(|e| e.to_string())?;
    let mut s = BufReader::new(s);
    let first = next_line(&mut s).await.unwrap_or_default();
    if !first.starts_with("0 ") {
        return Err(first);
    }
    let _ = s.get_mut().write_all(b"1\n").await;
    match next_line(&mut s).await {
        Some(l) if l == "1" => Ok(s),
        other => Err(other.unwrap_or_default()),
    }
}

/// Waits until the catalogue closes `s` (reading and discarding).
async fn closed(s: &mut TcpStream, what: &str) {
    let mut buf = vec![0; 64 * 1024];
    let deadline = Deadline::default();
    loop {
        match tokio::time::timeout(deadline.remaining(), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => {}
            Err(_) => panic!("{what}: still open after the deadline"),
        }
    }
}

/// A connection to `cat` holding a registration of `service`.
async fn hold(cat: &Cat, service: &str) -> Connection {
    let mut conn = Connection::connect(&cat.opts()).await.unwrap();
    conn.send(&Message::RegServ {
        service: ServiceUri::parse(service).unwrap(),
        attrs: Default::default(),
    })
    .await
    .unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_descriptor_limited_catalogue_under_a_crowd_still_links_answers_and_serves_its_socket() {
    if !rarangi_harness::has_prlimit() {
        eprintln!("skipped: prlimit (util-linux) is not available to limit the catalogue's descriptors");
        return;
    }
    // B is started later: A dials it from its reserve of descriptors.
    let b_addr = fresh_addr();
    let a = Cat::options("development")
        .bin(BIN)
        .nofile(512)
        .peers([&b_addr])
        // Under the total cap (512 less the reserve), so lookups from other
        // addresses still get in; far more than the crowd alone could hold
        // without a cap on descriptors.
        .args(["--max-connections-per-ip", "400"])
        .start()
        .unwrap();
    let _a_svc = hold(&a, "tcp://10.0.0.1:80/orders").await;
    eventually_lookup(&a, "orders", &["tcp://10.0.0.1:80/orders"]).await;

    // 600 idle connections from one address: some are refused, none is
    // allowed to take the descriptors the rest of the catalogue needs.
    let mut crowd = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..600 {
        match client_from(CROWD, &a.addr).await {
            Ok(s) => crowd.push(s),
            Err(why) => refused.push(why),
        }
    }
    assert_eq!(crowd.len(), 400, "refused: {:?}", refused.first());
    assert!(refused[0].starts_with("2 limit "), "{:?}", refused[0]);

    // A new peer links (A dials it), and one that dials A links too.
    let b = cat_at(&b_addr, "development", "c1", &[]);
    let c = cat("development", "c1", &[&a.addr]);
    let _b_svc = hold(&b, "tcp://10.0.0.2:80/orders").await;
    let _c_svc = hold(&c, "tcp://10.0.0.3:80/orders").await;
    let all = [
        "tcp://10.0.0.1:80/orders",
        "tcp://10.0.0.2:80/orders",
        "tcp://10.0.0.3:80/orders",
    ];
    // Lookups over TCP and HTTP from other addresses, and on the Unix socket.
    eventually_lookup(&a, "orders", &all).await;
    eventually_json(&a.http, "/srv/orders", "HTTP lookup at A", |s, v| {
        s == 200 && v.to_string().contains("10.0.0.3")
    })
    .await;
    let unix = Options::endpoints("development", vec![Endpoint::Unix(a.unix_socket())]);
    let got = lookup(&unix, "orders").await.unwrap();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(!a.log().contains("panicked"), "{}", a.log());
    drop(crowd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_over_the_per_address_cap_is_refused_and_other_addresses_get_in() {
    let a = cat_with(&["--max-connections-per-ip", "64"]);
    let mut held = Vec::new();
    for i in 0..64 {
        let s = client_from(CROWD, &a.addr)
            .await
            .unwrap_or_else(|e| panic!("connection {i} refused: {e}"));
        held.push(s);
    }
    let refused = client_from(CROWD, &a.addr)
        .await
        .expect_err("the 65th is refused");
    assert!(
        refused.starts_with("2 limit ") && refused.contains("64 per address"),
        "{refused}"
    );
    // HTTP from the same address counts against the same cap.
    let mut h = connect_from(CROWD, &a.http).await.unwrap();
    h.write_all(b"GET /srv HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    let _ = h.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
    // Another address is not affected.
    client_from("127.0.0.1", &a.addr).await.unwrap();
    assert_eq!(get_json(&a.http, "/srv").await.0, 200);
    // A place freed is a place for the next one.
    held.pop();
    let deadline = Deadline::default();
    while client_from(CROWD, &a.addr).await.is_err() {
        deadline.retry(|| "a freed place was not reusable").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_sends_its_first_line_is_closed() {
    let a = cat_with(&["--handshake-timeout-ms", "300"]);
    let talker = client_from("127.0.0.1", &a.addr).await.unwrap();
    let mut silent = BufReader::new(TcpStream::connect(&a.addr).await.unwrap());
    assert!(next_line(&mut silent).await.unwrap().starts_with("0 "));
    let said = next_line(&mut silent).await;
    assert!(
        said.as_deref()
            .is_some_and(|l| l.starts_with("2 limit no first line")),
        "{said:?}"
    );
    closed(silent.get_mut(), "the silent connection").await;
    // One that spoke in time is a client and stays.
    let mut talker = talker;
    talker.get_mut().write_all(b"1\n").await.unwrap();
    assert_eq!(next_line(&mut talker).await.as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_idle_http_connections_are_closed() {
    let a = cat_with(&["--http-header-timeout-ms", "300"]);
    // Headers never finished.
    let mut slow = TcpStream::connect(&a.http).await.unwrap();
    slow.write_all(b"GET /srv HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .await
        .unwrap();
    closed(&mut slow, "the slowloris connection").await;
    // A keep-alive connection is answered, then closed once idle.
    let mut idle = TcpStream::connect(&a.http).await.unwrap();
    idle.write_all(b"GET /srv HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, idle.read_to_end(&mut answer))
        .await
        .expect("the idle keep-alive connection was not closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    // Complete requests are still served.
    assert_eq!(get_json(&a.http, "/srv").await.0, 200);
}

/// Registers `n` services with long names at `cat` over several
/// connections (kept open: the services live as long as they do).
async fn many_services(cat: &Cat, n: usize) -> Vec<Connection> {
    let pad = "p".repeat(200);
    let mut conns = Vec::new();
    for c in 0..n.div_ceil(1000) {
        let mut conn = Connection::connect(&cat.opts()).await.unwrap();
        for i in (c * 1000)..((c + 1) * 1000).min(n) {
            let uri = format!("tcp://10.{}.{}.{}:80/bulk{pad}{i}", c, (i / 250) % 4, i % 250);
            conn.send(&Message::RegServ {
                service: ServiceUri::parse(&uri).unwrap(),
                attrs: Default::default(),
            })
            .await
            .unwrap();
        }
        conns.push(conn);
    }
    let deadline = Deadline::default();
    loop {
        let got = lookup(&cat.opts(), "bulk").await.unwrap().len();
        if got == n {
            return conns;
        }
        deadline
            .retry(|| format!("{got} of {n} services registered"))
            .await;
    }
}

/// A socket to `addr` with a small receive buffer that the test never reads.
async fn non_reader(addr: &str) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(addr.parse().unwrap()).await.unwrap()
}

/// Keeps writing `line` to `s` (every `pause`) until the catalogue drops
/// the connection (a write fails), sampling `cat`'s resident memory;
/// returns the largest sample in KiB.
async fn write_until_dropped(cat: &Cat, s: &mut TcpStream, line: &[u8], pause: Duration) -> u64 {
    let deadline = Deadline::default();
    let mut peak = 0;
    loop {
        peak = peak.max(cat.rss_kib().unwrap_or(0));
        let wrote = tokio::time::timeout(Duration::from_secs(1), s.write_all(line)).await;
        if matches!(wrote, Ok(Err(_))) {
            eprintln!("dropped; peak {peak} KiB");
            return peak;
        }
        if deadline.passed() {
            panic!("never dropped; peak {peak} KiB\n{}", cat.log());
        }
        tokio::time::sleep(pause).await;
    }
}

/// Resident memory a catalogue with 20,000 services stays under while
/// readers that never read are attacking it (it was 4 GiB).
const RSS_BOUND_KIB: u64 = 400 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_that_never_read_are_dropped_and_memory_stays_bounded() {
    let a = cat("development", "c1", &[]);
    let _services = many_services(&a, 20_000).await;
    let before = a.rss_kib().unwrap();

    // A client re-sending SUB_SERV for everything and never reading.
    let mut sub = non_reader(&a.addr).await;
    let peak = write_until_dropped(&a, &mut sub, &b"8 .\n".repeat(64), Duration::from_millis(5)).await;
    assert!(peak < RSS_BOUND_KIB, "peak {peak} KiB (before: {before} KiB)");
    // Lookups by others still work.
    let got = lookup(&a.opts(), "bulk.*19999$").await.unwrap();
    assert_eq!(got.len(), 1);

    // A "peer" that asks for everything (SYNC over the whole range) and
    // never reads: a peer that does not read is a dead peer.
    let mut peer = non_reader(&a.addr).await;
    peer.write_all(b"0 x-tvnetcs://127.0.0.1:1/ c1 development\n16 - - 0 0\n")
        .await
        .unwrap();
    let peak = write_until_dropped(&a, &mut peer, b"1\n", Duration::from_millis(100)).await;
    assert!(peak < RSS_BOUND_KIB, "peak {peak} KiB (before: {before} KiB)");
    eventually("the dropped peer's link is down", || {
        a.log().contains("peer is not reading")
    })
    .await;
    let got = lookup(&a.opts(), "bulk.*19999$").await.unwrap();
    assert_eq!(got.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_memory_limit_new_subscriptions_and_registrations_are_refused() {
    let a = cat_with(&["--memory-limit", "1MiB"]);
    eventually("the memory guard engaged", || {
        a.log().contains("memory guard engaged")
    })
    .await;
    let answer = exchange(&a.addr, b"8 orders\n7 tcp://10.0.0.1:80/orders\n").await;
    assert_eq!(answer.lines.len(), 2, "{answer:?}");
    assert!(
        answer.lines.iter().all(|l| l.starts_with("2 limit ")),
        "{answer:?}"
    );
    // HTTP registrations obey the same guard: 503 naming the limit.
    let body = serde_json::json!({"endpoints": ["tcp://10.0.0.1:80"]});
    let (status, _, text) = http(
        &a.http,
        "PUT",
        "/srv/orders/h1",
        Some(body.to_string().as_bytes()),
    )
    .await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("--memory-limit"), "{text}");
    // Reads still work.
    assert_eq!(get_json(&a.http, "/srv").await.0, 200);
}
