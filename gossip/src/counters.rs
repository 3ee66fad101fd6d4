//! Traffic and drop counters of the sealed transport, shared lock-free between the send path and
//! the receive task; the node exports a [`GossipCounters`] snapshot to Prometheus.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::wire::DropReason;

const REASONS: usize = DropReason::ALL.len();

#[derive(Default)]
pub(crate) struct Counters {
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    envelopes_in: AtomicU64,
    envelopes_out: AtomicU64,
    send_errors: AtomicU64,
    dropped: [AtomicU64; REASONS],
}

impl Counters {
    pub(crate) fn received(&self, bytes: usize) {
        self.packets_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn sent(&self, bytes: usize) {
        self.packets_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn envelope_in(&self) {
        self.envelopes_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn envelope_out(&self) {
        self.envelopes_out.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn send_error(&self) {
        self.send_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self, reason: DropReason) {
        self.dropped[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> GossipCounters {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        GossipCounters {
            packets_in: load(&self.packets_in),
            bytes_in: load(&self.bytes_in),
            packets_out: load(&self.packets_out),
            bytes_out: load(&self.bytes_out),
            envelopes_in: load(&self.envelopes_in),
            envelopes_out: load(&self.envelopes_out),
            send_errors: load(&self.send_errors),
            dropped: std::array::from_fn(|i| load(&self.dropped[i])),
        }
    }
}

/// A snapshot of the transport's counters (monotonic since start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GossipCounters {
    /// Datagrams that reached the gossip port, valid or not, and their bytes.
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Sealed datagrams sent from the gossip port, and their bytes.
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Chitchat envelopes accepted (opened, reassembled) and handed to chitchat.
    pub envelopes_in: u64,
    /// Chitchat envelopes sealed and sent.
    pub envelopes_out: u64,
    /// Sends that failed at the socket (unreachable address, buffer full, …).
    pub send_errors: u64,
    dropped: [u64; REASONS],
}

impl GossipCounters {
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// Every reason with its count, for exporting with a `reason` label.
    pub fn dropped_by_reason(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|r| (*r, self.dropped[r.index()]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_their_own_slot() {
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
        let counters = Counters::default();
        counters.dropped(DropReason::Stale);
        counters.dropped(DropReason::Stale);
        counters.dropped(DropReason::AuthFailed);
        let snap = counters.snapshot();
        assert_eq!(snap.dropped(DropReason::Stale), 2);
        assert_eq!(snap.dropped(DropReason::AuthFailed), 1);
        assert_eq!(snap.dropped_total(), 3);
    }
}
