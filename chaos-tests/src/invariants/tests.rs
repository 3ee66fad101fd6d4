//! The invariants judge synthetic observations: each must pass a clean run and catch the
//! violation it exists for.

use super::*;
use crate::workload::{ReadRecord, RequestRecord, WriteOutcome};

fn write(marker: &str, revision: Option<u64>) -> WriteRecord {
    WriteRecord {
        t_ms: 0,
        latency_ms: 1,
        writer: "w0".into(),
        node: 0,
        marker: marker.into(),
        outcome: match revision {
            Some(revision) => WriteOutcome::Acked { revision },
            None => WriteOutcome::NoAnswer { reason: "timed out".into() },
        },
    }
}

fn history(revisions: u64) -> Vec<HistoryEntry> {
    (1..=revisions)
        .map(|r| HistoryEntry { revision: r, committed_at_unix_ms: r * 10, rolled_back_from: None, bytes: 100 })
        .collect()
}

fn node(name: &str, markers: &[(u64, &str)]) -> NodeFinal {
    NodeFinal {
        name: name.into(),
        served_revision: markers.last().map(|(r, _)| *r),
        history: Some(history(markers.len() as u64)),
        markers: markers.iter().map(|(r, m)| (*r, Some(m.to_string()))).collect(),
        ..NodeFinal::default()
    }
}

/// Three nodes that agree on revisions 1 (w-1) and 2 (w-2), both acknowledged.
fn clean() -> Observations {
    let markers = [(1, "w-1"), (2, "w-2")];
    let mut observations = Observations {
        nodes: vec![node("n1", &markers), node("n2", &markers), node("n3", &markers)],
        node_names: vec!["n1".into(), "n2".into(), "n3".into()],
        ..Observations::default()
    };
    observations.workload.writes = vec![write("w-1", Some(1)), write("w-2", Some(2)), write("w-3", None)];
    observations
}

fn request(t_ms: u64, ok: bool, node: u8, zone: Option<u8>) -> RequestRecord {
    RequestRecord { t_ms, latency_ms: 1, first_node: node, last_node: node, ok, retried: false, backend_zone: zone }
}

#[test]
fn a_clean_run_passes_every_invariant() {
    let observations = clean();
    for verdict in evaluate(&observations) {
        assert!(verdict.holds, "{verdict:?}");
    }
}

#[test]
fn a_lost_acknowledged_write_is_caught() {
    let mut observations = clean();
    observations.nodes[2].markers.insert(2, Some("w-3".into()));
    let verdict = acked_writes_durable::check(&observations).expect("applies");
    assert!(!verdict.holds && verdict.detail.contains("w-2"), "{verdict:?}");
}

#[test]
fn diverging_histories_and_double_acks_are_caught() {
    let mut observations = clean();
    observations.nodes[1].history = Some(history(3));
    assert!(!revision_order::check(&observations).expect("applies").holds);
    let mut observations = clean();
    observations.workload.writes.push(write("w-9", Some(2)));
    let verdict = revision_order::check(&observations).expect("applies");
    assert!(!verdict.holds && verdict.detail.contains("several writes"), "{verdict:?}");
}

#[test]
fn a_revision_going_back_or_a_wrong_document_is_caught() {
    let mut observations = clean();
    let read = |t_ms, revision, marker: &str| ReadRecord {
        t_ms,
        node: 1,
        generation: 1,
        revision,
        marker: Some(marker.into()),
    };
    observations.workload.reads = vec![read(10, 2, "w-2"), read(20, 1, "w-1")];
    assert!(!served_revisions::check(&observations).expect("applies").holds);
    observations.workload.reads = vec![read(10, 2, "w-1")];
    assert!(!served_revisions::check(&observations).expect("applies").holds);
    // A restart is a new generation: starting lower is allowed.
    observations.workload.reads = vec![read(10, 2, "w-2"), ReadRecord { generation: 2, ..read(20, 1, "w-1") }];
    assert!(served_revisions::check(&observations).expect("applies").holds);
}

#[test]
fn availability_is_judged_in_the_fault_window_only() {
    let mut observations = clean();
    observations.fault_window = Some((1_000, 2_000));
    observations.availability_asserted = true;
    let mut requests: Vec<RequestRecord> = (0..100).map(|k| request(1_000 + k * 10, true, 0, None)).collect();
    requests.push(request(500, false, 0, None));
    observations.workload.requests = requests.clone();
    assert!(availability::check(&observations).expect("applies").holds);
    requests.extend((0..2).map(|k| request(1_500 + k, false, 0, None)));
    observations.workload.requests = requests;
    let verdict = availability::check(&observations).expect("applies");
    assert!(!verdict.holds && verdict.detail.contains("100/102"), "{verdict:?}");
}

#[test]
fn elections_and_convergence_are_held_to_their_bounds() {
    let mut observations = clean();
    let measured = |took_ms| Measured { what: "x".into(), at_ms: 0, took_ms, bound_ms: 5_000, result: String::new() };
    observations.elections = vec![measured(Some(1_200))];
    observations.convergences = vec![measured(Some(4_999))];
    assert!(leader_election::check(&observations).expect("applies").holds);
    assert!(convergence::check(&observations).expect("applies").holds);
    observations.elections.push(measured(None));
    observations.convergences.push(measured(Some(5_001)));
    assert!(!leader_election::check(&observations).expect("applies").holds);
    assert!(!convergence::check(&observations).expect("applies").holds);
}

#[test]
fn a_minority_ack_is_caught() {
    let mut observations = clean();
    let probe = |side: &str, revision| Probe { side: side.into(), node: "n1".into(), write: write("p", revision) };
    observations.probes = vec![probe("minority", None), probe("majority", Some(3))];
    assert!(partition_writes::check(&observations).expect("applies").holds);
    observations.probes.push(probe("minority", Some(4)));
    assert!(!partition_writes::check(&observations).expect("applies").holds);
}

#[test]
fn zone_failover_needs_other_zones_during_and_the_local_zone_after() {
    let mut observations = clean();
    observations.zone_outage = Some(ZoneOutage { zone: "a".into(), node: 0, crashed_at_ms: 0, restored_at_ms: 5_000 });
    let mut requests: Vec<RequestRecord> = (0..40).map(|k| request(1_000 + k * 100, true, 0, Some(b'b'))).collect();
    requests.extend((0..40).map(|k| request(5_000 + k * 100, true, 0, Some(b'a'))));
    observations.workload.requests = requests.clone();
    assert!(zone_failover::check(&observations).expect("applies").holds);
    // Traffic that never comes home fails.
    for r in requests.iter_mut().filter(|r| r.t_ms >= 5_000) {
        r.backend_zone = Some(b'c');
    }
    observations.workload.requests = requests;
    assert!(!zone_failover::check(&observations).expect("applies").holds);
}

#[test]
fn panics_and_leftovers_are_caught() {
    let mut observations = clean();
    observations.nodes[0].panics.push("thread 'main' panicked at src/x.rs".into());
    assert!(!no_panic::check(&observations).expect("applies").holds);
    observations.teardown.leftover_pids.push(4242);
    assert!(!clean_teardown::check(&observations).expect("applies").holds);
}
