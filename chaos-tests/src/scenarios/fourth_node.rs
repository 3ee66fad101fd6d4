//! A fourth node joins under load: it joins zone a with a fresh join token, becomes a learner
//! (three healthy voters stay the voters), catches up with every revision and takes traffic.

use std::time::{Duration, Instant};

use super::Run;
use crate::error::Result;
use crate::invariants::{bounds, Measured};
use crate::report::Report;
use crate::workload::WorkloadConfig;

pub async fn run(seed: u64) -> Result<Report> {
    let mut run = Run::setup("fourth_node", seed).await?;
    run.start_workload(WorkloadConfig::default());
    run.sleep(Duration::from_secs(4)).await;

    // Joining is not a failure, but clients must not notice it: judge the same window.
    run.mark_fault();
    let join_started = Instant::now();
    let joiner = run.cluster.add_node("a", 1).await?;
    let name = run.node_name(joiner);
    let target = run.cluster.committed_revision(&[0, 1, 2]).await;
    let caught_up = run.cluster.wait_serving(&[joiner], target, join_started, Duration::from_secs(20)).await;
    run.observations.convergences.push(Measured {
        what: format!("time for {name} to join and serve the latest revision"),
        at_ms: run.timeline.ms_at(join_started),
        took_ms: caught_up.map(|t| t.as_millis() as u64),
        bound_ms: bounds::CONVERGENCE_MS,
        result: format!("revision >= {target}"),
    });
    run.mark_healed();

    run.sleep(Duration::from_secs(3)).await;
    let joiner_id = run.cluster.nodes[joiner].id;
    let (leader, _) = run.cluster.leader(Duration::from_secs(5)).await?;
    let status = run.cluster.statuses(&[leader]).await.into_iter().next().and_then(|(_, s)| s);
    let (voters, learners) = status.map(|s| (s.cluster.voters, s.cluster.learners)).unwrap_or_default();
    let is_learner = joiner_id.is_some_and(|id| learners.contains(&id) && !voters.contains(&id));
    run.check(
        "the fourth node joins as a learner while three voters are healthy",
        is_learner && voters.len() == 3,
        format!("{name} id {joiner_id:?}; voters {voters:?}, learners {learners:?}"),
    );
    // The joiner takes a share of the clients' traffic for a while.
    run.sleep(Duration::from_secs(6)).await;
    run.finish().await
}
