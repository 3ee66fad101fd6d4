//! State larger than one UDP datagram: chitchat sends it as several deltas, each capped near
//! 65,507 bytes, all of which must make it through the sealed transport (an envelope whose sealed
//! form would not fit is split in two; `transport`'s unit tests force that case, since
//! chitchat's zstd-compressed deltas rarely come that close to the cap).

use std::time::Duration;

use gantry_gossip::testing as common;
use gantry_gossip::{Gossip, Verdict, MAX_ENDPOINTS_PER_NODE};

/// Endpoint names that compress badly (chitchat zstd-compresses deltas).
fn endpoint(node: u64, i: usize) -> String {
    let mut x = (node << 32) ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut name = String::with_capacity(48);
    for _ in 0..6 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        name.push_str(&format!("{x:016x}"));
    }
    format!("{}:{}", &name[..60], 1_000 + i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_larger_than_a_datagram_converges() {
    let members = [1, 2, 3];
    let first = common::start_node(1, &members, &[], common::key(7)).await;
    let second = common::start_node(2, &members, &[first.local_addr()], common::key(7)).await;
    for (node, id) in [(&first, 1), (&second, 2)] {
        for i in 0..MAX_ENDPOINTS_PER_NODE {
            node.set_endpoint_health("svc", &endpoint(id, i), Verdict::Up, 1_000 + i as u64).await.expect("health");
        }
    }
    // A newcomer must receive ~2 × 1024 entries: several capped deltas, some fragmented.
    let third = common::start_node(3, &members, &[first.local_addr()], common::key(7)).await;
    let nodes = [first, second, third];
    let full = |g: &Gossip, id: u64| {
        g.member(id).and_then(|m| m.state).is_some_and(|s| s.endpoint_count() == MAX_ENDPOINTS_PER_NODE)
    };
    let converged = common::wait_for(Duration::from_secs(10), || {
        nodes.iter().all(|g| full(g, 1) && full(g, 2) && !g.members().is_empty())
    })
    .await;
    assert!(converged.is_some(), "large state reached every node");
    let reports = nodes[2].endpoint_health("svc", &endpoint(2, 17));
    assert_eq!(reports.len(), 1);
    assert_eq!((reports[0].node_id, reports[0].checked_at_unix_ms), (2, 1_017));
    assert_eq!(nodes[2].counters().dropped_total(), 0);
    for node in nodes {
        node.shutdown().await.expect("shutdown");
    }
}
