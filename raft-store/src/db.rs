//! The redb file: its tables, opening it, running blocking redb work off the async runtime, and
//! the codec helpers every value on disk goes through (so corrupt bytes become
//! [`StoreError::Corrupt`], never a panic).

use std::fs;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use gantry_proto::codec::CodecError;

use crate::StoreError;

/// Log entries of format 1 stores: index → codec-encoded `Entry` (empty from format 2 on).
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// Small log-side records, keyed by the `META_*` names.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The current snapshot: `SNAPSHOT_META` (codec-encoded `SnapshotMeta`) and `SNAPSHOT_DATA` (the
/// snapshot bytes exactly as openraft sends them), always written together in one transaction.
pub(crate) const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");

pub(crate) const META_FORMAT: &str = "format";
pub(crate) const META_VOTE: &str = "vote";
pub(crate) const META_LAST_PURGED: &str = "last_purged";
pub(crate) const META_COMMITTED: &str = "committed";
pub(crate) const SNAPSHOT_META: &str = "meta";
pub(crate) const SNAPSHOT_DATA: &str = "data";

/// Bumped when the layout or encoding of what is stored changes incompatibly. Format 1 kept log
/// entries in the `log` table; format 2 keeps them in segment files (`crate::wal`), and opening
/// a format 1 store moves them there.
pub(crate) const FORMAT: u8 = 2;
const FORMAT_WITH_LOG_TABLE: u8 = 1;

/// Opens or creates `dir/raft.redb`, creates the tables (so readers never meet a missing table)
/// and checks the format marker.
pub(crate) fn open(dir: &Path) -> Result<Arc<Database>, StoreError> {
    fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir { path: dir.to_path_buf(), source })?;
    let path = dir.join(crate::DB_FILE);
    // `create` opens an existing file without truncating it; after a crash redb repairs the file
    // back to its last committed transaction here.
    let db = Database::create(&path).map_err(|source| StoreError::Open { path: path.clone(), source })?;
    let txn = db.begin_write()?;
    {
        let log_is_empty = txn.open_table(LOG)?.is_empty()?;
        txn.open_table(SNAPSHOT)?;
        let mut meta = txn.open_table(META)?;
        let found = meta.get(META_FORMAT)?.map(|v| v.value().to_vec());
        match found.as_deref() {
            // A format 1 store with nothing in its log table has nothing to move.
            None | Some([FORMAT_WITH_LOG_TABLE]) if log_is_empty => {
                meta.insert(META_FORMAT, [FORMAT].as_slice())?;
            }
            // The log is moved into segments by `log_store::open_wal`, which then sets the format.
            None | Some([FORMAT | FORMAT_WITH_LOG_TABLE]) => {}
            Some(other) => return Err(StoreError::Format { path, found: format!("{other:?}"), expected: FORMAT }),
        }
    }
    txn.commit()?;
    Ok(Arc::new(db))
}

/// Runs blocking redb work on tokio's blocking pool and waits for it.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|e| StoreError::Task(e.to_string()))?
}

pub(crate) fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    gantry_proto::codec::encode_payload(value).map_err(|source| StoreError::Encode { what, source })
}

pub(crate) fn decode<T: DeserializeOwned>(what: impl Into<String>, bytes: &[u8]) -> Result<T, StoreError> {
    gantry_proto::codec::decode_payload(bytes).map_err(|source| StoreError::Corrupt { what: what.into(), source })
}

/// Largest snapshot accepted or produced. The codec's frame bound (16 MiB) suits log entries and
/// RPC frames, but a snapshot holds the whole config history, which can outgrow it; failing to
/// build a snapshot would stop the node. Snapshots travel to followers in chunks, not one frame.
pub(crate) const SNAPSHOT_MAX_BYTES: usize = 1 << 30;

type SnapshotConfig = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<SNAPSHOT_MAX_BYTES>,
>;

/// The codec's wire format (bincode 2 standard: little-endian varints), with the snapshot bound.
fn snapshot_config() -> SnapshotConfig {
    bincode::config::standard().with_limit::<SNAPSHOT_MAX_BYTES>()
}

pub(crate) fn encode_snapshot<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    bincode::serde::encode_to_vec(value, snapshot_config())
        .map_err(|e| StoreError::Encode { what: "snapshot", source: CodecError::Encode(e.to_string()) })
}

/// Decodes snapshot bytes; every byte must be used. Decoding from a slice never allocates more
/// than the slice can back, so garbage costs no more memory than its own size.
pub(crate) fn decode_snapshot<T: DeserializeOwned>(what: impl Into<String>, bytes: &[u8]) -> Result<T, StoreError> {
    let decoded = bincode::serde::decode_from_slice(bytes, snapshot_config())
        .map_err(|e| CodecError::Decode(e.to_string()))
        .and_then(|(value, used)| match bytes.len().saturating_sub(used) {
            0 => Ok(value),
            trailing => Err(CodecError::Trailing(trailing)),
        });
    decoded.map_err(|source| StoreError::Corrupt { what: what.into(), source })
}

/// Reads and decodes one value of a `&str → bytes` table.
pub(crate) fn get<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match table.get(key)? {
        Some(bytes) => decode(key, bytes.value()).map(Some),
        None => Ok(None),
    }
}

/// Reads one decoded value from a `&str → bytes` table in a fresh read transaction.
pub(crate) fn read<T: DeserializeOwned>(
    db: &Database,
    table: TableDefinition<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(table)?;
    get(&table, key)
}
