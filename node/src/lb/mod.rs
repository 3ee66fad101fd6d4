//! Load-balancing policies: pick one endpoint of a set, skipping those the caller says are not
//! eligible (unhealthy, ejected, already tried). Built once per config revision; picking takes no
//! lock and allocates nothing on the common path.

mod hash;
mod ring_hash;
mod round_robin;

use rand::RngExt as _;

pub use hash::hash64;
pub use ring_hash::RingHash;
pub use round_robin::SmoothWeightedSequence;

use gantry_proto::config::LbPolicy;

/// What a policy needs to know about each member: its weight and its current load.
pub trait Member {
    fn weight(&self) -> u32;
    fn load(&self) -> u64;
    fn key(&self) -> &str;
}

/// A compiled policy over a fixed list of members (indices into that list are returned).
#[derive(Debug)]
pub enum Balancer {
    RoundRobin(SmoothWeightedSequence),
    LeastRequest,
    LeastConnections,
    RingHash(RingHash),
    Random { cumulative_weights: Vec<u64> },
}

impl Balancer {
    pub fn new<M: Member>(policy: LbPolicy, members: &[M]) -> Self {
        let weights: Vec<u32> = members.iter().map(Member::weight).collect();
        match policy {
            LbPolicy::RoundRobin => Balancer::RoundRobin(SmoothWeightedSequence::new(&weights)),
            LbPolicy::LeastRequest => Balancer::LeastRequest,
            LbPolicy::LeastConnections => Balancer::LeastConnections,
            LbPolicy::RingHash => {
                let keys: Vec<(&str, u32)> = members.iter().map(|m| (m.key(), m.weight())).collect();
                Balancer::RingHash(RingHash::new(&keys))
            }
            LbPolicy::Random => {
                let mut total = 0u64;
                let cumulative_weights = weights
                    .iter()
                    .map(|w| {
                        total += u64::from(*w);
                        total
                    })
                    .collect();
                Balancer::Random { cumulative_weights }
            }
        }
    }

    /// Picks a member index among those `eligible` accepts. `hash_key` feeds ring hash (other
    /// policies ignore it; ring hash without a key picks at random).
    pub fn pick<M: Member>(
        &self,
        members: &[M],
        eligible: impl Fn(usize) -> bool,
        hash_key: Option<u64>,
    ) -> Option<usize> {
        if members.is_empty() {
            return None;
        }
        match self {
            Balancer::RoundRobin(sequence) => sequence.next(eligible),
            Balancer::LeastRequest => pick_power_of_two(members, eligible),
            Balancer::LeastConnections => pick_least_loaded(members, eligible),
            Balancer::RingHash(ring) => match hash_key {
                Some(key) => ring.lookup(key, eligible),
                None => ring.lookup(rand::random(), eligible),
            },
            Balancer::Random { cumulative_weights } => pick_weighted_random(cumulative_weights, eligible),
        }
    }
}

/// Load per unit of weight, compared without division: a.load/a.weight < b.load/b.weight.
fn less_loaded<M: Member>(a: &M, b: &M) -> bool {
    u128::from(a.load()) * u128::from(b.weight()) < u128::from(b.load()) * u128::from(a.weight())
}

/// Power of two choices: two random eligible members, the less loaded wins. Near least-loaded
/// quality without a scan, and no herd onto one endpoint when loads are reported late.
fn pick_power_of_two<M: Member>(members: &[M], eligible: impl Fn(usize) -> bool) -> Option<usize> {
    let n = members.len();
    let mut rng = rand::rng();
    // A few random draws find eligible members fast when most are; the scan covers the rest.
    let mut first = None;
    for _ in 0..4 {
        let candidate = rng.random_range(0..n);
        if eligible(candidate) {
            match first {
                None => first = Some(candidate),
                Some(f) if f != candidate => {
                    return Some(if less_loaded(&members[candidate], &members[f]) { candidate } else { f });
                }
                Some(_) => {}
            }
        }
    }
    let start = rng.random_range(0..n);
    let mut best: Option<usize> = first;
    let mut seen = 0;
    for offset in 0..n {
        let i = (start + offset) % n;
        if Some(i) == first || !eligible(i) {
            continue;
        }
        seen += 1;
        best = Some(match best {
            Some(b) if !less_loaded(&members[i], &members[b]) => b,
            _ => i,
        });
        if first.is_some() || seen == 2 {
            break;
        }
    }
    best
}

fn pick_least_loaded<M: Member>(members: &[M], eligible: impl Fn(usize) -> bool) -> Option<usize> {
    // Start at a random offset so ties spread instead of all landing on the first member.
    let n = members.len();
    let start = rand::rng().random_range(0..n);
    let mut best: Option<usize> = None;
    for offset in 0..n {
        let i = (start + offset) % n;
        if !eligible(i) {
            continue;
        }
        if best.is_none_or(|b| less_loaded(&members[i], &members[b])) {
            best = Some(i);
        }
    }
    best
}

fn pick_weighted_random(cumulative: &[u64], eligible: impl Fn(usize) -> bool) -> Option<usize> {
    let total = *cumulative.last()?;
    if total == 0 {
        return None;
    }
    let mut rng = rand::rng();
    for _ in 0..4 {
        let draw = rng.random_range(0..total);
        let i = cumulative.partition_point(|&c| c <= draw);
        if i < cumulative.len() && eligible(i) {
            return Some(i);
        }
    }
    // Most members are ineligible: draw among the eligible ones only.
    let mut eligible_total = 0u64;
    let mut previous = 0u64;
    let mut chosen = None;
    for (i, &c) in cumulative.iter().enumerate() {
        let weight = c - previous;
        previous = c;
        if weight == 0 || !eligible(i) {
            continue;
        }
        eligible_total += weight;
        // Reservoir sampling by weight: keeps each eligible member with probability weight/total.
        if rng.random_range(0..eligible_total) < weight {
            chosen = Some(i);
        }
    }
    chosen
}

#[cfg(test)]
mod tests;
