//! Keeping the right voters: an odd number (1, 3, or 5 once the cluster has 7 nodes or more),
//! spread over as many zones as exist, so that losing one zone keeps a quorum. The leader pings
//! every member each second; a voter silent for longer than the grace period is replaced by a
//! live, caught-up learner (from the lost voter's zone if possible, else from a zone without a
//! voter) and kept as a learner so it can come back. Gossip liveness is the second opinion.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use gantry_proto::cluster::NodeId;
use gantry_raft_store::openraft::{ChangeMembers, ServerState};

use super::rpc::{self, RaftRpc, RaftRpcReply};
use super::{lock, Cluster};

/// How often the leader probes members and reconsiders voters.
const TICK: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_millis(800);
/// A learner within this many entries of the leader's log counts as caught up.
const CAUGHT_UP_LAG: u64 = 20;

/// Voters wanted for a cluster of `nodes` members.
pub fn target_voters(nodes: usize) -> usize {
    match nodes {
        0..=2 => 1,
        3..=6 => 3,
        _ => 5,
    }
}

/// What the placement decision looks at.
#[derive(Debug, Clone)]
pub struct Placement<'a> {
    pub leader: NodeId,
    /// Zone of every Raft member (voters and learners).
    pub zones: &'a BTreeMap<NodeId, String>,
    pub voters: &'a BTreeSet<NodeId>,
    /// Members heard from within the grace period (the leader always is).
    pub live: &'a BTreeSet<NodeId>,
    /// Learners whose log is close to the leader's.
    pub caught_up: &'a BTreeSet<NodeId>,
}

/// The voter set the cluster should have, or None when the current one is fine. Changes one
/// step at a time: the next call sees the result of the previous.
pub fn desired_voters(p: &Placement<'_>) -> Option<BTreeSet<NodeId>> {
    let target = target_voters(p.zones.len());
    let mut voters: BTreeSet<NodeId> = p.voters.clone();
    let dead: Vec<NodeId> = voters.iter().copied().filter(|v| !p.live.contains(v) && *v != p.leader).collect();
    let candidates: Vec<NodeId> = p
        .zones
        .keys()
        .copied()
        .filter(|id| !voters.contains(id) && p.live.contains(id) && p.caught_up.contains(id))
        .collect();
    let zone_of = |id: &NodeId| p.zones.get(id).cloned().unwrap_or_default();
    let voter_zones = |voters: &BTreeSet<NodeId>| voters.iter().map(zone_of).collect::<BTreeSet<_>>();

    // Replace a dead voter: same zone first, then a zone without a live voter, then any.
    if let Some(lost) = dead.first() {
        let live_voters: BTreeSet<NodeId> = voters.iter().copied().filter(|v| !dead.contains(v)).collect();
        let covered = voter_zones(&live_voters);
        let pick = candidates
            .iter()
            .find(|c| zone_of(c) == zone_of(lost))
            .or_else(|| candidates.iter().find(|c| !covered.contains(&zone_of(c))))
            .or_else(|| candidates.first());
        if let Some(replacement) = pick {
            voters.remove(lost);
            voters.insert(*replacement);
            return Some(voters);
        }
    }
    // Grow towards the target, two at a time above one so the count stays odd.
    if voters.len() < target && !candidates.is_empty() {
        let need = if voters.len() + 1 == target { 1 } else { 2 };
        if candidates.len() >= need {
            let mut added = 0;
            let mut pool = candidates.clone();
            while added < need {
                let covered = voter_zones(&voters);
                let index = pool.iter().position(|c| !covered.contains(&zone_of(c))).unwrap_or(0);
                voters.insert(pool.remove(index));
                added += 1;
            }
            return Some(voters);
        }
    }
    // Shrink to the target (members were removed), dropping voters from crowded zones first.
    if voters.len() > target {
        let mut by_zone: BTreeMap<String, Vec<NodeId>> = BTreeMap::new();
        for v in &voters {
            by_zone.entry(zone_of(v)).or_default().push(*v);
        }
        while voters.len() > target {
            let crowded =
                by_zone.values_mut().filter(|ids| ids.iter().any(|id| *id != p.leader)).max_by_key(|ids| ids.len())?;
            let position = crowded.iter().position(|id| *id != p.leader)?;
            let drop = crowded.remove(position);
            voters.remove(&drop);
        }
        return Some(voters);
    }
    // Rebalance: a zone holds two voters while a live caught-up learner sits in an uncovered zone.
    let covered = voter_zones(&voters);
    if let Some(newcomer) = candidates.iter().find(|c| !covered.contains(&zone_of(c))) {
        let mut counts: BTreeMap<String, Vec<NodeId>> = BTreeMap::new();
        for v in &voters {
            counts.entry(zone_of(v)).or_default().push(*v);
        }
        if let Some(crowded) = counts.values().find(|ids| ids.len() > 1) {
            if let Some(out) = crowded.iter().find(|id| **id != p.leader) {
                voters.remove(out);
                voters.insert(*newcomer);
                return Some(voters);
            }
        }
    }
    None
}

