//! Statistics over the runs of one figure: median and spread, and percentiles of
//! request latencies within one run.

use serde::Serialize;
use std::time::Duration;

/// Median and spread of a figure's samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub p10: f64,
    pub p90: f64,
}

/// `None` for no samples; NaNs are left out.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(Summary {
        n: v.len(),
        median: percentile(&v, 50.0),
        min: v[0],
        max: v[v.len() - 1],
        p10: percentile(&v, 10.0),
        p90: percentile(&v, 90.0),
    })
}

/// The `p`th percentile of sorted, non-empty `v`, linearly interpolated between the
/// closest ranks (so the 50th of an even count is the mean of the middle two).
pub fn percentile(v: &[f64], p: f64) -> f64 {
    assert!(!v.is_empty(), "percentile of nothing");
    let rank = (p / 100.0).clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (rank - lo as f64)
}

/// The `p`th percentile of durations, in milliseconds (`NaN` for none).
pub fn percentile_ms(d: &[Duration], p: f64) -> f64 {
    if d.is_empty() {
        return f64::NAN;
    }
    let mut v: Vec<f64> = d.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(f64::total_cmp);
    percentile(&v, p)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        let s = summarize(&[5.0, 1.0, 3.0, f64::NAN, 4.0, 2.0]).unwrap();
        assert_eq!((s.n, s.median, s.min, s.max), (5, 3.0, 1.0, 5.0));
        assert!(
            (s.p10 - 1.4).abs() < 1e-9 && (s.p90 - 4.6).abs() < 1e-9,
            "{s:?}"
        );
        assert_eq!(summarize(&[2.0, 4.0]).unwrap().median, 3.0);
        assert_eq!(summarize(&[7.0]).unwrap().p90, 7.0);
        assert!(summarize(&[]).is_none());
        assert!(summarize(&[f64::NAN]).is_none());
    }

    #[test]
    fn latency_percentiles_in_ms() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert!((percentile_ms(&d, 50.0) - 50.5).abs() < 1e-9);
        assert!((percentile_ms(&d, 99.0) - 99.01).abs() < 1e-9);
        assert!(percentile_ms(&[], 50.0).is_nan());
    }
}
