//! The network edge of the line protocol: listeners (TCP, Unix socket),
//! connections (reader and writer tasks, send queues bounded in lines and
//! bytes), connection caps with a descriptor reserve, and the dialer.
//! TLS wraps the TCP streams here (`tls.rs`) before `connection` sees them.

mod connection;
mod dialer;
mod limits;
mod listener;
mod queue;
mod tls;

use std::net::SocketAddr;

pub(crate) use dialer::dial_loop;
#[cfg(feature = "k8s")]
pub(crate) use dialer::dial_until;
pub(crate) use limits::{raise_nofile, Gate, Refusal};
pub(crate) use listener::{accept_loop, bind_unix, AcceptErrors, Listener};
pub(crate) use queue::Handle;
pub(crate) use tls::Tls;
pub use tls::TlsError;

/// Where a connection came from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin {
    /// The Unix socket.
    Unix,
    /// A TCP peer address.
    Tcp(SocketAddr),
}

/// What the transport tells about who is at the other end.
#[derive(Debug, Clone)]
pub(crate) enum Credentials {
    /// Plain TCP: only the address.
    Plain,
    /// TLS: the client certificate, verified against the CA, if one was
    /// presented.
    Tls(Option<rustls::pki_types::CertificateDer<'static>>),
    /// The Unix socket: the connecting process's user and group, if the
    /// kernel told them.
    Local(Option<(u32, u32)>),
}
