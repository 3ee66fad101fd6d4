//! Raft over the fabric: the messages members exchange on `gantry-raft/1` (openraft RPCs plus
//! writes and membership changes forwarded to the leader, linearizable reads, liveness pings),
//! the openraft network client that sends them, and `Unreachable` when a peer is down so that
//! openraft backs off.

use std::net::SocketAddr;
use std::time::Duration;

use gantry_proto::cluster::{Command, NodeId, Response, Revision};
use gantry_raft_store::openraft::error::{NetworkError, RemoteError, Timeout, Unreachable};
use gantry_raft_store::openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use gantry_raft_store::{
    AppendEntriesRequest, AppendEntriesResponse, DurablePoint, InstallSnapshotError, InstallSnapshotRequest,
    InstallSnapshotResponse, Node, RaftError, RpcError, TypeConfig, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::fabric::{Fabric, FabricError, ALPN_RAFT};

#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRpc {
    AppendEntries(AppendEntriesRequest),
    Vote(VoteRequest),
    InstallSnapshot(InstallSnapshotRequest),
    /// A write proposed on a follower, for the leader to commit.
    Write(Command),
    /// Asks the leader to add a learner (joins served by followers).
    AddLearner {
        id: NodeId,
        fabric: String,
    },
    /// Asks the leader to remove a member from Raft and from the cluster.
    RemoveMember {
        id: NodeId,
    },
    /// Asks the leader for a linearizable read of a revision (None: the current one).
    ReadRevision {
        revision: Option<u64>,
    },
    /// Liveness probe; the answer carries the revision the peer applied.
    Ping,
    /// Asks the leader what its pings saw.
    Liveness,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRpcReply {
    AppendEntries(Result<AppendEntriesResponse, RaftError>),
    Vote(Result<VoteResponse, RaftError>),
    InstallSnapshot(Result<InstallSnapshotResponse, RaftError<InstallSnapshotError>>),
    Write(Result<Response, ForwardError>),
    Done(Result<(), ForwardError>),
    Revision(Result<Option<Revision>, ForwardError>),
    Pong {
        applied_revision: u64,
    },
    /// Per member: milliseconds since it last answered the leader, and the revision it applied.
    Liveness {
        members: Vec<(NodeId, u64, u64)>,
    },
    /// The request could not be decoded (counted and logged by the receiver).
    BadRequest(String),
}

/// Why the leader could not do what a follower forwarded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ForwardError {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("{0}")]
    Failed(String),
}

/// Resolves a member's fabric address (`IP:PORT` or `HOST:PORT`).
pub async fn resolve(addr: &str) -> Result<SocketAddr, FabricError> {
    if let Ok(parsed) = addr.parse() {
        return Ok(parsed);
    }
    let fallback = SocketAddr::from(([0, 0, 0, 0], 0));
    tokio::net::lookup_host(addr)
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| FabricError::Unreachable { addr: fallback, reason: format!("cannot resolve {addr}") })
}

/// Sends one RPC to `node` at `addr`.
pub async fn call(
    fabric: &Fabric,
    node: NodeId,
    addr: &str,
    rpc: &RaftRpc,
    timeout: Duration,
) -> Result<RaftRpcReply, FabricError> {
    let addr = resolve(addr).await?;
    fabric.request(addr, node, ALPN_RAFT, rpc, timeout).await
}

/// Creates openraft's per-peer clients.
#[derive(Clone, Debug)]
pub struct Network {
    pub fabric: Arc<Fabric>,
    /// This node's log's durable point: no follower hears of a commit past it.
    pub durable: Arc<DurablePoint>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        // No connection here: the fabric connects on first use and reconnects as needed.
        PeerClient { fabric: self.fabric.clone(), target, addr: node.addr.clone(), durable: self.durable.clone() }
    }
}

#[derive(Debug)]
pub struct PeerClient {
    fabric: Arc<Fabric>,
    target: NodeId,
    addr: String,
    durable: Arc<DurablePoint>,
}

