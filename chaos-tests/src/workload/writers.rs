//! Config writers: each PUTs documents carrying a unique marker to a node picked by its seeded
//! rng and records the outcome, so every write the cluster acknowledged can be looked for later.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Deserialize;

use super::{push_bounded, Shared, WriteOutcome, WriteRecord};
use crate::client::{http_client, CallFailure, HttpClient};
use crate::cluster::roster_snapshot;
use crate::document::{self, Endpoint};
use crate::node::NodeInfo;
use crate::timeline::Timeline;

/// A write without quorum may hang (the node waits for a leader); past this it counts as not
/// acknowledged.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct Written {
    revision: u64,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
}

/// One PUT of the document marked `marker` to `node`, recorded as the cluster answered it.
#[allow(clippy::too_many_arguments)]
pub async fn write_once(
    client: &HttpClient,
    node: &NodeInfo,
    token: &str,
    endpoints: &[Endpoint],
    writer: &str,
    marker: &str,
    timeline: &Timeline,
    deadline: Duration,
) -> WriteRecord {
    let body = document::render(endpoints, marker);
    let t0 = Instant::now();
    let answer = node.admin().put_config(client, token, &body, deadline).await;
    let outcome = match answer {
        Ok(reply) if reply.status == 200 => match reply.json::<Written>("PUT /v1/config") {
            Ok(written) => WriteOutcome::Acked { revision: written.revision },
            // A 200 the harness cannot read is not a promise it can check.
            Err(error) => WriteOutcome::NoAnswer { reason: error.to_string() },
        },
        Ok(reply) => {
            let code = reply.json::<ErrorBody>("error body").map(|b| b.error.code).unwrap_or_else(|_| reply.text());
            WriteOutcome::Refused { status: reply.status, code: code.chars().take(80).collect() }
        }
        Err(CallFailure::Timeout) => {
            WriteOutcome::NoAnswer { reason: format!("no answer within {} ms", deadline.as_millis()) }
        }
        Err(CallFailure::Failed(message)) => WriteOutcome::NoAnswer { reason: message.chars().take(120).collect() },
    };
    WriteRecord {
        t_ms: timeline.ms_at(t0),
        latency_ms: t0.elapsed().as_millis() as u64,
        writer: writer.to_string(),
        node: node.index,
        marker: marker.to_string(),
        outcome,
    }
}

pub(super) async fn writer(id: usize, shared: Arc<Shared>, seed: u64) {
    let client = http_client(Duration::from_millis(500));
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let name = format!("w{id}");
    for seq in 0..shared.config.writes_max {
        if shared.stopped() || started.elapsed() > shared.config.duration_max || !shared.take_write() {
            break;
        }
        let nodes = roster_snapshot(&shared.roster);
        if nodes.is_empty() {
            break;
        }
        let node = &nodes[rng.random_range(0..nodes.len())];
        let marker = format!("{name}-{seq}");
        let record = write_once(
            &client,
            node,
            &shared.admin_token,
            &shared.endpoints,
            &name,
            &marker,
            &shared.timeline,
            WRITE_DEADLINE,
        )
        .await;
        push_bounded(&shared.writes, record);
        let period_ms = shared.config.write_period.as_millis() as u64;
        let pause_ms = rng.random_range(period_ms * 7 / 10..=period_ms * 13 / 10);
        // Sleep in short steps so a stop request is noticed quickly.
        let until = Instant::now() + Duration::from_millis(pause_ms);
        while Instant::now() < until && !shared.stopped() {
            tokio::time::sleep(Duration::from_millis(50).min(until.saturating_duration_since(Instant::now()))).await;
        }
    }
}
