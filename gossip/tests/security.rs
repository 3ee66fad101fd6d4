//! The sealed transport's guarantees, over real loopback UDP: without the cluster key nothing
//! gets in or out, non-members are ignored, bad datagrams are dropped and counted by reason,
//! local processes cannot inject plaintext through the loopback plumbing, and keys rotate
//! without a partition.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chitchat::transport::{Socket, UdpSocket as ChitchatUdpSocket};
use chitchat::{ChitchatEnvelope, ChitchatMessage, ProtocolVersion};
use gantry_gossip::testing as common;
use gantry_gossip::wire::{self, DropReason};
use gantry_gossip::{Gossip, GossipCounters, KeyRing, Liveness, NodeId};
use ring::rand::SystemRandom;
use tokio::net::UdpSocket;

const FORM_TIMEOUT: Duration = Duration::from_secs(10);
/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_secs(3);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as u64
}

async fn start_all(ids: &[NodeId], members: &[NodeId]) -> Vec<Gossip> {
    let mut nodes: Vec<Gossip> = Vec::new();
    for &id in ids {
        let seeds: Vec<SocketAddr> = nodes.first().map(Gossip::local_addr).into_iter().collect();
        nodes.push(common::start_node(id, members, &seeds, common::key(7)).await);
    }
    nodes
}

fn delta(after: &GossipCounters, before: &GossipCounters, reason: DropReason) -> u64 {
    after.dropped(reason) - before.dropped(reason)
}

