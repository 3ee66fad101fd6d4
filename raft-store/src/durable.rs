//! The log's durable point, and the thread that moves it. The leader's own appends reach the
//! page cache at once and are synced here in the background, so the leader replicates an entry
//! while its own `fdatasync` runs instead of after it (Raft thesis §10.2.1: safe as long as the
//! leader's unsynced copy never counts toward a commit). What enforces that: the state machine
//! applies nothing past [`DurablePoint`], and the node's network layer tells followers of no
//! commit past it, so an entry takes effect anywhere only once a majority holds it on disk.

use std::fs::File;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};

use tokio::sync::watch;

use crate::{LogId, StoreError};

#[derive(Clone, Debug, Default)]
struct Point {
    synced: Option<LogId>,
    /// Appends written and queued for a background sync, not yet synced. With none, everything
    /// in the log is on disk, whatever `synced` says (it only tracks the log's end).
    outstanding: u64,
    /// A background sync failed: nothing past `synced` will ever be durable.
    failed: Option<Arc<str>>,
}

impl Point {
    /// Whether entries up to `index` are on disk. After a failed sync only `synced` is.
    fn holds(&self, index: u64) -> bool {
        (self.outstanding == 0 && self.failed.is_none()) || self.synced.is_some_and(|id| id.index >= index)
    }

    /// Moves `synced` forward to `id` (never back); whether it moved.
    fn advance_to(&mut self, id: LogId) -> bool {
        let moved = self.synced.is_none_or(|synced| synced < id);
        if moved {
            self.synced = Some(id);
        }
        moved
    }

    /// An error once a background sync failed.
    fn check(&self) -> Result<(), StoreError> {
        match &self.failed {
            Some(why) => Err(StoreError::Inconsistent(format!("a log sync failed: {why}"))),
            None => Ok(()),
        }
    }
}

/// The last log id known to be on disk (in this node's log).
#[derive(Debug)]
pub struct DurablePoint {
    point: watch::Sender<Point>,
}

impl DurablePoint {
    pub(crate) fn new(synced: Option<LogId>) -> Arc<Self> {
        Arc::new(Self { point: watch::Sender::new(Point { synced, outstanding: 0, failed: None }) })
    }

    /// The last log id known to be on disk.
    pub fn log_id(&self) -> Option<LogId> {
        self.point.borrow().synced
    }

    /// `commit` as far as this log holds it on disk: unchanged unless appends are still syncing.
    pub fn cap(&self, commit: Option<LogId>) -> Option<LogId> {
        let point = self.point.borrow();
        match commit {
            Some(id) if !point.holds(id.index) => commit.min(point.synced),
            _ => commit,
        }
    }

    /// Entries up to `id` are on disk.
    pub(crate) fn advance(&self, id: LogId) {
        self.point.send_if_modified(|point| point.advance_to(id));
    }

    /// The log now ends at `last` (a truncate): nothing after it is durable.
    pub(crate) fn truncated(&self, last: Option<LogId>) {
        self.point.send_if_modified(|point| {
            let capped = point.synced > last;
            if capped {
                point.synced = last;
            }
            capped
        });
    }

    #[cfg(test)]
    fn fail(&self, why: String) {
        self.point.send_modify(|point| point.failed = Some(why.into()));
    }

    /// Waits until entries up to `index` are on disk; an error once a background sync failed.
    pub async fn wait_for(&self, index: u64) -> Result<(), StoreError> {
        let mut point = self.point.subscribe();
        let reached = point
            .wait_for(|point| point.failed.is_some() || point.holds(index))
            .await
            .map_err(|_| StoreError::Inconsistent("the log's durable point is gone".into()))?;
        reached.check()
    }
}

enum Job {
    /// `file` holds entries up to `last`, written but not yet synced.
    Sync { file: Arc<File>, path: PathBuf, last: LogId },
    /// Answered once every job sent before it is done.
    Barrier(mpsc::Sender<()>),
}

/// Syncs the leader's appends on a thread of its own, in order, one `fdatasync` per file for
/// whatever queued up meanwhile, and advances the durable point after each round.
pub(crate) struct Syncer {
    jobs: mpsc::Sender<Job>,
    durable: Arc<DurablePoint>,
}

