//! The typed, member-filtered view of the cluster and the events derived from it. A background
//! observer turns chitchat's state into an immutable [`ClusterView`] snapshot (readable without
//! awaiting) and emits [`GossipEvent`]s when a member comes up, goes down or changes its state.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chitchat::{Chitchat, ChitchatId};
use serde::Serialize;
use tokio::sync::{broadcast, watch, Mutex, Notify};
use tokio::time::{Instant, MissedTickBehavior};

use crate::state::{self, NodeState, Verdict};
use crate::transport::unix_ms;
use crate::NodeId;

/// Bound on buffered events per subscriber; a subscriber that lags further gets
/// `RecvError::Lagged` and should re-read [`crate::Gossip::members`].
pub const EVENT_CAPACITY: usize = 1_024;

/// Chitchat node ids are `n{raft node id}`.
pub(crate) fn chitchat_node_id(id: NodeId) -> String {
    format!("n{id}")
}

pub(crate) fn parse_chitchat_node_id(s: &str) -> Option<NodeId> {
    let digits = s.strip_prefix('n')?;
    // Reject "n007" and "n+7": one spelling per id, so a peer cannot appear twice.
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    digits.parse().ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    /// Heard from recently.
    Alive,
    /// The failure detector still counts it alive, but it has not been heard from for
    /// `suspect_after`: route around it if there is a choice.
    Suspect,
    /// The failure detector declared it dead, or it has never been heard from.
    Dead,
}

/// One member as this node sees it.
#[derive(Clone, Debug, Serialize)]
pub struct MemberView {
    pub node_id: NodeId,
    pub is_self: bool,
    pub liveness: Liveness,
    /// Time since its heartbeat last advanced here (`None`: never heard; zero for self).
    pub last_heard: Option<Duration>,
    /// Its generation (start time, unless the node chose one); grows on every restart.
    pub generation: Option<u64>,
    pub gossip_addr: Option<SocketAddr>,
    /// What it publishes; `None` if nothing has been heard from it.
    pub state: Option<Arc<NodeState>>,
}

/// One node's verdict on an endpoint.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EndpointReport {
    pub node_id: NodeId,
    /// Liveness of the reporting node: a dead node's verdicts are old news.
    pub reporter: Liveness,
    pub verdict: Verdict,
    pub checked_at_unix_ms: u64,
    /// Age of the verdict by this node's clock (zero if the reporter's clock is ahead).
    pub age: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GossipEvent {
    /// A member became alive: first heard, back from dead, or restarted (new generation).
    NodeUp { node_id: NodeId, generation: u64 },
    /// A member stopped being heard from long enough to read as suspect.
    NodeSuspect { node_id: NodeId },
    /// The failure detector declared a member dead.
    NodeDown { node_id: NodeId },
    /// A member published a change to its state.
    StateChanged { node_id: NodeId },
}

#[derive(Clone, Debug)]
struct Entry {
    chitchat_live: bool,
    heard_at: Option<Instant>,
    generation: Option<u64>,
    gossip_addr: Option<SocketAddr>,
    /// Chitchat's max version of the chosen generation's state.
    version: u64,
    state: Option<Arc<NodeState>>,
}

/// An immutable snapshot of every member (and only members), cheap to clone.
#[derive(Clone, Debug)]
pub struct ClusterView {
    self_id: NodeId,
    suspect_after: Duration,
    entries: BTreeMap<NodeId, Entry>,
}

impl ClusterView {
    pub(crate) fn empty(self_id: NodeId, suspect_after: Duration) -> Self {
        Self { self_id, suspect_after, entries: BTreeMap::new() }
    }

    fn liveness_of(&self, id: NodeId, entry: &Entry, now: Instant) -> Liveness {
        if id == self.self_id {
            return Liveness::Alive;
        }
        match (entry.chitchat_live, entry.heard_at) {
            (false, _) | (true, None) => Liveness::Dead,
            (true, Some(at)) if now.saturating_duration_since(at) > self.suspect_after => Liveness::Suspect,
            (true, Some(_)) => Liveness::Alive,
        }
    }

