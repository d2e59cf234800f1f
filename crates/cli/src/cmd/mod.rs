//! The client subcommands that grew beyond a few lines, one file each.

pub(crate) mod config;
pub(crate) mod http;
pub(crate) mod select;
pub(crate) mod topology;
pub(crate) mod watch;
