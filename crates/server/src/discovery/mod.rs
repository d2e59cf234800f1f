//! Peer discovery: sources that yield candidate catalogue addresses for the dialer.

#[cfg(feature = "k8s")]
pub(crate) mod k8s;
