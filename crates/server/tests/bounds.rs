//! A catalogue in this process: durations from input are bounded (400
//! beyond the bound, and the driver survives), and reads see writes at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rarangi_server::{serve, CancellationToken, ServeArgs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request; the status code and the body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut text = String::new();
    s.read_to_string(&mut text).await?;
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_durations_are_bounded_and_reads_see_writes() {
    let dir: PathBuf = std::env::temp_dir().join(format!("rarangi-bounds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let http_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let settings = ServeArgs {
        env: Some("testing".into()),
        listen: Some(format!("127.0.0.1:{}", free_port())),
        http: Some(http_addr.to_string()),
        data_dir: Some(dir.join("data")),
        unix: Some(dir.join("s.sock")),
        ..ServeArgs::default()
    }
    .resolve()
    .unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve(settings, stop.clone()));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while http(http_addr, "GET", "/srv", "").await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the HTTP API never answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (status, body) = http(
        http_addr,
        "PUT",
        "/srv/web/node1",
        r#"{"endpoints":[],"ttl":18446744073709551}"#,
    )
    .await
    .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("86400"), "the answer names the bound: {body}");
    let (status, body) = http(http_addr, "GET", "/app?index=0&wait=11m", "").await.unwrap();
    assert_eq!(status, 400, "{body}");

    // The driver is alive, and a write is visible to the next read.
    let (status, _) = http(
        http_addr,
        "PUT",
        "/srv/web/node1",
        r#"{"endpoints":[],"ttl":86400}"#,
    )
    .await
    .unwrap();
    assert_eq!(status, 201);
    let (status, body) = http(http_addr, "GET", "/srv/web/node1", "").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, _) = http(http_addr, "PUT", "/srv/web/node1", r#"{"endpoints":[],"ttl":60}"#)
        .await
        .unwrap();
    assert_eq!(status, 200, "a refresh is not a creation");
    let (status, _) = http(http_addr, "PUT", "/app/db", r#"{"config":{"a":1}}"#)
        .await
        .unwrap();
    assert_eq!(status, 201);
    let (status, body) = http(http_addr, "GET", "/app/db", "").await.unwrap();
    assert_eq!((status, body.contains("\"a\":1")), (200, true), "{body}");

    stop.cancel();
    server.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
