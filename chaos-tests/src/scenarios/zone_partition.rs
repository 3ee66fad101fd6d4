//! Zone cut off: the leader's zone loses the fabric to the other two. Both sides are probed
//! with writes: the cut-off node (no quorum) must acknowledge none, the two others must elect
//! a leader and acknowledge writes. After the heal the cut-off node catches up.

use std::time::{Duration, Instant};

use super::{probe_write, Run};
use crate::error::Result;
use crate::report::Report;
use crate::workload::WorkloadConfig;

/// Kept under the 10 s voter grace: the point is a partition, not a voter replacement.
const PARTITION_HOLD: Duration = Duration::from_secs(8);

pub async fn run(seed: u64) -> Result<Report> {
    let mut run = Run::setup("zone_partition", seed).await?;
    run.start_workload(WorkloadConfig::default());
    run.sleep(Duration::from_secs(4)).await;

    let (leader, term) = run.cluster.leader(Duration::from_secs(5)).await?;
    let majority = run.others(leader);
    let zone = run.cluster.nodes[leader].info.zone.clone();
    let cut_at = Instant::now();
    run.mark_fault();
    let fault = run.cluster.partition(&[leader], &majority)?;
    run.timeline.observe(format!("zone {zone} (the leader {}) is cut off from the other zones", run.node_name(leader)));
    run.measure_election(&format!("zone {zone} was cut off"), &majority, term, cut_at).await;

    // Probe both sides at once: the minority's writes may hang until their deadline.
    let minority_node = run.cluster.nodes[leader].info.clone();
    let majority_nodes: Vec<_> = majority.iter().map(|&i| run.cluster.nodes[i].info.clone()).collect();
    // Two minority probes one second apart, concurrently, so they are over (answered or past
    // their 5 s deadline) well inside the hold.
    let minority_probe = |k: u64| {
        let (cluster, node, timeline) = (&run.cluster, &minority_node, &run.timeline);
        async move {
            tokio::time::sleep(Duration::from_secs(k)).await;
            probe_write(cluster, node, "probe", &format!("minority-{k}"), timeline).await
        }
    };
    let minority_probes = async {
        let (first, second) = tokio::join!(minority_probe(0), minority_probe(1));
        vec![first, second]
    };
    let majority_probes = async {
        let mut writes = Vec::new();
        for (k, node) in majority_nodes.iter().enumerate() {
            writes.push(probe_write(&run.cluster, node, "probe", &format!("majority-{k}"), &run.timeline).await);
        }
        writes
    };
    let (minority_writes, majority_writes) = tokio::join!(minority_probes, majority_probes);
    for write in minority_writes {
        run.record_probe("minority", write);
    }
    for write in majority_writes {
        run.record_probe("majority", write);
    }
    run.sleep_until(cut_at, PARTITION_HOLD).await;

    run.cluster.heal(fault, &format!("the partition of zone {zone}"))?;
    run.mark_healed();
    run.measure_convergence(&format!("zone {zone} rejoined")).await;
    run.sleep(Duration::from_secs(4)).await;
    run.finish().await
}
