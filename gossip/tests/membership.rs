//! Membership over real loopback UDP with the sealed transport: convergence of state, failure
//! detection, restart with a new generation, and a slow node that must not be declared dead.
//! How fast detection is (the 3 s goal) is measured by `benches/benches/gossip_cluster.rs`. Tests here run one at a time: they are about timing, and parallel clusters
//! on two cores would measure each other.

use std::time::{Duration, Instant};

use gantry_gossip::testing as common;
use gantry_gossip::{Gossip, GossipError, GossipEvent, GossipTuning, Liveness, Load, RaftRole, Verdict};
use tokio::sync::{broadcast, Mutex};

static SERIAL: Mutex<()> = Mutex::const_new(());

const FORM_TIMEOUT: Duration = Duration::from_secs(10);

fn drain(rx: &mut broadcast::Receiver<GossipEvent>) -> Vec<GossipEvent> {
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        events.push(event);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_change_converges_to_every_node() {
    let _serial = SERIAL.lock().await;
    let nodes = common::start_cluster(6, &GossipTuning::default()).await;
    let ids: Vec<u64> = (1..=6).collect();
    assert!(common::wait_for(FORM_TIMEOUT, || common::all_see_alive(&nodes, &ids)).await.is_some(), "cluster formed");
    let mut events = nodes[0].subscribe();

    let writer = &nodes[2];
    writer.set_config_revision(42).await;
    writer.set_raft_role(RaftRole::Leader).await;
    writer.set_load(Load { in_flight: 7, request_rate_per_s: 120.0, latency_ms_smoothed: 2.5 }).await;
    writer.set_endpoint_health("reviews", "10.0.1.7:9080", Verdict::Down, 1_000).await.expect("health");
    nodes[4].set_endpoint_health("reviews", "10.0.1.7:9080", Verdict::Up, 2_000).await.expect("health");

    let converged = common::wait_for(Duration::from_secs(5), || {
        nodes.iter().all(|g| {
            let Some(state) = g.member(3).and_then(|m| m.state) else { return false };
            state.config_revision == 42
                && state.raft_role == RaftRole::Leader
                && state.load.in_flight == 7
                && g.endpoint_health("reviews", "10.0.1.7:9080").len() == 2
        })
    })
    .await;
    assert!(converged.is_some(), "state change reached every node");

    // The typed view carries what the node published at start, too.
    let seen = nodes[5].member(3).expect("member 3");
    let state = seen.state.expect("state");
    assert_eq!(state.name, "node-3");
    assert_eq!(state.addresses, common::state_of(3).addresses);
    assert_eq!(seen.liveness, Liveness::Alive);
    let mut reports = nodes[0].endpoint_health("reviews", "10.0.1.7:9080");
    reports.sort_by_key(|r| r.node_id);
    assert_eq!(
        reports.iter().map(|r| (r.node_id, r.verdict, r.checked_at_unix_ms)).collect::<Vec<_>>(),
        vec![(3, Verdict::Down, 1_000), (5, Verdict::Up, 2_000)]
    );
    assert!(drain(&mut events).contains(&GossipEvent::StateChanged { node_id: 3 }));

    // Removing a verdict propagates as well (chitchat tombstone).
    writer.remove_endpoint_health("reviews", "10.0.1.7:9080").await;
    let removed = common::wait_for(Duration::from_secs(5), || {
        nodes.iter().all(|g| g.endpoint_health("reviews", "10.0.1.7:9080").len() == 1)
    })
    .await;
    assert!(removed.is_some(), "removal reached every node");
    common::shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_is_dead_everywhere_and_returns_with_new_generation() {
    let _serial = SERIAL.lock().await;
    let mut nodes = common::start_cluster(5, &GossipTuning::default()).await;
    let ids: Vec<u64> = (1..=5).collect();
    assert!(common::wait_for(FORM_TIMEOUT, || common::all_see_alive(&nodes, &ids)).await.is_some(), "cluster formed");
    // Let every detector collect a few heartbeat intervals.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut events = nodes[0].subscribe();

    let victim = nodes.pop().expect("node 5");
    let (addr, old_generation) = (victim.local_addr(), victim.generation());
    drop(victim); // a crash: no goodbye, tasks aborted
    let killed_at = Instant::now();
    let detected = common::wait_for(Duration::from_secs(10), || {
        nodes.iter().all(|g| common::liveness(g, 5) == Some(Liveness::Dead))
    })
    .await;
    assert!(detected.is_some(), "killed node declared dead by every other node");
    assert!(drain(&mut events).contains(&GossipEvent::NodeDown { node_id: 5 }));

    // Restart on the same address; the aborted tasks release the port shortly.
    let mut config = common::config(5, &ids, &[nodes[0].local_addr()], common::key(7));
    config.listen_addr = addr;
    let restarted = loop {
        match Gossip::start(config.clone()).await {
            Ok(g) => break g,
            Err(GossipError::Bind { .. }) if killed_at.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("restart failed: {err}"),
        }
    };
    let new_generation = restarted.generation();
    assert!(new_generation > old_generation, "generation bumped on restart");
    nodes.push(restarted);
    let back = common::wait_for(FORM_TIMEOUT, || {
        nodes
            .iter()
            .all(|g| g.member(5).is_some_and(|m| m.liveness == Liveness::Alive && m.generation == Some(new_generation)))
    })
    .await;
    assert!(back.is_some(), "restarted node alive everywhere with its new generation");
    assert!(drain(&mut events).contains(&GossipEvent::NodeUp { node_id: 5, generation: new_generation }));
    common::shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_node_is_not_declared_dead() {
    let _serial = SERIAL.lock().await;
    let nodes = common::start_cluster(5, &GossipTuning::default()).await;
    let ids: Vec<u64> = (1..=5).collect();
    assert!(common::wait_for(FORM_TIMEOUT, || common::all_see_alive(&nodes, &ids)).await.is_some(), "cluster formed");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut subscriptions: Vec<_> = nodes.iter().map(Gossip::subscribe).collect();

    nodes[4].pause_for(Duration::from_millis(700));
    // Watch through the pause and well past the detection bound.
    let mut declared_dead_by = Vec::new();
    let _ = common::wait_for(Duration::from_secs(3), || {
        for g in &nodes[..4] {
            if common::liveness(g, 5) == Some(Liveness::Dead) {
                declared_dead_by.push(g.node_id());
            }
        }
        false
    })
    .await;
    assert!(declared_dead_by.is_empty(), "slow node declared dead by {declared_dead_by:?}");
    for (i, rx) in subscriptions.iter_mut().enumerate() {
        let downs: Vec<_> = drain(rx).into_iter().filter(|e| matches!(e, GossipEvent::NodeDown { .. })).collect();
        assert!(downs.is_empty(), "node {} saw {downs:?}", i + 1);
    }
    assert!(common::all_see_alive(&nodes, &ids), "everyone alive after the pause");
    common::shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_frees_the_port_at_once() {
    let _serial = SERIAL.lock().await;
    let nodes = common::start_cluster(1, &GossipTuning::default()).await;
    let addr = nodes[0].local_addr();
    common::shutdown_all(nodes).await;
    let mut config = common::config(1, &[1], &[], common::key(7));
    config.listen_addr = addr;
    let again = Gossip::start(config).await.expect("port free after shutdown");
    again.shutdown().await.expect("shutdown");
}
