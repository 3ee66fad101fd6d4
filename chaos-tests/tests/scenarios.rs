//! The chaos suite: one test per scenario, run one at a time (they share two cores and the
//! firewall). Each test fails when any invariant fails; its report is printed and written to
//! `target/chaos/`. Needs root and nftables; `CHAOS_SKIP=1` skips on purpose, `CHAOS_SEED=N`
//! replays a seed.

use std::sync::{Mutex, PoisonError};

/// Scenarios share CPU, loopback addresses and nftables: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn scenario(name: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    if chaos_tests::env::skip_requested() {
        println!("chaos scenario {name} skipped: CHAOS_SKIP is set");
        return;
    }
    if let Err(error) = chaos_tests::env::preflight() {
        panic!("{error}");
    }
    let seed = chaos_tests::seed_from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the scenario");
    let report = match runtime.block_on(chaos_tests::run(name, seed)) {
        Ok(report) => report,
        Err(error) => panic!("scenario {name} (seed {seed}) could not run: {error}"),
    };
    assert!(
        report.passed,
        "scenario {name} (seed {seed}, replay with CHAOS_SEED={seed}) broke invariants:\n{}",
        report.failures().join("\n")
    );
}

#[test]
fn leader_kill() {
    scenario("leader_kill");
}

#[test]
fn follower_restart() {
    scenario("follower_restart");
}

#[test]
fn zone_partition() {
    scenario("zone_partition");
}

#[test]
fn one_way_partition() {
    scenario("one_way_partition");
}

#[test]
fn gray_failure() {
    scenario("gray_failure");
}

#[test]
fn rolling_restart() {
    scenario("rolling_restart");
}

#[test]
fn backend_failover() {
    scenario("backend_failover");
}

#[test]
fn fourth_node() {
    scenario("fourth_node");
}

#[test]
fn nemesis() {
    scenario("nemesis");
}

/// A scenario that panics mid-fault (a node stopped, a partition and packet loss installed)
/// still leaves no process and no nftables table behind: the `Drop` guards clean up.
#[test]
fn a_panicking_scenario_leaves_nothing_behind() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    if chaos_tests::env::skip_requested() {
        return;
    }
    if let Err(error) = chaos_tests::env::preflight() {
        panic!("{error}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the scenario");
    let timeline = std::sync::Arc::new(chaos_tests::timeline::Timeline::new("panic_cleanup"));
    let (table, pids) = runtime.block_on(async {
        let cluster = chaos_tests::cluster::Cluster::start(timeline).await.expect("a cluster");
        let table = cluster.firewall.table().to_string();
        let pids: Vec<u32> = cluster.nodes.iter().flat_map(|n| n.started_pids().to_vec()).collect();
        let outcome = tokio::spawn(async move {
            let mut cluster = cluster;
            cluster.partition(&[0], &[1, 2]).expect("partition");
            cluster.loss(20).expect("loss");
            cluster.pause(2, "").expect("SIGSTOP");
            panic!("injected panic with faults active");
        })
        .await;
        assert!(outcome.is_err_and(|e| e.is_panic()), "the scenario task panicked");
        (table, pids)
    });
    assert!(!chaos_tests::nft::table_exists(&table).expect("nft list tables"), "table {table} was left behind");
    for pid in pids {
        assert!(!chaos_tests::node::pid_alive(pid), "node pid {pid} survived the panic");
    }
}

/// Every scenario the library knows has a test above.
#[test]
fn every_scenario_has_a_test() {
    let source = include_str!("scenarios.rs");
    for name in chaos_tests::SCENARIOS {
        assert!(source.contains(&format!("fn {name}()")), "no test for scenario {name}");
    }
}
