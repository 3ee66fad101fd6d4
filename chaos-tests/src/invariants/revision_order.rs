//! One revision order everywhere: every node applied the same revisions in the same order. The
//! histories (`GET /v1/config/history`) are identical, revisions run 1, 2, 3… without gaps, the
//! document at each revision is the same on every node, and no revision was acknowledged twice.

use std::collections::BTreeMap;

use super::{Observations, Verdict};

pub const NAME: &str = "same revisions in the same order on every node";

pub fn check(observations: &Observations) -> Option<Verdict> {
    let mut problems = Vec::new();
    let Some(reference) = observations.nodes.first() else {
        return Some(Verdict::new(NAME, false, "no node to read"));
    };
    let Some(reference_history) = reference.history.as_ref() else {
        return Some(Verdict::new(
            NAME,
            false,
            format!("{}: history unreadable: {:?}", reference.name, reference.errors),
        ));
    };
    let revisions: Vec<u64> = reference_history.iter().map(|h| h.revision).collect();
    // The node keeps the last 100 revisions: contiguous from wherever it starts.
    if let Some(&first) = revisions.first() {
        let expected: Vec<u64> = (first..first + revisions.len() as u64).collect();
        if revisions != expected {
            problems.push(format!("{}: revisions not contiguous: {revisions:?}", reference.name));
        }
    }
    for node in &observations.nodes[1..] {
        match &node.history {
            None => problems.push(format!("{}: history unreadable: {:?}", node.name, node.errors)),
            Some(history) if history != reference_history => {
                let diverge = history.iter().zip(reference_history).position(|(a, b)| a != b);
                problems.push(format!(
                    "{} has {} revisions, {} has {}; first difference at index {:?}",
                    node.name,
                    history.len(),
                    reference.name,
                    reference_history.len(),
                    diverge
                ));
            }
            Some(_) => {}
        }
        if node.markers != reference.markers {
            let differing: Vec<u64> = node
                .markers
                .iter()
                .filter(|(r, m)| reference.markers.get(r) != Some(m))
                .map(|(r, _)| *r)
                .take(5)
                .collect();
            problems.push(format!(
                "{} and {} hold different documents at revisions {differing:?}",
                node.name, reference.name
            ));
        }
    }
    let mut acked_at: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for (write, revision) in observations.acked() {
        acked_at.entry(revision).or_default().push(write.marker.as_str());
    }
    for (revision, markers) in acked_at.iter().filter(|(_, m)| m.len() > 1) {
        problems.push(format!("revision {revision} acknowledged to several writes: {markers:?}"));
    }
    let holds = problems.is_empty();
    let detail = if holds {
        format!(
            "{} nodes hold identical histories of {} revisions ({}..={})",
            observations.nodes.len(),
            revisions.len(),
            revisions.first().copied().unwrap_or(0),
            revisions.last().copied().unwrap_or(0)
        )
    } else {
        problems.join("; ")
    };
    Some(Verdict::new(NAME, holds, detail))
}
