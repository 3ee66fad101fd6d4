//! One-way partition: a follower stops hearing the leader (the leader's packets to it vanish)
//! while its own packets still reach the leader. Leadership changes are recorded; writes must
//! still commit during the fault, and everything converges after the heal.

use std::time::{Duration, Instant};

use super::Run;
use crate::error::Result;
use crate::report::Report;
use crate::workload::WorkloadConfig;

const HOLD: Duration = Duration::from_secs(8);

pub async fn run(seed: u64) -> Result<Report> {
    let mut run = Run::setup("one_way_partition", seed).await?;
    run.start_workload(WorkloadConfig::default());
    run.sleep(Duration::from_secs(4)).await;

    let (leader, _) = run.cluster.leader(Duration::from_secs(5)).await?;
    let follower = (leader + 1) % 3;
    let cut_at = Instant::now();
    run.mark_fault();
    let fault = run.cluster.one_way(leader, follower)?;
    run.sleep(Duration::from_secs(2)).await;
    // A write must still commit: some leader can reach a quorum in at least one direction pair.
    let all: Vec<usize> = (0..3).collect();
    let acked = run.write_until_acked(&all, "probe", "one-way", Duration::from_secs(10)).await;
    run.check(
        "writes commit during a one-way partition",
        acked.is_ok(),
        match &acked {
            Ok(revision) => format!("acknowledged as revision {revision}"),
            Err(error) => error.to_string(),
        },
    );
    let remaining = HOLD.saturating_sub(cut_at.elapsed());
    let changes = run.watch_leadership(remaining).await;
    run.notes
        .push(format!("{changes} leadership changes observed while the one-way partition held (polled every 250 ms)"));

    let what = format!("the one-way partition {} -> {}", run.node_name(leader), run.node_name(follower));
    run.cluster.heal(fault, &what)?;
    run.mark_healed();
    run.measure_convergence(&what).await;
    run.sleep(Duration::from_secs(4)).await;
    run.finish().await
}
