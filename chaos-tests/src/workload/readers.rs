//! A reader: polls every node's served revision (and the marker of the document it serves),
//! tagged with the node's process generation so monotonicity can be checked per process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{push_bounded, ReadRecord, Shared};
use crate::client::http_client;
use crate::cluster::roster_snapshot;
use crate::document::marker_of;

pub(super) async fn reader(shared: Arc<Shared>) {
    let client = http_client(Duration::from_millis(500));
    let started = Instant::now();
    let period = shared.config.read_period.max(Duration::from_millis(50));
    let rounds_max = (shared.config.duration_max.as_millis() / period.as_millis()) as u64 + 1;
    for _ in 0..rounds_max {
        if shared.stopped() || started.elapsed() > shared.config.duration_max {
            break;
        }
        for node in roster_snapshot(&shared.roster) {
            let generation = node.generation();
            let t0 = Instant::now();
            let Ok(served) = node.admin().served(&client).await else { continue };
            // A restart between the two looks means the answer cannot be tied to one process.
            if node.generation() != generation {
                continue;
            }
            push_bounded(
                &shared.reads,
                ReadRecord {
                    t_ms: shared.timeline.ms_at(t0),
                    node: node.index,
                    generation,
                    revision: served.revision,
                    marker: marker_of(&served.config),
                },
            );
        }
        tokio::time::sleep(period).await;
    }
}
