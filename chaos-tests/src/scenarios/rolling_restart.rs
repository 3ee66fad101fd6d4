//! Rolling restart under load: each node in turn gets SIGTERM (graceful drain), is restarted on
//! its data dir as soon as it has exited (as a supervisor would) and catches up before the
//! next one goes; when the leader goes, the time to a new leader is measured meanwhile.

use std::time::{Duration, Instant};

use super::Run;
use crate::error::Result;
use crate::report::Report;
use crate::workload::WorkloadConfig;

pub async fn run(seed: u64) -> Result<Report> {
    let mut run = Run::setup("rolling_restart", seed).await?;
    run.start_workload(WorkloadConfig::default());
    run.sleep(Duration::from_secs(4)).await;

    for i in 0..3 {
        let (leader, term) = run.cluster.leader(Duration::from_secs(10)).await?;
        run.mark_fault();
        let stopped_at = Instant::now();
        run.cluster.signal_term(i)?;
        let name = run.node_name(i);
        // The restarted leader may lead again in its old term: any change of leader counts.
        let election = (i == leader).then(|| run.spawn_leader_change_watch(leader, term, stopped_at));
        run.cluster.wait_exit(i, stopped_at, Duration::from_secs(10)).await?;
        run.cluster.restart(i).await?;
        run.mark_healed();
        run.measure_convergence(&format!("{name} restarted")).await;
        if let Some(election) = election {
            let found = election.await.ok().flatten();
            run.record_election(&format!("the leader {name}'s SIGTERM"), stopped_at, found);
        }
        run.sleep(Duration::from_secs(2)).await;
    }
    run.sleep(Duration::from_secs(2)).await;
    run.finish().await
}
