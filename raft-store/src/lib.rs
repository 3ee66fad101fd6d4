//! gantry's openraft 0.9 storage: the Raft log's entries in append-only segment files,
//! `DIR/raft-log/*.wal`, and everything else (vote, purge point, committed log id, snapshot) in
//! one redb file, `DIR/raft.redb`. [`open`] is the one entry point; it returns the two halves
//! openraft wants ([`LogStore`], [`StateMachineStore`]).
//!
//! Why two kinds of file: an append is on the path of every config write (a follower's, and the
//! leader's own beside it), so it is one sequential write and one `fdatasync` of a segment. redb's copy-on-write commit of the same
//! entry wrote about ten scattered pages. The rest changes rarely and wants atomic replacement:
//! a snapshot's metadata and bytes, the vote, the purge point, each one redb transaction, with
//! no tmp-file + rename + directory-fsync dance. redb also locks the data dir against a second
//! process. Stores written before the segment files (format 1) are moved into them on open.
//!
//! Durability: an append's callback fires only after its `fdatasync`, except for the leader's
//! own entries once [`LogStore::set_local_node`] named the node: those are synced in the
//! background, and nothing acts on them before that (the state machine waits for the
//! [`DurablePoint`], and the node's network layer caps the commit it sends followers at it);
//! `save_vote` and `purge` return after their redb commit (`Durability::Immediate`). `save_committed` (called before
//! every apply) is held in memory and written by a background task a second later (and with any
//! vote or purge), so after a crash it lags by up to about a second of commits (openraft allows
//! that). The state machine
//! itself is in memory: it is rebuilt from the last persisted snapshot on open, and openraft
//! re-applies the committed log after it.
#![forbid(unsafe_code)]

use std::io::Cursor;
use std::path::Path;

mod db;
mod durable;
mod error;
mod log_store;
mod state_machine;
mod wal;

pub use durable::DurablePoint;
pub use error::StoreError;
pub use log_store::{LogStore, COMMITTED_FLUSH_DELAY};
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
/// `dir/raft.redb` and the log's segments in `dir/raft-log/` (a format 1 store's log is moved
/// there first). The state machine is restored from the last persisted snapshot; hand both
/// halves to `Raft::new`, which re-applies the committed log after it.
///
/// Fails with [`StoreError::Open`] while another handle holds the file (another process, or in
/// the same process a previous `Raft` whose tasks still own the stores: they drop them a few
/// milliseconds after `Raft::shutdown` returns, so an in-process restart should retry briefly).
pub async fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), StoreError> {
    let dir = dir.to_path_buf();
    let (db, wal) = db::blocking(move || {
        let db = db::open(&dir)?;
        let wal = log_store::open_wal(&db, &dir)?;
        wal.sync_segments()?;
        Ok((db, wal))
    })
    .await?;
    let log = LogStore::new(db.clone(), wal)?;
    let sm = StateMachineStore::restore(db, log.durable()).await?;
    Ok((log, sm))
}
