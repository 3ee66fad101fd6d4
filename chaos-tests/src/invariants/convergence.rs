//! Convergence after heal: once a fault heals, a write committed after the heal is served by
//! every node within a bound (and at the end, once writes stop, all nodes serve the same last
//! revision). Each wait is measured and reported.

use super::{Observations, Verdict};

pub const NAME: &str = "every node converges after heal";

pub fn check(observations: &Observations) -> Option<Verdict> {
    if observations.convergences.is_empty() {
        return None;
    }
    let late: Vec<String> = observations
        .convergences
        .iter()
        .filter(|c| !c.within_bound())
        .map(|c| match c.took_ms {
            Some(ms) => format!("{}: {ms} ms > {} ms", c.what, c.bound_ms),
            None => format!("{}: never within the wait ({})", c.what, c.result),
        })
        .collect();
    let slowest = observations.convergences.iter().filter_map(|c| c.took_ms).max().unwrap_or(0);
    let holds = late.is_empty();
    let detail = if holds {
        format!("{} measured, slowest {slowest} ms", observations.convergences.len())
    } else {
        late.join("; ")
    };
    Some(Verdict::new(NAME, holds, detail))
}
