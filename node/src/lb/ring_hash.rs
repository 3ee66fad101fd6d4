//! Consistent hashing on a ring of virtual nodes (ketama-style): a key keeps its endpoint while
//! that endpoint stays, and removing one of N endpoints moves only about 1/N of the keys.

use super::hash::hash64;

/// Virtual nodes per unit of weight: enough for an even spread over a handful of endpoints.
const POINTS_PER_WEIGHT: u32 = 160;
/// Upper bound on ring size whatever the weights.
const MAX_POINTS: usize = 65_536;

#[derive(Debug)]
pub struct RingHash {
    /// (position, member index), sorted by position.
    points: Vec<(u64, u32)>,
}

impl RingHash {
    /// `members` are (stable key, weight); the key (the endpoint address) places the member on
    /// the ring, so the ring is the same on every node and across reloads.
    pub fn new(members: &[(&str, u32)]) -> Self {
        let total_weight: u64 = members.iter().map(|(_, w)| u64::from(*w)).sum::<u64>().max(1);
        let budget = (total_weight * u64::from(POINTS_PER_WEIGHT)).min(MAX_POINTS as u64);
        let mut points = Vec::with_capacity(budget as usize);
        let mut label = String::new();
        for (index, (key, weight)) in members.iter().enumerate() {
            let count = (u64::from(*weight) * budget / total_weight).max(1);
            for replica in 0..count {
                label.clear();
                label.push_str(key);
                label.push('#');
                label.push_str(&replica.to_string());
                points.push((hash64(label.as_bytes()), index as u32));
            }
        }
        points.sort_unstable();
        Self { points }
    }

    /// The first eligible member clockwise from `key`'s position.
    pub fn lookup(&self, key: u64, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let len = self.points.len();
        if len == 0 {
            return None;
        }
        let start = self.points.partition_point(|(position, _)| *position < key);
        let mut last_rejected = None;
        for offset in 0..len {
            let member = self.points[(start + offset) % len].1 as usize;
            if last_rejected == Some(member) {
                continue;
            }
            if eligible(member) {
                return Some(member);
            }
            last_rejected = Some(member);
        }
        None
    }
}
