//! Gray failure: the leader is SIGSTOPped for 5 s (alive, sockets open, answering nothing),
//! then resumed. The others elect a new leader (measured); once resumed, the old leader must
//! step down so that every node agrees on one leader again (measured).

use std::time::{Duration, Instant};

use super::Run;
use crate::error::Result;
use crate::invariants::{bounds, Measured};
use crate::report::Report;
use crate::workload::WorkloadConfig;

const STOPPED_FOR: Duration = Duration::from_secs(5);

pub async fn run(seed: u64) -> Result<Report> {
    let mut run = Run::setup("gray_failure", seed).await?;
    run.start_workload(WorkloadConfig::default());
    run.sleep(Duration::from_secs(4)).await;

    let (leader, term) = run.cluster.leader(Duration::from_secs(5)).await?;
    let others = run.others(leader);
    let stopped_at = Instant::now();
    run.mark_fault();
    run.cluster.pause(leader, " (the leader)")?;
    run.measure_election("the leader's SIGSTOP", &others, term, stopped_at).await;
    run.sleep_until(stopped_at, STOPPED_FOR).await;

    run.cluster.resume(leader)?;
    let resumed_at = Instant::now();
    run.mark_healed();
    // The resumed node still believes it leads the old term until it hears the new one.
    let mut agreed = None;
    while resumed_at.elapsed() < Duration::from_secs(20) {
        let statuses = run.cluster.statuses(&[0, 1, 2]).await;
        let leaders: Vec<Option<u64>> =
            statuses.iter().map(|(_, s)| s.as_ref().and_then(|s| s.cluster.leader)).collect();
        let claimants = statuses.iter().filter(|(_, s)| s.as_ref().is_some_and(|s| s.cluster.role == "leader")).count();
        if claimants == 1 && leaders.iter().all(|l| l.is_some() && *l == leaders[0]) {
            agreed = Some(resumed_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let name = run.node_name(leader);
    run.timeline.observe(match agreed {
        Some(took) => format!("one leader agreed by all three {} ms after {name} resumed", took.as_millis()),
        None => format!("nodes still disagree on the leader 20 s after {name} resumed"),
    });
    run.observations.elections.push(Measured {
        what: format!("time to one agreed leader after {name} resumed"),
        at_ms: run.timeline.ms_at(resumed_at),
        took_ms: agreed.map(|t| t.as_millis() as u64),
        bound_ms: bounds::LEADER_ELECTION_MS,
        result: if agreed.is_some() { "single leader".into() } else { "disagreement".into() },
    });
    run.measure_convergence(&format!("{name} resumed")).await;
    run.sleep(Duration::from_secs(4)).await;
    run.finish().await
}
