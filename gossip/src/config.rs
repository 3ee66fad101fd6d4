//! What `Gossip::start` needs: identity, addresses, keys, members, the initial state, and the
//! failure-detector tuning (whose defaults and trade-offs the crate docs explain).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::key::GossipKey;
use crate::state::NodeState;
use crate::{GossipError, NodeId};

/// Timing of gossip and failure detection. The defaults are tuned for "a killed node is dead
/// everywhere within 3 s, a node stalled for under 1 s is never declared dead"; see the crate
/// docs before changing them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GossipTuning {
    /// Period of a gossip round (each round talks to up to 3 live peers).
    pub gossip_interval_ms: u64,
    /// Phi threshold: a node is dead once the time since its last heartbeat exceeds
    /// `phi_threshold` × its (smoothed) mean heartbeat interval.
    pub phi_threshold: f64,
    /// Heartbeat intervals averaged per node. Small, so the prior below keeps a strong weight.
    pub sampling_window: usize,
    /// Prior mean heartbeat interval (chitchat weighs it like 5 samples).
    pub prior_interval_ms: u64,
    /// Heartbeat gaps longer than this are not sampled (a pause does not stretch the mean).
    pub max_interval_ms: u64,
    /// How long a dead node's state is kept before it is forgotten.
    pub dead_node_grace_ms: u64,
    /// An alive node not heard from for this long reads as `Suspect`.
    pub suspect_after_ms: u64,
    /// Datagrams whose send time is further than this from our clock are dropped as stale.
    pub max_clock_skew_ms: u64,
    /// How long deleted keys (tombstones) are kept for slow peers to learn of the deletion.
    pub tombstone_grace_ms: u64,
    /// How often the member view refreshes ages and `Suspect` (key and liveness changes refresh
    /// it at once).
    pub view_refresh_ms: u64,
}

impl Default for GossipTuning {
    fn default() -> Self {
        Self {
            gossip_interval_ms: 200,
            phi_threshold: 12.0,
            sampling_window: 20,
            prior_interval_ms: 170,
            max_interval_ms: 1_000,
            dead_node_grace_ms: 30 * 60 * 1_000,
            suspect_after_ms: 800,
            max_clock_skew_ms: 30_000,
            tombstone_grace_ms: 60 * 60 * 1_000,
            view_refresh_ms: 200,
        }
    }
}

impl GossipTuning {
    pub fn gossip_interval(&self) -> Duration {
        Duration::from_millis(self.gossip_interval_ms)
    }

    fn problems(&self, out: &mut Vec<String>) {
        let positive = [
            ("tuning.gossip_interval_ms", self.gossip_interval_ms),
            ("tuning.prior_interval_ms", self.prior_interval_ms),
            ("tuning.max_interval_ms", self.max_interval_ms),
            ("tuning.dead_node_grace_ms", self.dead_node_grace_ms),
            ("tuning.suspect_after_ms", self.suspect_after_ms),
            ("tuning.max_clock_skew_ms", self.max_clock_skew_ms),
            ("tuning.tombstone_grace_ms", self.tombstone_grace_ms),
            ("tuning.view_refresh_ms", self.view_refresh_ms),
        ];
        for (name, value) in positive {
            if value == 0 {
                out.push(format!("{name}: must be greater than 0"));
            }
        }
        if !(self.phi_threshold.is_finite() && self.phi_threshold > 0.0) {
            out.push("tuning.phi_threshold: must be a positive number".to_string());
        }
        if self.sampling_window == 0 || self.sampling_window > 10_000 {
            out.push("tuning.sampling_window: must be between 1 and 10000".to_string());
        }
        if self.max_interval_ms < self.gossip_interval_ms {
            out.push("tuning.max_interval_ms: must be at least tuning.gossip_interval_ms".to_string());
        }
    }
}

