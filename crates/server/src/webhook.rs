//! Webhook delivery (Nesoi). The core decides which hook fires, when, and
//! with what (`rarangi_core::Output::Webhook`, on the leader only, retried
//! with back-off); the driver hands each delivery to [`post`] off its task
//! and reports the result back (`Catalogue::webhook_done`). A marker is
//! written only after a 2xx, so delivery is at least once.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Splits `http://host:port/path` into address and path.
pub(crate) fn parse_http_endpoint(endpoint: &str) -> Option<(String, String)> {
    let rest = endpoint.strip_prefix("http://")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if hostport.is_empty() || hostport.contains(['@', ' ']) {
        return None;
    }
    let addr = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_owned()
    } else {
        format!("{hostport}:80")
    };
    Some((addr, path.to_owned()))
}

/// POSTs a JSON body with a 3 s deadline; true on a 2xx answer.
pub(crate) async fn post(endpoint: &str, body: &str) -> bool {
    let Some((addr, path)) = parse_http_endpoint(endpoint) else {
        return false;
    };
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(&addr).await.ok()?;
        let host = addr.clone();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: rarangi\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.ok()?;
        let status = std::str::from_utf8(&head[9..12]).ok()?.parse::<u16>().ok()?;
        Some((200..300).contains(&status))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), attempt).await,
        Ok(Some(true))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_http_endpoint("http://127.0.0.1:9/x/y"),
            Some(("127.0.0.1:9".into(), "/x/y".into()))
        );
        assert_eq!(parse_http_endpoint("http://h"), Some(("h:80".into(), "/".into())));
        assert_eq!(parse_http_endpoint("https://h/"), None);
    }
}
