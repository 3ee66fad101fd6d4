//! [`LogStore`]: openraft's `RaftLogStorage` and `RaftLogReader` on the redb tables `log` (index →
//! entry) and `meta` (vote, last purged log id, committed log id). Every write is one redb
//! transaction, committed (fsynced) before openraft hears it is done. The committed log id is
//! the exception: it rides along in the next transaction (see [`LogStore::save_committed`]).

use std::fmt;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, RaftLogReader};
use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};

use crate::db::{self, LOG, META, META_COMMITTED, META_LAST_PURGED, META_VOTE};
use crate::{Entry, LogId, LogState, StorageError, StoreError, TypeConfig, Vote};

/// The Raft log and vote. Cheap to clone: clones share the database and serve as openraft's log
/// readers (redb read transactions are snapshots, so readers never see a half-written append).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// The committed log id openraft last saved in this run (None: none saved yet, the stored
    /// one stands). Written by the next transaction this store commits anyway.
    committed: Arc<Mutex<Option<Option<LogId>>>>,
}

impl fmt::Debug for LogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl LogStore {
    pub(crate) fn new(db: Arc<Database>) -> Self {
        Self { db, committed: Arc::new(Mutex::new(None)) }
    }

    /// The committed log id saved in this run, encoded for the next transaction.
    fn pending_committed(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let pending = *self.committed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.map(|committed| db::encode("committed log id", &committed)).transpose()
    }

    /// Entries with indexes in `[start, end)` bounds, in order. Each is checked to be stored under
    /// its own index.
    pub async fn entries(&self, start: Bound<u64>, end: Bound<u64>) -> Result<Vec<Entry>, StoreError> {
        let db = self.db.clone();
        db::blocking(move || read_entries(&db, start, end)).await
    }

    /// The last purged log id and the last log id, as openraft sees them.
    pub async fn log_state(&self) -> Result<LogState, StoreError> {
        let db = self.db.clone();
        db::blocking(move || read_log_state(&db)).await
    }

    /// The last saved vote.
    pub async fn vote(&self) -> Result<Option<Vote>, StoreError> {
        let db = self.db.clone();
        db::blocking(move || db::read(&db, META, META_VOTE)).await
    }

    /// The last saved committed log id: the one saved in this run, else the stored one (which may
    /// lag: it is written with the next append, vote, truncate or purge).
    pub async fn committed(&self) -> Result<Option<LogId>, StoreError> {
        if let Some(saved) = *self.committed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) {
            return Ok(saved);
        }
        let db = self.db.clone();
        db::blocking(move || read_committed(&db)).await
    }
}

