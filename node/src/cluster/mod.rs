//! The cluster: this node's Raft member (openraft on `raft-store`, RPCs over the fabric), how a
//! node comes to be one (bootstrap, join, restart), writes forwarded to the leader, linearizable
//! reads, and the leader's work of keeping voters spread over zones.

pub mod config;
mod handler;
pub mod identity;
mod proposer;
mod raft_thread;
mod rpc;
pub mod voters;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gantry_proto::cluster::{
    ClusterIdentity, ClusterState, Command, JoinReply, JoinRequest, JoinToken, NodeId, NodeInfo, Refusal, Response,
    Revision,
};
use gantry_raft_store::openraft::error::RaftError;
use gantry_raft_store::openraft::{self, BasicNode, ServerState};
use gantry_raft_store::{AppliedState, Raft, RaftMetrics};
use tokio::sync::watch;

use crate::fabric::{self, pki, Fabric, FabricError};
pub use identity::{DataDir, JoinTokenText};
use proposer::ProposeError;
pub use rpc::ForwardError;
use rpc::{RaftRpc, RaftRpcReply};

/// Default lifetime of join tokens.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long one forwarded request may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a write, read or membership change keeps looking for a leader (elections take
/// about a second) before it answers "no leader". A write not acknowledged by then may still
/// commit later, as with any consensus store.
const LEADER_WAIT: Duration = Duration::from_secs(6);
const WRITE_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// A deadline for one operation's attempts.
struct Deadline(Instant);

