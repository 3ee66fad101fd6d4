//! No acknowledged config write is lost: for every write answered 200 with revision R, every
//! node's own copy of revision R (`GET /v1/config?revision=R`) carries that write's marker.

use super::{Observations, Verdict};

pub const NAME: &str = "acked writes are durable";

/// Most offending writes named in the detail.
const SHOWN_MAX: usize = 5;

pub fn check(observations: &Observations) -> Option<Verdict> {
    let acked = observations.acked();
    if acked.is_empty() || observations.nodes.is_empty() {
        return Some(Verdict::new(NAME, false, "no write was acknowledged: the scenario proved nothing"));
    }
    let mut lost = Vec::new();
    for (write, revision) in &acked {
        for node in &observations.nodes {
            let found = node.markers.get(revision).cloned().flatten();
            if found.as_deref() != Some(write.marker.as_str()) {
                lost.push(format!(
                    "{} (revision {revision}, acked by {} at +{} ms): {} has {}",
                    write.marker,
                    observations.node_name(write.node),
                    write.t_ms,
                    node.name,
                    found.map(|m| format!("marker {m}")).unwrap_or_else(|| "nothing".into())
                ));
            }
        }
    }
    let holds = lost.is_empty();
    let detail = if holds {
        format!(
            "{} acknowledged writes, each found at its revision on all {} nodes",
            acked.len(),
            observations.nodes.len()
        )
    } else {
        format!(
            "{} of {} checks failed: {}",
            lost.len(),
            acked.len() * observations.nodes.len(),
            lost.iter().take(SHOWN_MAX).cloned().collect::<Vec<_>>().join("; ")
        )
    };
    Some(Verdict::new(NAME, holds, detail))
}
