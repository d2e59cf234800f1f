//! The Rarangi client library: what services and clients link against.
//!
//! - [`Connection`]: one line-protocol connection to a catalogue, found with
//!   no configuration (the environment's side A, then side B, on this host)
//!   or at a given address or Unix socket; a WELCOME from another
//!   environment is refused with [`Error::EnvMismatch`] and not retried.
//! - [`register`]: keeps a service registered while the returned
//!   [`Registration`] lives, reconnecting (and failing over between sides)
//!   when the catalogue goes away. Dropping it deregisters.
//! - [`subscribe`]: a stream of [`Event`]s for a regular expression that
//!   stays equal to the catalogue's view across reconnects;
//!   [`Subscription::connected`] tells when it has lost its catalogue (its
//!   view may be stale) and when it is back, as
//!   [`Registration::watch_catalogue`] does for a registration.
//! - [`Check`]: a watchdog check declared with a registration (the
//!   catalogue probes the service and withdraws it while it fails).
//! - [`Instance::to_json`]: the instance model (docs/MODEL.md) of a
//!   received instance.
//! - [`Resolver`]: a live cache answering `resolve(name)` in locality order.
//!
//! - [`TlsOptions`]: TLS to TCP endpoints (CA, and a certificate to
//!   register), from `RARANGI_TLS_*` by default.
//!
//! This crate does not depend on the server.

#![forbid(unsafe_code)]

mod check;
mod connection;
mod model;
mod registration;
mod resolver;
mod subscription;
mod tls;

pub use check::Check;
pub use connection::{Connection, Endpoint, Error, Options};
pub use registration::{register, Registration};
pub use resolver::{order_by_locality, Resolver};
pub use subscription::{lookup, subscribe, Event, Instance, Subscription};
pub use tls::{TlsClient, TlsOptions};

pub use rarangi_proto::{Attrs, CatalogueUri, ServiceUri};

/// Reconnects and re-registrations: quick at first (a catalogue restarting
/// on this host is back within a second), never more than 5 s apart.
fn reconnect_backoff() -> rarangi_proto::Backoff {
    rarangi_proto::Backoff::new(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(5),
    )
}