impl PeerClient {
    async fn send<E: std::error::Error>(
        &self,
        rpc: RaftRpc,
        action: RPCTypes,
        option: &RPCOption,
    ) -> Result<RaftRpcReply, RpcError<E>> {
        // soft_ttl: our own deadline must fire before openraft's (hard_ttl), so the fabric can
        // drop a dead connection instead of being cancelled first.
        call(&self.fabric, self.target, &self.addr, &rpc, option.soft_ttl()).await.map_err(|error| match error {
            // Alive but late (a busy follower): openraft retries with the next heartbeat or
            // write, where `Unreachable` would pause replication to it for a whole backoff.
            FabricError::Timeout { timeout, silent: false, .. } => {
                RpcError::Timeout(Timeout { action, id: self.fabric.node_id(), target: self.target, timeout })
            }
            error if error.is_unreachable() || matches!(error, FabricError::Refused { .. }) => {
                RpcError::Unreachable(Unreachable::new(&error))
            }
            error => RpcError::Network(NetworkError::new(&error)),
        })
    }

    fn unexpected<E: std::error::Error>(&self, reply: RaftRpcReply) -> RpcError<E> {
        let error = std::io::Error::other(format!("unexpected reply from node {}: {reply:?}", self.target));
        RpcError::Network(NetworkError::new(&error))
    }
}

/// Pause between replication attempts to an unreachable peer: short, so a restarted node hears
/// heartbeats before its election timeout and does not disrupt the cluster with an election.
const UNREACHABLE_BACKOFF: Duration = Duration::from_millis(100);
/// How long a commit announcement waits for the leader's own sync of what it commits; well
/// under the AppendEntries timeout (three quarters of the 50 ms heartbeat).
const COMMIT_SYNC_WAIT: Duration = Duration::from_millis(10);

impl RaftNetwork<TypeConfig> for PeerClient {
    fn backoff(&self) -> gantry_raft_store::openraft::network::Backoff {
        gantry_raft_store::openraft::network::Backoff::new(std::iter::repeat(UNREACHABLE_BACKOFF))
    }

    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse, RpcError<RaftError>> {
        // The leader's own latest entries may still be syncing (gantry_raft_store::durable):
        // openraft may count them toward a commit meanwhile, but followers apply only what a
        // majority holds on disk, so the commit they hear stops at this node's durable point. A
        // message that only announces a commit waits briefly for the sync (it is nearly always
        // done: it started before the entries went out); past that the next message carries it.
        if let (true, Some(commit)) = (rpc.entries.is_empty(), rpc.leader_commit) {
            let _ = tokio::time::timeout(COMMIT_SYNC_WAIT, self.durable.wait_for(commit.index)).await;
        }
        rpc.leader_commit = self.durable.cap(rpc.leader_commit);
        match self.send(RaftRpc::AppendEntries(rpc), RPCTypes::AppendEntries, &option).await? {
            RaftRpcReply::AppendEntries(Ok(response)) => Ok(response),
            RaftRpcReply::AppendEntries(Err(error)) => Err(RpcError::RemoteError(RemoteError::new(self.target, error))),
            other => Err(self.unexpected(other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse, RpcError<RaftError<InstallSnapshotError>>> {
        match self.send(RaftRpc::InstallSnapshot(rpc), RPCTypes::InstallSnapshot, &option).await? {
            RaftRpcReply::InstallSnapshot(Ok(response)) => Ok(response),
            RaftRpcReply::InstallSnapshot(Err(error)) => {
                Err(RpcError::RemoteError(RemoteError::new(self.target, error)))
            }
            other => Err(self.unexpected(other)),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest, option: RPCOption) -> Result<VoteResponse, RpcError<RaftError>> {
        match self.send(RaftRpc::Vote(rpc), RPCTypes::Vote, &option).await? {
            RaftRpcReply::Vote(Ok(response)) => Ok(response),
            RaftRpcReply::Vote(Err(error)) => Err(RpcError::RemoteError(RemoteError::new(self.target, error))),
            other => Err(self.unexpected(other)),
        }
    }
}
