//! HTTP clients: each sends paced GETs to the nodes' listeners in turn (as clients behind DNS
//! round robin do) and, when a try fails, tries once more on the next node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{push_bounded, RequestRecord, Shared};
use crate::backend::ZONE_HEADER;
use crate::client::{call, http_client, HttpClient};
use crate::cluster::roster_snapshot;
use crate::node::NodeInfo;

/// Deadline of one try: a backend answers in microseconds, so a second means the node is hung.
const TRY_DEADLINE: Duration = Duration::from_secs(1);

/// One try on `node`: the answering backend's zone, or why it failed.
async fn try_node(client: &HttpClient, node: &NodeInfo) -> Result<Option<u8>, ()> {
    let url = format!("http://{}/", node.http);
    match call(client, http::Method::GET, &url, &[], Bytes::new(), TRY_DEADLINE).await {
        Ok(reply) if reply.status == 200 => Ok(reply.header(ZONE_HEADER).and_then(|z| z.bytes().next())),
        _ => Err(()),
    }
}

pub(super) async fn client(id: usize, shared: Arc<Shared>) {
    let client = http_client(Duration::from_millis(500));
    let period = Duration::from_secs(1) / shared.config.client_rps.max(1);
    let started = Instant::now();
    let requests_max = (shared.config.duration_max.as_secs() as usize + 1) * shared.config.client_rps as usize;
    let mut turn = id;
    let mut next = Instant::now();
    for _ in 0..requests_max {
        if shared.stopped() || started.elapsed() > shared.config.duration_max {
            break;
        }
        next += period;
        let now = Instant::now();
        if next > now {
            tokio::time::sleep_until(next.into()).await;
        } else if now - next > period * 4 {
            // After a hung try, do not fire a burst to catch up: real clients just carry on.
            next = now;
        }
        let nodes = roster_snapshot(&shared.roster);
        if nodes.is_empty() {
            continue;
        }
        let first = turn % nodes.len();
        turn = turn.wrapping_add(1);
        let t0 = Instant::now();
        let mut last = first;
        let mut retried = false;
        let mut outcome = try_node(&client, &nodes[first]).await;
        if outcome.is_err() && nodes.len() > 1 {
            retried = true;
            last = (first + 1) % nodes.len();
            outcome = try_node(&client, &nodes[last]).await;
        }
        let record = RequestRecord {
            t_ms: shared.timeline.ms_at(t0),
            latency_ms: t0.elapsed().as_millis().min(u32::MAX as u128) as u32,
            first_node: nodes[first].index as u8,
            last_node: nodes[last].index as u8,
            ok: outcome.is_ok(),
            retried,
            backend_zone: outcome.ok().flatten(),
        };
        push_bounded(&shared.requests, record);
    }
}
