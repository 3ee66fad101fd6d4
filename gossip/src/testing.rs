//! Helpers for in-process clusters over real loopback UDP with the sealed transport, shared by
//! this crate's integration tests and the gossip benchmark in `benches/`. Only built with the
//! `testing` feature; they panic on set-up failures, as test helpers do.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::{Addresses, Gossip, GossipConfig, GossipKey, GossipTuning, Liveness, NodeId, NodeState};

pub const CLUSTER_ID: &str = "gantry-test";

pub fn key(byte: u8) -> GossipKey {
    GossipKey::from_bytes([byte; 32])
}

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub fn state_of(id: NodeId) -> NodeState {
    NodeState {
        name: format!("node-{id}"),
        zone: format!("zone-{}", id % 3),
        addresses: Addresses {
            fabric: format!("127.0.0.1:{}", 17_000 + id),
            admin: format!("127.0.0.1:{}", 19_900 + id),
            http: format!("127.0.0.1:{}", 18_080 + id),
        },
        version: "0.1.0-test".into(),
        ..NodeState::default()
    }
}

pub fn config(id: NodeId, members: &[NodeId], seeds: &[SocketAddr], key: GossipKey) -> GossipConfig {
    let mut config = GossipConfig::new(id, CLUSTER_ID, loopback(), key);
    config.members = members.iter().copied().collect();
    config.seeds = seeds.iter().map(ToString::to_string).collect();
    config.initial_state = state_of(id);
    config
}

/// Starts nodes `1..=n`, all members of each other, seeded with node 1.
pub async fn start_cluster(n: u64, tuning: &GossipTuning) -> Vec<Gossip> {
    let members: Vec<NodeId> = (1..=n).collect();
    let mut nodes: Vec<Gossip> = Vec::with_capacity(n as usize);
    for id in 1..=n {
        let seeds: Vec<SocketAddr> = nodes.first().map(Gossip::local_addr).into_iter().collect();
        let mut config = config(id, &members, &seeds, key(7));
        config.tuning = tuning.clone();
        nodes.push(Gossip::start(config).await.expect("start node"));
    }
    nodes
}

/// Polls `cond` every 10 ms until it holds; returns how long it took, or `None` at the timeout.
pub async fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn liveness(observer: &Gossip, id: NodeId) -> Option<Liveness> {
    observer.member(id).map(|m| m.liveness)
}

pub fn is_alive(observer: &Gossip, id: NodeId) -> bool {
    matches!(liveness(observer, id), Some(Liveness::Alive))
}

/// Every node sees every id in `ids` alive.
pub fn all_see_alive<'a>(nodes: impl IntoIterator<Item = &'a Gossip>, ids: &[NodeId]) -> bool {
    nodes.into_iter().all(|g| ids.iter().all(|id| is_alive(g, *id)))
}

pub async fn shutdown_all(nodes: Vec<Gossip>) {
    for node in nodes {
        node.shutdown().await.expect("shutdown");
    }
}

/// Starts one node with its own member set and key.
pub async fn start_node(id: NodeId, members: &[NodeId], seeds: &[SocketAddr], key: GossipKey) -> Gossip {
    Gossip::start(config(id, members, seeds, key)).await.expect("start node")
}

/// Holds for the whole `period`: polls `cond` and returns false as soon as it fails.
pub async fn holds_for(period: Duration, mut cond: impl FnMut() -> bool) -> bool {
    wait_for(period, || !cond()).await.is_none()
}
