//! `check=http://HOST:PORT/PATH`: the instance is healthy when a GET is
//! answered with a 2xx. Redirects are not followed (a 3xx fails) and the
//! body is never read: only the status line and headers, which hyper
//! bounds, are.

use hyper::http::{header, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Whether a GET of `url` is answered with a 2xx.
pub(super) async fn answers_2xx(url: &str) -> bool {
    match get(url).await {
        Ok(status) => {
            if !status.is_success() {
                tracing::debug!(url, %status, "HTTP probe answered without success");
            }
            status.is_success()
        }
        Err(e) => {
            tracing::debug!(url, error = e, "HTTP probe failed");
            false
        }
    }
}

async fn get(url: &str) -> Result<hyper::StatusCode, String> {
    let uri: Uri = url.parse().map_err(|e| format!("not a valid URL: {e}"))?;
    let authority = uri.authority().ok_or("no host")?.clone();
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = Request::get(path)
        .header(header::HOST, authority.as_str())
        .header(header::USER_AGENT, "rarangi-watchdog")
        .header(header::CONNECTION, "close")
        .body(String::new())
        .map_err(|e| e.to_string())?;
    // The connection is driven here, not spawned, so the caller's timeout
    // drops it; the response's body is dropped unread.
    let mut answer = std::pin::pin!(sender.send_request(req));
    let response = tokio::select! {
        r = &mut answer => r,
        _ = conn => answer.await,
    };
    Ok(response.map_err(|e| e.to_string())?.status())
}
