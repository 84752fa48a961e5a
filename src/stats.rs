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
}