/// Everything `Gossip::start` needs.
#[derive(Clone, Debug)]
pub struct GossipConfig {
    /// This node's Raft node id; its chitchat id is `n{node_id}`.
    pub node_id: NodeId,
    /// Nodes of other clusters are refused by chitchat even with the same key.
    pub cluster_id: String,
    /// Where the gossip socket binds (default port 7001; port 0 picks one).
    pub listen_addr: SocketAddr,
    /// What peers use to reach this node; defaults to the bound address, and must be set when
    /// binding a wildcard address.
    pub advertise_addr: Option<SocketAddr>,
    /// Gossip addresses (`HOST:PORT`) of some members, to find the cluster.
    pub seeds: Vec<String>,
    /// The cluster gossip key: seals everything sent, opens what is received.
    pub key: GossipKey,
    /// The key before the last rotation: still accepted, never used to seal.
    pub previous_key: Option<GossipKey>,
    /// Raft member ids: datagrams from other senders are dropped and their state is ignored.
    pub members: BTreeSet<NodeId>,
    pub initial_state: NodeState,
    /// Distinguishes this run of the node from earlier ones; it must grow on every start.
    /// Default: the start time in unix milliseconds.
    pub generation: Option<u64>,
    pub tuning: GossipTuning,
}

impl GossipConfig {
    /// A config with defaults: no seeds, members = {node_id}, empty state, default tuning.
    pub fn new(node_id: NodeId, cluster_id: impl Into<String>, listen_addr: SocketAddr, key: GossipKey) -> Self {
        Self {
            node_id,
            cluster_id: cluster_id.into(),
            listen_addr,
            advertise_addr: None,
            seeds: Vec::new(),
            key,
            previous_key: None,
            members: BTreeSet::from([node_id]),
            initial_state: NodeState::default(),
            generation: None,
            tuning: GossipTuning::default(),
        }
    }

    /// Checks everything and reports every problem at once.
    pub fn validate(&self) -> Result<(), GossipError> {
        let mut problems = Vec::new();
        if self.cluster_id.is_empty() {
            problems.push("cluster_id: must not be empty".to_string());
        }
        if let Some(advertise) = self.advertise_addr {
            if advertise.ip().is_unspecified() || advertise.port() == 0 {
                problems.push(format!("advertise_addr: {advertise} is not reachable; give a host address and port"));
            }
        } else if self.listen_addr.ip().is_unspecified() {
            problems.push(format!(
                "advertise_addr: required when listen_addr is the wildcard {}; set it to this host's address",
                self.listen_addr
            ));
        }
        for (i, seed) in self.seeds.iter().enumerate() {
            if seed.rsplit_once(':').and_then(|(_, port)| port.parse::<u16>().ok()).is_none() {
                problems.push(format!("seeds[{i}]: {seed:?} is not HOST:PORT"));
            }
        }
        if let Some(previous) = &self.previous_key {
            if previous.key_id() == self.key.key_id() {
                problems.push("previous_key: must differ from key".to_string());
            }
        }
        if let Err(GossipError::InvalidConfig(state_problems)) = self.initial_state.validate() {
            problems.extend(state_problems.into_iter().map(|p| format!("initial_state.{p}")));
        }
        self.tuning.problems(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(GossipError::InvalidConfig(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let config = GossipConfig::new(1, "c", "127.0.0.1:0".parse().expect("addr"), GossipKey::from_bytes([1; 32]));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn every_problem_is_reported() {
        let mut config =
            GossipConfig::new(1, "", "0.0.0.0:7001".parse().expect("addr"), GossipKey::from_bytes([1; 32]));
        config.seeds = vec!["nohost".into()];
        config.previous_key = Some(GossipKey::from_bytes([1; 32]));
        config.tuning.gossip_interval_ms = 0;
        match config.validate() {
            Err(GossipError::InvalidConfig(problems)) => assert_eq!(problems.len(), 5, "{problems:?}"),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn tuning_rejects_unknown_fields() {
        let err = serde_json::from_str::<GossipTuning>(r#"{"gossip_interval": 5}"#).expect_err("unknown field");
        assert!(err.to_string().contains("unknown field"), "{err}");
        let partial: GossipTuning = serde_json::from_str(r#"{"phi_threshold": 9.5}"#).expect("partial");
        assert_eq!(partial.phi_threshold, 9.5);
    }
}
