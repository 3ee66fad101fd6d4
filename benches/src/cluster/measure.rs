//! The three measurements, the same code for both clusters:
//!
//! - [`commit_latency`]: `writers` clients each writing one document after another to the
//!   leader; the time of each acknowledged write;
//! - [`failover_trial`]: SIGKILL the leader, then keep writing to the two survivors (a new
//!   attempt every [`ATTEMPT_EVERY`], alternating, never waiting for the previous one) until
//!   one write is acknowledged; the time from the kill to that acknowledgement. A watcher also
//!   notes when a survivor first names a new leader. The killed member is then restarted on
//!   its data dir and the trial ends once it serves the leader's latest revision;
//! - [`commit_to_applied`]: one write at a time to the leader; from its acknowledgement, every
//!   member is polled every `poll_every` until it serves that revision; the time until the last
//!   one does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::subject::{Cluster, READ_DEADLINE};

/// Deadline of one write when a leader is up.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// During a failover: how often a new write attempt starts (to the survivors in turn).
pub const ATTEMPT_EVERY: Duration = Duration::from_millis(10);
/// During a failover: deadline of one attempt, and most attempts in flight at once.
const ATTEMPT_DEADLINE: Duration = Duration::from_secs(3);
const ATTEMPTS_IN_FLIGHT: usize = 200;
/// During a failover: how often the watcher asks each survivor which leader it knows.
const WATCH_EVERY: Duration = Duration::from_millis(5);

/// Unique markers for every write of the run (each write must be a new document).
#[derive(Debug, Clone, Default)]
pub struct Markers(Arc<AtomicU64>);

impl Markers {
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// One batch of writes.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// Time of every acknowledged write.
    pub latencies: Vec<Duration>,
    pub errors: usize,
    pub first_error: Option<String>,
    /// Wall time of the whole batch.
    pub elapsed: Duration,
    /// CPU ticks all members used during the batch.
    pub cpu_ticks: u64,
}

/// `writers` concurrent clients, `writes_each` writes each, all to the current leader.
pub async fn commit_latency(cluster: &Cluster, writers: usize, writes_each: usize, markers: &Markers) -> Result<Batch> {
    let leader = cluster.leader(Duration::from_secs(10)).await?;
    let url = cluster.members[leader].url.clone();
    let ticks_before = cluster.cpu_ticks();
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..writers {
        let (api, url, markers) = (cluster.api.clone(), url.clone(), markers.clone());
        set.spawn(async move {
            let mut batch = Batch { latencies: Vec::with_capacity(writes_each), ..Batch::default() };
            for _ in 0..writes_each {
                let marker = markers.next();
                let sent = Instant::now();
                match api.put(&url, marker, WRITE_DEADLINE).await {
                    Ok(_) => batch.latencies.push(sent.elapsed()),
                    Err(error) => {
                        batch.errors += 1;
                        batch.first_error.get_or_insert_with(|| error.to_string());
                    }
                }
            }
            batch
        });
    }
    let mut total = Batch::default();
    while let Some(done) = set.join_next().await {
        let batch = done?;
        total.latencies.extend(batch.latencies);
        total.errors += batch.errors;
        if total.first_error.is_none() {
            total.first_error = batch.first_error;
        }
    }
    total.elapsed = started.elapsed();
    total.cpu_ticks = cluster.cpu_ticks().saturating_sub(ticks_before);
    Ok(total)
}

/// One leader failover.
#[derive(Debug, Clone)]
pub struct FailoverTrial {
    /// The member killed (the leader).
    pub killed: String,
    /// Kill → a survivor first names a leader other than the killed one.
    pub leader_seen: Option<Duration>,
    /// Kill → first acknowledged write through a survivor.
    pub first_write: Duration,
    /// The survivor that acknowledged it.
    pub via: String,
    /// Write attempts started before that.
    pub attempts: usize,
    /// Restart → the restarted member serves the leader's latest revision.
    pub rejoin: Duration,
}

