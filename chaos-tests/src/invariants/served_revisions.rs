//! What a node serves is what was committed, and never goes back: within one process, the
//! revision a node serves only grows, and the document it serves at revision R carries the
//! marker that revision R has in the committed history.

use std::collections::BTreeMap;

use super::{Observations, Verdict};

pub const NAME: &str = "served revisions are committed and monotonic";

pub fn check(observations: &Observations) -> Option<Verdict> {
    let reads = &observations.workload.reads;
    if reads.is_empty() {
        return None;
    }
    // The committed document of each revision, as the first node with it holds it.
    let mut committed: BTreeMap<u64, Option<String>> = BTreeMap::new();
    for node in &observations.nodes {
        for (revision, marker) in &node.markers {
            committed.entry(*revision).or_insert_with(|| marker.clone());
        }
    }
    let mut problems = Vec::new();
    let mut last: BTreeMap<(usize, u64), (u64, u64)> = BTreeMap::new();
    for read in reads {
        if let Some(&(revision, t_ms)) = last.get(&(read.node, read.generation)) {
            if read.revision < revision {
                problems.push(format!(
                    "{} went back from revision {revision} (+{t_ms} ms) to {} (+{} ms)",
                    observations.node_name(read.node),
                    read.revision,
                    read.t_ms
                ));
            }
        }
        last.insert((read.node, read.generation), (read.revision, read.t_ms));
        if read.revision > 0 {
            if let Some(Some(expected)) = committed.get(&read.revision) {
                if read.marker.as_deref() != Some(expected.as_str()) {
                    problems.push(format!(
                        "{} served revision {} with marker {:?}, committed marker is {expected}",
                        observations.node_name(read.node),
                        read.revision,
                        read.marker
                    ));
                }
            }
        }
    }
    let holds = problems.is_empty();
    let detail = if holds {
        format!("{} reads, no revision went back, every served document matched its revision", reads.len())
    } else {
        problems.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
    };
    Some(Verdict::new(NAME, holds, detail))
}
