//! Speed change (tempo and pitch together, as a turntable or sampler does),
//! by band-limited resampling at an arbitrary ratio.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, Resampler, SincInterpolationParameters, SincInterpolationType, WindowFunction};

use crate::TransformError;

/// Resamples so that the output has `len · ratio` samples (rounded): played
/// at the original rate, a ratio below 1 is faster and higher.
pub fn resample_ratio(x: &[f32], ratio: f64) -> Result<Vec<f32>, TransformError> {
    if !(ratio.is_finite() && ratio > 0.01 && ratio < 100.0) {
        return Err(TransformError::Parameter(format!(
            "resampling ratio {ratio} is out of range"
        )));
    }
    let target = (x.len() as f64 * ratio).round() as usize;
    if x.is_empty() || (ratio - 1.0).abs() < 1e-12 {
        let mut y = x.to_vec();
        y.resize(target, 0.0);
        return Ok(y);
    }
    let params = SincInterpolationParameters {
        sinc_len: 128,
        f_cutoff: None,
        oversampling_factor: 256,
        interpolation: SincInterpolationType::Cubic,
        window: WindowFunction::BlackmanHarris2,
    };
    let mut r = Async::<f32>::new_sinc(ratio, 1.0, &params, 1024, 1, FixedAsync::Input)
        .map_err(|e| TransformError::Parameter(e.to_string()))?;
    let input = InterleavedSlice::new(x, 1, x.len()).map_err(|e| TransformError::Parameter(e.to_string()))?;
    let out = r
        .process_all(&input, x.len(), None)
        .map_err(|e| TransformError::Parameter(e.to_string()))?;
    let mut y = out.take_data();
    y.resize(target, 0.0);
    Ok(y)
}

/// Plays `x` `factor` times faster: `len / factor` samples, every frequency ×`factor`.
pub fn speed(x: &[f32], factor: f64) -> Result<Vec<f32>, TransformError> {
    if !(factor.is_finite() && factor > 0.0) {
        return Err(TransformError::Parameter(format!("speed factor {factor} must be > 0")));
    }
    resample_ratio(x, 1.0 / factor)
}
