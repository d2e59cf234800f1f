//! `check=tcp`: the instance is healthy when a TCP connection to its
//! host:port is accepted (seed 003's watchdog).

use tokio::net::TcpStream;

/// Whether `addr` (host:port) accepts a connection; it is closed at once.
pub(super) async fn connects(addr: &str) -> bool {
    match TcpStream::connect(addr).await {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!(addr, error = %e, "TCP probe failed");
            false
        }
    }
}
