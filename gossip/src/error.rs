//! The crate's one error type. Messages are lowercase and say what to do about the problem.

use std::net::SocketAddr;

/// Everything that can go wrong when starting gossip or updating the local node's state.
///
/// Problems with *received* datagrams are never errors: they are dropped and counted (see
/// [`crate::DropReason`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GossipError {
    #[error("invalid gossip config: {}", .0.join("; "))]
    InvalidConfig(Vec<String>),

    #[error("cannot bind the gossip socket on {addr}/udp: {source} (is another process using the gossip port?)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot open a loopback socket for the gossip transport: {0} (is 127.0.0.1 configured?)")]
    Loopback(#[source] std::io::Error),

    #[error("gossip key must be 32 bytes, got {0}")]
    KeyLength(usize),

    #[error("gossip key material is invalid: {0}")]
    Key(&'static str),

    #[error("endpoint health entry rejected: {0}")]
    InvalidEndpoint(String),

    #[error("zone load map rejected: {0}")]
    InvalidZoneLoad(String),

    #[error("too many endpoint health entries ({limit} per node): remove stale entries first")]
    TooManyEndpoints { limit: usize },

    #[error("chitchat failed: {0}")]
    Chitchat(String),

    #[error("gossip has been shut down")]
    ShutDown,
}

impl GossipError {
    pub(crate) fn chitchat(err: impl std::fmt::Display) -> Self {
        Self::Chitchat(err.to_string())
    }
}
