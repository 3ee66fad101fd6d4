//! Follower kill and restart: a follower gets SIGKILL under load and comes back on its data dir
//! 2 s later (a supervisor's quick restart); it catches up with what was committed while it was away, and the leader
//! is not disturbed (reported).

use std::time::{Duration, Instant};

use super::Run;
use crate::error::Result;
use crate::report::Report;
use crate::workload::WorkloadConfig;

/// A crashed process restarted by its supervisor is back within seconds.
const DOWN_FOR: Duration = Duration::from_secs(2);

pub async fn run(seed: u64) -> Result<Report> {
    let mut run = Run::setup("follower_restart", seed).await?;
    run.start_workload(WorkloadConfig::default());
    run.sleep(Duration::from_secs(4)).await;

    let (leader, term) = run.cluster.leader(Duration::from_secs(5)).await?;
    let follower = (leader + 1) % 3;
    let killed_at = Instant::now();
    run.mark_fault();
    run.cluster.kill9(follower, " (a follower)");
    run.sleep_until(killed_at, DOWN_FOR).await;

    run.cluster.restart(follower).await?;
    run.mark_healed();
    let name = run.node_name(follower);
    run.measure_convergence(&format!("{name} restarted")).await;
    run.sleep(Duration::from_secs(4)).await;

    let after = run.cluster.leader(Duration::from_secs(5)).await.ok();
    let leader_name = run.node_name(leader);
    run.notes.push(match after {
        Some((i, t)) if i == leader && t == term => format!("leader {leader_name} kept its term {term} throughout"),
        Some((i, t)) => format!(
            "leadership moved from {leader_name} (term {term}) to {} (term {t}): the restarted follower disturbed the leader",
            run.node_name(i)
        ),
        None => "no leader found at the end".to_string(),
    });
    run.finish().await
}
