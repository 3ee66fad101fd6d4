//! openraft's own storage conformance suite (`openraft::testing::Suite`) run against the store
//! (log segments and redb), each case on a fresh temporary directory.

use gantry_raft_store::{LogStore, StateMachineStore, StorageError, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageIOError};
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(AnyError::new(&e)))?;
        let (log, sm) =
            gantry_raft_store::open(dir.path()).await.map_err(|e| StorageIOError::write(AnyError::new(&e)))?;
        // The guard keeps the directory until the case's stores are dropped.
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(Builder) {
        panic!("openraft storage suite failed: {e}");
    }
}
