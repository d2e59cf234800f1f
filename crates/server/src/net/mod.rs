//! The network edge of the line protocol: listeners (TCP, Unix socket),
//! connections (reader and writer tasks, send queues bounded in lines and
//! bytes), connection caps with a descriptor reserve, and the dialer.
//! TLS will wrap the streams here (`tls.rs`) before `connection` sees them.

mod connection;
mod dialer;
mod limits;
mod listener;
mod queue;

use std::net::SocketAddr;

pub(crate) use dialer::dial_loop;
pub(crate) use limits::{raise_nofile, Gate, Refusal};
pub(crate) use listener::{accept_loop, bind_unix, AcceptErrors, Listener};
pub(crate) use queue::Handle;

/// Where a connection came from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin {
    /// The Unix socket.
    Unix,
    /// A TCP peer address.
    Tcp(SocketAddr),
}
