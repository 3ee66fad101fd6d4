//! Zone load across the cluster: this node samples its in-flight requests to each zone of the
//! services that bound them (`max_in_flight_per_endpoint`), gossips the average once a publish
//! period, and folds the other live nodes' figures into the services it runs.

use std::collections::HashMap;

use gantry_gossip::{Liveness, MemberView, ZoneInFlight};

use crate::dataplane::Snapshot;

/// Sums of in-flight samples by (service, zone) since the last publish.
#[derive(Debug, Default)]
pub struct ZoneLoadSampler {
    sums: HashMap<(String, String), f64>,
    samples: u32,
}

impl ZoneLoadSampler {
    pub fn sample(&mut self, snapshot: &Snapshot) {
        self.samples += 1;
        for service in snapshot.services.values().filter(|s| s.tracks_zone_load()) {
            for (zone, in_flight) in service.zones().iter().zip(service.local_in_flight_by_zone()) {
                *self.sums.entry((service.name.clone(), zone.name.clone())).or_default() += in_flight as f64;
            }
        }
    }

    /// The average in flight per (service, zone) since the last call; starts a new period.
    pub fn take(&mut self) -> ZoneInFlight {
        let samples = f64::from(self.samples.max(1));
        let mut averages = ZoneInFlight::new();
        for ((service, zone), sum) in self.sums.drain() {
            averages.entry(service).or_default().insert(zone, sum / samples);
        }
        self.samples = 0;
        averages
    }
}

/// Sets, on every zone of every bounded service of `snapshot`, what the other live members
/// report in flight to it (zero when none reports).
pub fn apply_remote(snapshot: &Snapshot, members: &[MemberView]) {
    let others: Vec<&ZoneInFlight> = members
        .iter()
        .filter(|m| !m.is_self && m.liveness == Liveness::Alive)
        .filter_map(|m| m.state.as_deref().map(|s| &s.zone_in_flight))
        .collect();
    for service in snapshot.services.values().filter(|s| s.tracks_zone_load()) {
        for (index, zone) in service.zones().iter().enumerate() {
            let total: f64 = others
                .iter()
                .filter_map(|reported| reported.get(&service.name).and_then(|zones| zones.get(&zone.name)))
                .sum();
            service.set_remote_in_flight(index, total);
        }
    }
}
