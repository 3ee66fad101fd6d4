//! Both sides of a partition: the side without a quorum acknowledges no write (it may answer
//! 503 or not answer in time), and the side with a quorum acknowledges writes.

use super::{Observations, Verdict};

pub const NAME: &str = "minority refuses writes, majority accepts them";

pub fn check(observations: &Observations) -> Option<Verdict> {
    if observations.probes.is_empty() {
        return None;
    }
    let minority: Vec<_> = observations.probes.iter().filter(|p| p.side == "minority").collect();
    let majority: Vec<_> = observations.probes.iter().filter(|p| p.side == "majority").collect();
    let minority_acked: Vec<String> = minority
        .iter()
        .filter_map(|p| {
            p.write.acked_revision().map(|r| format!("{} acked revision {r} on {}", p.write.marker, p.node))
        })
        .collect();
    let majority_acked = majority.iter().filter(|p| p.write.acked_revision().is_some()).count();
    let holds = !minority.is_empty() && minority_acked.is_empty() && majority_acked > 0;
    let describe = |p: &&super::Probe| format!("{}: {:?}", p.node, p.write.outcome);
    let detail = format!(
        "minority: {} probes, {} acked [{}]; majority: {} probes, {} acked [{}]",
        minority.len(),
        minority_acked.len(),
        minority.iter().map(describe).collect::<Vec<_>>().join("; "),
        majority.len(),
        majority_acked,
        majority.iter().map(describe).collect::<Vec<_>>().join("; "),
    );
    Some(Verdict::new(NAME, holds, detail))
}
