//! A scenario's report: JSON for machines and a markdown page for people (summary, invariants,
//! fault timeline, success ratio per second), written to `target/chaos/<scenario>.{json,md}`.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::cluster::Teardown;
use crate::invariants::availability::ratio_between;
use crate::invariants::{Measured, Observations, Probe, Verdict};
use crate::timeline::Event;
use crate::workload::WriteOutcome;

#[derive(Debug, Clone, Serialize)]
pub struct Second {
    pub t_s: u64,
    pub ok: usize,
    pub failed: usize,
    pub retried: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub nodes: usize,
    pub requests: usize,
    pub requests_ok: usize,
    pub requests_retried: usize,
    pub success_ratio: f64,
    /// Success ratio of requests started inside the fault window.
    pub success_ratio_fault_window: Option<f64>,
    pub fault_window_ms: Option<(u64, u64)>,
    pub writes_attempted: usize,
    pub writes_acked: usize,
    /// Acknowledged writes found at their revision on every node.
    pub writes_acked_found: usize,
    pub writes_refused: usize,
    pub writes_unanswered: usize,
    /// Writes not acknowledged whose marker is in the committed history all the same.
    pub writes_unacked_but_committed: usize,
    /// Their markers (at most 20).
    pub unacked_but_committed_markers: Vec<String>,
    pub final_revision: Option<u64>,
    pub final_term: Option<u64>,
    pub reads: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub replay: String,
    pub started_unix_ms: u64,
    pub duration_ms: u64,
    pub passed: bool,
    pub summary: Summary,
    pub invariants: Vec<Verdict>,
    pub elections: Vec<Measured>,
    pub convergences: Vec<Measured>,
    pub probes: Vec<Probe>,
    pub timeline: Vec<Event>,
    pub per_second: Vec<Second>,
    pub notes: Vec<String>,
    pub teardown: Teardown,
    pub logs: Vec<PathBuf>,
}

fn per_second(observations: &Observations) -> Vec<Second> {
    let last = observations.workload.requests.iter().map(|r| r.t_ms / 1000).max();
    let Some(last) = last else { return Vec::new() };
    let mut seconds: Vec<Second> = (0..=last).map(|t_s| Second { t_s, ok: 0, failed: 0, retried: 0 }).collect();
    for request in &observations.workload.requests {
        let second = &mut seconds[(request.t_ms / 1000) as usize];
        if request.ok {
            second.ok += 1;
        } else {
            second.failed += 1;
        }
        second.retried += usize::from(request.retried);
    }
    // Seconds before the workload started carry nothing.
    seconds.retain(|s| s.ok + s.failed > 0);
    seconds
}

