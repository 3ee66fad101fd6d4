//! The node's side of gossip: starts the `gantry-gossip` member once the cluster identity (and
//! its gossip key) is known, keeps the member set and seeds in step with Raft, and publishes
//! this node's state (role, load, applied revision, draining) every second. Endpoint health is
//! published by the health checks (`health/`), which also read it back (`EndpointOwnership`).
//! Zone load (for zone spill) is sampled and exchanged in `zone_load`.

mod zone_load;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gantry_gossip::{Addresses, Gossip, GossipConfig, GossipKey, Liveness, Load, NodeState, RaftRole, Verdict};
use gantry_proto::cluster::{ClusterState, NodeId};

use crate::cluster::Cluster;
use crate::dataplane::Dataplane;
use crate::proxy::ConnectionTracker;

/// How often this node republishes its load, role and revision.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// How often in-flight requests per zone are sampled: the published figure is the average of
/// the samples of one publish period, steadier than a single reading.
const SAMPLES_PER_PUBLISH: u32 = 10;
/// How long start-up waits for the replicated identity (a joiner is still catching up).
const IDENTITY_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum GossipStartError {
    #[error("the cluster identity (gossip key) did not arrive within {0:?}")]
    NoIdentity(Duration),
    #[error("cannot resolve the gossip address {0}")]
    Resolve(String),
    #[error(transparent)]
    Gossip(#[from] gantry_gossip::GossipError),
}

/// Gossip as the node uses it.
pub struct GossipNode {
    pub gossip: Gossip,
    node_id: NodeId,
    zone: String,
}

impl std::fmt::Debug for GossipNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GossipNode").field("node_id", &self.node_id).finish()
    }
}

async fn resolve(address: &str) -> Result<SocketAddr, GossipStartError> {
    if let Ok(parsed) = address.parse() {
        return Ok(parsed);
    }
    tokio::net::lookup_host(address)
        .await
        .ok()
        .and_then(|mut found| found.next())
        .ok_or_else(|| GossipStartError::Resolve(address.to_string()))
}

fn members_of(state: &ClusterState) -> BTreeSet<NodeId> {
    state.nodes.keys().copied().filter(|id| !state.removed.contains(id)).collect()
}

impl GossipNode {
    /// Starts gossip on `listen`, advertising `advertise`, once the cluster identity arrived.
    pub async fn start(
        cluster: &Arc<Cluster>,
        listen: SocketAddr,
        advertise: &str,
        http: SocketAddr,
    ) -> Result<Arc<GossipNode>, GossipStartError> {
        let mut applied = cluster.subscribe();
        let deadline = Instant::now() + IDENTITY_WAIT;
        let state = loop {
            let state = applied.borrow_and_update().state.clone();
            if state.identity.is_some() && state.nodes.contains_key(&cluster.node_id) {
                break state;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Err(GossipStartError::NoIdentity(IDENTITY_WAIT));
            };
            let _ = tokio::time::timeout(left, applied.changed()).await;
        };
        let Some(identity) = state.identity.as_ref() else {
            return Err(GossipStartError::NoIdentity(IDENTITY_WAIT));
        };
        let key = GossipKey::from_bytes(identity.gossip_key);
        let mut config = GossipConfig::new(cluster.node_id, cluster.cluster_id.clone(), listen, key);
        config.advertise_addr = Some(resolve(advertise).await?);
        config.seeds = state.nodes.values().filter(|n| n.id != cluster.node_id).map(|n| n.gossip.clone()).collect();
        config.members = members_of(&state);
        let info = cluster.self_info();
        config.initial_state = NodeState {
            name: info.name.clone(),
            zone: info.zone.clone(),
            addresses: Addresses { fabric: info.fabric.clone(), admin: info.admin.clone(), http: http.to_string() },
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..NodeState::default()
        };
        let gossip = Gossip::start(config).await?;
        tracing::info!(address = %gossip.local_addr(), "gossip started");
        let node = Arc::new(GossipNode { gossip, node_id: cluster.node_id, zone: info.zone });
        node.follow_membership(cluster.clone());
        Ok(node)
    }