pub async fn failover_trial(cluster: &mut Cluster, markers: &Markers, bound: Duration) -> Result<FailoverTrial> {
    let leader = cluster.leader(Duration::from_secs(10)).await?;
    let old_id = cluster.members[leader].id;
    let survivors: Vec<(String, String)> = (0..cluster.members.len())
        .filter(|i| *i != leader)
        .map(|i| (cluster.members[i].name.clone(), cluster.members[i].url.clone()))
        .collect();
    let api = cluster.api.clone();

    let killed_at = Instant::now();
    cluster.kill(leader);

    let watcher = {
        let (api, survivors) = (api.clone(), survivors.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(WATCH_EVERY);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            while killed_at.elapsed() < bound {
                tick.tick().await;
                for (_, url) in &survivors {
                    if let Ok((_, Some(seen))) = api.ids(url, Duration::from_millis(200)).await {
                        if seen != old_id {
                            return Some(killed_at.elapsed());
                        }
                    }
                }
            }
            None
        })
    };

    let mut attempts = JoinSet::new();
    let mut tick = tokio::time::interval(ATTEMPT_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut started = 0usize;
    let mut last_error = None;
    let acknowledged = loop {
        if killed_at.elapsed() > bound {
            break None;
        }
        tokio::select! {
            _ = tick.tick() => {
                if attempts.len() < ATTEMPTS_IN_FLIGHT {
                    let (name, url) = survivors[started % survivors.len()].clone();
                    let (api, marker) = (api.clone(), markers.next());
                    attempts.spawn(async move { (name, api.put(&url, marker, ATTEMPT_DEADLINE).await) });
                    started += 1;
                }
            }
            Some(done) = attempts.join_next() => match done {
                Ok((name, Ok(_revision))) => break Some((killed_at.elapsed(), name)),
                Ok((_, Err(error))) => last_error = Some(error.to_string()),
                Err(error) => last_error = Some(error.to_string()),
            },
        }
    };
    attempts.abort_all();
    let leader_seen = match tokio::time::timeout(Duration::from_millis(500), watcher).await {
        Ok(Ok(seen)) => seen,
        _ => None,
    };
    let Some((first_write, via)) = acknowledged else {
        cluster.check_alive()?;
        bail!(
            "{}: no write acknowledged within {bound:?} of killing {} (last error: {})",
            cluster.kind.name(),
            cluster.members[leader].name,
            last_error.unwrap_or_default()
        );
    };
    let rejoin = cluster.restart(leader, Duration::from_secs(30)).await?;
    Ok(FailoverTrial {
        killed: cluster.members[leader].name.clone(),
        leader_seen,
        first_write,
        via,
        attempts: started,
        rejoin,
    })
}

/// Commit-to-applied samples.
#[derive(Debug, Default, Clone)]
pub struct Applied {
    /// Acknowledgement → the last member serves the revision.
    pub all: Vec<Duration>,
    /// Acknowledgement → each follower serves it (two samples per commit).
    pub followers: Vec<Duration>,
    /// Acknowledgement → the leader serves it (its first poll answer, usually at once).
    pub leader: Vec<Duration>,
    /// Commits some member did not serve within the bound, and failed writes.
    pub missed: usize,
    pub errors: usize,
    pub first_error: Option<String>,
}

/// `commits` writes one at a time to the leader; after each, every member is polled every
/// `poll_every` until it serves the new revision (at most `bound`).
pub async fn commit_to_applied(
    cluster: &Cluster,
    commits: usize,
    markers: &Markers,
    poll_every: Duration,
    bound: Duration,
) -> Result<Applied> {
    let leader = cluster.leader(Duration::from_secs(10)).await?;
    let leader_url = cluster.members[leader].url.clone();
    let mut applied = Applied::default();
    // A small varying pause between commits, so commits do not keep one phase against the
    // members' heartbeat timers (a fixed LCG: the same sequence every run).
    let mut jitter: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..commits {
        let revision = match cluster.api.put(&leader_url, markers.next(), WRITE_DEADLINE).await {
            Ok(revision) => revision,
            Err(error) => {
                applied.errors += 1;
                applied.first_error.get_or_insert_with(|| error.to_string());
                continue;
            }
        };
        let acked = Instant::now();
        let mut polls = JoinSet::new();
        for (i, member) in cluster.members.iter().enumerate() {
            let (api, url) = (cluster.api.clone(), member.url.clone());
            polls.spawn(async move {
                let mut tick = tokio::time::interval(poll_every);
                tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
                while acked.elapsed() < bound {
                    tick.tick().await;
                    if api.revision(&url, READ_DEADLINE).await.is_ok_and(|r| r >= revision) {
                        return (i, Some(acked.elapsed()));
                    }
                }
                (i, None)
            });
        }
        let mut last = Some(Duration::ZERO);
        while let Some(done) = polls.join_next().await {
            let (i, took) = done?;
            match took {
                Some(took) if i == leader => applied.leader.push(took),
                Some(took) => applied.followers.push(took),
                None => {}
            }
            last = match (last, took) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        match last {
            Some(last) => applied.all.push(last),
            None => applied.missed += 1,
        }
        jitter = jitter.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        tokio::time::sleep(Duration::from_millis(5 + (jitter >> 33) % 20)).await;
    }
    Ok(applied)
}