    fn member_view(&self, id: NodeId, entry: &Entry, now: Instant) -> MemberView {
        let is_self = id == self.self_id;
        MemberView {
            node_id: id,
            is_self,
            liveness: self.liveness_of(id, entry, now),
            last_heard: if is_self {
                Some(Duration::ZERO)
            } else {
                entry.heard_at.map(|at| now.saturating_duration_since(at))
            },
            generation: entry.generation,
            gossip_addr: entry.gossip_addr,
            state: entry.state.clone(),
        }
    }

    /// Every member (and this node), ordered by node id.
    pub fn members(&self) -> Vec<MemberView> {
        let now = Instant::now();
        self.entries.iter().map(|(id, e)| self.member_view(*id, e, now)).collect()
    }

    pub fn member(&self, node_id: NodeId) -> Option<MemberView> {
        self.entries.get(&node_id).map(|e| self.member_view(node_id, e, Instant::now()))
    }

    /// Every member's latest verdict on one endpoint.
    pub fn endpoint_health(&self, service: &str, endpoint: &str) -> Vec<EndpointReport> {
        let now = Instant::now();
        let now_ms = unix_ms();
        self.entries
            .iter()
            .filter_map(|(id, entry)| {
                let health = entry.state.as_ref()?.endpoints.get(service)?.get(endpoint)?;
                Some(EndpointReport {
                    node_id: *id,
                    reporter: self.liveness_of(*id, entry, now),
                    verdict: health.verdict,
                    checked_at_unix_ms: health.checked_at_unix_ms,
                    age: Duration::from_millis(now_ms.saturating_sub(health.checked_at_unix_ms)),
                })
            })
            .collect()
    }
}

/// What the observer remembers per chitchat node (per generation).
struct Tracked {
    /// Rebuild in which this node was last present (entries of vanished nodes are pruned).
    epoch: u64,
    heartbeat: u64,
    heard_at: Option<Instant>,
    version: u64,
    state: Arc<NodeState>,
}

pub(crate) struct Observer {
    pub(crate) chitchat: Arc<Mutex<Chitchat>>,
    pub(crate) self_id: NodeId,
    pub(crate) members: watch::Receiver<Arc<HashSet<NodeId>>>,
    pub(crate) wake: Arc<Notify>,
    pub(crate) events: broadcast::Sender<GossipEvent>,
    pub(crate) view: watch::Sender<Arc<ClusterView>>,
    pub(crate) refresh: Duration,
    pub(crate) suspect_after: Duration,
}

