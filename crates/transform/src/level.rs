//! Levels: gain, power, and mixing a target with noise or other music at an
//! exact ratio.

use crate::TransformError;

/// Mean power of a signal (0 for an empty one).
pub fn power(x: &[f32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / x.len() as f64
}

/// `10·log10(p_a / p_b)`.
pub fn ratio_db(a: &[f32], b: &[f32]) -> f64 {
    10.0 * (power(a) / power(b)).log10()
}

/// Multiplies by `10^(db/20)`.
pub fn gain(x: &[f32], db: f32) -> Vec<f32> {
    let g = 10f32.powf(db / 20.0);
    x.iter().map(|v| v * g).collect()
}

/// `background` repeated (or cut) to `len` samples, starting at `start`.
pub fn loop_to(background: &[f32], start: usize, len: usize) -> Vec<f32> {
    if background.is_empty() {
        return vec![0.0; len];
    }
    (0..len).map(|i| background[(start + i) % background.len()]).collect()
}

/// Adds `background` (looped or cut to the target's length, from `start`)
/// scaled so that the target-to-background power ratio is exactly `ratio_db`:
/// the SNR for noise, the TBR for music. Returns the mix and the scale applied
/// to the background.
///
/// Powers are measured over the whole target, so `ratio_db(target, scaled
/// background)` equals the request to float precision.
pub fn mix_at_ratio(
    target: &[f32],
    background: &[f32],
    start: usize,
    ratio_db: f64,
) -> Result<(Vec<f32>, f32), TransformError> {
    let bg = loop_to(background, start, target.len());
    let (pt, pb) = (power(target), power(&bg));
    if pt <= 0.0 {
        return Err(TransformError::Silent("target"));
    }
    if pb <= 0.0 {
        return Err(TransformError::Silent("background"));
    }
    let scale = (pt / (pb * 10f64.powf(ratio_db / 10.0))).sqrt() as f32;
    let out = target.iter().zip(&bg).map(|(t, b)| t + scale * b).collect();
    Ok((out, scale))
}

/// Scales a signal so that its peak is at most `peak` (no change when it
/// already is), as a limiter-free guard against clipping after mixing.
pub fn normalise_peak(x: &mut [f32], peak: f32) -> f32 {
    let m = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if m > peak && m > 0.0 {
        let g = peak / m;
        x.iter_mut().for_each(|v| *v *= g);
        g
    } else {
        1.0
    }
}