fn summary(observations: &Observations) -> Summary {
    let requests = &observations.workload.requests;
    let ok = requests.iter().filter(|r| r.ok).count();
    let writes = &observations.workload.writes;
    let acked = observations.acked();
    let found = acked
        .iter()
        .filter(|(w, r)| {
            !observations.nodes.is_empty()
                && observations.nodes.iter().all(|n| n.markers.get(r).cloned().flatten().as_deref() == Some(&w.marker))
        })
        .count();
    let committed_markers: std::collections::BTreeSet<&str> = observations
        .nodes
        .first()
        .map(|n| n.markers.values().filter_map(|m| m.as_deref()).collect())
        .unwrap_or_default();
    let unacked_committed: Vec<String> = writes
        .iter()
        .filter(|w| w.acked_revision().is_none() && committed_markers.contains(w.marker.as_str()))
        .map(|w| format!("{} (sent to {} at +{} ms)", w.marker, observations.node_name(w.node), w.t_ms))
        .collect();
    let window = observations.fault_window.map(|(from, to)| ratio_between(observations, from, to));
    Summary {
        nodes: observations.nodes.len(),
        requests: requests.len(),
        requests_ok: ok,
        requests_retried: requests.iter().filter(|r| r.retried).count(),
        success_ratio: if requests.is_empty() { 0.0 } else { ok as f64 / requests.len() as f64 },
        success_ratio_fault_window: window.filter(|(_, total)| *total > 0).map(|(ok, total)| ok as f64 / total as f64),
        fault_window_ms: observations.fault_window,
        writes_attempted: writes.len(),
        writes_acked: acked.len(),
        writes_acked_found: found,
        writes_refused: writes.iter().filter(|w| matches!(w.outcome, WriteOutcome::Refused { .. })).count(),
        writes_unanswered: writes.iter().filter(|w| matches!(w.outcome, WriteOutcome::NoAnswer { .. })).count(),
        writes_unacked_but_committed: unacked_committed.len(),
        unacked_but_committed_markers: unacked_committed.into_iter().take(20).collect(),
        final_revision: observations.nodes.iter().filter_map(|n| n.served_revision).max(),
        final_term: observations.final_term,
        reads: observations.workload.reads.len(),
    }
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        scenario: &str,
        seed: u64,
        started_unix_ms: u64,
        duration_ms: u64,
        observations: &Observations,
        verdicts: Vec<Verdict>,
        timeline: Vec<Event>,
        notes: Vec<String>,
        logs: Vec<PathBuf>,
    ) -> Report {
        Report {
            scenario: scenario.to_string(),
            seed,
            replay: format!("CHAOS_SEED={seed} cargo run -p chaos-tests --bin chaos -- {scenario}"),
            started_unix_ms,
            duration_ms,
            passed: verdicts.iter().all(|v| v.holds),
            summary: summary(observations),
            invariants: verdicts,
            elections: observations.elections.clone(),
            convergences: observations.convergences.clone(),
            probes: observations.probes.clone(),
            timeline,
            per_second: per_second(observations),
            notes,
            teardown: observations.teardown.clone(),
            logs,
        }
    }

    /// The failed invariants, one line each.
    pub fn failures(&self) -> Vec<String> {
        self.invariants.iter().filter(|v| !v.holds).map(|v| format!("{}: {}", v.invariant, v.detail)).collect()
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let s = &self.summary;
        let pct = |r: f64| format!("{:.2} %", r * 100.0);
        let ms = |m: &Measured| m.took_ms.map_or("none".to_string(), |t| format!("{t} ms"));
        let _ = writeln!(md, "## chaos scenario `{}`: {}\n", self.scenario, if self.passed { "PASS" } else { "FAIL" });
        let _ =
            writeln!(md, "seed {} (replay: `{}`), {:.1} s\n", self.seed, self.replay, self.duration_ms as f64 / 1000.0);
        let _ = writeln!(md, "| metric | value |\n|---|---|");
        let _ = writeln!(md, "| nodes | {} |", s.nodes);
        let _ = writeln!(
            md,
            "| client requests ok / total | {} / {} ({}), {} retried on another node |",
            s.requests_ok,
            s.requests,
            pct(s.success_ratio),
            s.requests_retried
        );
        if let (Some(ratio), Some((from, to))) = (s.success_ratio_fault_window, s.fault_window_ms) {
            let _ = writeln!(
                md,
                "| success ratio in fault window (+{:.1}s..+{:.1}s) | {} |",
                from as f64 / 1000.0,
                to as f64 / 1000.0,
                pct(ratio)
            );
        }
        for election in &self.elections {
            let _ = writeln!(
                md,
                "| {} | {} (bound {} ms; {}) |",
                election.what,
                ms(election),
                election.bound_ms,
                election.result
            );
        }
        for convergence in &self.convergences {
            let _ = writeln!(
                md,
                "| {} | {} (bound {} ms; {}) |",
                convergence.what,
                ms(convergence),
                convergence.bound_ms,
                convergence.result
            );
        }
        let _ = writeln!(
            md,
            "| config writes acked / found on every node | {} / {} (of {} attempted; {} refused, {} unanswered, {} unacked but committed) |",
            s.writes_acked, s.writes_acked_found, s.writes_attempted, s.writes_refused, s.writes_unanswered, s.writes_unacked_but_committed
        );
        if !s.unacked_but_committed_markers.is_empty() {
            let _ = writeln!(md, "| unacked but committed | {} |", s.unacked_but_committed_markers.join(", "));
        }
        let _ = writeln!(md, "| final revision | {} |", s.final_revision.map_or("?".into(), |r| r.to_string()));
        let _ = writeln!(
            md,
            "| final Raft term (leadership churn) | {} |",
            s.final_term.map_or("?".into(), |t| t.to_string())
        );
        let _ = writeln!(md, "| revision reads | {} |", s.reads);
        let _ = writeln!(md, "\n### Invariants\n\n| invariant | verdict | detail |\n|---|---|---|");
        for verdict in &self.invariants {
            let detail = verdict.detail.replace('|', "\\|").replace('\n', "<br>");
            let _ = writeln!(
                md,
                "| {} | {} | {detail} |",
                verdict.invariant,
                if verdict.holds { "ok" } else { "**FAIL**" }
            );
        }
        if !self.probes.is_empty() {
            let _ = writeln!(
                md,
                "\n### Partition probes\n\n| side | node | t | outcome | latency |\n|---|---|---|---|---|"
            );
            for probe in &self.probes {
                let _ = writeln!(
                    md,
                    "| {} | {} | +{:.1}s | {:?} | {} ms |",
                    probe.side,
                    probe.node,
                    probe.write.t_ms as f64 / 1000.0,
                    probe.write.outcome,
                    probe.write.latency_ms
                );
            }
        }
        let _ = writeln!(md, "\n### Fault timeline\n\n| t | kind | event |\n|---|---|---|");
        for event in &self.timeline {
            let kind = format!("{:?}", event.kind).to_lowercase();
            let _ =
                writeln!(md, "| +{:.2}s | {kind} | {} |", event.t_ms as f64 / 1000.0, event.what.replace('|', "\\|"));
        }
        let _ = writeln!(
            md,
            "\n### Client success per second\n\n| second | ok | failed | ratio | retried |\n|---|---|---|---|---|"
        );
        for second in &self.per_second {
            let total = second.ok + second.failed;
            let ratio = if total == 0 { 0.0 } else { second.ok as f64 / total as f64 };
            let mark = if second.failed > 0 { " ←" } else { "" };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {}{mark} | {} |",
                second.t_s,
                second.ok,
                second.failed,
                pct(ratio),
                second.retried
            );
        }
        if !self.notes.is_empty() {
            let _ = writeln!(md, "\n### Notes\n");
            for note in &self.notes {
                let _ = writeln!(md, "- {note}");
            }
        }
        if !self.logs.is_empty() {
            let _ = writeln!(
                md,
                "\nNode logs: {}",
                self.logs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            );
        }
        md
    }

    /// Writes `<dir>/<scenario>.json` and `.md`; returns their paths.
    pub fn write(&self, dir: &std::path::Path) -> std::io::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let json_path = dir.join(format!("{}.json", self.scenario));
        let md_path = dir.join(format!("{}.md", self.scenario));
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&json_path, json)?;
        std::fs::write(&md_path, self.markdown())?;
        Ok((json_path, md_path))
    }
}