impl Observer {
    pub(crate) async fn run(mut self) {
        let mut tracked: HashMap<ChitchatId, Tracked> = HashMap::new();
        // Chitchat recomputes liveness once per gossip round and then updates this watch, so
        // a death is seen at once; the tick only ages `last_heard` (and `Suspect`).
        let mut live_changes = self.chitchat.lock().await.live_nodes_watcher();
        let mut tick = tokio::time::interval(self.refresh);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut epoch = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.wake.notified() => {}
                changed = live_changes.changed() => if changed.is_err() { return },
                changed = self.members.changed() => if changed.is_err() { return },
            }
            epoch += 1;
            let next = self.rebuild(&mut tracked, epoch).await;
            let previous = self.view.borrow().clone();
            self.emit_events(&previous, &next);
            self.view.send_replace(Arc::new(next));
        }
    }

    async fn rebuild(&self, tracked: &mut HashMap<ChitchatId, Tracked>, epoch: u64) -> ClusterView {
        let members = self.members.borrow().clone();
        let now = Instant::now();
        let mut view = ClusterView::empty(self.self_id, self.suspect_after);
        let chitchat = self.chitchat.lock().await;
        let live: HashSet<&ChitchatId> = chitchat.live_nodes().collect();
        for (cid, node) in chitchat.node_states() {
            let Some(id) = parse_chitchat_node_id(&cid.node_id) else { continue };
            if id != self.self_id && !members.contains(&id) {
                continue;
            }
            let heartbeat = u64::from(node.heartbeat());
            let version = node.max_version();
            let t = match tracked.get_mut(cid) {
                Some(t) => t,
                None => tracked.entry(cid.clone()).or_insert_with(|| Tracked {
                    epoch,
                    heartbeat,
                    heard_at: None,
                    version: u64::MAX,
                    state: Arc::default(),
                }),
            };
            t.epoch = epoch;
            if heartbeat > t.heartbeat || (t.heard_at.is_none() && heartbeat > 0 && live.contains(cid)) {
                t.heard_at = Some(now);
            }
            t.heartbeat = heartbeat;
            if t.version != version {
                t.version = version;
                t.state = Arc::new(state::read(node.key_values()));
            }
            let candidate = Entry {
                chitchat_live: live.contains(cid),
                heard_at: t.heard_at,
                generation: Some(cid.generation_id),
                gossip_addr: Some(cid.gossip_advertise_addr),
                version,
                state: Some(t.state.clone()),
            };
            // Several generations of one node can coexist until the old one is forgotten:
            // the live one wins, then the newest.
            let better = match view.entries.get(&id) {
                None => true,
                Some(current) => {
                    (candidate.chitchat_live, candidate.generation) > (current.chitchat_live, current.generation)
                }
            };
            if better {
                view.entries.insert(id, candidate);
            }
        }
        drop(chitchat);
        tracked.retain(|_, t| t.epoch == epoch);
        for id in members.iter() {
            view.entries.entry(*id).or_insert(Entry {
                chitchat_live: false,
                heard_at: None,
                generation: None,
                gossip_addr: None,
                version: 0,
                state: None,
            });
        }
        view
    }

    fn emit_events(&self, previous: &ClusterView, next: &ClusterView) {
        let now = Instant::now();
        for (id, entry) in &next.entries {
            if *id == self.self_id {
                continue;
            }
            let after = next.liveness_of(*id, entry, now);
            let before = previous.entries.get(id).map(|e| (previous.liveness_of(*id, e, now), e));
            let (was, old) = match before {
                Some((liveness, old)) => (liveness, Some(old)),
                None => (Liveness::Dead, None),
            };
            let restarted = old.is_some_and(|old| old.generation != entry.generation);
            let send = |event| {
                // No subscriber is not an error: events are optional.
                let _ = self.events.send(event);
            };
            match (was, after) {
                (Liveness::Dead, Liveness::Alive | Liveness::Suspect) => {
                    send(GossipEvent::NodeUp { node_id: *id, generation: entry.generation.unwrap_or_default() })
                }
                (Liveness::Alive | Liveness::Suspect, Liveness::Alive) if restarted => {
                    send(GossipEvent::NodeUp { node_id: *id, generation: entry.generation.unwrap_or_default() })
                }
                (Liveness::Alive, Liveness::Suspect) => send(GossipEvent::NodeSuspect { node_id: *id }),
                (Liveness::Alive | Liveness::Suspect, Liveness::Dead) => send(GossipEvent::NodeDown { node_id: *id }),
                _ => {}
            }
            let changed = match old {
                Some(old) => old.version != entry.version || old.generation != entry.generation,
                None => entry.state.is_some(),
            };
            if changed && entry.state.is_some() {
                send(GossipEvent::StateChanged { node_id: *id });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chitchat_node_ids_have_one_spelling() {
        assert_eq!(parse_chitchat_node_id(&chitchat_node_id(42)), Some(42));
        assert_eq!(parse_chitchat_node_id("n0"), Some(0));
        for bad in ["42", "n", "n042", "n+4", "n-4", "n4x", "n99999999999999999999999"] {
            assert_eq!(parse_chitchat_node_id(bad), None, "{bad}");
        }
    }

    fn entry(live: bool, heard_ago: Option<Duration>) -> Entry {
        let now = Instant::now();
        Entry {
            chitchat_live: live,
            heard_at: heard_ago.and_then(|ago| now.checked_sub(ago)),
            generation: Some(1),
            gossip_addr: None,
            version: 1,
            state: None,
        }
    }

    #[test]
    fn liveness_combines_detector_and_age() {
        let view = ClusterView::empty(1, Duration::from_millis(500));
        let now = Instant::now();
        assert_eq!(view.liveness_of(2, &entry(true, Some(Duration::ZERO)), now), Liveness::Alive);
        assert_eq!(view.liveness_of(2, &entry(true, Some(Duration::from_secs(1))), now), Liveness::Suspect);
        assert_eq!(view.liveness_of(2, &entry(false, Some(Duration::ZERO)), now), Liveness::Dead);
        assert_eq!(view.liveness_of(2, &entry(true, None), now), Liveness::Dead);
        assert_eq!(view.liveness_of(1, &entry(false, None), now), Liveness::Alive, "self is always alive");
    }
}
