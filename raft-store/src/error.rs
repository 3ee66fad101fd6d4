//! [`StoreError`], everything that can go wrong below openraft, and its mapping to openraft's
//! `StorageError` (which makes openraft stop the node rather than carry on over a broken disk).

use std::path::PathBuf;

use gantry_proto::codec::CodecError;
use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageIOError};

use crate::NodeId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open {path} (is another gantry process using this data dir?): {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("database error: {0}")]
    Database(#[from] redb::Error),
    #[error("{path} has storage format {found}, this build reads formats 1 to {expected}")]
    Format { path: PathBuf, found: String, expected: u8 },
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: CodecError,
    },
    /// Bytes read from disk do not decode: the file is damaged or from another program.
    #[error("corrupt {what} on disk: {source}")]
    Corrupt {
        what: String,
        #[source]
        source: CodecError,
    },
    /// Bytes decoded but contradict where they were found (e.g. an entry under the wrong index).
    #[error("inconsistent store: {0}")]
    Inconsistent(String),
    #[error("storage task failed: {0}")]
    Task(String),
    /// A file operation on the log's segment files failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

// redb has one error type per operation; all of them convert into `redb::Error`.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Database(e.into())
            }
        }
    )*};
}
from_redb!(redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

impl StoreError {
    /// Wraps the error for openraft, saying what was being done to what.
    pub(crate) fn into_raft(self, subject: ErrorSubject<NodeId>, verb: ErrorVerb) -> openraft::StorageError<NodeId> {
        StorageIOError::new(subject, verb, AnyError::new(&self)).into()
    }

    /// An `io::Error` for openraft's append callback, which only takes that type.
    pub(crate) fn to_io(&self) -> std::io::Error {
        std::io::Error::other(self.to_string())
    }
}
