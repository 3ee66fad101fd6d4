//! Smooth weighted round robin (nginx's algorithm), unrolled at compile time into one period of
//! picks that an atomic cursor walks: weights 5,1,1 give a,a,b,a,c,a,a rather than a×5,b,c, and
//! picking needs no lock.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Longest period kept; larger weight sums are scaled down to fit.
const MAX_PERIOD: u64 = 4096;

#[derive(Debug)]
pub struct SmoothWeightedSequence {
    order: Vec<u32>,
    cursor: AtomicUsize,
}

impl SmoothWeightedSequence {
    pub fn new(weights: &[u32]) -> Self {
        let weights = scale_to_period(weights);
        let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
        let mut current = vec![0i64; weights.len()];
        let mut order = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let mut best = 0;
            for (i, &w) in weights.iter().enumerate() {
                current[i] += i64::from(w);
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            order.push(best as u32);
        }
        Self { order, cursor: AtomicUsize::new(rand::random::<u32>() as usize) }
    }

    /// The next member in the sequence that `eligible` accepts. Every slot looked at is
    /// consumed, so the eligible members keep their relative shares (a zone-local or healthy
    /// subset is balanced as if the others were not in the sequence).
    pub fn next(&self, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let len = self.order.len();
        if len == 0 {
            return None;
        }
        for _ in 0..len {
            let slot = self.cursor.fetch_add(1, Ordering::Relaxed);
            let member = self.order[slot % len] as usize;
            if eligible(member) {
                return Some(member);
            }
        }
        None
    }
}

/// Divides weights by their gcd, then scales them so their sum fits MAX_PERIOD (keeping every
/// member at least weight 1).
fn scale_to_period(weights: &[u32]) -> Vec<u32> {
    let divisor = weights.iter().copied().fold(0, gcd).max(1);
    let reduced: Vec<u32> = weights.iter().map(|w| w / divisor).collect();
    let total: u64 = reduced.iter().map(|&w| u64::from(w)).sum();
    if total <= MAX_PERIOD {
        return reduced;
    }
    reduced.iter().map(|&w| ((u64::from(w) * MAX_PERIOD / total).max(1)) as u32).collect()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_smooth_order() {
        let seq = SmoothWeightedSequence::new(&[5, 1, 1]);
        assert_eq!(seq.order, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn large_weights_are_scaled() {
        let seq = SmoothWeightedSequence::new(&[10_000, 10_000, 1]);
        assert!(seq.order.len() as u64 <= MAX_PERIOD + 3);
        assert!(seq.order.contains(&2));
    }

    #[test]
    fn eligible_members_keep_their_shares() {
        let seq = SmoothWeightedSequence::new(&[1, 1, 1, 1, 1, 1]);
        let mut counts = [0; 6];
        for _ in 0..600 {
            if let Some(i) = seq.next(|i| i == 2 || i == 3) {
                counts[i] += 1;
            }
        }
        assert_eq!(counts, [0, 0, 300, 300, 0, 0]);
    }

    #[test]
    fn skips_ineligible() {
        let seq = SmoothWeightedSequence::new(&[1, 1, 1]);
        for _ in 0..10 {
            assert_eq!(seq.next(|i| i == 2), Some(2));
        }
        assert_eq!(seq.next(|_| false), None);
    }
}