impl Deadline {
    fn new() -> Self {
        Self(Instant::now() + LEADER_WAIT)
    }
    fn remaining(&self) -> Option<Duration> {
        self.0.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }
    /// Time for one forwarded call: the usual bound, cut to what is left.
    fn forward_timeout(&self) -> Duration {
        self.remaining().unwrap_or_default().min(FORWARD_TIMEOUT)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error("raft store: {0}")]
    Store(#[from] gantry_raft_store::StoreError),
    #[error(transparent)]
    Fabric(#[from] FabricError),
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("raft: {0}")]
    Raft(String),
    #[error("no leader could be reached; is a majority of voters up?")]
    NoLeader,
    #[error("{0}")]
    Refused(#[from] Refusal),
    #[error("join refused by {addr}: {reason}")]
    JoinRefused { addr: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

/// How this node takes part in the cluster, from the command line.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    pub name: String,
    pub zone: String,
    pub data_dir: PathBuf,
    pub fabric_bind: SocketAddr,
    /// `HOST:PORT` peers use to reach the fabric.
    pub fabric_advertise: String,
    pub admin_advertise: String,
    pub gossip_advertise: String,
    pub join: Option<(String, JoinTokenText)>,
    pub raft: RaftTuning,
    pub voter_grace: Duration,
}

/// Raft timing and compaction; defaults suit a LAN (and loopback tests).
#[derive(Clone, Debug)]
pub struct RaftTuning {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Build a snapshot (and purge the log) every this many entries.
    pub snapshot_logs: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        // A follower waits out the leader lease (= election_max) plus an election timeout,
        // checked on a tick of 1.5 × heartbeat: at most 0.25 + 0.25 + 0.075 s. A split vote (both
        // survivors standing in the same term) costs one more timeout and tick, which with
        // openraft's default maximum of 300 ms put a few failovers in 50 just over a second.
        Self { heartbeat_ms: 50, election_min_ms: 150, election_max_ms: 250, snapshot_logs: 1000 }
    }
}

/// What bootstrap produced that only the first node ever sees.
#[derive(Debug, Clone)]
pub struct BootstrapOutput {
    pub admin_token: String,
    pub join_token: String,
}

pub struct Cluster {
    pub node_id: NodeId,
    pub cluster_id: String,
    pub name: String,
    pub zone: String,
    pub raft: Raft,
    /// A handle on Raft's log store, to write the committed log id at a clean stop.
    log_store: gantry_raft_store::LogStore,
    /// Every client write goes through it (group commit on the leader).
    proposer: proposer::Proposer,
    pub fabric: Arc<Fabric>,
    applied: watch::Receiver<AppliedState>,
    pub data_dir: DataDir,
    fabric_advertise: String,
    admin_advertise: String,
    gossip_advertise: String,
    /// Last time each member answered a ping (leader's view).
    last_seen: Mutex<HashMap<NodeId, Instant>>,
    /// Revision each member reported having applied.
    peer_revisions: Mutex<HashMap<NodeId, u64>>,
    /// Gossip, once started: a second opinion on liveness for voter placement.
    gossip: std::sync::OnceLock<Arc<crate::gossip::GossipNode>>,
    started: Instant,
    /// Where Raft, the fabric and the admin API run; stops when the cluster is dropped.
    thread: raft_thread::RaftThread,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node_id", &self.node_id).field("cluster_id", &self.cluster_id).finish()
    }
}

pub fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn raft_config(cluster_id: &str, tuning: &RaftTuning) -> Result<Arc<openraft::Config>, ClusterError> {
    let config = openraft::Config {
        cluster_name: cluster_id.to_string(),
        heartbeat_interval: tuning.heartbeat_ms,
        election_timeout_min: tuning.election_min_ms,
        election_timeout_max: tuning.election_max_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(tuning.snapshot_logs),
        max_in_snapshot_log_to_keep: tuning.snapshot_logs.min(1000),
        ..Default::default()
    };
    config.validate().map(Arc::new).map_err(|e| ClusterError::Raft(e.to_string()))
}

impl Cluster {
    /// Starts this node's membership: restart from the data dir, join with a token, or
    /// bootstrap a new cluster. Returns the bootstrap secrets when a cluster was created.
    pub async fn start(settings: ClusterSettings) -> Result<(Arc<Cluster>, Option<BootstrapOutput>), ClusterError> {
        let data_dir = DataDir::new(&settings.data_dir);
        std::fs::create_dir_all(&settings.data_dir).map_err(|source| identity::IdentityError::Io {
            action: "create",
            path: settings.data_dir.clone(),
            source,
        })?;
        match data_dir.load_record()? {
            Some(record) => {
                if settings.join.is_some() {
                    tracing::warn!(
                        node_id = record.node_id,
                        "this data dir already belongs to a cluster member; --join is ignored"
                    );
                }
                let cluster = Self::open(&settings, data_dir, record).await?;
                Ok((cluster, None))
            }
            None => match settings.join.clone() {
                Some((bootstrap, token)) => {
                    let record = Self::join(&settings, &data_dir, &bootstrap, &token).await?;
                    let cluster = Self::open(&settings, data_dir, record).await?;
                    Ok((cluster, None))
                }
                None => Self::bootstrap(&settings, data_dir).await.map(|(c, o)| (c, Some(o))),
            },
        }
    }

    /// Opens the member on its own thread (see [`raft_thread`]): everything it spawns, Raft's
    /// tasks and the fabric's, runs there.
    async fn open(
        settings: &ClusterSettings,
        data_dir: DataDir,
        record: identity::NodeRecord,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let thread = raft_thread::RaftThread::start()
            .await
            .map_err(|e| ClusterError::Raft(format!("cannot start the cluster thread: {e}")))?;
        let handle = thread.handle().clone();
        let settings = settings.clone();
        handle
            .spawn(async move { Self::open_here(&settings, data_dir, record, thread).await })
            .await
            .map_err(|e| ClusterError::Raft(format!("the cluster thread failed while opening: {e}")))?
    }

