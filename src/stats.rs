//! The one median, percentile and trend of the binary's reports (benchmarks
//! and the load test), so every figure means the same thing.

/// The median: the middle value, or the mean of the two middle values of an
/// even count; NaN for no values.
pub fn median(values: &[f64]) -> f64 {
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The `p`-quantile (0–1) by nearest rank: the sorted value at index
/// `round((n − 1) · p)`; NaN for no values.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() as f64 - 1.0) * p.clamp(0.0, 1.0)).round() as usize]
}

/// The least-squares slope of `y` against `x` (a trend: memory per second
/// of a run, say); NaN with fewer than two points or no spread in `x`.
pub fn slope(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    if n < 2 {
        return f64::NAN;
    }
    let (mx, my) = (
        x[..n].iter().sum::<f64>() / n as f64,
        y[..n].iter().sum::<f64>() / n as f64,
    );
    let (sxy, sxx) = x[..n].iter().zip(&y[..n]).fold((0.0, 0.0), |(xy, xx), (a, b)| {
        (xy + (a - mx) * (b - my), xx + (a - mx) * (a - mx))
    });
    if sxx > 0.0 { sxy / sxx } else { f64::NAN }
}

/// The lowest and highest `y` in each of `windows` equal spans of `x`
/// from `from` to the last `x`: (span's middle, min, max), spans without a
/// point left out. The load test's memory floor: a server that frees what
/// a compaction or an upload no longer needs comes back to the same low
/// point, however far it swings above it, so a leak shows as a rising
/// floor before the swing's trend can tell it from noise.
pub fn window_extremes(x: &[f64], y: &[f64], from: f64, windows: usize) -> Vec<(f64, f64, f64)> {
    let n = x.len().min(y.len());
    let last = x[..n].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if windows == 0 || n == 0 || last <= from {
        return Vec::new();
    }
    let width = (last - from) / windows as f64;
    let mut out = vec![(0.0, f64::INFINITY, f64::NEG_INFINITY); windows];
    for (&a, &b) in x[..n].iter().zip(&y[..n]) {
        if a < from {
            continue;
        }
        let w = (((a - from) / width) as usize).min(windows - 1);
        out[w].1 = out[w].1.min(b);
        out[w].2 = out[w].2.max(b);
    }
    out.iter_mut()
        .enumerate()
        .for_each(|(w, e)| e.0 = from + (w as f64 + 0.5) * width);
    out.retain(|e| e.1.is_finite());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        let v: Vec<f64> = (0..101).map(f64::from).rev().collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[7.0], 0.9), 7.0);
    }

    #[test]
    fn slope_of_a_line_with_symmetric_noise() {
        let x: Vec<f64> = (0..7).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| 3.0 + 0.5 * v).collect();
        assert!((slope(&x, &y) - 0.5).abs() < 1e-12);
        // Noise that is symmetric about the line leaves its slope.
        let noisy: Vec<f64> = y
            .iter()
            .zip([1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 1.0])
            .map(|(a, e)| a + e)
            .collect();
        assert!((slope(&x, &noisy) - 0.5).abs() < 1e-12);
        let flat = [4.0; 7];
        assert_eq!(slope(&x, &flat), 0.0);
        assert!(slope(&[1.0], &[2.0]).is_nan());
        assert!(slope(&[2.0, 2.0], &[1.0, 5.0]).is_nan(), "no spread in x");
    }

    #[test]
    fn window_floors_follow_a_leak_under_a_swing() {
        // A saw tooth (a compaction cycle of 10 s) over a floor that rises
        // 0.1 per second: the floors rise with it, the swing does not hide it.
        let x: Vec<f64> = (0..=100).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|t| 0.1 * t + (t % 10.0) * 5.0).collect();
        let w = window_extremes(&x, &y, 20.0, 4);
        assert_eq!(w.len(), 4);
        assert_eq!(w[0].0, 30.0);
        assert_eq!(w[0].1, 2.0);
        assert!((w[0].2 - 48.9).abs() < 1e-9);
        let floors: Vec<f64> = w.iter().map(|e| e.1).collect();
        let mids: Vec<f64> = w.iter().map(|e| e.0).collect();
        assert!((slope(&mids, &floors) - 0.1).abs() < 1e-9);
        // Points before `from` count nowhere; empty spans are left out.
        let sparse = window_extremes(&[0.0, 1.0, 9.0], &[5.0, 1.0, 3.0], 1.0, 4);
        assert_eq!(sparse, vec![(2.0, 1.0, 1.0), (8.0, 3.0, 3.0)]);
        assert!(window_extremes(&[1.0], &[1.0], 5.0, 3).is_empty());
    }
}
