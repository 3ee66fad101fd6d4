//! [`StateMachineStore`]: openraft's `RaftStateMachine` over `gantry_proto`'s [`ClusterState`],
//! held in memory and published to the node through a watch channel, and its snapshots, persisted
//! in the redb `snapshot` table. On open the state is restored from that snapshot.

use std::fmt;
use std::io::Cursor;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use gantry_proto::cluster::{ClusterState, Response};
use openraft::storage::RaftStateMachine;
use openraft::{ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use redb::{Database, ReadableDatabase};
use tokio::sync::watch;

use crate::db::{self, SNAPSHOT, SNAPSHOT_DATA, SNAPSHOT_META};
use crate::durable::DurablePoint;
use crate::{
    Entry, EntryPayload, LogId, Snapshot, SnapshotMeta, StorageError, StoreError, StoredMembership, TypeConfig,
};

/// The state machine as of one applied log id. Cheap to clone (the state is behind an `Arc`, and
/// each published value is immutable).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppliedState {
    /// The last log id applied (or covered by the installed snapshot); `None` before any.
    pub last_applied: Option<LogId>,
    /// The last membership config applied.
    pub membership: StoredMembership,
    /// The replicated cluster state after applying up to `last_applied`.
    pub state: Arc<ClusterState>,
}

/// The replicated state machine. openraft owns it once handed to `Raft::new`; take a
/// [`subscribe`](Self::subscribe) receiver first to follow what is applied.
pub struct StateMachineStore {
    db: Arc<Database>,
    current: AppliedState,
    published: watch::Sender<AppliedState>,
    /// Entries are applied only once they are on disk here (see [`crate::durable`]).
    durable: Arc<DurablePoint>,
}

impl fmt::Debug for StateMachineStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMachineStore")
            .field("last_applied", &self.current.last_applied)
            .field("revision", &self.current.state.revision())
            .finish_non_exhaustive()
    }
}

/// What a snapshot's bytes hold: the state and the log position it is the state of. Encoded as
/// a tuple in the codec's format (with a larger bound, see `db::SNAPSHOT_MAX_BYTES`); the
/// borrowed form encodes without cloning the state.
type SnapshotContent = (ClusterState, Option<LogId>, StoredMembership);

fn encode_content(applied: &AppliedState) -> Result<Vec<u8>, StoreError> {
    db::encode_snapshot(&(&*applied.state, &applied.last_applied, &applied.membership))
}

/// Decodes snapshot bytes and checks they describe the position `meta` claims.
fn decode_content(meta: &SnapshotMeta, bytes: &[u8]) -> Result<AppliedState, StoreError> {
    let (state, last_applied, membership): SnapshotContent =
        db::decode_snapshot(format!("snapshot {}", meta.snapshot_id), bytes)?;
    if last_applied != meta.last_log_id || membership != meta.last_membership {
        return Err(StoreError::Inconsistent(format!(
            "snapshot {} holds state at {last_applied:?} with membership {membership:?}, its metadata says {:?} / {:?}",
            meta.snapshot_id, meta.last_log_id, meta.last_membership
        )));
    }
    Ok(AppliedState { last_applied, membership, state: Arc::new(state) })
}

/// The persisted snapshot, if any: metadata and bytes.
fn read_snapshot(db: &Database) -> Result<Option<(SnapshotMeta, Vec<u8>)>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(SNAPSHOT)?;
    let Some(meta) = db::get::<SnapshotMeta>(&table, SNAPSHOT_META)? else {
        return Ok(None);
    };
    let Some(data) = table.get(SNAPSHOT_DATA)? else {
        return Err(StoreError::Inconsistent(format!("snapshot {} has metadata but no data", meta.snapshot_id)));
    };
    let data = data.value().to_vec();
    Ok(Some((meta, data)))
}

/// Replaces the persisted snapshot with (`meta`, `data`) in one durable transaction. With
/// `only_if_newer`, keeps the stored one when it covers more of the log: a snapshot built from an
/// older state must not replace one installed from the leader while it was being built.
/// Returns whether it wrote.
fn write_snapshot(db: &Database, meta: &SnapshotMeta, data: &[u8], only_if_newer: bool) -> Result<bool, StoreError> {
    let meta_bytes = db::encode("snapshot metadata", meta)?;
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(SNAPSHOT)?;
        if only_if_newer {
            if let Some(stored) = db::get::<SnapshotMeta>(&table, SNAPSHOT_META)? {
                if stored.last_log_id > meta.last_log_id {
                    return Ok(false);
                }
            }
        }
        table.insert(SNAPSHOT_META, meta_bytes.as_slice())?;
        table.insert(SNAPSHOT_DATA, data)?;
    }
    txn.commit()?;
    Ok(true)
}

