//! Config writes through Raft: a document is validated whole, compiled on trial (certificate
//! files, route tables) and checked for bindable listeners here, then proposed; it commits as a
//! new revision or is refused with every problem, and nothing changes.
//!
//! Writes arrive on the cluster's thread (the admin API runs there). A small write alone is
//! parsed and checked right there, with no hand-off on its way to Raft. A large document (which
//! could hold up heartbeats for as long as it takes to parse), a rollback, and any write while
//! another is under way are parsed and checked (the costly part: YAML, route tables) on the data
//! plane's runtime: concurrent writers are prepared in parallel, and Raft's thread keeps going.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use gantry_proto::cluster::{Command, Refusal, Response};
use gantry_proto::config::{parse_document, ConfigError, Document};
use gantry_proto::Problem;

use super::{now_unix_ms, Cluster, ClusterError};
use crate::dataplane::Dataplane;
use crate::proxy::check_bindable;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("invalid config ({} problems)", .0.len())]
    Invalid(Vec<Problem>),
    #[error("revision conflict: expected {expected}, current is {current}")]
    Conflict { expected: u64, current: u64 },
    #[error("revision {0} is not in the history")]
    UnknownRevision(u64),
    #[error(transparent)]
    Cluster(ClusterError),
}

impl From<ClusterError> for ApplyError {
    fn from(error: ClusterError) -> Self {
        match error {
            ClusterError::Refused(Refusal::RevisionConflict { expected, current }) => {
                ApplyError::Conflict { expected, current }
            }
            ClusterError::Refused(Refusal::UnknownRevision(r)) => ApplyError::UnknownRevision(r),
            other => ApplyError::Cluster(other),
        }
    }
}

/// Validates and proposes config documents.
#[derive(Debug, Clone)]
pub struct ConfigWriter {
    pub cluster: Arc<Cluster>,
    pub dataplane: Arc<Dataplane>,
    /// Writes between their start and their answer, on this node.
    in_progress: Arc<AtomicUsize>,
    /// Where concurrent writes are prepared: the data plane's runtime.
    workers: tokio::runtime::Handle,
}

/// The largest document parsed and checked on the cluster's thread itself: a few milliseconds of
/// work at most, well inside a heartbeat interval (50 ms).
const INLINE_MAX_BYTES: usize = 64 << 10;

/// Counts a write in progress until dropped.
struct InProgress(Arc<AtomicUsize>);

impl InProgress {
    /// Counts one more write; says whether others were already in progress.
    fn start(count: &Arc<AtomicUsize>) -> (Self, bool) {
        let others = count.fetch_add(1, Ordering::AcqRel) > 0;
        (Self(count.clone()), others)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConfigWriter {
    /// `workers`: the runtime that prepares writes made while another is under way.
    pub fn new(cluster: Arc<Cluster>, dataplane: Arc<Dataplane>, workers: tokio::runtime::Handle) -> Self {
        Self { cluster, dataplane, in_progress: Arc::default(), workers }
    }

    /// Checks a document as far as this node can without committing it.
    pub fn check(&self, document: &Document) -> Result<(), Vec<Problem>> {
        let trial = self.dataplane.trial(document.clone()).map_err(|e| e.problems)?;
        check_bindable(&trial, &self.dataplane.snapshot())
    }

    /// Parses, checks and commits `text` (YAML or JSON); returns the new revision.
    pub async fn apply_text(&self, text: &str, if_revision: Option<u64>) -> Result<u64, ApplyError> {
        let (_counted, others) = InProgress::start(&self.in_progress);
        let config_json = if others || text.len() > INLINE_MAX_BYTES {
            let (writer, text) = (self.clone(), text.to_owned());
            self.on_workers(move || writer.prepare(parse_document(&text))).await??
        } else {
            self.prepare(parse_document(text))?
        };
        self.commit(config_json, if_revision).await
    }

    /// Runs `work` on the data plane's runtime.
    async fn on_workers<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApplyError> {
        self.workers
            .spawn(async move { work() })
            .await
            .map_err(|e| ApplyError::Cluster(ClusterError::Raft(format!("checking the document failed: {e}"))))
    }

    pub async fn apply(&self, document: Document, if_revision: Option<u64>) -> Result<u64, ApplyError> {
        let (_counted, _) = InProgress::start(&self.in_progress);
        let config_json = self.prepare(Ok(document))?;
        self.commit(config_json, if_revision).await
    }

    /// Checks a parsed document and encodes it as it is committed.
    fn prepare(&self, parsed: Result<Document, ConfigError>) -> Result<String, ApplyError> {
        let document = parsed.map_err(|e| ApplyError::Invalid(e.problems))?;
        self.check(&document).map_err(ApplyError::Invalid)?;
        serde_json::to_string(&document)
            .map_err(|e| ApplyError::Invalid(vec![Problem::new("", format!("cannot encode the document: {e}"))]))
    }

    async fn commit(&self, config_json: String, if_revision: Option<u64>) -> Result<u64, ApplyError> {
        self.commit_command(Command::ApplyConfig { config_json, if_revision, at_unix_ms: now_unix_ms() }).await
    }

    /// Commits a config command; its answer is the new revision.
    async fn commit_command(&self, command: Command) -> Result<u64, ApplyError> {
        match self.cluster.commit(command).await? {
            Response::Committed { revision } => Ok(revision),
            other => Err(ApplyError::Cluster(ClusterError::Raft(format!("unexpected answer: {other:?}")))),
        }
    }

    /// Commits revision `to` again as a new revision (after checking it still compiles here).
    pub async fn rollback(&self, to: u64, if_revision: Option<u64>) -> Result<u64, ApplyError> {
        let old = self.cluster.state().revision_at(to).cloned().ok_or(ApplyError::UnknownRevision(to))?;
        let writer = self.clone();
        self.on_workers(move || {
            let document = parse_document(&old.config_json).map_err(|e| ApplyError::Invalid(e.problems))?;
            writer.check(&document).map_err(ApplyError::Invalid)
        })
        .await??;
        self.commit_command(Command::Rollback { to_revision: to, if_revision, at_unix_ms: now_unix_ms() }).await
    }
}
