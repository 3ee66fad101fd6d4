//! Group commit: client writes that reach this node while a proposal is in flight wait, and go
//! together as one `Command::Batch` entry, so N concurrent writers cost one log append (one
//! fsync per node) rather than N. openraft 0.9 appends and flushes each `client_write` on its
//! own, one after another, so without this every writer queues behind every other's fsync.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gantry_proto::cluster::{Command, NodeId, Response};
use gantry_raft_store::openraft::error::{ClientWriteError, RaftError};
use gantry_raft_store::openraft::BasicNode;
use gantry_raft_store::Raft;
use tokio::sync::{mpsc, oneshot};

/// Bounds on one batch: its commands, and (roughly) its bytes, well under the codec's frame limit.
const MAX_BATCH_COMMANDS: usize = 128;
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Writes waiting for the next batch; a caller waits for room beyond that.
const QUEUE_LEN: usize = 1024;

#[derive(Clone, Debug)]
pub enum ProposeError {
    /// This node is not the leader; the leader's id and address when known.
    ForwardToLeader {
        leader: Option<NodeId>,
        node: Option<BasicNode>,
    },
    Failed(String),
}

struct Pending {
    command: Command,
    reply: oneshot::Sender<Result<Response, ProposeError>>,
}

/// The queue in front of `Raft::client_write`.
#[derive(Debug)]
pub struct Proposer {
    queue: mpsc::Sender<Pending>,
    stats: Arc<ProposerStats>,
}

/// Entries proposed and the writes they carried (writes / proposals = average batch size).
#[derive(Debug, Default)]
pub struct ProposerStats {
    pub proposals: AtomicU64,
    pub writes: AtomicU64,
}

impl Proposer {
    /// Starts the proposing task; it ends when the proposer is dropped.
    pub fn start(raft: Raft) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE_LEN);
        let stats = Arc::new(ProposerStats::default());
        tokio::spawn(run(raft, pending, stats.clone()));
        Self { queue, stats }
    }

    pub fn stats(&self) -> &ProposerStats {
        &self.stats
    }

    /// Proposes `command` (alone or with others) and returns its own response.
    pub async fn propose(&self, command: Command) -> Result<Response, ProposeError> {
        let stopping = || ProposeError::Failed("the node is stopping".into());
        let (reply, answer) = oneshot::channel();
        self.queue.send(Pending { command, reply }).await.map_err(|_| stopping())?;
        answer.await.map_err(|_| stopping())?
    }
}

async fn run(raft: Raft, mut pending: mpsc::Receiver<Pending>, stats: Arc<ProposerStats>) {
    while let Some(first) = pending.recv().await {
        let mut bytes = size_hint(&first.command);
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_COMMANDS && bytes < MAX_BATCH_BYTES {
            let Ok(next) = pending.try_recv() else { break };
            bytes += size_hint(&next.command);
            batch.push(next);
        }
        // A caller that gave up waiting (its deadline passed, say while there was no quorum) has
        // been told so: its write must not be proposed behind its back.
        batch.retain(|p| !p.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        stats.proposals.fetch_add(1, Ordering::Relaxed);
        stats.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
        propose(&raft, batch).await;
    }
}

async fn propose(raft: &Raft, batch: Vec<Pending>) {
    // A caller that gave up (its deadline passed) dropped its receiver: nothing to tell it, so
    // sends below ignore failures.
    let (mut commands, replies): (Vec<Command>, Vec<_>) = batch.into_iter().map(|p| (p.command, p.reply)).unzip();
    let count = commands.len();
    let results: Vec<Result<Response, ProposeError>> = if count == 1 {
        // A lone write goes as itself: the log then reads as it always did.
        vec![write(raft, commands.swap_remove(0)).await]
    } else {
        match write(raft, Command::Batch(commands)).await {
            Ok(Response::Batch(responses)) if responses.len() == count => responses.into_iter().map(Ok).collect(),
            Ok(other) => {
                let error = ProposeError::Failed(format!("unexpected answer to a batch of writes: {other:?}"));
                vec![Err(error); count]
            }
            Err(error) => vec![Err(error); count],
        }
    };
    for (reply, result) in replies.into_iter().zip(results) {
        let _ = reply.send(result);
    }
}

async fn write(raft: &Raft, command: Command) -> Result<Response, ProposeError> {
    match raft.client_write(command).await {
        Ok(written) => Ok(written.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
            Err(ProposeError::ForwardToLeader { leader: forward.leader_id, node: forward.leader_node })
        }
        Err(other) => Err(ProposeError::Failed(other.to_string())),
    }
}

fn size_hint(command: &Command) -> usize {
    match command {
        Command::ApplyConfig { config_json, .. } => config_json.len() + 64,
        _ => 256,
    }
}