fn read_entries(db: &Database, start: Bound<u64>, end: Bound<u64>) -> Result<Vec<Entry>, StoreError> {
    if range_is_empty(start, end) {
        return Ok(Vec::new());
    }
    let txn = db.begin_read()?;
    let table = txn.open_table(LOG)?;
    let mut entries = Vec::new();
    for item in table.range::<u64>((start, end))? {
        let (key, value) = item?;
        let index = key.value();
        let entry: Entry = db::decode(format!("log entry {index}"), value.value())?;
        if entry.log_id.index != index {
            return Err(StoreError::Inconsistent(format!(
                "log entry stored at index {index} says index {}",
                entry.log_id.index
            )));
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// True when no u64 lies in the range, which redb (like `BTreeMap::range`) may not accept.
fn range_is_empty(start: Bound<u64>, end: Bound<u64>) -> bool {
    let first = match start {
        Bound::Included(s) => s,
        Bound::Excluded(s) => match s.checked_add(1) {
            Some(s) => s,
            None => return true,
        },
        Bound::Unbounded => 0,
    };
    match end {
        Bound::Included(e) => first > e,
        Bound::Excluded(e) => first >= e,
        Bound::Unbounded => false,
    }
}

fn read_log_state(db: &Database) -> Result<LogState, StoreError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let last_purged_log_id: Option<LogId> = db::get(&meta, META_LAST_PURGED)?;
    let log = txn.open_table(LOG)?;
    let last = match log.last()? {
        Some((key, value)) => {
            let index = key.value();
            let entry: Entry = db::decode(format!("log entry {index}"), value.value())?;
            Some(entry.log_id)
        }
        None => None,
    };
    // With every entry purged, the last log id is the last purged one.
    let last_log_id = last.or(last_purged_log_id);
    Ok(LogState { last_purged_log_id, last_log_id })
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

// Every write below commits with redb's default Durability::Immediate: fsynced when `commit`
// returns.

fn write_meta(db: &Database, key: &'static str, bytes: &[u8], committed: Option<&[u8]>) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(META)?.insert(key, bytes)?;
    carry_committed(&txn, committed)?;
    txn.commit()?;
    Ok(())
}

fn append_entries(db: &Database, encoded: &[(u64, Vec<u8>)], committed: Option<&[u8]>) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut log = txn.open_table(LOG)?;
        for (index, bytes) in encoded {
            log.insert(index, bytes.as_slice())?;
        }
    }
    carry_committed(&txn, committed)?;
    txn.commit()?;
    Ok(())
}

fn truncate_from(db: &Database, index: u64, committed: Option<&[u8]>) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(LOG)?.retain_in::<u64, _>(index.., |_, _| false)?;
    carry_committed(&txn, committed)?;
    txn.commit()?;
    Ok(())
}

