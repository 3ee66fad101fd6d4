//! The workload that runs throughout a scenario: HTTP clients on every node's listener, config
//! writers that record every acknowledged write, and readers of each node's served revision.
//! Every task is bounded in count and stops by itself; records are bounded too.

mod readers;
mod traffic;
mod writers;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinSet;

use crate::cluster::{Cluster, Roster};
use crate::document::Endpoint;
use crate::timeline::Timeline;

pub use writers::{write_once, WRITE_DEADLINE};

/// Most records of each kind kept (a scenario makes a few thousand requests).
pub(crate) const RECORDS_MAX: usize = 200_000;

/// One client request, possibly retried once on another node.
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord {
    /// When it started, since the scenario started.
    pub t_ms: u64,
    pub latency_ms: u32,
    /// Node index of the first try.
    pub first_node: u8,
    /// Node index of the last try (the one that answered, when `ok`).
    pub last_node: u8,
    pub ok: bool,
    pub retried: bool,
    /// Zone of the backend that answered (its `x-zone` header's first byte).
    pub backend_zone: Option<u8>,
}

/// What became of a config write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WriteOutcome {
    /// 200 with this revision: the cluster promised the write is durable.
    Acked { revision: u64 },
    /// An HTTP answer other than 200 (503 no_leader, cluster_unavailable, …).
    Refused { status: u16, code: String },
    /// No answer in time, or no connection: the write may or may not have committed.
    NoAnswer { reason: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct WriteRecord {
    pub t_ms: u64,
    pub latency_ms: u64,
    /// Who wrote: `w<N>` for workload writers, `probe`/`init` for scenario steps.
    pub writer: String,
    pub node: usize,
    pub marker: String,
    #[serde(flatten)]
    pub outcome: WriteOutcome,
}

impl WriteRecord {
    pub fn acked_revision(&self) -> Option<u64> {
        match self.outcome {
            WriteOutcome::Acked { revision } => Some(revision),
            _ => None,
        }
    }
}

/// One observation of the revision a node served.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    pub t_ms: u64,
    pub node: usize,
    /// The node's process generation, the same before and after the read.
    pub generation: u64,
    pub revision: u64,
    pub marker: Option<String>,
}

/// Sizes and rates of the workload.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    pub clients: usize,
    /// Requests per second of each client.
    pub client_rps: u32,
    pub writers: usize,
    /// Average pause between two writes of one writer (±30 % jitter).
    pub write_period: Duration,
    /// Write attempts across all writers: the node keeps the last 100 revisions, and every
    /// acknowledged one must still be there to be checked.
    pub writes_max: u32,
    pub read_period: Duration,
    /// A task stops by itself after this long even if nobody stops it.
    pub duration_max: Duration,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            clients: 6,
            client_rps: 20,
            writers: 2,
            write_period: Duration::from_millis(900),
            writes_max: 85,
            read_period: Duration::from_millis(250),
            duration_max: Duration::from_secs(180),
        }
    }
}

/// Everything the workload saw.
#[derive(Debug, Default)]
pub struct WorkloadLog {
    pub requests: Vec<RequestRecord>,
    pub writes: Vec<WriteRecord>,
    pub reads: Vec<ReadRecord>,
}

/// Shared by the tasks of one workload.
pub(crate) struct Shared {
    pub roster: Roster,
    pub timeline: Arc<Timeline>,
    pub stop: AtomicBool,
    pub requests: Mutex<Vec<RequestRecord>>,
    pub writes: Mutex<Vec<WriteRecord>>,
    pub reads: Mutex<Vec<ReadRecord>>,
    pub write_budget: AtomicU32,
    pub admin_token: String,
    pub endpoints: Vec<Endpoint>,
    pub config: WorkloadConfig,
}

impl Shared {
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Takes one write from the budget; false once it is spent.
    pub fn take_write(&self) -> bool {
        self.write_budget.fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(1)).is_ok()
    }
}

pub(crate) fn push_bounded<T>(list: &Mutex<Vec<T>>, item: T) {
    let mut list = list.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if list.len() < RECORDS_MAX {
        list.push(item);
    }
}

fn take<T>(list: &Mutex<Vec<T>>) -> Vec<T> {
    std::mem::take(&mut *list.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// A running workload.
pub struct Workload {
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload").field("tasks", &self.tasks.len()).finish()
    }
}

impl Workload {
    /// Starts clients, writers and a reader against the cluster's roster.
    pub fn start(cluster: &Cluster, config: WorkloadConfig, seed: u64) -> Workload {
        let shared = Arc::new(Shared {
            roster: cluster.roster.clone(),
            timeline: cluster.timeline.clone(),
            stop: AtomicBool::new(false),
            requests: Mutex::new(Vec::new()),
            writes: Mutex::new(Vec::new()),
            reads: Mutex::new(Vec::new()),
            write_budget: AtomicU32::new(config.writes_max),
            admin_token: cluster.admin_token.clone(),
            endpoints: cluster.endpoints(),
            config: config.clone(),
        });
        let mut tasks = JoinSet::new();
        for id in 0..config.clients {
            tasks.spawn(traffic::client(id, shared.clone()));
        }
        for id in 0..config.writers {
            tasks.spawn(writers::writer(id, shared.clone(), seed.wrapping_add(id as u64 + 1)));
        }
        tasks.spawn(readers::reader(shared.clone()));
        cluster.timeline.step(format!(
            "workload started: {} clients x {} req/s, {} writers (every ~{} ms, at most {} writes), a reader",
            config.clients,
            config.client_rps,
            config.writers,
            config.write_period.as_millis(),
            config.writes_max
        ));
        Workload { shared, tasks }
    }

    /// Write records so far (for probes that need the latest acknowledged revision).
    pub fn writes_so_far(&self) -> Vec<WriteRecord> {
        self.shared.writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Stops every task (a write in flight gets its deadline to finish) and returns the log.
    pub async fn stop(mut self) -> WorkloadLog {
        self.shared.stop.store(true, Ordering::Release);
        // A writer may be inside a 5 s PUT; past this bound the rest are aborted.
        let drained =
            tokio::time::timeout(Duration::from_secs(8), async { while self.tasks.join_next().await.is_some() {} })
                .await;
        if drained.is_err() {
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
        self.shared.timeline.step("workload stopped");
        let mut log = WorkloadLog {
            requests: take(&self.shared.requests),
            writes: take(&self.shared.writes),
            reads: take(&self.shared.reads),
        };
        log.requests.sort_by_key(|r| r.t_ms);
        log.writes.sort_by_key(|w| w.t_ms);
        log
    }
}