/// A state change on `writer` reaches every node: the cluster still works.
async fn still_converges(nodes: &[Gossip], writer: usize, revision: u64) {
    nodes[writer].set_config_revision(revision).await;
    let id = nodes[writer].node_id();
    let converged = common::wait_for(FORM_TIMEOUT, || {
        nodes.iter().all(|g| g.member(id).and_then(|m| m.state).is_some_and(|s| s.config_revision == revision))
    })
    .await;
    assert!(converged.is_some(), "revision {revision} from node {id} reached every node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_cannot_join_nor_change_views() {
    let members = [1, 2, 3, 9];
    let nodes = start_all(&[1, 2, 3], &members).await;
    assert!(common::wait_for(FORM_TIMEOUT, || common::all_see_alive(&nodes, &[1, 2, 3])).await.is_some());
    let before = nodes[0].counters();

    // An outsider with the wrong key, using an id the members would accept…
    let intruder = common::start_node(9, &members, &[nodes[0].local_addr()], common::key(8)).await;
    // …and one impersonating member 2 with a state of its own.
    let mut impostor_config = common::config(2, &members, &[nodes[0].local_addr()], common::key(8));
    impostor_config.initial_state.name = "evil".into();
    let impostor = Gossip::start(impostor_config).await.expect("impostor");

    let unchanged = common::holds_for(QUIET, || {
        nodes.iter().all(|g| {
            g.member(9).is_some_and(|m| m.state.is_none() && m.liveness == Liveness::Dead)
                && g.member(2).and_then(|m| m.state).is_some_and(|s| s.name == "node-2")
        })
    })
    .await;
    assert!(unchanged, "no member learned anything from the wrong-key nodes");
    assert!(delta(&nodes[0].counters(), &before, DropReason::UnknownKey) > 0, "their datagrams were counted");
    // Nor did they learn anything from the cluster.
    for outsider in [&intruder, &impostor] {
        let heard: Vec<_> = outsider.members().into_iter().filter(|m| !m.is_self && m.state.is_some()).collect();
        assert!(heard.is_empty(), "outsider heard {heard:?}");
    }
    intruder.shutdown().await.expect("shutdown");
    impostor.shutdown().await.expect("shutdown");
    common::shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_member_is_ignored_until_admitted() {
    let members = [1, 2, 3];
    let mut nodes = Vec::new();
    nodes.push(common::start_node(1, &members, &[], common::key(7)).await);
    let seed = [nodes[0].local_addr()];
    // Node 2 already counts 4 as a member (its Raft log is ahead): it accepts 4's gossip and
    // relays 4's state to the others, whose views must still leave 4 out.
    nodes.push(common::start_node(2, &[1, 2, 3, 4], &seed, common::key(7)).await);
    nodes.push(common::start_node(3, &members, &seed, common::key(7)).await);
    assert!(common::wait_for(FORM_TIMEOUT, || common::all_see_alive(&nodes, &[1, 2, 3])).await.is_some());
    let before = nodes[0].counters();
    let outsider = common::start_node(4, &[1, 2, 3, 4], &[nodes[1].local_addr()], common::key(7)).await;

    assert!(
        common::wait_for(FORM_TIMEOUT, || common::is_alive(&nodes[1], 4)).await.is_some(),
        "node 2 (which counts it as a member) sees node 4"
    );
    let ignored = common::holds_for(QUIET, || nodes[0].member(4).is_none() && nodes[2].member(4).is_none()).await;
    assert!(ignored, "non-member 4 stays out of the views of nodes 1 and 3");
    assert!(delta(&nodes[0].counters(), &before, DropReason::UnknownSender) > 0, "its datagrams were counted");

    // Raft admits node 4: the node updates the member set at run time.
    for node in &nodes {
        node.set_members([1, 2, 3, 4]);
    }
    let mut everyone: Vec<&Gossip> = nodes.iter().collect();
    everyone.push(&outsider);
    assert!(
        common::wait_for(FORM_TIMEOUT, || common::all_see_alive(everyone.iter().copied(), &[1, 2, 3, 4]))
            .await
            .is_some(),
        "admitted node alive everywhere"
    );

    // Raft removes it again: it disappears from every view at once.
    for node in &nodes {
        node.set_members(members);
    }
    assert!(
        common::wait_for(Duration::from_secs(2), || nodes.iter().all(|g| g.member(4).is_none())).await.is_some(),
        "removed node gone from the views"
    );
    outsider.shutdown().await.expect("shutdown");
    common::shutdown_all(nodes).await;
}

/// A small xorshift generator: the test prints its seed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_datagrams_are_dropped_and_counted() {
    let seed = std::env::var("GOSSIP_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(now_ms) | 1;
    println!("seed: {seed} (replay with GOSSIP_TEST_SEED={seed})");
    let mut rng = Rng(seed);
    let nodes = start_all(&[1, 2], &[1, 2]).await;
    assert!(common::wait_for(FORM_TIMEOUT, || common::all_see_alive(&nodes, &[1, 2])).await.is_some());
    let target = nodes[0].local_addr();
    let attacker = UdpSocket::bind(common::loopback()).await.expect("bind");
    let keys = KeyRing::new(&common::key(7), None).expect("keys");
    let sys_rng = SystemRandom::new();
    let seal = |sender: NodeId, at: u64, plaintext: &[u8]| {
        let mut datagrams = wire::seal(&keys, &sys_rng, sender, at, 1, plaintext).expect("seal");
        datagrams.remove(0)
    };
    let before = nodes[0].counters();

    // Random junk that is not even our version.
    for _ in 0..20 {
        let len = (rng.next() % 300) as usize + 1;
        let mut junk = rng.bytes(len);
        junk[0] = junk[0].saturating_add(2).max(2);
        attacker.send_to(&junk, target).await.expect("send");
    }
    // Random junk behind a correct version byte: bad fragment fields or an unknown key id.
    let mut versioned_junk = 0;
    for _ in 0..20 {
        let len = wire::OVERHEAD + (rng.next() % 200) as usize;
        let mut junk = rng.bytes(len);
        junk[0] = wire::VERSION;
        attacker.send_to(&junk, target).await.expect("send");
        versioned_junk += 1;
    }
    let valid = seal(2, now_ms(), b"a well-sealed datagram from member 2");
    // Truncated: below the minimum length, and cut inside the ciphertext.
    attacker.send_to(&valid[..20], target).await.expect("send");
    attacker.send_to(&valid[..valid.len() - 5], target).await.expect("send");
    // Forged: one bit flipped.
    let mut forged = valid.clone();
    forged[wire::HEADER_LEN + 3] ^= 0x10;
    attacker.send_to(&forged, target).await.expect("send");
    // Replayed-stale: sealed correctly but a minute old, or a minute in the future.
    attacker.send_to(&seal(2, now_ms() - 60_000, b"old"), target).await.expect("send");
    attacker.send_to(&seal(2, now_ms() + 60_000, b"future"), target).await.expect("send");
    // A sender that is not a member.
    attacker.send_to(&seal(77, now_ms(), b"who?"), target).await.expect("send");
    // Captured and replayed: the first copy is accepted (and chitchat ignores its junk
    // payload), the second is a replay.
    attacker.send_to(&valid, target).await.expect("send");
    attacker.send_to(&valid, target).await.expect("send");

    let expected_reasons = [
        (DropReason::AuthFailed, 2),
        (DropReason::Stale, 2),
        (DropReason::UnknownSender, 1),
        (DropReason::Replayed, 1),
    ];
    let settled = common::wait_for(Duration::from_secs(3), || {
        let now = nodes[0].counters();
        let malformed_or_unknown =
            delta(&now, &before, DropReason::Malformed) + delta(&now, &before, DropReason::UnknownKey);
        malformed_or_unknown == 20 + 1 + versioned_junk
            && expected_reasons.iter().all(|(reason, n)| delta(&now, &before, *reason) == *n)
    })
    .await;
    let after = nodes[0].counters();
    assert!(
        settled.is_some(),
        "drops by reason: {:?}",
        after.dropped_by_reason().map(|(r, n)| (r, n - before.dropped(r))).collect::<Vec<_>>()
    );
    assert!(after.packets_in - before.packets_in >= 20 + versioned_junk + 8, "every datagram was counted in");
    still_converges(&nodes, 1, 5).await;
    common::shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_datagrams_are_dropped() {
    // Only IPv6 carries UDP payloads above 65,507 bytes.
    let Ok(probe) = UdpSocket::bind("[::1]:0").await else {
        println!("skipped: no IPv6 loopback");
        return;
    };
    drop(probe);
    let mut config = common::config(1, &[1], &[], common::key(7));
    config.listen_addr = "[::1]:0".parse().expect("addr");
    let node = Gossip::start(config).await.expect("start");
    let attacker = UdpSocket::bind("[::1]:0").await.expect("bind");
    let big = vec![wire::VERSION; wire::MAX_DATAGRAM_LEN + 10];
    attacker.send_to(&big, node.local_addr()).await.expect("send");
    let counted =
        common::wait_for(Duration::from_secs(2), || node.counters().dropped(DropReason::Oversized) == 1).await;
    assert!(counted.is_some(), "counters: {:?}", node.counters());
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_processes_cannot_inject_through_loopback() {
    let nodes = start_all(&[1, 2], &[1, 2]).await;
    assert!(common::wait_for(FORM_TIMEOUT, || common::all_see_alive(&nodes, &[1, 2])).await.is_some());
    let [_encoder, capture, decoder] = nodes[0].loopback_addrs()[..] else { panic!("three loopback sockets") };
    let before = nodes[0].counters();

    // A well-formed chitchat envelope straight to the decoder, and to the capture socket.
    let mut local = ChitchatUdpSocket::open(common::loopback()).await.expect("open");
    let envelope = || ChitchatEnvelope { version: ProtocolVersion::V0, message: ChitchatMessage::BadCluster };
    local.send(decoder, envelope()).await.expect("send");
    local.send(capture, envelope()).await.expect("send");

    let refused = common::wait_for(Duration::from_secs(3), || {
        delta(&nodes[0].counters(), &before, DropReason::LoopbackForeign) == 2
    })
    .await;
    assert!(refused.is_some(), "counters: {:?}", nodes[0].counters());
    still_converges(&nodes, 0, 11).await;
    still_converges(&nodes, 1, 12).await;
    common::shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_without_a_partition() {
    let (old, new) = (common::key(7), common::key(21));
    let nodes = start_all(&[1, 2, 3], &[1, 2, 3, 4]).await;
    assert!(common::wait_for(FORM_TIMEOUT, || common::all_see_alive(&nodes, &[1, 2, 3])).await.is_some());

    // 1. Everyone accepts the new key; 2. everyone seals with it; 3. the old one is dropped.
    // Each step rolls node by node, and the cluster keeps converging throughout.
    let steps: [(&_, Option<&_>); 3] = [(&old, Some(&new)), (&new, Some(&old)), (&new, None)];
    for (step, (current, previous)) in steps.into_iter().enumerate() {
        for (i, node) in nodes.iter().enumerate() {
            node.set_keys(current, previous).expect("keys");
            still_converges(&nodes, (i + step) % 3, 100 + (step * 3 + i) as u64).await;
        }
    }
    for node in &nodes {
        assert_eq!(node.counters().dropped(DropReason::UnknownKey), 0, "no datagram lost to the rotation");
    }
    assert!(common::all_see_alive(&nodes, &[1, 2, 3]));

    // A node left on the old key is now out.
    let stale = common::start_node(4, &[1, 2, 3, 4], &[nodes[0].local_addr()], old).await;
    assert!(common::holds_for(QUIET, || nodes.iter().all(|g| g.member(4).is_some_and(|m| m.state.is_none()))).await);
    assert!(nodes[0].counters().dropped(DropReason::UnknownKey) > 0);
    stale.shutdown().await.expect("shutdown");
    common::shutdown_all(nodes).await;
}