fn purge_upto(db: &Database, log_id: LogId, committed: Option<&[u8]>) -> Result<(), StoreError> {
    let bytes = db::encode("last purged log id", &log_id)?;
    let txn = db.begin_write()?;
    carry_committed(&txn, committed)?;
    {
        // Recording the purge point and deleting the entries in one transaction: after a crash
        // either both happened or neither did, so `get_log_state` never shows a hole.
        txn.open_table(META)?.insert(META_LAST_PURGED, bytes.as_slice())?;
        txn.open_table(LOG)?.retain_in::<u64, _>(..=log_id.index, |_, _| false)?;
    }
    txn.commit()?;
    Ok(())
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
        let db = self.db.clone();
        let vote = *vote;
        let committed = self.pending_committed().map_err(|e| e.into_raft(ErrorSubject::Vote, ErrorVerb::Write))?;
        db::blocking(move || {
            let bytes = db::encode("vote", &vote)?;
            // A vote must survive a crash before the node acts on it (answers a vote request or
            // starts leading): fsynced before this returns.
            write_meta(&db, META_VOTE, &bytes, committed.as_deref())
        })
        .await
        .map_err(|e| e.into_raft(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.vote().await.map_err(|e| e.into_raft(ErrorSubject::Vote, ErrorVerb::Read))
    }

    /// Held in memory and written by the next transaction (append, vote, truncate or purge).
    /// openraft calls this before it applies each commit, on every node: a transaction of its
    /// own here (even without fsync) cost every write a trip to the blocking pool, redb's one
    /// write lock, and more dirty pages for the next append's fsync. A committed id that lags
    /// after a crash only means openraft re-applies fewer entries at start and learns the rest
    /// from the leader; it is never ahead of a real commit.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        *self.committed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(committed);
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
        let mut encoded = Vec::new();
        for entry in entries {
            match db::encode("log entry", &entry) {
                Ok(bytes) => encoded.push((entry.log_id.index, bytes)),
                Err(e) => {
                    callback.log_io_completed(Err(e.to_io()));
                    return Err(e.into_raft(ErrorSubject::Log(entry.log_id), ErrorVerb::Write));
                }
            }
        }
        let committed = match self.pending_committed() {
            Ok(committed) => committed,
            Err(e) => {
                callback.log_io_completed(Err(e.to_io()));
                return Err(e.into_raft(ErrorSubject::Logs, ErrorVerb::Write));
            }
        };
        let db = self.db.clone();
        // One transaction, so one fsync, for the whole batch. We wait for it before returning:
        // then the entries are readable when `append` returns (openraft requires it) and writes
        // stay in call order (a later vote or truncate can never overtake this append).
        let result = db::blocking(move || append_entries(&db, &encoded, committed.as_deref())).await;
        match result {
            Ok(()) => {
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
        let db = self.db.clone();
        let committed =
            self.pending_committed().map_err(|e| e.into_raft(ErrorSubject::Log(log_id), ErrorVerb::Delete))?;
        db::blocking(move || truncate_from(&db, log_id.index, committed.as_deref()))
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Log(log_id), ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let db = self.db.clone();
        let committed =
            self.pending_committed().map_err(|e| e.into_raft(ErrorSubject::Log(log_id), ErrorVerb::Delete))?;
        db::blocking(move || purge_upto(&db, log_id, committed.as_deref()))
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

    async fn open_log(dir: &std::path::Path) -> LogStore {
        crate::open(dir).await.expect("open store").0
    }

    #[tokio::test]
    async fn log_vote_purge_and_committed_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path()).await;
        log.blocking_append((1..=10).map(|i| entry(1, i))).await.expect("append");
        log.save_vote(&Vote::new(3, 2)).await.expect("vote");
        log.purge(log_id(1, 4)).await.expect("purge");
        log.truncate(log_id(1, 9)).await.expect("truncate");
        log.save_committed(Some(log_id(1, 7))).await.expect("committed");
        // The committed id is held in memory; the next durable write carries it.
        log.blocking_append([entry(2, 9)]).await.expect("append");
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
    async fn the_committed_id_rides_along_with_the_next_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path()).await;
        log.blocking_append((1..=5).map(|i| entry(1, i))).await.expect("append");
        log.save_committed(Some(log_id(1, 2))).await.expect("committed");
        log.save_vote(&Vote::new(1, 1)).await.expect("vote");
        log.save_committed(Some(log_id(1, 4))).await.expect("committed");
        // Visible at once in this run, without a write of its own.
        assert_eq!(log.read_committed().await.expect("committed"), Some(log_id(1, 4)));
        drop(log);
        // Across a restart only what a later write carried survives: it lags, never leads.
        let mut log = open_log(dir.path()).await;
        assert_eq!(log.read_committed().await.expect("committed"), Some(log_id(1, 2)));
        log.save_committed(Some(log_id(1, 5))).await.expect("committed");
        log.purge(log_id(1, 1)).await.expect("purge");
        drop(log);
        let mut log = open_log(dir.path()).await;
        assert_eq!(log.read_committed().await.expect("committed"), Some(log_id(1, 5)));
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

    #[tokio::test]
    async fn corrupt_or_misplaced_entries_are_errors_not_panics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path()).await;
        log.blocking_append((1..=3).map(|i| entry(1, i))).await.expect("append");
        drop(log);

        // Garbage at index 2 and a valid entry filed under the wrong index at 3.
        let db = db::open(dir.path()).expect("open db");
        let misplaced = db::encode("entry", &entry(1, 7)).expect("encode");
        let txn = db.begin_write().expect("txn");
        {
            let mut table = txn.open_table(LOG).expect("table");
            table.insert(2, [0xffu8, 0xff, 0xff].as_slice()).expect("insert");
            table.insert(3, misplaced.as_slice()).expect("insert");
        }
        txn.commit().expect("commit");
        drop(db);

        let mut log = open_log(dir.path()).await;
        assert_eq!(log.try_get_log_entries(1..2).await.expect("read"), [entry(1, 1)]);
        let err = log.try_get_log_entries(2..3).await.expect_err("garbage");
        assert!(err.to_string().contains("corrupt log entry 2"), "{err}");
        let err = log.try_get_log_entries(3..4).await.expect_err("misplaced");
        assert!(err.to_string().contains("stored at index 3 says index 7"), "{err}");
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