    async fn open_here(
        settings: &ClusterSettings,
        data_dir: DataDir,
        record: identity::NodeRecord,
        thread: raft_thread::RaftThread,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let tls = data_dir.load_tls()?;
        let fabric = Fabric::bind(settings.fabric_bind, record.node_id, tls)?;
        let (log_store, state_machine) = gantry_raft_store::open(&data_dir.raft_dir()).await?;
        log_store.set_local_node(record.node_id).await?;
        let applied = state_machine.subscribe();
        let network = rpc::Network { fabric: fabric.clone(), durable: log_store.durable() };
        let config = raft_config(&record.cluster_id, &settings.raft)?;
        let raft = Raft::new(record.node_id, config, network, log_store.clone(), state_machine)
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let cluster = Arc::new(Cluster {
            node_id: record.node_id,
            cluster_id: record.cluster_id,
            name: settings.name.clone(),
            zone: settings.zone.clone(),
            proposer: proposer::Proposer::start(raft.clone()),
            raft,
            log_store,
            fabric: fabric.clone(),
            applied,
            data_dir,
            fabric_advertise: settings.fabric_advertise.clone(),
            admin_advertise: settings.admin_advertise.clone(),
            gossip_advertise: settings.gossip_advertise.clone(),
            last_seen: Mutex::new(HashMap::new()),
            peer_revisions: Mutex::new(HashMap::new()),
            gossip: std::sync::OnceLock::new(),
            started: Instant::now(),
            thread,
        });
        fabric.serve(Arc::new(handler::Handler { cluster: Arc::downgrade(&cluster) }));
        cluster.spawn_background(settings.voter_grace);
        Ok(cluster)
    }

    async fn bootstrap(
        settings: &ClusterSettings,
        data_dir: DataDir,
    ) -> Result<(Arc<Cluster>, BootstrapOutput), ClusterError> {
        let cluster_id = identity::random_hex(8);
        let (ca_pem, ca_key_pem) = pki::new_ca(&cluster_id)?;
        let (key_pem, public_key) = pki::new_node_key()?;
        let cert_pem = pki::sign_node_cert(&cluster_id, &ca_key_pem, 1, &public_key)?;
        let admin_token = identity::random_hex(32);
        let record = identity::NodeRecord {
            node_id: 1,
            cluster_id: cluster_id.clone(),
            name: settings.name.clone(),
            zone: settings.zone.clone(),
        };
        data_dir.store_admin_token(&admin_token)?;
        data_dir.store(&record, &cert_pem, &key_pem, &ca_pem)?;
        let cluster = Self::open(settings, data_dir, record).await?;
        let mut members = BTreeMap::new();
        members.insert(1, BasicNode::new(settings.fabric_advertise.clone()));
        cluster.raft.initialize(members).await.map_err(|e| ClusterError::Raft(e.to_string()))?;

        let mut gossip_key = [0u8; 32];
        gossip_key.iter_mut().for_each(|b| *b = rand::random());
        let identity = ClusterIdentity {
            cluster_id: cluster_id.clone(),
            ca_cert_pem: ca_pem.clone(),
            ca_key_pem,
            gossip_key,
            admin_token_sha256: identity::sha256(admin_token.as_bytes()),
        };
        cluster.write(Command::Bootstrap { identity }).await?;
        cluster.write(Command::UpsertNode { node: cluster.self_info() }).await?;
        let join_token = cluster.create_join_token(DEFAULT_TOKEN_TTL).await?;
        Ok((cluster, BootstrapOutput { admin_token, join_token }))
    }