    /// Raft decides who belongs: the member set follows every applied change.
    fn follow_membership(self: &Arc<Self>, cluster: Arc<Cluster>) {
        let weak = Arc::downgrade(self);
        let mut applied = cluster.subscribe();
        tokio::spawn(async move {
            loop {
                let members = members_of(&applied.borrow_and_update().state);
                match weak.upgrade() {
                    Some(node) => node.gossip.set_members(members),
                    None => return,
                }
                if applied.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// Publishes role, load, applied revision, draining and zone load every second until the
    /// node stops, and folds the other nodes' zone load into the running services.
    pub fn spawn_publisher(
        self: &Arc<Self>,
        cluster: Arc<Cluster>,
        dataplane: Arc<Dataplane>,
        tracker: Arc<ConnectionTracker>,
    ) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PUBLISH_EVERY / SAMPLES_PER_PUBLISH);
            let mut last_started = 0u64;
            let mut last_at = Instant::now();
            let mut zone_load = zone_load::ZoneLoadSampler::default();
            let mut samples = 0u32;
            loop {
                tick.tick().await;
                let Some(node) = weak.upgrade() else { return };
                let snapshot = dataplane.snapshot();
                zone_load.sample(&snapshot);
                samples += 1;
                if samples < SAMPLES_PER_PUBLISH {
                    continue;
                }
                samples = 0;
                let endpoints = snapshot.services.values().flat_map(|s| s.endpoints.iter());
                let (mut in_flight, mut started, mut latency_weighted, mut weight) = (0u64, 0u64, 0f64, 0f64);
                for endpoint in endpoints {
                    let health = &endpoint.health;
                    in_flight += health.in_flight();
                    started += health.started();
                    let latency = health.latency_ms_smoothed();
                    if latency > 0.0 {
                        latency_weighted += latency * (health.started() as f64).max(1.0);
                        weight += (health.started() as f64).max(1.0);
                    }
                }
                let elapsed = last_at.elapsed().as_secs_f64().max(0.001);
                // Counters restart with endpoints that are new in a revision: never go negative.
                let rate = started.saturating_sub(last_started) as f64 / elapsed;
                last_started = started;
                last_at = Instant::now();
                let latency = if weight > 0.0 { latency_weighted / weight } else { 0.0 };
                let gossip = &node.gossip;
                gossip.set_load(Load { in_flight, request_rate_per_s: rate, latency_ms_smoothed: latency }).await;
                gossip.set_raft_role(raft_role(cluster.role())).await;
                gossip.set_config_revision(snapshot.revision).await;
                gossip.set_draining(tracker.is_draining()).await;
                if let Err(error) = gossip.set_zone_in_flight(&zone_load.take()).await {
                    tracing::warn!(%error, "cannot publish zone load");
                }
                zone_load::apply_remote(&snapshot, &gossip.members());
            }
        });
    }

    /// Members gossip sees alive (self included).
    pub fn alive(&self) -> BTreeSet<NodeId> {
        self.gossip.members().into_iter().filter(|m| m.liveness == Liveness::Alive).map(|m| m.node_id).collect()
    }

    /// The node that checks an endpoint: by rendezvous hashing over the live members of the
    /// endpoint's zone, or over every live member when its zone has none. Every node computes
    /// the same owner from the same view, so each endpoint is checked by one node.
    pub fn owner_of(&self, service: &str, endpoint: &str, zone: Option<&str>) -> Option<NodeId> {
        let members = self.gossip.members();
        let alive: Vec<(NodeId, Option<String>)> = members
            .iter()
            .filter(|m| m.liveness == Liveness::Alive)
            .map(|m| (m.node_id, m.state.as_ref().map(|s| s.zone.clone())))
            .collect();
        let in_zone: Vec<NodeId> =
            alive.iter().filter(|(_, z)| zone.is_some() && z.as_deref() == zone).map(|(id, _)| *id).collect();
        let pool: Vec<NodeId> = if in_zone.is_empty() { alive.iter().map(|(id, _)| *id).collect() } else { in_zone };
        pool.into_iter().max_by_key(|id| {
            let key = format!("{id}/{service}/{endpoint}");
            crate::lb::hash64(key.as_bytes())
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// Publishes this node's verdict on an endpoint it checks.
    pub async fn publish_health(&self, service: &str, endpoint: &str, healthy: bool) {
        let verdict = if healthy { Verdict::Up } else { Verdict::Down };
        if let Err(error) =
            self.gossip.set_endpoint_health(service, endpoint, verdict, crate::cluster::now_unix_ms()).await
        {
            tracing::warn!(%service, %endpoint, %error, "cannot publish an endpoint verdict");
        }
    }

    /// The owner's fresh verdict on an endpoint, if gossip has one: `Some(healthy)`.
    pub fn owner_verdict(&self, owner: NodeId, service: &str, endpoint: &str, fresh_within: Duration) -> Option<bool> {
        self.gossip
            .endpoint_health(service, endpoint)
            .into_iter()
            .find(|r| r.node_id == owner && r.reporter == Liveness::Alive && r.age <= fresh_within)
            .map(|r| r.verdict == Verdict::Up)
    }
}

fn raft_role(role: &str) -> RaftRole {
    match role {
        "leader" => RaftRole::Leader,
        "follower" => RaftRole::Follower,
        "candidate" => RaftRole::Candidate,
        "learner" => RaftRole::Learner,
        _ => RaftRole::Unknown,
    }
}
