//! Client success while one node (or link) fails: of the requests started in the fault window,
//! at least 99 % succeed (a client may retry once on another node). The exact figure is always
//! reported; scenarios whose faults go beyond one node only report it.

use super::{bounds, Observations, Verdict};

pub const NAME: &str = "client success ratio during the fault";

/// (succeeded, total) of requests started in `[from, to)`.
pub fn ratio_between(observations: &Observations, from_ms: u64, to_ms: u64) -> (usize, usize) {
    let mut ok = 0;
    let mut total = 0;
    for request in observations.requests_between(from_ms, to_ms) {
        total += 1;
        ok += usize::from(request.ok);
    }
    (ok, total)
}

pub fn check(observations: &Observations) -> Option<Verdict> {
    let (from, to) = observations.fault_window?;
    let (ok, total) = ratio_between(observations, from, to);
    if total == 0 {
        return Some(Verdict::new(NAME, false, format!("no request in the fault window {from}..{to} ms")));
    }
    let ratio = ok as f64 / total as f64;
    let detail = format!(
        "{ok}/{total} = {:.2} % in the fault window +{:.1}s..+{:.1}s (bound {:.0} %{})",
        ratio * 100.0,
        from as f64 / 1000.0,
        to as f64 / 1000.0,
        bounds::SUCCESS_RATIO_MIN * 100.0,
        if observations.availability_asserted { "" } else { ", reported only" }
    );
    let holds = !observations.availability_asserted || ratio >= bounds::SUCCESS_RATIO_MIN;
    Some(Verdict::new(NAME, holds, detail))
}
