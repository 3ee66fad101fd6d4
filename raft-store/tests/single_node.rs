//! The store under a real openraft node (a cluster of one, no network): writes commit and are
//! published, a snapshot is built and the log purged behind it, and after a restart the node
//! resumes from the snapshot, re-applies the log after it and keeps its term.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gantry_proto::cluster::{Command, Response};
use gantry_raft_store::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, Node, NodeId, Raft,
    RaftError, RpcError, TypeConfig, VoteRequest, VoteResponse,
};
use openraft::error::{InstallSnapshotError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::{BasicNode, Config};

/// A network with no peers: every RPC fails as unreachable (never called in a cluster of one).
struct NoNetwork;

fn unreachable<E: std::error::Error>() -> RpcError<E> {
    RpcError::Unreachable(Unreachable::new(&std::io::Error::other("no network in this test")))
}

impl RaftNetworkFactory<TypeConfig> for NoNetwork {
    type Network = NoNetwork;
    async fn new_client(&mut self, _target: NodeId, _node: &Node) -> NoNetwork {
        NoNetwork
    }
}

impl RaftNetwork<TypeConfig> for NoNetwork {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse, RpcError<RaftError>> {
        Err(unreachable())
    }
    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse, RpcError<RaftError<InstallSnapshotError>>> {
        Err(unreachable())
    }
    async fn vote(&mut self, _rpc: VoteRequest, _option: RPCOption) -> Result<VoteResponse, RpcError<RaftError>> {
        Err(unreachable())
    }
}

fn config() -> Arc<Config> {
    let config = Config {
        cluster_name: "raft-store-test".into(),
        // Snapshots only when asked, so the test decides where the snapshot lands.
        snapshot_policy: openraft::SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 0,
        ..Default::default()
    };
    Arc::new(config.validate().expect("valid config"))
}

fn apply_config(json: &str) -> Command {
    Command::ApplyConfig { config_json: json.into(), if_revision: None, at_unix_ms: 1 }
}

async fn reopen(dir: &std::path::Path) -> (gantry_raft_store::LogStore, gantry_raft_store::StateMachineStore) {
    let started = std::time::Instant::now();
    loop {
        match gantry_raft_store::open(dir).await {
            Ok(store) => {
                println!("reopened after {:?}", started.elapsed());
                return store;
            }
            Err(gantry_raft_store::StoreError::Open { .. }) if started.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
}

const WAIT: Option<Duration> = Some(Duration::from_secs(10));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarts_from_its_snapshot_and_log() {
    let dir = tempfile::tempdir().expect("tempdir");

    let (log, sm) = gantry_raft_store::open(dir.path()).await.expect("open");
    let mut applied = sm.subscribe();
    let raft = Raft::new(1, config(), NoNetwork, log, sm).await.expect("start raft");
    let members = BTreeMap::from([(1, BasicNode { addr: "127.0.0.1:7000".into() })]);
    raft.initialize(members).await.expect("initialize");
    raft.wait(WAIT).current_leader(1, "leader elected").await.expect("leader");

    let first = raft.client_write(apply_config("{\"v\":1}")).await.expect("write");
    assert_eq!(first.data, Response::Committed { revision: 1 });
    let second = raft.client_write(apply_config("{\"v\":2}")).await.expect("write");
    // The watch has seen revision 2 by the time the write returned (apply precedes the reply).
    assert_eq!(applied.borrow_and_update().state.revision(), 2);

    // Snapshot at revision 2 and purge the log behind it.
    // (From the write's reply: metrics may lag the state machine by a moment.)
    let snapshot_at = second.log_id;
    raft.trigger().snapshot().await.expect("trigger snapshot");
    raft.wait(WAIT).snapshot(snapshot_at, "snapshot built").await.expect("snapshot");
    raft.trigger().purge_log(snapshot_at.index).await.expect("trigger purge");
    raft.wait(WAIT).purged(Some(snapshot_at), "log purged").await.expect("purge");

    // One more revision lives only in the log.
    let third = raft.client_write(apply_config("{\"v\":3}")).await.expect("write");
    let last = third.log_id;
    let term = raft.metrics().borrow().current_term;
    raft.shutdown().await.expect("shutdown");
    drop(raft);

    // Restart on the same directory. openraft's state machine task drops its half of the store
    // just after `shutdown` returns, so the file lock is released a moment later.
    let (log, sm) = reopen(dir.path()).await;
    assert_eq!(sm.last_applied(), Some(snapshot_at), "restored from the snapshot");
    assert_eq!(sm.state().revision(), 2);
    let mut applied = sm.subscribe();
    let raft = Raft::new(1, config(), NoNetwork, log, sm).await.expect("restart raft");
    raft.wait(WAIT).applied_index_at_least(Some(last.index), "log re-applied").await.expect("re-apply");
    applied.changed().await.expect("published");
    let state = applied.borrow().state.clone();
    assert_eq!(state.revision(), 3);
    assert_eq!(state.current().map(|r| r.config_json.as_str()), Some("{\"v\":3}"));
    assert!(raft.metrics().borrow().current_term >= term, "term went back after restart");
    raft.wait(WAIT).current_leader(1, "leader after restart").await.expect("leader");
    let after = raft.client_write(apply_config("{\"v\":4}")).await.expect("write after restart");
    assert_eq!(after.data, Response::Committed { revision: 4 });
    raft.shutdown().await.expect("shutdown");
}
