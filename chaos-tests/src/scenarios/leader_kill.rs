//! Leader kill: the leader gets SIGKILL under load; the survivors elect a new leader (measured),
//! writes continue through them, and the dead node restarts on its data dir and catches up.

use std::time::{Duration, Instant};

use super::Run;
use crate::error::Result;
use crate::report::Report;
use crate::workload::WorkloadConfig;

pub async fn run(seed: u64) -> Result<Report> {
    let mut run = Run::setup("leader_kill", seed).await?;
    run.start_workload(WorkloadConfig::default());
    run.sleep(Duration::from_secs(4)).await;

    let (leader, term) = run.cluster.leader(Duration::from_secs(5)).await?;
    let survivors = run.others(leader);
    let killed_at = Instant::now();
    run.mark_fault();
    run.cluster.kill9(leader, " (the leader)");
    run.measure_election("the leader's kill -9", &survivors, term, killed_at).await;
    // Writes go on through the survivors while the old leader is dead.
    run.sleep_until(killed_at, Duration::from_secs(6)).await;

    run.cluster.restart(leader).await?;
    run.mark_healed();
    let name = run.node_name(leader);
    run.measure_convergence(&format!("{name} restarted")).await;
    run.sleep(Duration::from_secs(4)).await;
    run.finish().await
}
