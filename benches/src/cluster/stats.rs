//! Percentiles (nearest rank) and the formatting the report uses.

use std::time::Duration;

/// The `q` quantile (0 < q ≤ 1) by nearest rank: the smallest sample with at least `q` of all
/// samples at or below it. With 20 samples p99 is the largest; with 100 it is the 99th.
pub fn percentile(samples: &[Duration], q: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// p50, p99 and the extremes of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub min: Duration,
    pub max: Duration,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        Some(Summary {
            n: samples.len(),
            p50: percentile(samples, 0.50)?,
            p99: percentile(samples, 0.99)?,
            min: *samples.iter().min()?,
            max: *samples.iter().max()?,
        })
    }
}

/// Milliseconds with two decimals (`12.34`).
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// `a / b` with three decimals, or `n/a`.
pub fn ratio(a: Option<Duration>, b: Option<Duration>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if !b.is_zero() => format!("{:.3}", a.as_secs_f64() / b.as_secs_f64()),
        _ => "n/a".to_string(),
    }
}

/// The median of plain numbers (`None` when empty).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Some(if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_list(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn nearest_rank() {
        let hundred: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile(&hundred, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&hundred, 0.99), Some(Duration::from_millis(99)));
        let twenty: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(percentile(&twenty, 0.99), Some(Duration::from_millis(20)));
        assert_eq!(percentile(&twenty, 0.5), Some(Duration::from_millis(10)));
        assert_eq!(percentile(&ms_list(&[7]), 0.99), Some(Duration::from_millis(7)));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn summary_and_formatting() {
        let s = Summary::of(&ms_list(&[3, 1, 2])).expect("samples");
        assert_eq!(
            (s.n, s.p50, s.min, s.max),
            (3, Duration::from_millis(2), Duration::from_millis(1), Duration::from_millis(3))
        );
        assert_eq!(ms(Duration::from_micros(12_345)), "12.35");
        assert_eq!(ratio(Some(Duration::from_millis(1)), Some(Duration::from_millis(4))), "0.250");
        assert_eq!(ratio(None, Some(Duration::from_millis(4))), "n/a");
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), Some(2.5));
    }
}