impl Syncer {
    pub(crate) fn start(durable: Arc<DurablePoint>) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel();
        let thread_durable = durable.clone();
        std::thread::Builder::new()
            .name("gantry-log-sync".into())
            .spawn(move || run(&queue, &thread_durable))
            .map_err(|source| StoreError::Io { what: "starting the log sync thread".into(), source })?;
        Ok(Self { jobs, durable })
    }

    /// Queues `file` for a sync that makes entries up to `last` durable; an error once a sync
    /// failed (the append is then not reported flushed).
    pub(crate) fn sync_later(&self, file: Arc<File>, path: PathBuf, last: LogId) -> Result<(), StoreError> {
        self.durable.point.borrow().check()?;
        self.durable.point.send_modify(|point| point.outstanding += 1);
        // The thread lives as long as this sender: a failed send means it died.
        self.jobs.send(Job::Sync { file, path, last }).map_err(|_| {
            self.durable.point.send_modify(|point| point.outstanding -= 1);
            StoreError::Inconsistent("the log sync thread has stopped".into())
        })
    }

    /// Blocks until every queued sync is done. Before the log is used in any other way than the
    /// leader's own appends (a follower's append, a truncate, a vote for someone else), all of
    /// it must be on disk: a follower's acknowledgement counts toward commits.
    pub(crate) fn drain(&self) -> Result<(), StoreError> {
        let outstanding = self.durable.point.borrow().outstanding;
        if outstanding > 0 {
            let (done, wait) = mpsc::channel();
            if self.jobs.send(Job::Barrier(done)).is_ok() {
                let _ = wait.recv();
            }
        }
        self.durable.point.borrow().check()
    }
}

fn run(queue: &mpsc::Receiver<Job>, durable: &DurablePoint) {
    while let Ok(first) = queue.recv() {
        let mut jobs = vec![first];
        jobs.extend(queue.try_iter());
        let mut files: Vec<(Arc<File>, PathBuf)> = Vec::new();
        let mut last = None;
        let mut count = 0;
        for job in jobs {
            match job {
                Job::Sync { file, path, last: id } => {
                    if !files.iter().any(|(queued, _)| Arc::ptr_eq(queued, &file)) {
                        files.push((file, path));
                    }
                    last = Some(id);
                    count += 1;
                }
                Job::Barrier(done) => {
                    sync_round(&mut files, last.take(), std::mem::take(&mut count), durable);
                    let _ = done.send(());
                }
            }
        }
        sync_round(&mut files, last, count, durable);
    }
}

/// Syncs `files`, then in one step moves the point to `last` and counts `count` appends done.
fn sync_round(files: &mut Vec<(Arc<File>, PathBuf)>, last: Option<LogId>, count: u64, durable: &DurablePoint) {
    let mut failure = None;
    for (file, path) in files.drain(..) {
        if let Err(error) = file.sync_data() {
            tracing::error!(path = %path.display(), %error, "cannot sync the Raft log; this node stops applying");
            failure = Some(format!("syncing {}: {error}", path.display()));
            break;
        }
    }
    durable.point.send_modify(|point| {
        // A failed round stays outstanding: nothing it held counts as on disk, ever.
        if failure.is_none() {
            point.outstanding = point.outstanding.saturating_sub(count);
        }
        match failure {
            Some(why) => point.failed = Some(why.into()),
            None if point.failed.is_none() => {
                if let Some(last) = last {
                    point.advance_to(last);
                }
            }
            None => {}
        }
    });
}

#[cfg(test)]
mod tests {

    use openraft::CommittedLeaderId;

    use super::*;

    fn id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    #[tokio::test]
    async fn a_wait_ends_when_the_point_reaches_it_or_a_sync_fails() {
        let point = DurablePoint::new(Some(id(2)));
        point.wait_for(7).await.expect("nothing is syncing: the whole log is on disk");
        point.point.send_modify(|point| point.outstanding = 1);
        point.wait_for(2).await.expect("already there");
        assert_eq!(point.cap(Some(id(5))), Some(id(2)), "a commit past the point is capped while syncing");
        let waiting = tokio::spawn({
            let point = point.clone();
            async move { point.wait_for(4).await }
        });
        point.advance(id(3));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "3 is not 4");
        point.advance(id(4));
        waiting.await.expect("task").expect("reached");
        point.advance(id(3));
        assert_eq!(point.log_id(), Some(id(4)), "the point never moves back by an advance");

        let failing = tokio::spawn({
            let point = point.clone();
            async move { point.wait_for(9).await }
        });
        point.fail("disk gone".into());
        let error = failing.await.expect("task").expect_err("failed");
        assert!(error.to_string().contains("disk gone"), "{error}");
        // With nothing left syncing, a failed log still holds only what was synced before.
        point.point.send_modify(|point| point.outstanding = 0);
        assert_eq!(point.cap(Some(id(9))), Some(id(4)), "no commit past the last good sync");
        assert!(point.wait_for(9).await.is_err());
    }

    #[tokio::test]
    async fn queued_syncs_advance_the_point_in_order_and_drain_waits_for_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("segment");
        let file = Arc::new(File::create(&path).expect("file"));
        let point = DurablePoint::new(None);
        let syncer = Syncer::start(point.clone()).expect("syncer");
        for index in 1..=50 {
            syncer.sync_later(file.clone(), path.clone(), id(index)).expect("queued");
        }
        syncer.drain().expect("drained");
        assert_eq!(point.log_id(), Some(id(50)));
        assert_eq!(point.point.borrow().outstanding, 0);
    }
}
