//! The invariants checked after every scenario, one file per property (as openraft's fuzzer
//! does): each reads the scenario's [`Observations`] and returns a [`Verdict`], or nothing when
//! the scenario gives it nothing to judge.

pub mod acked_writes_durable;
pub mod availability;
pub mod clean_teardown;
pub mod convergence;
pub mod leader_election;
pub mod no_panic;
pub mod partition_writes;
pub mod revision_order;
pub mod served_revisions;
pub mod zone_failover;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::client::HistoryEntry;
use crate::cluster::Teardown;
use crate::workload::{RequestRecord, WorkloadLog, WriteRecord};

/// Bounds the measured times are held to (a debug build on a busy 2-core machine).
pub mod bounds {
    /// From a leader's death (or hang) to a new leader with a higher term; a follower stands
    /// after the leader lease plus an election timeout (250 ms + 150–250 ms).
    pub const LEADER_ELECTION_MS: u64 = 5_000;
    /// From a heal (or restart, or join) to every node serving what was committed before it.
    /// Heartbeats go every 50 ms, so a node that can hear the leader catches up in well under
    /// a second; 5 s leaves room for a debug build on a busy machine, not for a node that
    /// cannot be reached.
    pub const CONVERGENCE_MS: u64 = 5_000;
    /// Least share of client requests that must succeed while one node (or link) is failing.
    pub const SUCCESS_RATIO_MIN: f64 = 0.99;
    /// From a crashed zone's backends coming back to that zone's node serving from them again
    /// (outlier ejections must expire first).
    pub const ZONE_RETURN_MS: u64 = 15_000;
}

/// Pass or fail, with the numbers that decided it.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub invariant: &'static str,
    pub holds: bool,
    pub detail: String,
}

impl Verdict {
    pub fn new(invariant: &'static str, holds: bool, detail: impl Into<String>) -> Verdict {
        Verdict { invariant, holds, detail: detail.into() }
    }
}

/// A time measured against a bound: a new leader, a convergence, a step-down.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// What was measured, from what event.
    pub what: String,
    /// When the clock started, since the scenario started.
    pub at_ms: u64,
    /// `None`: it did not happen within the wait.
    pub took_ms: Option<u64>,
    pub bound_ms: u64,
    /// The leader found, the revision reached, …
    pub result: String,
}

impl Measured {
    pub fn within_bound(&self) -> bool {
        self.took_ms.is_some_and(|t| t <= self.bound_ms)
    }
}

/// A write sent on purpose to one side of a partition.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// `minority` must not acknowledge; `majority` must.
    pub side: String,
    pub node: String,
    pub write: WriteRecord,
}

/// The zone whose backends crashed, and when.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneOutage {
    pub zone: String,
    /// The node in that zone (its own traffic must fail over to other zones).
    pub node: usize,
    pub crashed_at_ms: u64,
    pub restored_at_ms: u64,
}

/// What one node holds at the end, read after the final convergence.
#[derive(Debug, Clone, Default)]
pub struct NodeFinal {
    pub name: String,
    pub served_revision: Option<u64>,
    pub history: Option<Vec<HistoryEntry>>,
    /// Revision → the marker of the document this node has for it (`None`: missing or
    /// unreadable).
    pub markers: BTreeMap<u64, Option<String>>,
    pub errors: Vec<String>,
    /// Lines of its log that mention a panic.
    pub panics: Vec<String>,
}

/// Everything a scenario saw, for the invariants to judge.
#[derive(Debug, Default)]
pub struct Observations {
    pub workload: WorkloadLog,
    /// Node names by index.
    pub node_names: Vec<String>,
    pub nodes: Vec<NodeFinal>,
    pub elections: Vec<Measured>,
    pub convergences: Vec<Measured>,
    /// The window (ms since start) in which one node or link was failing, if any.
    pub fault_window: Option<(u64, u64)>,
    /// Whether the success ratio is held to the bound (single-node failures) or only reported.
    pub availability_asserted: bool,
    pub probes: Vec<Probe>,
    pub zone_outage: Option<ZoneOutage>,
    /// Checks particular to one scenario (the joiner is a learner, …).
    pub scenario_checks: Vec<Verdict>,
    pub teardown: Teardown,
    /// The highest Raft term any node reported at the end (1 + the number of elections, at
    /// least): how much leadership churn the faults caused.
    pub final_term: Option<u64>,
}

impl Observations {
    /// Writes the cluster acknowledged, with their revisions.
    pub fn acked(&self) -> Vec<(&WriteRecord, u64)> {
        self.workload.writes.iter().filter_map(|w| w.acked_revision().map(|r| (w, r))).collect()
    }

    pub fn node_name(&self, index: usize) -> String {
        self.node_names.get(index).cloned().unwrap_or_else(|| format!("node#{index}"))
    }

    /// Requests whose start falls in `[from_ms, to_ms)`.
    pub fn requests_between(&self, from_ms: u64, to_ms: u64) -> impl Iterator<Item = &RequestRecord> {
        self.workload.requests.iter().filter(move |r| r.t_ms >= from_ms && r.t_ms < to_ms)
    }
}

/// Runs every invariant that applies.
pub fn evaluate(observations: &Observations) -> Vec<Verdict> {
    let checks: [fn(&Observations) -> Option<Verdict>; 10] = [
        acked_writes_durable::check,
        revision_order::check,
        convergence::check,
        served_revisions::check,
        availability::check,
        leader_election::check,
        partition_writes::check,
        zone_failover::check,
        no_panic::check,
        clean_teardown::check,
    ];
    let mut verdicts: Vec<Verdict> = checks.iter().filter_map(|check| check(observations)).collect();
    verdicts.extend(observations.scenario_checks.iter().cloned());
    verdicts
}

#[cfg(test)]
mod tests;