pub fn spawn(cluster: Weak<Cluster>, grace: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(cluster) = cluster.upgrade() else {
                return;
            };
            if cluster.metrics().state != ServerState::Leader {
                continue;
            }
            ping_members(&cluster).await;
            if let Err(error) = rebalance(&cluster, grace).await {
                tracing::warn!(%error, "voter rebalancing failed; will retry");
            }
        }
    });
}

async fn ping_members(cluster: &Arc<Cluster>) {
    let metrics = cluster.metrics();
    let members: Vec<(NodeId, String)> = metrics
        .membership_config
        .membership()
        .nodes()
        .filter(|(id, _)| **id != cluster.node_id)
        .map(|(id, node)| (*id, node.addr.clone()))
        .collect();
    let pings = members.into_iter().map(|(id, addr)| {
        let cluster = cluster.clone();
        async move {
            if let Ok(RaftRpcReply::Pong { applied_revision }) =
                rpc::call(&cluster.fabric, id, &addr, &RaftRpc::Ping, PING_TIMEOUT).await
            {
                lock(&cluster.last_seen).insert(id, Instant::now());
                lock(&cluster.peer_revisions).insert(id, applied_revision);
            }
        }
    });
    futures_util::future::join_all(pings).await;
    lock(&cluster.last_seen).insert(cluster.node_id, Instant::now());
    lock(&cluster.peer_revisions).insert(cluster.node_id, cluster.state().revision());
}

