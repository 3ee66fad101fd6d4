//! A new leader within a bound: after the leader dies, hangs or is cut off, the nodes that can
//! still form a quorum elect one with a higher term within the bound; after a hung leader
//! resumes, the cluster agrees on a single leader again.

use super::{Observations, Verdict};

pub const NAME: &str = "a new leader within the bound";

pub fn check(observations: &Observations) -> Option<Verdict> {
    if observations.elections.is_empty() {
        return None;
    }
    let late: Vec<String> = observations
        .elections
        .iter()
        .filter(|e| !e.within_bound())
        .map(|e| match e.took_ms {
            Some(ms) => format!("{}: {ms} ms > {} ms", e.what, e.bound_ms),
            None => format!("{}: none within the wait", e.what),
        })
        .collect();
    let times: Vec<String> =
        observations.elections.iter().map(|e| e.took_ms.map_or("none".into(), |t| format!("{t} ms"))).collect();
    let holds = late.is_empty();
    let detail = if holds { format!("measured: {}", times.join(", ")) } else { late.join("; ") };
    Some(Verdict::new(NAME, holds, detail))
}
