//! [`LogStore`]: openraft's `RaftLogStorage` and `RaftLogReader`. Entries live in the segment
//! files of [`crate::wal`] (one write and one `fdatasync` per append); the vote, the last purged
//! log id and the committed log id live in redb's `meta` table. Every write is durable before
//! openraft hears it is done, except the committed log id, which may lag (see
//! [`LogStore::save_committed`]), and the leader's own appends, which are synced in the
//! background and take effect only once synced (see [`crate::durable`]).

use std::fmt;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, RaftLogReader};
use redb::{Database, ReadableDatabase, ReadableTableMetadata, WriteTransaction};

use crate::db::{self, LOG, META, META_COMMITTED, META_FORMAT, META_LAST_PURGED, META_VOTE};
use crate::durable::{DurablePoint, Syncer};
use crate::wal::{self, Wal};
use crate::{Entry, LogId, LogState, NodeId, StorageError, StoreError, TypeConfig, Vote};

/// How long a committed log id saved by openraft waits before a background task writes it.
pub const COMMITTED_FLUSH_DELAY: Duration = Duration::from_secs(1);

/// The committed log id as saved in this run.
#[derive(Default)]
struct Committed {
    /// None: none saved yet in this run, the stored one stands.
    saved: Option<Option<LogId>>,
    /// A background write of `saved` is scheduled.
    flush_scheduled: bool,
}

/// The Raft log and vote. Cheap to clone: clones share the files and serve as openraft's log
/// readers (a reader sees a follower's append once it is durable, and the leader's own append
/// once it is written: the leader replicates it while its sync runs).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    wal: Arc<RwLock<Wal>>,
    /// Serialises appends, truncates and purges (openraft makes them one at a time anyway). They
    /// hold it across their fsyncs and take the index lock only to change the index, so readers
    /// (replication, on the async runtime) do not wait on the disk, except while an append
    /// starts a new segment (its directory entry is fsynced under the index lock; every 32 MiB).
    writer: Arc<Mutex<()>>,
    committed: Arc<Mutex<Committed>>,
    /// The entries of the last append, once written, when small. The leader reads each entry
    /// back right after appending it: once per follower to replicate it and once to apply it,
    /// each a `pread` and a decode on Raft's thread, two of them before the entry goes out.
    recent: Arc<Mutex<Vec<Entry>>>,
    /// This node's id (0 until [`LogStore::set_local_node`]): its own appends as the leader are
    /// synced in the background.
    local: Arc<AtomicU64>,
    /// The last saved vote, once read or saved in this run.
    vote: Arc<Mutex<Option<Vote>>>,
    durable: Arc<DurablePoint>,
    syncer: Arc<Syncer>,
}

/// The largest append (encoded) kept in [`LogStore::recent`]: a config batch is a few hundred
/// KB at most; a follower catching up appends much more, and reads none of it back soon.
const RECENT_BYTES: usize = 1 << 20;

impl fmt::Debug for LogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl LogStore {
    /// The store over an opened log; everything in it counts as durable (see
    /// [`Wal::sync_segments`]).
    pub(crate) fn new(db: Arc<Database>, wal: Wal) -> Result<Self, StoreError> {
        let durable = DurablePoint::new(wal.last_id());
        let syncer = Arc::new(Syncer::start(durable.clone())?);
        Ok(Self {
            db,
            wal: Arc::new(RwLock::new(wal)),
            writer: Arc::new(Mutex::new(())),
            committed: Arc::new(Mutex::new(Committed::default())),
            recent: Arc::new(Mutex::new(Vec::new())),
            local: Arc::new(AtomicU64::new(0)),
            vote: Arc::new(Mutex::new(None)),
            durable,
            syncer,
        })
    }

    /// Names this node, so that its own appends as the leader are synced in the background
    /// (until then every append is synced before openraft hears of it).
    ///
    /// A stored vote that made this node leader is stored again as a mere candidacy, so that it
    /// leads again only after winning a new term: after a power loss its last appends may be
    /// gone from its disk while followers hold them, and leading on in the same term would hand
    /// out those log ids again for other entries.
    pub async fn set_local_node(&self, id: NodeId) -> Result<(), StoreError> {
        if let Some(vote) = self.vote().await? {
            if vote.is_committed() && vote.leader_id().voted_for() == Some(id) {
                self.store_vote(Vote::new(vote.leader_id().term, id)).await?;
            }
        }
        self.local.store(id, Ordering::Release);
        Ok(())
    }

    /// The log's durable point: the state machine applies nothing past it, and the network must
    /// tell followers of no commit past it.
    pub fn durable(&self) -> Arc<DurablePoint> {
        self.durable.clone()
    }

    /// Saves `vote` durably; whatever this node appended as the leader is on disk first.
    async fn store_vote(&self, vote: Vote) -> Result<(), StoreError> {
        let db = self.db.clone();
        let committed = self.pending_committed()?;
        let syncer = self.syncer.clone();
        // The cache changes first: no append of this node's can start the background way under
        // a vote that is being replaced.
        *self.cached_vote() = Some(vote);
        db::blocking(move || {
            // A follower's acknowledgement counts toward commits: before the node acts under
            // another vote, its own appends as the leader must be on disk.
            syncer.drain()?;
            let bytes = db::encode("vote", &vote)?;
            // A vote must survive a crash before the node acts on it (answers a vote request or
            // starts leading): fsynced before this returns.
            write_meta(&db, META_VOTE, &bytes, committed.as_deref())
        })
        .await
    }