async fn rebalance(cluster: &Arc<Cluster>, grace: Duration) -> Result<(), String> {
    let metrics = cluster.metrics();
    let membership = metrics.membership_config.membership().clone();
    if membership.get_joint_config().len() > 1 {
        return Ok(()); // a change is still in flight
    }
    let state = cluster.state();
    let zones: BTreeMap<NodeId, String> = membership
        .nodes()
        .map(|(id, _)| (*id, state.nodes.get(id).map(|n| n.zone.clone()).unwrap_or_default()))
        .collect();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    // Until a member has been seen once, count the time since this node led: no replacement
    // happens in the first grace period after an election.
    let seen = lock(&cluster.last_seen).clone();
    let pinged: BTreeSet<NodeId> = zones
        .keys()
        .copied()
        .filter(|id| match seen.get(id) {
            Some(at) => at.elapsed() <= grace,
            None => cluster.uptime() <= grace,
        })
        .collect();
    // Gossip is a second opinion: a voter is lost only when it missed the leader's pings for the
    // grace period and gossip does not hear it either, so a fabric hiccup alone replaces no one;
    // a promotion needs both to hear the candidate.
    let live: BTreeSet<NodeId> = match cluster.gossip() {
        Some(gossip) => {
            let alive = gossip.alive();
            zones
                .keys()
                .copied()
                .filter(|id| {
                    let is_voter = voters.contains(id);
                    if is_voter {
                        pinged.contains(id) || alive.contains(id)
                    } else {
                        pinged.contains(id) && alive.contains(id)
                    }
                })
                .collect()
        }
        None => pinged,
    };
    let last_index = metrics.last_log_index.unwrap_or(0);
    let replication: HashMap<NodeId, u64> = metrics
        .replication
        .as_ref()
        .map(|r| r.iter().map(|(id, log)| (*id, log.map_or(0, |l| l.index))).collect())
        .unwrap_or_default();
    let caught_up: BTreeSet<NodeId> = replication
        .iter()
        .filter(|(_, matched)| last_index.saturating_sub(**matched) <= CAUGHT_UP_LAG)
        .map(|(id, _)| *id)
        .collect();
    let placement =
        Placement { leader: cluster.node_id, zones: &zones, voters: &voters, live: &live, caught_up: &caught_up };
    let Some(next) = desired_voters(&placement) else {
        return Ok(());
    };
    tracing::info!(from = ?voters, to = ?next, "changing voters");
    cluster
        .raft
        .change_membership(ChangeMembers::ReplaceAllVoters(next), true)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(list: &[(NodeId, &str)]) -> BTreeMap<NodeId, String> {
        list.iter().map(|(id, z)| (*id, z.to_string())).collect()
    }

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    fn decide(
        z: &BTreeMap<NodeId, String>,
        voters: &[NodeId],
        live: &[NodeId],
        caught_up: &[NodeId],
    ) -> Option<BTreeSet<NodeId>> {
        desired_voters(&Placement {
            leader: 1,
            zones: z,
            voters: &set(voters),
            live: &set(live),
            caught_up: &set(caught_up),
        })
    }

    #[test]
    fn targets_are_odd() {
        assert_eq!((1..=9).map(target_voters).collect::<Vec<_>>(), vec![1, 1, 3, 3, 3, 3, 5, 5, 5]);
    }

    #[test]
    fn grows_to_three_across_zones() {
        let z = zones(&[(1, "a"), (2, "a"), (3, "b"), (4, "c")]);
        // Adds two at once (1 → 3), preferring zones without a voter.
        assert_eq!(decide(&z, &[1], &[1, 2, 3, 4], &[2, 3, 4]), Some(set(&[1, 3, 4])));
        // A second node alone stays a learner (two voters would be less available than one).
        let z2 = zones(&[(1, "a"), (2, "b")]);
        assert_eq!(decide(&z2, &[1], &[1, 2], &[2]), None);
        // Not caught up: wait.
        assert_eq!(decide(&z, &[1], &[1, 2, 3, 4], &[2]), None);
    }

    #[test]
    fn replaces_a_dead_voter_preferring_its_zone() {
        let z = zones(&[(1, "a"), (2, "b"), (3, "c"), (4, "c"), (5, "b")]);
        assert_eq!(decide(&z, &[1, 2, 3], &[1, 3, 4, 5], &[4, 5]), Some(set(&[1, 3, 5])));
        // No learner in its zone: take one from a zone without a live voter, else any.
        let z = zones(&[(1, "a"), (2, "b"), (3, "c"), (4, "c")]);
        assert_eq!(decide(&z, &[1, 2, 3], &[1, 3, 4], &[4]), Some(set(&[1, 3, 4])));
        // Nobody to promote: keep the dead voter (removing it would not help the quorum).
        assert_eq!(decide(&z, &[1, 2, 3], &[1, 3], &[]), None);
    }

    #[test]
    fn rebalances_zones_and_shrinks() {
        let z = zones(&[(1, "a"), (2, "a"), (3, "b"), (4, "c")]);
        assert_eq!(decide(&z, &[1, 2, 3], &[1, 2, 3, 4], &[4]), Some(set(&[1, 3, 4])));
        let z = zones(&[(1, "a"), (2, "b"), (3, "c")]);
        assert_eq!(decide(&z, &[1, 2, 3], &[1, 2, 3], &[]), None);
        // Five voters but only three nodes remain in the membership map: shrink.
        let z = zones(&[(1, "a"), (2, "b"), (3, "c")]);
        let shrunk = decide(&z, &[1, 2, 3, 4, 5], &[1, 2, 3], &[]).expect("shrinks");
        assert_eq!(shrunk.len(), 3);
        assert!(shrunk.contains(&1));
    }
}
