//! The network edge of the line protocol: listeners (TCP, Unix socket),
//! connections (reader and writer tasks, send queues) and the dialer.
//! TLS will wrap the streams here (`tls.rs`) before `connection` sees them.

mod connection;
mod dialer;
mod listener;

use std::net::SocketAddr;

pub(crate) use connection::Handle;
pub(crate) use dialer::dial_loop;
pub(crate) use listener::{accept_loop, bind_unix, Listener};

/// Where a connection came from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin {
    /// The Unix socket.
    Unix,
    /// A TCP peer address.
    Tcp(SocketAddr),
}
