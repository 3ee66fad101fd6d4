//! gantry's openraft 0.9 storage: the Raft log and the replicated state machine on one durable
//! redb file, `DIR/raft.redb`. [`open`] is the one entry point; it returns the two halves openraft
//! wants ([`LogStore`], [`StateMachineStore`]) sharing one `Arc<redb::Database>`.
//!
//! Why one database file and not two: every write (log append, vote, purge, snapshot) is a redb
//! transaction whose commit is one fsync of one file, so a snapshot's metadata and bytes replace
//! the old ones atomically without a tmp-file + rename + directory-fsync dance, and the node has
//! one file to lock, back up and inspect. The cost is that redb has a single writer: a snapshot
//! write briefly queues a log append behind it. Snapshots here are small (the config history is
//! bounded) and rare (openraft builds one every few thousand entries), so that is cheap.
//!
//! Durability: redb commits with `Durability::Immediate` by default (fsync before `commit`
//! returns; checksummed copy-on-write pages roll back to the last good commit after a crash).
//! `append` calls openraft's callback only after its one transaction committed, `save_vote` and
//! `purge` return after theirs. `save_committed` (called before every apply) writes nothing by
//! itself: the id rides along in the next of those transactions, so it may lag after a crash. The state machine itself is in memory: it is rebuilt from the last
//! persisted snapshot on open, and openraft re-applies the committed log after it.
#![forbid(unsafe_code)]

use std::io::Cursor;
use std::path::Path;

mod db;
mod error;
mod log_store;
mod state_machine;

pub use error::StoreError;
pub use log_store::LogStore;
pub use state_machine::{AppliedState, SnapshotBuilder, StateMachineStore};

/// The openraft crate this storage is built for, so the node names the same version.
pub use openraft;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "raft.redb";

openraft::declare_raft_types!(
    /// gantry's Raft types: the log carries [`gantry_proto::cluster::Command`]s, applying one
    /// answers a [`gantry_proto::cluster::Response`]; a node's `addr` is its fabric address.
    pub TypeConfig:
        D = gantry_proto::cluster::Command,
        R = gantry_proto::cluster::Response,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Node ids are the cluster's node ids (`gantry_proto::cluster::NodeId`).
pub type NodeId = gantry_proto::cluster::NodeId;
/// What Raft keeps per member: `addr` is the node's QUIC fabric address (`HOST:PORT`).
pub type Node = openraft::BasicNode;
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type EntryPayload = openraft::EntryPayload<TypeConfig>;
pub type Membership = openraft::Membership<NodeId, Node>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type LogState = openraft::LogState<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, Node>;

/// Raft RPC messages, as the fabric carries them.
pub type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
pub type AppendEntriesResponse = openraft::raft::AppendEntriesResponse<NodeId>;
pub type VoteRequest = openraft::raft::VoteRequest<NodeId>;
pub type VoteResponse = openraft::raft::VoteResponse<NodeId>;
pub type InstallSnapshotRequest = openraft::raft::InstallSnapshotRequest<TypeConfig>;
pub type InstallSnapshotResponse = openraft::raft::InstallSnapshotResponse<NodeId>;
pub type SnapshotResponse = openraft::raft::SnapshotResponse<NodeId>;
pub type ClientWriteResponse = openraft::raft::ClientWriteResponse<TypeConfig>;

/// Raft API errors with gantry's node types filled in.
pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<NodeId, E>;
pub type ClientWriteError = openraft::error::ClientWriteError<NodeId, Node>;
pub type CheckIsLeaderError = openraft::error::CheckIsLeaderError<NodeId, Node>;
pub type InstallSnapshotError = openraft::error::InstallSnapshotError;
pub type RpcError<E = openraft::error::Infallible> = openraft::error::RPCError<NodeId, Node, E>;
pub type StreamingError<E = openraft::error::Infallible> = openraft::error::StreamingError<TypeConfig, E>;

/// Opens (or creates) the store in `dir`: the directory is created if missing, then
/// `dir/raft.redb`. The state machine is restored from the last persisted snapshot; hand both
/// halves to `Raft::new`, which re-applies the committed log after it.
///
/// Fails with [`StoreError::Open`] while another handle holds the file (another process, or in
/// the same process a previous `Raft` whose tasks still own the stores: they drop them a few
/// milliseconds after `Raft::shutdown` returns, so an in-process restart should retry briefly).
pub async fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), StoreError> {
    let dir = dir.to_path_buf();
    let db = db::blocking(move || db::open(&dir)).await?;
    let log = LogStore::new(db.clone());
    let sm = StateMachineStore::restore(db).await?;
    Ok((log, sm))
}