    async fn join(
        settings: &ClusterSettings,
        data_dir: &DataDir,
        bootstrap: &str,
        token: &JoinTokenText,
    ) -> Result<identity::NodeRecord, ClusterError> {
        let addr = rpc::resolve(bootstrap).await?;
        let (key_pem, public_key) = pki::new_node_key()?;
        let request = JoinRequest {
            token_id: token.id.clone(),
            secret: token.secret.clone(),
            name: settings.name.clone(),
            zone: settings.zone.clone(),
            fabric: settings.fabric_advertise.clone(),
            admin: settings.admin_advertise.clone(),
            gossip: settings.gossip_advertise.clone(),
            public_key,
        };
        let reply: JoinReply =
            fabric::join_call(addr, token.ca_pin, &request, Duration::from_secs(15)).await.map_err(|e| match e {
                FabricError::Refused { reason, .. } => {
                    ClusterError::JoinRefused { addr: bootstrap.to_string(), reason }
                }
                other => ClusterError::Fabric(other),
            })?;
        match reply {
            JoinReply::Accepted { node_id, cluster_id, cert_pem, ca_pem, members } => {
                tracing::info!(node_id, %cluster_id, members = members.len(), "joined the cluster");
                let record = identity::NodeRecord {
                    node_id,
                    cluster_id,
                    name: settings.name.clone(),
                    zone: settings.zone.clone(),
                };
                data_dir.store(&record, &cert_pem, &key_pem, &ca_pem)?;
                Ok(record)
            }
            JoinReply::Refused { reason } => Err(ClusterError::JoinRefused { addr: bootstrap.to_string(), reason }),
        }
    }

    pub fn set_gossip(&self, gossip: Arc<crate::gossip::GossipNode>) {
        let _ = self.gossip.set(gossip);
    }

    pub fn gossip(&self) -> Option<&Arc<crate::gossip::GossipNode>> {
        self.gossip.get()
    }

    pub fn self_info(&self) -> NodeInfo {
        NodeInfo {
            id: self.node_id,
            name: self.name.clone(),
            zone: self.zone.clone(),
            fabric: self.fabric_advertise.clone(),
            admin: self.admin_advertise.clone(),
            gossip: self.gossip_advertise.clone(),
        }
    }

