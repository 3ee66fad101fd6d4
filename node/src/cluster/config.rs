//! Config writes through Raft: a document is validated whole, compiled on trial (certificate
//! files, route tables) and checked for bindable listeners here, then proposed; it commits as a
//! new revision or is refused with every problem, and nothing changes.

use std::sync::Arc;

use gantry_proto::cluster::{Command, Refusal, Response};
use gantry_proto::config::{parse_document, Document};
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
}

impl ConfigWriter {
    /// Checks a document as far as this node can without committing it.
    pub fn check(&self, document: &Document) -> Result<(), Vec<Problem>> {
        let trial = self.dataplane.trial(document.clone()).map_err(|e| e.problems)?;
        check_bindable(&trial, &self.dataplane.snapshot())
    }

    /// Parses, checks and commits `text` (YAML or JSON); returns the new revision.
    pub async fn apply_text(&self, text: &str, if_revision: Option<u64>) -> Result<u64, ApplyError> {
        let document = parse_document(text).map_err(|e| ApplyError::Invalid(e.problems))?;
        self.apply(document, if_revision).await
    }

    pub async fn apply(&self, document: Document, if_revision: Option<u64>) -> Result<u64, ApplyError> {
        self.check(&document).map_err(ApplyError::Invalid)?;
        let config_json = serde_json::to_string(&document)
            .map_err(|e| ApplyError::Invalid(vec![Problem::new("", format!("cannot encode the document: {e}"))]))?;
        match self.cluster.commit(Command::ApplyConfig { config_json, if_revision, at_unix_ms: now_unix_ms() }).await? {
            Response::Committed { revision } => Ok(revision),
            other => Err(ApplyError::Cluster(ClusterError::Raft(format!("unexpected answer: {other:?}")))),
        }
    }

    /// Commits revision `to` again as a new revision (after checking it still compiles here).
    pub async fn rollback(&self, to: u64, if_revision: Option<u64>) -> Result<u64, ApplyError> {
        let old = self.cluster.state().revision_at(to).cloned().ok_or(ApplyError::UnknownRevision(to))?;
        let document = parse_document(&old.config_json).map_err(|e| ApplyError::Invalid(e.problems))?;
        self.check(&document).map_err(ApplyError::Invalid)?;
        match self.cluster.commit(Command::Rollback { to_revision: to, if_revision, at_unix_ms: now_unix_ms() }).await?
        {
            Response::Committed { revision } => Ok(revision),
            other => Err(ApplyError::Cluster(ClusterError::Raft(format!("unexpected answer: {other:?}")))),
        }
    }
}