impl StateMachineStore {
    /// Loads the persisted snapshot, if any, as the starting state.
    pub(crate) async fn restore(db: Arc<Database>, durable: Arc<DurablePoint>) -> Result<Self, StoreError> {
        let reader = db.clone();
        let current = db::blocking(move || match read_snapshot(&reader)? {
            Some((meta, data)) => decode_content(&meta, &data),
            None => Ok(AppliedState::default()),
        })
        .await?;
        if let Some(last) = current.last_applied {
            tracing::info!(last_applied = %last, revision = current.state.revision(), "state machine restored from snapshot");
        }
        let (published, _) = watch::channel(current.clone());
        Ok(Self { db, current, published, durable })
    }

    /// A receiver that sees every applied state from now on (the latest one at once). The node's
    /// data plane follows config revisions from it.
    pub fn subscribe(&self) -> watch::Receiver<AppliedState> {
        self.published.subscribe()
    }

    /// The last log id applied to the state machine.
    pub fn last_applied(&self) -> Option<LogId> {
        self.current.last_applied
    }

    /// The current state (as of [`last_applied`](Self::last_applied)).
    pub fn state(&self) -> Arc<ClusterState> {
        self.current.state.clone()
    }

    /// The persisted snapshot's metadata, if any.
    pub async fn snapshot_meta(&self) -> Result<Option<SnapshotMeta>, StoreError> {
        let db = self.db.clone();
        db::blocking(move || db::read(&db, SNAPSHOT, SNAPSHOT_META)).await
    }