    fn cached_vote(&self) -> std::sync::MutexGuard<'_, Option<Vote>> {
        self.vote.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `entries` are this node's own proposals as the current leader: its committed
    /// vote names it, and every entry carries that leadership. Only those may be synced later.
    fn own_as_leader(&self, entries: &[Entry]) -> bool {
        let local = self.local.load(Ordering::Acquire);
        let Some(vote) = *self.cached_vote() else {
            return false;
        };
        local != 0
            && vote.is_committed()
            && vote.leader_id().voted_for() == Some(local)
            && entries.iter().all(|entry| entry.log_id.leader_id == *vote.leader_id())
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.recent.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops the recent entries that `keep` rejects, before the log itself changes: a reader
    /// meanwhile misses them and reads the files.
    fn forget_recent(&self, keep: impl Fn(u64) -> bool) {
        self.recent().retain(|entry| keep(entry.log_id.index));
    }

    fn committed_state(&self) -> std::sync::MutexGuard<'_, Committed> {
        self.committed.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The committed log id saved in this run, encoded for the next transaction.
    fn pending_committed(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let pending = self.committed_state().saved;
        pending.map(|committed| db::encode("committed log id", &committed)).transpose()
    }

    /// Entries with indexes in `[start, end)` bounds, in order. Read in place, not on the
    /// blocking pool: they are in the page cache (the leader reads what it just appended, to
    /// send it), a `pread` takes microseconds, and a trip to the pool was a thread hop on every
    /// replicated write.
    pub async fn entries(&self, start: Bound<u64>, end: Bound<u64>) -> Result<Vec<Entry>, StoreError> {
        let Some((first, end)) = index_range(start, end) else {
            return Ok(Vec::new());
        };
        {
            let recent = self.recent();
            if let (Some(oldest), Some(newest)) = (recent.first(), recent.last()) {
                let (oldest, newest) = (oldest.log_id.index, newest.log_id.index);
                if first >= oldest && end <= newest.saturating_add(1) && first < end {
                    return Ok(recent[(first - oldest) as usize..(end - oldest) as usize].to_vec());
                }
            }
        }
        read_lock(&self.wal).read(first, end)
    }

    /// The last purged log id and the last log id, as openraft sees them.
    pub async fn log_state(&self) -> Result<LogState, StoreError> {
        let (last_purged_log_id, last) = {
            let wal = read_lock(&self.wal);
            (wal.purged(), wal.last_id())
        };
        // With every entry purged, the last log id is the last purged one.
        let last_log_id = match (last, last_purged_log_id) {
            (Some(last), Some(purged)) => Some(last.max(purged)),
            (last, purged) => last.or(purged),
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    /// The last saved vote.
    pub async fn vote(&self) -> Result<Option<Vote>, StoreError> {
        let db = self.db.clone();
        let vote: Option<Vote> = db::blocking(move || db::read(&db, META, META_VOTE)).await?;
        *self.cached_vote() = vote;
        Ok(vote)
    }

    /// The last saved committed log id: the one saved in this run, else the stored one (which may
    /// lag, see [`LogStore::save_committed`]).
    pub async fn committed(&self) -> Result<Option<LogId>, StoreError> {
        if let Some(saved) = self.committed_state().saved {
            return Ok(saved);
        }
        self.stored_committed().await
    }

    /// Writes the committed log id saved in this run, if any, durably now (the background write
    /// would come up to [`COMMITTED_FLUSH_DELAY`] later): for a clean stop, after Raft has
    /// stopped.
    pub async fn flush_committed(&self) -> Result<(), StoreError> {
        let Some(committed) = self.committed_state().saved else {
            return Ok(());
        };
        let db = self.db.clone();
        db::blocking(move || write_committed(&db, committed)).await
    }

    /// The committed log id on disk: what a restart after a crash would find.
    pub async fn stored_committed(&self) -> Result<Option<LogId>, StoreError> {
        let db = self.db.clone();
        db::blocking(move || read_committed(&db)).await
    }
}

fn read_lock(wal: &RwLock<Wal>) -> std::sync::RwLockReadGuard<'_, Wal> {
    wal.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write_lock(wal: &RwLock<Wal>) -> std::sync::RwLockWriteGuard<'_, Wal> {
    wal.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `[first, end)` as plain indexes; None when no u64 lies in the range.
fn index_range(start: Bound<u64>, end: Bound<u64>) -> Option<(u64, u64)> {
    let first = match start {
        Bound::Included(s) => s,
        Bound::Excluded(s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match end {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (first < end).then_some((first, end))
}

fn read_committed(db: &Database) -> Result<Option<LogId>, StoreError> {
    // Stored as `Option<LogId>` so that saving `None` is explicit too.
    Ok(db::read::<Option<LogId>>(db, META, META_COMMITTED)?.flatten())
}

/// Writes the pending committed log id, if any, into `txn`.
fn carry_committed(txn: &WriteTransaction, committed: Option<&[u8]>) -> Result<(), StoreError> {
    if let Some(bytes) = committed {
        txn.open_table(META)?.insert(META_COMMITTED, bytes)?;
    }
    Ok(())
}

// Every redb write below commits with redb's default Durability::Immediate: fsynced when `commit`
// returns. (`Durability::None` would be cheaper for the committed id, but redb's recovery after
// a killed process goes back to the last durable commit, so such a write is simply lost.)

fn write_meta(db: &Database, key: &'static str, bytes: &[u8], committed: Option<&[u8]>) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(META)?.insert(key, bytes)?;
    carry_committed(&txn, committed)?;
    txn.commit()?;
    Ok(())
}

/// The committed log id alone, in a durable transaction of its own.
fn write_committed(db: &Database, committed: Option<LogId>) -> Result<(), StoreError> {
    let bytes = db::encode("committed log id", &committed)?;
    write_meta(db, META_COMMITTED, &bytes, None)
}

fn purge_upto(db: &Database, wal: &RwLock<Wal>, log_id: LogId, committed: Option<&[u8]>) -> Result<(), StoreError> {
    let bytes = db::encode("last purged log id", &log_id)?;
    let txn = db.begin_write()?;
    carry_committed(&txn, committed)?;
    txn.open_table(META)?.insert(META_LAST_PURGED, bytes.as_slice())?;
    txn.commit()?;
    // Only now the segments go: after a crash in between, the next open unlinks them.
    let removal = write_lock(wal).purge(log_id);
    removal.apply()
}

/// Opens the log's segment files. A store written by format 1 (entries in redb's `log` table)
/// is moved into them first: the segments are rebuilt from the table and made durable, then the
/// table is emptied and the format marker set, in one transaction. A crash in between leaves the
/// table full, and the next open rebuilds the segments again.
pub(crate) fn open_wal(db: &Database, dir: &Path) -> Result<Wal, StoreError> {
    let last_purged: Option<LogId> = db::read(db, META, META_LAST_PURGED)?;
    let stored_in_table = {
        let txn = db.begin_read()?;
        txn.open_table(LOG)?.len()?
    };
    if stored_in_table == 0 {
        return Wal::open(dir, last_purged);
    }
    let wal_dir = dir.join(wal::WAL_DIR);
    if wal_dir.exists() {
        std::fs::remove_dir_all(&wal_dir)
            .map_err(|source| StoreError::Io { what: format!("removing {}", wal_dir.display()), source })?;
    }
    let mut wal = Wal::open(dir, last_purged)?;
    let txn = db.begin_read()?;
    let table = txn.open_table(LOG)?;
    let mut batch = Vec::new();
    for item in table.range::<u64>(..)? {
        let (key, value) = item?;
        let index = key.value();
        let entry: Entry = db::decode(format!("log entry {index}"), value.value())?;
        if entry.log_id.index != index {
            return Err(StoreError::Inconsistent(format!(
                "log entry stored at index {index} says index {}",
                entry.log_id.index
            )));
        }
        batch.push(entry);
        if batch.len() == 256 {
            let (bytes, at) = wal::encode_records(&batch)?;
            wal.append(&bytes, &at)?;
            batch.clear();
        }
    }
    let (bytes, at) = wal::encode_records(&batch)?;
    wal.append(&bytes, &at)?;
    drop(table);
    drop(txn);
    let txn = db.begin_write()?;
    txn.open_table(LOG)?.retain(|_, _| false)?;
    txn.open_table(META)?.insert(META_FORMAT, [db::FORMAT].as_slice())?;
    txn.commit()?;
    tracing::info!(entries = stored_in_table, "moved the Raft log from raft.redb into segment files");
    Ok(wal)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.entries(range.start_bound().cloned(), range.end_bound().cloned())
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Read))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState, StorageError> {
        self.log_state().await.map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Read))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.store_vote(*vote).await.map_err(|e| e.into_raft(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.vote().await.map_err(|e| e.into_raft(ErrorSubject::Vote, ErrorVerb::Read))
    }

    /// Held in memory; a background task writes the latest one durably [`COMMITTED_FLUSH_DELAY`]
    /// after the first save that found none scheduled, and any vote or purge carries it too.
    /// openraft calls this before it applies each commit, on every node: a durable write there
    /// would put an fsync on the path of every commit. After a crash the stored id lags by at
    /// most about that delay: at start openraft re-applies the log up to it, so a restarted node
    /// serves the config it served before (give or take the last second of commits) even before
    /// it reaches a leader, and learns the rest from the leader. It is never ahead of a real
    /// commit.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Never past the durable point: after a crash, openraft re-applies the log up to the
        // stored id, and the leader's latest entries may not have reached the disk.
        let committed = self.durable.cap(committed);
        // Outside a tokio runtime (never under openraft) the id waits for a vote or purge.
        let runtime = tokio::runtime::Handle::try_current().ok();
        let schedule = {
            let mut state = self.committed_state();
            state.saved = Some(committed);
            runtime.is_some() && !std::mem::replace(&mut state.flush_scheduled, true)
        };
        if let (true, Some(runtime)) = (schedule, runtime) {
            // A weak handle: a store being closed must not be held open by its flush.
            let db = Arc::downgrade(&self.db);
            let state = self.committed.clone();
            runtime.spawn(async move {
                tokio::time::sleep(COMMITTED_FLUSH_DELAY).await;
                let pending = {
                    let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    state.flush_scheduled = false;
                    state.saved
                };
                let (Some(committed), Some(db)) = (pending, db.upgrade()) else {
                    return;
                };
                if let Err(error) = db::blocking(move || write_committed(&db, committed)).await {
                    // The next save schedules another write; a vote or purge carries it too.
                    tracing::warn!(%error, "cannot persist the committed log id; it lags until the next write");
                }
            });
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.committed().await.map_err(|e| e.into_raft(ErrorSubject::Store, ErrorVerb::Read))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let (bytes, at) = match wal::encode_records(&entries) {
            Ok(encoded) => encoded,
            Err(e) => {
                callback.log_io_completed(Err(e.to_io()));
                return Err(e.into_raft(ErrorSubject::Logs, ErrorVerb::Write));
            }
        };
        let cacheable = bytes.len() <= RECENT_BYTES;
        let wal = self.wal.clone();
        let writer = self.writer.clone();
        let (durable, syncer) = (self.durable.clone(), self.syncer.clone());
        // The leader's own entries are only written here and synced in the background: openraft
        // 0.9 replicates an entry only after its flush is reported, and the followers' syncs
        // then run beside this one instead of after it. Everything else (a follower's entries)
        // is synced first, as openraft expects.
        let later = self.own_as_leader(&entries);
        // One write (and one fdatasync) for the whole batch. We wait for the write before
        // returning: then the entries are readable when `append` returns (openraft requires it)
        // and writes stay in call order (a later vote or truncate can never overtake this append).
        let append = move || {
            let _writer = writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let (Some(pending), Some(&(_, last))) = (write_lock(&wal).prepare_append(&at)?, at.last()) else {
                return Ok(());
            };
            if later {
                pending.write_unsynced(&bytes)?;
            } else {
                // Earlier background syncs first: the durable point moves in log order.
                syncer.drain()?;
                pending.write(&bytes)?;
            }
            write_lock(&wal).finish_append(&pending, &bytes, &at)?;
            if later {
                let (file, path) = pending.file();
                syncer.sync_later(file, path, last)
            } else {
                durable.advance(last);
                Ok(())
            }
        };
        // A current-thread runtime is a thread of Raft's own (gantry's cluster thread): blocking
        // it for the append is the point, and saves two thread hand-offs per append. Workers of
        // a multi-thread runtime are shared, so there the append goes to the blocking pool.
        let result = match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::CurrentThread) | Err(_) => append(),
            Ok(_) => db::blocking(append).await,
        };
        match result {
            Ok(()) => {
                *self.recent() = if cacheable { entries } else { Vec::new() };
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(e.to_io()));
                Err(e.into_raft(ErrorSubject::Logs, ErrorVerb::Write))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.forget_recent(|index| index < log_id.index);
        let wal = self.wal.clone();
        let writer = self.writer.clone();
        let (durable, syncer) = (self.durable.clone(), self.syncer.clone());
        db::blocking(move || {
            let _writer = writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            syncer.drain()?;
            let removal = write_lock(&wal).truncate(log_id.index);
            durable.truncated(read_lock(&wal).last_id());
            removal.apply()
        })
        .await
        .map_err(|e| e.into_raft(ErrorSubject::Log(log_id), ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.forget_recent(|index| index > log_id.index);
        let db = self.db.clone();
        let wal = self.wal.clone();
        let committed =
            self.pending_committed().map_err(|e| e.into_raft(ErrorSubject::Log(log_id), ErrorVerb::Delete))?;
        let writer = self.writer.clone();
        db::blocking(move || {
            let _writer = writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            purge_upto(&db, &wal, log_id, committed.as_deref())
        })
        .await
        .map_err(|e| e.into_raft(ErrorSubject::Log(log_id), ErrorVerb::Delete))
    }
}

#[cfg(test)]
mod tests {
    use gantry_proto::cluster::Command;
    use openraft::storage::RaftLogStorageExt;
    use openraft::CommittedLeaderId;

    use super::*;
    use crate::EntryPayload;

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn entry(term: u64, index: u64) -> Entry {
        let command = Command::RevokeJoinToken { id: format!("t{index}") };
        Entry { log_id: log_id(term, index), payload: EntryPayload::Normal(command) }
    }

    /// An entry of term 1 whose payload is about `padding` bytes long.
    fn big_entry(index: u64, padding: usize) -> Entry {
        let command = Command::RevokeJoinToken { id: format!("{index}-{}", "x".repeat(padding)) };
        Entry { log_id: log_id(1, index), payload: EntryPayload::Normal(command) }
    }

    /// The log ids of every entry `log` reads back.
    async fn stored_ids(log: &mut LogStore) -> Vec<LogId> {
        log.try_get_log_entries(..).await.expect("read").iter().map(|e| e.log_id).collect()
    }

    /// The indexes of every entry `log` reads back.
    async fn stored_indexes(log: &mut LogStore) -> Vec<u64> {
        stored_ids(log).await.iter().map(|id| id.index).collect()
    }

    /// A new store holding entries 1..=`count` of term 1, closed again.
    async fn closed_log_with(count: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path()).await;
        log.blocking_append((1..=count).map(|i| entry(1, i))).await.expect("append");
        dir
    }

    /// Writes `bytes` as the segment at `path` and returns why the store then refuses to open.
    async fn open_error(dir: &std::path::Path, path: &std::path::Path, bytes: &[u8]) -> String {
        std::fs::write(path, bytes).expect("write");
        crate::open(dir).await.expect_err("damaged log").to_string()
    }

    async fn open_log(dir: &std::path::Path) -> LogStore {
        crate::open(dir).await.expect("open store").0
    }

    /// A store of node 1 leading term `term` (its committed vote saved).
    async fn leading_log(dir: &std::path::Path, term: u64) -> LogStore {
        let mut log = open_log(dir).await;
        log.set_local_node(1).await.expect("local node");
        log.save_vote(&Vote::new_committed(term, 1)).await.expect("vote");
        log
    }

    #[tokio::test]
    async fn only_the_leaders_own_entries_are_synced_later() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path()).await;
        let own = [entry(2, 1), entry(2, 2)];
        // No local node named yet, then no vote, then a vote not yet committed.
        log.save_vote(&Vote::new_committed(2, 1)).await.expect("vote");
        assert!(!log.own_as_leader(&own));
        log.set_local_node(2).await.expect("local node");
        assert!(!log.own_as_leader(&own), "node 2's store");
        log.set_local_node(1).await.expect("local node");
        // Naming the node takes back the leadership its stored vote gave it (see below).
        assert!(!log.own_as_leader(&own));
        log.save_vote(&Vote::new_committed(2, 1)).await.expect("vote");
        assert!(log.own_as_leader(&own));
        log.save_vote(&Vote::new(3, 1)).await.expect("vote");
        assert!(!log.own_as_leader(&[entry(3, 1)]), "a candidate's vote");
        // Another node's leadership, and entries of another term than the vote's.
        log.save_vote(&Vote::new_committed(3, 2)).await.expect("vote");
        assert!(!log.own_as_leader(&[Entry { log_id: LogId::new(CommittedLeaderId::new(3, 2), 1), ..entry(3, 1) }]));
        log.save_vote(&Vote::new_committed(4, 1)).await.expect("vote");
        assert!(log.own_as_leader(&[entry(4, 1)]));
        assert!(!log.own_as_leader(&[entry(4, 1), entry(3, 2)]), "an entry of an older term");
    }

    #[tokio::test]
    async fn a_node_that_led_must_win_a_new_term_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = leading_log(dir.path(), 3).await;
        log.blocking_append((1..=3).map(|i| entry(3, i))).await.expect("append");
        drop(log);
        let mut log = open_log(dir.path()).await;
        assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new_committed(3, 1)));
        log.set_local_node(1).await.expect("local node");
        assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new(3, 1)), "a candidacy in term 3");
        // Another node's leadership stays as it is.
        log.save_vote(&Vote::new_committed(4, 2)).await.expect("vote");
        drop(log);
        let mut log = open_log(dir.path()).await;
        log.set_local_node(1).await.expect("local node");
        assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new_committed(4, 2)));
    }

    #[tokio::test]
    async fn background_syncs_move_the_durable_point_and_finish_before_a_vote_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = leading_log(dir.path(), 1).await;
        let durable = log.durable();
        log.blocking_append((1..=5).map(|i| entry(1, i))).await.expect("append");
        assert_eq!(stored_indexes(&mut log).await, vec![1, 2, 3, 4, 5], "readable before they are synced");
        tokio::time::timeout(std::time::Duration::from_secs(5), durable.wait_for(5))
            .await
            .expect("synced in time")
            .expect("synced");
        log.blocking_append((6..=40).map(|i| entry(1, i))).await.expect("append");
        // A vote for another node: the node may now acknowledge entries to another leader, so
        // everything it appended is on disk when the vote is saved.
        log.save_vote(&Vote::new(2, 2)).await.expect("vote");
        assert_eq!(durable.log_id(), Some(log_id(1, 40)));
    }

    #[tokio::test]
    async fn a_truncate_takes_the_durable_point_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = leading_log(dir.path(), 1).await;
        let durable = log.durable();
        log.blocking_append((1..=5).map(|i| entry(1, i))).await.expect("append");
        log.truncate(log_id(1, 4)).await.expect("truncate");
        assert_eq!(durable.log_id(), Some(log_id(1, 3)));
    }

    #[tokio::test]
    async fn log_vote_purge_and_committed_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path()).await;
        log.blocking_append((1..=10).map(|i| entry(1, i))).await.expect("append");
        log.purge(log_id(1, 4)).await.expect("purge");
        log.truncate(log_id(1, 9)).await.expect("truncate");
        log.save_committed(Some(log_id(1, 7))).await.expect("committed");
        log.blocking_append([entry(2, 9)]).await.expect("append");
        // The committed id is held in memory; a vote carries it at once.
        log.save_vote(&Vote::new(3, 2)).await.expect("vote");
        drop(log);

        let mut log = open_log(dir.path()).await;
        assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new(3, 2)));
        assert_eq!(log.read_committed().await.expect("committed"), Some(log_id(1, 7)));
        let state = log.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 4)));
        assert_eq!(state.last_log_id, Some(log_id(2, 9)));
        let got = log.try_get_log_entries(0..).await.expect("read");
        let ids: Vec<LogId> = got.iter().map(|e| e.log_id).collect();
        let mut expected: Vec<LogId> = (5..=8).map(|i| log_id(1, i)).collect();
        expected.push(log_id(2, 9));
        assert_eq!(ids, expected);
        assert_eq!(got[0], entry(1, 5));
    }

    #[tokio::test]
    async fn a_saved_committed_id_is_written_by_a_vote_at_once_and_in_the_background_later() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path()).await;
        log.blocking_append((1..=6).map(|i| entry(1, i))).await.expect("append");
        log.save_committed(Some(log_id(1, 2))).await.expect("committed");
        log.save_vote(&Vote::new(1, 1)).await.expect("vote");
        assert_eq!(log.stored_committed().await.expect("stored"), Some(log_id(1, 2)), "a vote carries it");
        log.save_committed(Some(log_id(1, 4))).await.expect("committed");
        // Visible at once in this run; on disk once the background write ran.
        assert_eq!(log.read_committed().await.expect("committed"), Some(log_id(1, 4)));
        let deadline = std::time::Instant::now() + COMMITTED_FLUSH_DELAY * 10;
        while log.stored_committed().await.expect("stored") != Some(log_id(1, 4)) {
            assert!(std::time::Instant::now() < deadline, "the committed id never reached the disk");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(log);
        let mut log = open_log(dir.path()).await;
        assert_eq!(log.read_committed().await.expect("committed"), Some(log_id(1, 4)));
        log.save_committed(Some(log_id(1, 5))).await.expect("committed");
        log.purge(log_id(1, 1)).await.expect("purge");
        assert_eq!(log.stored_committed().await.expect("stored"), Some(log_id(1, 5)), "a purge carries it");
        log.save_committed(Some(log_id(1, 6))).await.expect("committed");
        log.flush_committed().await.expect("flush");
        assert_eq!(log.stored_committed().await.expect("stored"), Some(log_id(1, 6)), "a flush writes it at once");
    }

    #[tokio::test]
    async fn odd_ranges_read_nothing_instead_of_panicking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path()).await;
        log.blocking_append((1..=3).map(|i| entry(1, i))).await.expect("append");
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 3..1;
        assert!(log.try_get_log_entries(reversed).await.expect("read").is_empty());
        assert!(log.try_get_log_entries(2..2).await.expect("read").is_empty());
        let past_end = (Bound::Excluded(u64::MAX), Bound::Unbounded);
        assert!(log.try_get_log_entries(past_end).await.expect("read").is_empty());
        assert_eq!(log.try_get_log_entries(2..=3).await.expect("read").len(), 2);
    }

    fn segment(dir: &std::path::Path) -> std::path::PathBuf {
        let mut files: Vec<_> =
            std::fs::read_dir(dir.join(wal::WAL_DIR)).expect("segments").map(|f| f.expect("entry").path()).collect();
        files.sort();
        files.pop().expect("a segment")
    }

    /// Where the records of the segment file at `path` end (the zeros written ahead start).
    fn records_end(path: &std::path::Path) -> u64 {
        let bytes = std::fs::read(path).expect("read segment");
        let mut offset = 0;
        while let Some(header) = bytes.get(offset..offset + 4).filter(|h| h.iter().any(|&b| b != 0)) {
            offset += 8 + u32::from_le_bytes(header.try_into().expect("4 bytes")) as usize;
        }
        offset as u64
    }

    /// Writes `bytes` where the segment's records end, as an append in progress does.
    fn write_after_records(path: &std::path::Path, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(path).expect("open segment");
        file.write_all_at(bytes, records_end(path)).expect("write");
    }

    #[tokio::test]
    async fn a_torn_last_append_is_cut_off_and_the_log_goes_on() {
        let dir = closed_log_with(3).await;
        // Half of a fourth record, as a crash in the middle of its write leaves it.
        let (bytes, _) = wal::encode_records(&[entry(1, 4)]).expect("encode");
        write_after_records(&segment(dir.path()), &bytes[..bytes.len() / 2]);

        let mut log = open_log(dir.path()).await;
        assert_eq!(log.get_log_state().await.expect("state").last_log_id, Some(log_id(1, 3)));
        log.blocking_append([entry(2, 4)]).await.expect("append after repair");
        drop(log);
        let mut log = open_log(dir.path()).await;
        let ids = stored_indexes(&mut log).await;
        assert_eq!(ids, [1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn damage_inside_the_log_is_an_error_not_a_silent_cut() {
        let dir = closed_log_with(3).await;
        // Flip a byte of the first record's payload: acknowledged entries follow it.
        let path = segment(dir.path());
        let mut bytes = std::fs::read(&path).expect("read");
        let original_len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
        bytes[10] ^= 0xff;
        let err = open_error(dir.path(), &path, &bytes).await;
        assert!(err.contains("checksum mismatch"), "{err}");

        // Garbage instead of a length field is damage too, never a reason to drop what follows.
        bytes[10] ^= 0xff;
        bytes[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = open_error(dir.path(), &path, &bytes).await;
        assert!(err.contains("impossible record length"), "{err}");

        // A length field made larger, so the record seems to run into the zeros written ahead:
        // the good records inside it show it is damage, not a torn last append.
        bytes[0..4].copy_from_slice(&(original_len + 100_000).to_le_bytes());
        let err = open_error(dir.path(), &path, &bytes).await;
        assert!(err.contains("checksum mismatch"), "{err}");
    }

    #[tokio::test]
    async fn an_empty_last_segment_neither_blocks_truncate_nor_hides_entries() {
        let dir = closed_log_with(5).await;
        // A crash right after the next segment was created, before anything reached it; and a
        // file that is not a segment.
        let wal_dir = dir.path().join(wal::WAL_DIR);
        std::fs::write(wal_dir.join(format!("{:020}.wal", 6)), b"").expect("empty segment");
        std::fs::write(wal_dir.join("6.wal"), b"not mine").expect("stray file");

        let mut log = open_log(dir.path()).await;
        assert_eq!(log.get_log_state().await.expect("state").last_log_id, Some(log_id(1, 5)));
        log.truncate(log_id(1, 3)).await.expect("truncate");
        log.blocking_append([entry(2, 3)]).await.expect("append after truncate");
        drop(log);
        let mut log = open_log(dir.path()).await;
        let ids = stored_ids(&mut log).await;
        assert_eq!(ids, [log_id(1, 1), log_id(1, 2), log_id(2, 3)]);
    }

    #[tokio::test]
    async fn segments_grow_by_written_zeros_ahead_of_the_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path()).await;
        // Entries of ~300 KB: several extensions of the segment, each in the middle of an entry.
        let big = |index| big_entry(index, 300_000);
        let mut lengths = std::collections::BTreeSet::new();
        for index in 1..=8 {
            log.blocking_append([big(index)]).await.expect("append");
            let path = segment(dir.path());
            let (end, len) = (records_end(&path), std::fs::metadata(&path).expect("segment").len());
            assert!(len > end, "entry {index}: records end at {end}, the file at {len}");
            lengths.insert(len);
        }
        assert!(lengths.len() >= 2, "extended once only: {lengths:?}");
        drop(log);
        let path = segment(dir.path());
        let before = std::fs::read(&path).expect("read");
        let end = records_end(&path) as usize;
        assert!(before[end..].iter().all(|&b| b == 0), "the space ahead is written zeros");

        // Reopening reads every entry and keeps the space ahead (it is no torn append).
        let mut log = open_log(dir.path()).await;
        let entries = log.try_get_log_entries(..).await.expect("read");
        assert_eq!(entries, (1..=8).map(big).collect::<Vec<_>>());
        assert_eq!(std::fs::metadata(&path).expect("segment").len(), before.len() as u64);
        log.blocking_append([big(9)]).await.expect("append after reopen");
        log.truncate(log_id(1, 5)).await.expect("truncate");
        log.blocking_append([entry(2, 5)]).await.expect("append after truncate");
        drop(log);
        let mut log = open_log(dir.path()).await;
        let ids = stored_ids(&mut log).await;
        assert_eq!(ids, [1, 2, 3, 4].map(|i| log_id(1, i)).into_iter().chain([log_id(2, 5)]).collect::<Vec<_>>());
    }

    /// On a multi-thread runtime appends go to the blocking pool (elsewhere in these tests, on a
    /// current-thread runtime, they run in place): the same entries, in order, after a reopen.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_from_a_multi_thread_runtime_are_stored_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path()).await;
        for index in 1..=20 {
            log.blocking_append([entry(1, index)]).await.expect("append");
        }
        log.truncate(log_id(1, 16)).await.expect("truncate");
        log.blocking_append([entry(2, 16)]).await.expect("append after truncate");
        drop(log);
        let mut log = open_log(dir.path()).await;
        let ids = stored_ids(&mut log).await;
        let expected: Vec<LogId> = (1..=15).map(|i| log_id(1, i)).chain([log_id(2, 16)]).collect();
        assert_eq!(ids, expected);
    }

    #[tokio::test]
    async fn reads_of_the_last_append_match_the_log_after_truncate_and_purge() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path()).await;
        log.blocking_append((1..=4).map(|i| entry(1, i))).await.expect("append");
        assert_eq!(log.try_get_log_entries(2..4).await.expect("read"), [entry(1, 2), entry(1, 3)]);
        log.truncate(log_id(1, 3)).await.expect("truncate");
        assert_eq!(log.try_get_log_entries(3..4).await.expect("read"), [], "truncated entries are gone");
        log.purge(log_id(1, 1)).await.expect("purge");
        assert_eq!(log.try_get_log_entries(1..2).await.expect("read"), [], "purged entries are gone");
        assert_eq!(log.try_get_log_entries(2..3).await.expect("read"), [entry(1, 2)]);
        log.blocking_append([entry(2, 3)]).await.expect("append");
        assert_eq!(log.try_get_log_entries(2..4).await.expect("read"), [entry(1, 2), entry(2, 3)]);
    }

    #[tokio::test]
    async fn an_append_that_skips_an_index_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path()).await;
        let err = log.blocking_append([entry(1, 1), entry(1, 3)]).await.expect_err("a hole inside one append");
        assert!(err.to_string().contains("skips an index"), "{err}");
        assert_eq!(log.get_log_state().await.expect("state").last_log_id, None);
    }

    #[tokio::test]
    async fn zeros_inside_the_last_append_end_the_log_there() {
        let dir = closed_log_with(3).await;
        // Entries 4..=6 as one append whose middle record never reached the disk (a power loss
        // can keep later blocks of a write and lose earlier ones).
        let (mut bytes, at) = wal::encode_records(&[entry(1, 4), entry(1, 5), entry(1, 6)]).expect("encode");
        let (start, end) = (at[1].0, at[2].0);
        bytes[start..end].fill(0);
        write_after_records(&segment(dir.path()), &bytes);

        let mut log = open_log(dir.path()).await;
        let ids = stored_indexes(&mut log).await;
        assert_eq!(ids, [1, 2, 3, 4]);
        log.blocking_append([entry(2, 5)]).await.expect("the log goes on from there");
    }

    #[tokio::test]
    async fn a_zero_sector_inside_the_last_append_ends_the_log_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = |index| big_entry(index, 3000);
        let mut log = open_log(dir.path()).await;
        log.blocking_append([big(1), big(2)]).await.expect("append");
        drop(log);
        // Entries 3..=5 as one append; a sector inside entry 4's payload never reached the disk.
        let path = segment(dir.path());
        let base = records_end(&path) as usize;
        let (mut bytes, at) = wal::encode_records(&[big(3), big(4), big(5)]).expect("encode");
        let sector = (base + at[1].0 + 1024).div_ceil(512) * 512 - base;
        bytes[sector..sector + 512].fill(0);
        write_after_records(&path, &bytes);

        let mut log = open_log(dir.path()).await;
        let ids = stored_indexes(&mut log).await;
        assert_eq!(ids, [1, 2, 3]);
    }

    #[tokio::test]
    async fn a_log_purged_past_its_end_restarts_at_the_next_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path()).await;
        log.blocking_append((1..=3).map(|i| entry(1, i))).await.expect("append");
        // As after installing a snapshot that covers more than the local log.
        log.purge(log_id(2, 50)).await.expect("purge");
        let state = log.get_log_state().await.expect("state");
        assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(2, 50)), Some(log_id(2, 50))));
        log.blocking_append([entry(2, 51), entry(2, 52)]).await.expect("append");
        let err = log.blocking_append([entry(2, 51)]).await.expect_err("an overwrite");
        assert!(err.to_string().contains("where entry 53 comes next"), "{err}");
        drop(log);
        let mut log = open_log(dir.path()).await;
        assert_eq!(log.try_get_log_entries(..).await.expect("read"), [entry(2, 51), entry(2, 52)]);
    }

    #[tokio::test]
    async fn segments_roll_and_truncate_and_purge_across_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path()).await;
        // Entries big enough that a few segments fill up.
        let big = |index| big_entry(index, (wal::SEGMENT_BYTES / 4) as usize);
        for index in 1..=10 {
            log.blocking_append([big(index)]).await.expect("append");
        }
        let segments = || std::fs::read_dir(dir.path().join(wal::WAL_DIR)).expect("dir").count();
        assert!(segments() >= 3, "{} segments", segments());
        log.truncate(log_id(1, 6)).await.expect("truncate");
        log.purge(log_id(1, 4)).await.expect("purge");
        drop(log);
        let mut log = open_log(dir.path()).await;
        let ids = stored_indexes(&mut log).await;
        assert_eq!(ids, [5]);
        assert!(segments() <= 2, "{} segments", segments());
    }

    #[tokio::test]
    async fn a_format_1_store_moves_its_log_into_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = db::open(dir.path()).expect("open db");
            let txn = db.begin_write().expect("txn");
            {
                let mut table = txn.open_table(LOG).expect("table");
                for index in 3..=5 {
                    let bytes = db::encode("entry", &entry(1, index)).expect("encode");
                    table.insert(index, bytes.as_slice()).expect("insert");
                }
                let purged = db::encode("purged", &log_id(1, 2)).expect("encode");
                let mut meta = txn.open_table(META).expect("meta");
                meta.insert(META_LAST_PURGED, purged.as_slice()).expect("insert");
                meta.insert(META_FORMAT, [1u8].as_slice()).expect("insert");
            }
            txn.commit().expect("commit");
        }
        let mut log = open_log(dir.path()).await;
        let ids = stored_indexes(&mut log).await;
        assert_eq!(ids, [3, 4, 5]);
        drop(log);
        let db = db::open(dir.path()).expect("open db");
        let txn = db.begin_read().expect("txn");
        assert_eq!(txn.open_table(LOG).expect("table").len().expect("len"), 0);
        let format = txn.open_table(META).expect("meta").get(META_FORMAT).expect("get").map(|v| v.value().to_vec());
        assert_eq!(format, Some(vec![db::FORMAT]));
    }

    #[tokio::test]
    async fn a_second_open_of_the_same_dir_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = crate::open(dir.path()).await.expect("open");
        match crate::open(dir.path()).await {
            Err(StoreError::Open { .. }) => {}
            other => panic!("expected the file to be locked, got {other:?}"),
        }
    }
}
