//! Backend crash in one zone: both backends of zone a crash under load. Zone a's node must send
//! its traffic to zones b and c (clients keep succeeding), then prefer zone a again once its
//! backends are back.

use std::time::Duration;

use super::Run;
use crate::error::Result;
use crate::invariants::ZoneOutage;
use crate::report::Report;
use crate::workload::WorkloadConfig;

const ZONE: &str = "a";
const OUTAGE: Duration = Duration::from_secs(8);

pub async fn run(seed: u64) -> Result<Report> {
    let mut run = Run::setup("backend_failover", seed).await?;
    run.start_workload(WorkloadConfig::default());
    run.sleep(Duration::from_secs(4)).await;

    let node = run.cluster.nodes.iter().position(|n| n.info.zone == ZONE).unwrap_or(0);
    let crashed: Vec<usize> = run.cluster.backends_in(ZONE);
    run.mark_fault();
    for &b in &crashed {
        run.cluster.backends[b].crash();
    }
    let names: Vec<String> = crashed.iter().map(|&b| run.cluster.backends[b].name.clone()).collect();
    let crashed_at_ms = run.timeline.fault(format!("crashed backends {} (all of zone {ZONE})", names.join(", ")));
    run.sleep(OUTAGE).await;

    for &b in &crashed {
        run.cluster.backends[b].restart().await?;
    }
    let restored_at_ms = run.timeline.heal(format!("backends {} back on their addresses", names.join(", ")));
    run.mark_healed();
    run.observations.zone_outage = Some(ZoneOutage { zone: ZONE.into(), node, crashed_at_ms, restored_at_ms });
    // Long enough for outlier ejections (1 s x count) to expire and traffic to come home.
    run.sleep(Duration::from_secs(8)).await;
    run.finish().await
}
