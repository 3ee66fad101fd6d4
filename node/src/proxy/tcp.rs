//! Layer-4 forwarding: a tcp listener's connection is spliced to an endpoint of its service
//! (trying other endpoints when a connect fails), and upgraded HTTP connections (WebSocket)
//! are spliced the same way once both sides have switched protocols.

use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::listener::ConnectionSlot;
use crate::lb::hash64;
use crate::upstream::{Outcome, PickRequest, ServiceRuntime};

/// Connect attempts per client connection, each to a different endpoint.
const MAX_CONNECT_ATTEMPTS: usize = 3;

pub async fn forward_tcp(mut client: TcpStream, service: Arc<ServiceRuntime>, listener: Arc<str>) {
    let peer = client.peer_addr().ok();
    let connect_timeout = service.connect_timeout();
    // ring_hash on a TCP listener can only hash what L4 has: the client's address.
    let hash_key = peer.map(|p| match p.ip() {
        std::net::IpAddr::V4(ip) => hash64(&ip.octets()),
        std::net::IpAddr::V6(ip) => hash64(&ip.octets()),
    });
    let mut tried = Vec::with_capacity(MAX_CONNECT_ATTEMPTS);
    for _ in 0..MAX_CONNECT_ATTEMPTS {
        let Some(endpoint) = service.pick(&PickRequest { exclude: &tried, hash_key, ..PickRequest::default() }) else {
            tracing::warn!(listener = %listener, service = %service.name, "no healthy endpoint for tcp connection; closing it");
            return;
        };
        tried.push(endpoint.index);
        let connected = tokio::time::timeout(connect_timeout, TcpStream::connect(endpoint.address.as_str())).await;
        let mut upstream = match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(endpoint = %endpoint.address, %error, "tcp connect failed; trying another endpoint");
                service.record_outcome(&endpoint, Outcome::GatewayFailure);
                continue;
            }
            Err(_) => {
                tracing::debug!(endpoint = %endpoint.address, "tcp connect timed out; trying another endpoint");
                service.record_outcome(&endpoint, Outcome::GatewayFailure);
                continue;
            }
        };
        service.record_outcome(&endpoint, Outcome::Success);
        let _ = upstream.set_nodelay(true);
        let _in_flight = endpoint.health.start_request();
        let copied = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        tracing::info!(
            target: "gantry::access",
            listener = %listener,
            client = ?peer,
            service = %service.name,
            endpoint = %endpoint.address,
            bytes_in = copied.as_ref().map_or(0, |c| c.0),
            bytes_out = copied.as_ref().map_or(0, |c| c.1),
            "tcp connection closed"
        );
        return;
    }
    tracing::warn!(listener = %listener, service = %service.name, "every tcp connect attempt failed; closing client connection");
}

/// Joins the two halves of an HTTP upgrade (client ↔ upstream) once both have switched. The
/// tunnel holds its connection's slot, so it counts against max_connections and drain.
pub async fn splice_upgrades(client: OnUpgrade, upstream: OnUpgrade, _slot: Arc<ConnectionSlot>) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%error, "protocol upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