    /// The replicated state as applied here (may trail the leader).
    pub fn state(&self) -> Arc<ClusterState> {
        self.applied.borrow().state.clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<AppliedState> {
        self.applied.clone()
    }

    pub fn metrics(&self) -> RaftMetrics {
        self.raft.metrics().borrow().clone()
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn role(&self) -> &'static str {
        let metrics = self.metrics();
        match metrics.state {
            ServerState::Leader => "leader",
            ServerState::Candidate => "candidate",
            ServerState::Follower => {
                if metrics.membership_config.membership().voter_ids().any(|id| id == self.node_id) {
                    "follower"
                } else {
                    "learner"
                }
            }
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        }
    }

    /// Commits a command, on the leader directly or forwarded to it.
    pub async fn write(&self, command: Command) -> Result<Response, ClusterError> {
        let deadline = Deadline::new();
        while let Some(remaining) = deadline.remaining() {
            // A leader cut off from its quorum would wait forever for the commit.
            let Ok(written) = tokio::time::timeout(remaining, self.proposer.propose(command.clone())).await else {
                break;
            };
            match written {
                Ok(response) => return Ok(response),
                Err(ProposeError::ForwardToLeader { leader, node }) => {
                    let (Some(leader), Some(node)) = (leader, node) else {
                        tokio::time::sleep(WRITE_RETRY_PAUSE).await;
                        continue;
                    };
                    let rpc = RaftRpc::Write(command.clone());
                    match rpc::call(&self.fabric, leader, &node.addr, &rpc, deadline.forward_timeout()).await {
                        Ok(RaftRpcReply::Write(Ok(response))) => return Ok(response),
                        Ok(RaftRpcReply::Write(Err(ForwardError::Failed(message)))) => {
                            return Err(ClusterError::Raft(message))
                        }
                        Ok(_) | Err(_) => tokio::time::sleep(WRITE_RETRY_PAUSE).await,
                    }
                }
                Err(ProposeError::Failed(message)) => return Err(ClusterError::Raft(message)),
            }
        }
        Err(ClusterError::NoLeader)
    }

    /// Entries this node proposed to Raft, and the client writes they carried.
    pub fn proposals(&self) -> (u64, u64) {
        let stats = self.proposer.stats();
        (
            stats.proposals.load(std::sync::atomic::Ordering::Relaxed),
            stats.writes.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Proposes a write forwarded by another member (group-committed with this node's own).
    pub(crate) async fn propose_forwarded(&self, command: Command) -> Result<Response, ForwardError> {
        match self.proposer.propose(command).await {
            Ok(response) => Ok(response),
            Err(ProposeError::ForwardToLeader { leader, .. }) => Err(ForwardError::NotLeader { leader }),
            Err(ProposeError::Failed(message)) => Err(ForwardError::Failed(message)),
        }
    }

    /// Like `write`, turning a refusal of the state machine into an error.
    pub async fn commit(&self, command: Command) -> Result<Response, ClusterError> {
        match self.write(command).await? {
            Response::Refused(refusal) => Err(ClusterError::Refused(refusal)),
            other => Ok(other),
        }
    }

    /// A revision read with linearizable consistency (read index on the leader).
    pub async fn read_revision_linearizable(&self, revision: Option<u64>) -> Result<Option<Revision>, ClusterError> {
        let deadline = Deadline::new();
        while let Some(remaining) = deadline.remaining() {
            let Ok(checked) = tokio::time::timeout(remaining, self.raft.ensure_linearizable()).await else {
                break;
            };
            match checked {
                Ok(_) => return Ok(self.revision_here(revision)),
                Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(forward))) => {
                    let (Some(leader), Some(node)) = (forward.leader_id, forward.leader_node) else {
                        tokio::time::sleep(WRITE_RETRY_PAUSE).await;
                        continue;
                    };
                    match rpc::call(
                        &self.fabric,
                        leader,
                        &node.addr,
                        &RaftRpc::ReadRevision { revision },
                        deadline.forward_timeout(),
                    )
                    .await
                    {
                        Ok(RaftRpcReply::Revision(Ok(found))) => return Ok(found),
                        _ => tokio::time::sleep(WRITE_RETRY_PAUSE).await,
                    }
                }
                Err(other) => return Err(ClusterError::Raft(other.to_string())),
            }
        }
        Err(ClusterError::NoLeader)
    }

    fn revision_here(&self, revision: Option<u64>) -> Option<Revision> {
        let state = self.state();
        match revision {
            Some(r) => state.revision_at(r).map(|found| Revision::clone(found)),
            None => state.current().map(|found| Revision::clone(found)),
        }
    }

    /// Creates a join token valid for `ttl`; returns its text.
    pub async fn create_join_token(&self, ttl: Duration) -> Result<String, ClusterError> {
        let ca_pem = self
            .state()
            .identity
            .as_ref()
            .map(|i| i.ca_cert_pem.clone())
            .ok_or_else(|| ClusterError::Invalid("the cluster has no identity yet".into()))?;
        let pin = pki::sha256(&pki::cert_der_from_pem(&ca_pem)?);
        let token = JoinTokenText::new(pin);
        let stored = JoinToken {
            secret_sha256: token.secret_sha256(),
            expires_at_unix_ms: now_unix_ms() + ttl.as_millis() as u64,
            revoked: false,
        };
        self.commit(Command::CreateJoinToken { id: token.id.clone(), token: stored }).await?;
        Ok(token.to_string())
    }

    /// Asks the leader to run a membership RPC (`AddLearner`, `RemoveMember`).
    async fn on_leader(&self, rpc: RaftRpc) -> Result<(), ClusterError> {
        let deadline = Deadline::new();
        while deadline.remaining().is_some() {
            let metrics = self.metrics();
            match metrics.current_leader {
                Some(leader) if leader == self.node_id => {
                    return handler::run_membership(self, rpc).await.map_err(|e| ClusterError::Raft(e.to_string()))
                }
                Some(leader) => {
                    let Some(node) = metrics.membership_config.membership().get_node(&leader).cloned() else {
                        tokio::time::sleep(WRITE_RETRY_PAUSE).await;
                        continue;
                    };
                    match rpc::call(&self.fabric, leader, &node.addr, &rpc, deadline.forward_timeout()).await {
                        Ok(RaftRpcReply::Done(Ok(()))) => return Ok(()),
                        Ok(RaftRpcReply::Done(Err(ForwardError::Failed(message)))) => {
                            return Err(ClusterError::Raft(message))
                        }
                        _ => tokio::time::sleep(WRITE_RETRY_PAUSE).await,
                    }
                }
                None => tokio::time::sleep(WRITE_RETRY_PAUSE).await,
            }
        }
        Err(ClusterError::NoLeader)
    }

    /// Removes a member: out of Raft, out of the cluster, its certificate refused from now on.
    pub async fn remove_member(&self, id: NodeId) -> Result<(), ClusterError> {
        self.on_leader(RaftRpc::RemoveMember { id }).await
    }

    /// What this node's pings saw: (member, ms since it answered, revision it applied).
    fn local_liveness(&self) -> Vec<(NodeId, u64, u64)> {
        let revisions = lock(&self.peer_revisions).clone();
        lock(&self.last_seen)
            .iter()
            .map(|(id, at)| (*id, at.elapsed().as_millis() as u64, revisions.get(id).copied().unwrap_or(0)))
            .collect()
    }

    /// The leader's view of members' liveness (only the leader pings): member → (ms since it
    /// answered, revision it applied).
    pub async fn liveness(&self) -> Result<HashMap<NodeId, (u64, u64)>, ClusterError> {
        let metrics = self.metrics();
        let to_map = |list: Vec<(NodeId, u64, u64)>| list.into_iter().map(|(id, ms, rev)| (id, (ms, rev))).collect();
        match metrics.current_leader {
            Some(leader) if leader == self.node_id => Ok(to_map(self.local_liveness())),
            Some(leader) => {
                let node =
                    metrics.membership_config.membership().get_node(&leader).cloned().ok_or(ClusterError::NoLeader)?;
                match rpc::call(&self.fabric, leader, &node.addr, &RaftRpc::Liveness, FORWARD_TIMEOUT).await? {
                    RaftRpcReply::Liveness { members } => Ok(to_map(members)),
                    other => Err(ClusterError::Raft(format!("unexpected reply: {other:?}"))),
                }
            }
            None => Err(ClusterError::NoLeader),
        }
    }

    fn spawn_background(self: &Arc<Self>, voter_grace: Duration) {
        // Removed members' certificates are refused as soon as the removal is applied here.
        let weak = Arc::downgrade(self);
        let mut applied = self.applied.clone();
        tokio::spawn(async move {
            loop {
                let removed: BTreeSet<NodeId> = applied.borrow_and_update().state.removed.clone();
                match weak.upgrade() {
                    Some(cluster) => cluster.fabric.set_refused(removed),
                    None => return,
                }
                if applied.changed().await.is_err() {
                    return;
                }
            }
        });
        voters::spawn(Arc::downgrade(self), voter_grace);
    }

    /// Runs `task` on the cluster's thread, next to Raft: the admin API runs there, so a config
    /// write goes from its request to Raft and back without waking a data-plane worker (the
    /// control plane on one thread and the data plane on the workers, as Envoy splits them).
    pub fn spawn_on_cluster_thread<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.thread.handle().spawn(task)
    }

    /// Stops Raft, the fabric and the cluster thread, and writes the last committed log id, so a
    /// node restarted after a clean stop re-applies everything it had committed before it reaches
    /// a leader.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
        if let Err(error) = self.log_store.flush_committed().await {
            tracing::warn!(%error, "cannot write the committed log id at stop; it lags until the next start");
        }
        self.fabric.close().await;
        // Last: the admin API runs there and holds the cluster, so dropping the cluster alone
        // would never end the thread.
        self.thread.stop();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Adds a node to Raft as a learner (leader only); used by joins.
pub(crate) async fn add_learner(cluster: &Cluster, id: NodeId, fabric: String) -> Result<(), ClusterError> {
    cluster.on_leader(RaftRpc::AddLearner { id, fabric }).await
}
