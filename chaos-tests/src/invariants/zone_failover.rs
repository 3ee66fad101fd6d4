//! Zone failover: while a zone's backends are down, its node's traffic is served by other
//! zones (and succeeds); once they are back, that node prefers its own zone again within a
//! bound.

use super::{bounds, Observations, Verdict};

pub const NAME: &str = "traffic fails over to other zones and comes back";

/// Width of the window in which the return to the local zone is judged.
const RETURN_WINDOW_MS: u64 = 1_000;
/// Share of local answers in that window that counts as "back".
const RETURN_SHARE: f64 = 0.9;

pub fn check(observations: &Observations) -> Option<Verdict> {
    let outage = observations.zone_outage.as_ref()?;
    let zone = outage.zone.bytes().next();
    let answered_by_node = |r: &&crate::workload::RequestRecord| r.ok && usize::from(r.last_node) == outage.node;
    // Skip the first second of the outage: health checks and ejection need a moment.
    let during: Vec<_> = observations
        .requests_between(outage.crashed_at_ms + 1_000, outage.restored_at_ms)
        .filter(answered_by_node)
        .collect();
    let failed_over = during.iter().filter(|r| r.backend_zone.is_some() && r.backend_zone != zone).count();
    let local_during = during.iter().filter(|r| r.backend_zone == zone).count();
    // First window after the restore in which the node answers mostly from its own zone.
    let last_ms = observations.workload.requests.last().map_or(0, |r| r.t_ms);
    let mut returned_after_ms = None;
    let mut from = outage.restored_at_ms;
    while from + RETURN_WINDOW_MS <= last_ms {
        let window: Vec<_> =
            observations.requests_between(from, from + RETURN_WINDOW_MS).filter(answered_by_node).collect();
        let local = window.iter().filter(|r| r.backend_zone == zone).count();
        if !window.is_empty() && local as f64 >= RETURN_SHARE * window.len() as f64 {
            returned_after_ms = Some(from - outage.restored_at_ms);
            break;
        }
        from += 250;
    }
    let node = observations.node_name(outage.node);
    let holds =
        failed_over > 0 && local_during == 0 && returned_after_ms.is_some_and(|ms| ms <= bounds::ZONE_RETURN_MS);
    let detail = format!(
        "zone {} down: {node} answered {} requests, {failed_over} served by other zones, {local_during} by zone {}; \
         back to zone {} {} after the restore (bound {} ms)",
        outage.zone,
        during.len(),
        outage.zone,
        outage.zone,
        returned_after_ms.map_or("never".to_string(), |ms| format!("{ms} ms")),
        bounds::ZONE_RETURN_MS
    );
    Some(Verdict::new(NAME, holds, detail))
}
