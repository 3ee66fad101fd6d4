//! No node panicked: no line of any node's log (every process it ran) mentions "panicked".

use super::{Observations, Verdict};

pub const NAME: &str = "no node panicked";

pub fn check(observations: &Observations) -> Option<Verdict> {
    let panics: Vec<String> = observations
        .nodes
        .iter()
        .flat_map(|n| n.panics.iter().map(move |line| format!("{}: {line}", n.name)))
        .collect();
    let holds = panics.is_empty();
    let detail = if holds {
        format!("{} node logs clean", observations.nodes.len())
    } else {
        panics.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    };
    Some(Verdict::new(NAME, holds, detail))
}