    fn publish(&mut self, next: AppliedState) {
        self.current = next.clone();
        // `send_replace` stores the value even when nobody subscribes.
        self.published.send_replace(next);
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.current.last_applied, self.current.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if let Some(last) = entries.last() {
            self.durable
                .wait_for(last.log_id.index)
                .await
                .map_err(|e| e.into_raft(ErrorSubject::Store, ErrorVerb::Write))?;
        }
        let mut next = self.current.clone();
        let mut responses = Vec::new();
        for entry in entries {
            next.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => Response::Done,
                // `make_mut` clones the state once per batch (the published value still holds
                // the old one), then mutates the private copy in place.
                EntryPayload::Normal(command) => Arc::make_mut(&mut next.state).apply(command),
                EntryPayload::Membership(membership) => {
                    next.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Response::Done
                }
            };
            responses.push(response);
        }
        // Not persisted here: the state is rebuilt from the last snapshot plus the log on open.
        self.publish(next);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { db: self.db.clone(), applied: self.current.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let meta = meta.clone();
        let db = self.db.clone();
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let next = db::blocking(move || {
            let next = decode_content(&meta, &data)?;
            // Persist before switching: if the write fails, the old state stays in place.
            write_snapshot(&db, &meta, &data, false)?;
            Ok(next)
        })
        .await
        .map_err(|e| e.into_raft(subject, ErrorVerb::Write))?;
        tracing::info!(last_applied = ?next.last_applied, revision = next.state.revision(), "snapshot installed");
        self.publish(next);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let db = self.db.clone();
        let stored = db::blocking(move || read_snapshot(&db))
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Snapshot(None), ErrorVerb::Read))?;
        Ok(stored.map(|(meta, data)| Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

/// Builds a snapshot of the state as it was when openraft asked for the builder; runs
/// concurrently with further applies.
pub struct SnapshotBuilder {
    db: Arc<Database>,
    applied: AppliedState,
}

impl fmt::Debug for SnapshotBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotBuilder").field("last_applied", &self.applied.last_applied).finish_non_exhaustive()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let applied = self.applied.clone();
        let db = self.db.clone();
        let snapshot_id = snapshot_id(applied.last_applied);
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
            snapshot_id,
        };
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let stored_meta = meta.clone();
        let data = db::blocking(move || {
            let data = encode_content(&applied)?;
            // Durable before openraft learns of it: openraft purges the log up to a built
            // snapshot, after which the snapshot is the only copy of those entries.
            if !write_snapshot(&db, &stored_meta, &data, true)? {
                tracing::info!(snapshot = %stored_meta.snapshot_id, "a newer snapshot is stored; kept it");
            }
            Ok(data)
        })
        .await
        .map_err(|e| e.into_raft(subject, ErrorVerb::Write))?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

/// `TERM-INDEX-NANOS`: unique per build even for two snapshots of the same log position.
fn snapshot_id(last_applied: Option<LogId>) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    match last_applied {
        Some(id) => format!("{}-{}-{nanos:x}", id.leader_id.term, id.index),
        None => format!("0-0-{nanos:x}"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use gantry_proto::cluster::Command;
    use openraft::{CommittedLeaderId, Membership};

    use super::*;

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn config(json: &str) -> Command {
        Command::ApplyConfig { config_json: json.into(), if_revision: None, at_unix_ms: 7 }
    }

    fn entries() -> Vec<Entry> {
        let voters: BTreeSet<u64> = [1].into();
        vec![
            Entry { log_id: log_id(1, 1), payload: EntryPayload::Blank },
            Entry { log_id: log_id(1, 2), payload: EntryPayload::Membership(Membership::new(vec![voters], None)) },
            Entry { log_id: log_id(1, 3), payload: EntryPayload::Normal(config("{\"a\":1}")) },
            Entry { log_id: log_id(1, 4), payload: EntryPayload::Normal(config("{\"a\":2}")) },
        ]
    }

    async fn open_sm(dir: &Path) -> StateMachineStore {
        crate::open(dir).await.expect("open store").1
    }

    #[tokio::test]
    async fn apply_publishes_and_answers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sm = open_sm(dir.path()).await;
        let mut rx = sm.subscribe();
        assert_eq!(rx.borrow_and_update().last_applied, None);
        let responses = sm.apply(entries()).await.expect("apply");
        assert_eq!(
            responses,
            [Response::Done, Response::Done, Response::Committed { revision: 1 }, Response::Committed { revision: 2 }]
        );
        assert!(rx.has_changed().expect("sender alive"));
        let seen = rx.borrow_and_update().clone();
        assert_eq!(seen.last_applied, Some(log_id(1, 4)));
        assert_eq!(seen.state.revision(), 2);
        assert_eq!(seen.membership.log_id(), &Some(log_id(1, 2)));
        assert_eq!(sm.last_applied(), Some(log_id(1, 4)));
        // A batch without commands publishes the same state object, not a copy.
        sm.apply([Entry { log_id: log_id(2, 5), payload: EntryPayload::Blank }]).await.expect("apply");
        assert!(Arc::ptr_eq(&rx.borrow_and_update().state, &seen.state));
        assert_eq!(sm.last_applied(), Some(log_id(2, 5)));
    }

    #[tokio::test]
    async fn snapshot_build_install_and_restore_on_open() {
        let leader_dir = tempfile::tempdir().expect("tempdir");
        let follower_dir = tempfile::tempdir().expect("tempdir");

        let mut leader = open_sm(leader_dir.path()).await;
        assert!(leader.get_current_snapshot().await.expect("read").is_none());
        leader.apply(entries()).await.expect("apply");
        let built = leader.get_snapshot_builder().await.build_snapshot().await.expect("build");
        assert_eq!(built.meta.last_log_id, Some(log_id(1, 4)));
        assert_eq!(built.meta.last_membership.log_id(), &Some(log_id(1, 2)));
        let current = leader.get_current_snapshot().await.expect("read").expect("a snapshot");
        assert_eq!(current.meta, built.meta);
        assert_eq!(current.snapshot.get_ref(), built.snapshot.get_ref());
        let expected = leader.current.clone();

        // Applying more after the snapshot, then restarting, resumes from the snapshot (openraft
        // re-applies the log after it).
        leader
            .apply([Entry { log_id: log_id(1, 5), payload: EntryPayload::Normal(config("{\"a\":3}")) }])
            .await
            .expect("apply");
        drop(leader);
        let mut leader = open_sm(leader_dir.path()).await;
        assert_eq!(leader.current, expected);
        assert_eq!(leader.subscribe().borrow().clone(), expected);
        assert_eq!(leader.get_current_snapshot().await.expect("read").map(|s| s.meta), Some(built.meta.clone()));

        // Install on a follower, as openraft does after streaming the bytes.
        let mut follower = open_sm(follower_dir.path()).await;
        let mut rx = follower.subscribe();
        let mut receiving = follower.begin_receiving_snapshot().await.expect("begin");
        receiving.get_mut().extend_from_slice(built.snapshot.get_ref());
        follower.install_snapshot(&built.meta, receiving).await.expect("install");
        assert_eq!(follower.current, expected);
        assert_eq!(rx.borrow_and_update().clone(), expected);
        assert_eq!(
            follower.applied_state().await.expect("state"),
            (expected.last_applied, expected.membership.clone())
        );
        assert_eq!(follower.get_current_snapshot().await.expect("read").map(|s| s.meta), Some(built.meta.clone()));
        drop(follower);
        let follower = open_sm(follower_dir.path()).await;
        assert_eq!(follower.current, expected);
        assert_eq!(follower.snapshot_meta().await.expect("read"), Some(built.meta));
    }

    #[tokio::test]
    async fn an_older_build_does_not_replace_a_newer_install() {
        let dir = tempfile::tempdir().expect("tempdir");
        let other_dir = tempfile::tempdir().expect("tempdir");
        let mut sm = open_sm(dir.path()).await;
        sm.apply(entries()).await.expect("apply");
        // The builder captures the state at index 4 ...
        let mut builder = sm.get_snapshot_builder().await;

        // ... meanwhile a snapshot at index 9 arrives from the leader and is installed.
        let mut other = open_sm(other_dir.path()).await;
        other.apply(entries()).await.expect("apply");
        other
            .apply([Entry { log_id: log_id(2, 9), payload: EntryPayload::Normal(config("{\"b\":1}")) }])
            .await
            .expect("apply");
        let newer = other.get_snapshot_builder().await.build_snapshot().await.expect("build");
        sm.install_snapshot(&newer.meta, newer.snapshot).await.expect("install");

        let older = builder.build_snapshot().await.expect("build");
        assert_eq!(older.meta.last_log_id, Some(log_id(1, 4)));
        let current = sm.get_current_snapshot().await.expect("read").expect("a snapshot");
        assert_eq!(current.meta, newer.meta);
    }

    #[tokio::test]
    async fn a_snapshot_whose_bytes_contradict_its_metadata_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sm = open_sm(dir.path()).await;
        sm.apply(entries()).await.expect("apply");
        let built = sm.get_snapshot_builder().await.build_snapshot().await.expect("build");
        let mut meta = built.meta.clone();
        meta.last_log_id = Some(log_id(1, 99));
        let err = sm.install_snapshot(&meta, built.snapshot.clone()).await.expect_err("mismatch");
        assert!(err.to_string().contains("inconsistent"), "{err}");
        let garbage = Box::new(Cursor::new(vec![0xff; 40]));
        assert!(sm.install_snapshot(&built.meta, garbage).await.is_err());
        // Nothing changed.
        assert_eq!(sm.get_current_snapshot().await.expect("read").map(|s| s.meta), Some(built.meta));
        assert_eq!(sm.last_applied(), Some(log_id(1, 4)));
    }

    #[tokio::test]
    async fn snapshots_may_outgrow_the_frame_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sm = open_sm(dir.path()).await;
        // 90 revisions of 200 KiB: an 18 MiB history, over the codec's 16 MiB frame bound.
        let big = "x".repeat(200 * 1024);
        let commands = (1..=90).map(|i| Entry {
            log_id: log_id(1, i),
            payload: EntryPayload::Normal(config(&format!("{{\"{i}\":\"{big}\"}}"))),
        });
        sm.apply(commands).await.expect("apply");
        let built = sm.get_snapshot_builder().await.build_snapshot().await.expect("build");
        assert!(built.snapshot.get_ref().len() > gantry_proto::codec::MAX_FRAME_BYTES);
        let expected = sm.current.clone();
        drop(sm);
        let sm = open_sm(dir.path()).await;
        assert_eq!(sm.current, expected);
    }

    #[tokio::test]
    async fn corrupt_snapshot_on_disk_fails_open_without_panicking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sm = open_sm(dir.path()).await;
        sm.apply(entries()).await.expect("apply");
        sm.get_snapshot_builder().await.build_snapshot().await.expect("build");
        drop(sm);

        let db = db::open(dir.path()).expect("open db");
        let txn = db.begin_write().expect("txn");
        txn.open_table(SNAPSHOT).expect("table").insert(SNAPSHOT_DATA, [1u8, 2, 3].as_slice()).expect("insert");
        txn.commit().expect("commit");
        drop(db);

        match crate::open(dir.path()).await {
            Err(StoreError::Corrupt { .. }) => {}
            other => panic!("expected a corrupt-snapshot error, got {other:?}"),
        }
    }
}
