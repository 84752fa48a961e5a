//! Time stretching and pitch shifting with a phase vocoder, the algorithm of
//! librosa's `time_stretch` / `pitch_shift` that audiomentations 0.37 (and so
//! the published NeuralSampleID training) used: STFT (n_fft 2048, hop 512,
//! centred, zero-padded), magnitudes interpolated between analysis frames,
//! phases advanced by each bin's measured instantaneous frequency, inverse
//! STFT with window-power normalisation.

use std::f64::consts::PI;

use realfft::RealFftPlanner;
use realfft::num_complex::Complex;

use crate::TransformError;
use crate::speed::resample_ratio;

/// STFT size of the vocoder (128 ms at 16 kHz).
pub const N_FFT: usize = 2048;
/// Hop between analysis frames.
pub const HOP: usize = 512;

fn hann(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos())
        .collect()
}

/// Centred STFT with zero padding: frames × (N_FFT/2 + 1).
fn stft(x: &[f32]) -> Vec<Vec<Complex<f64>>> {
    let pad = N_FFT / 2;
    let mut padded = vec![0.0f64; x.len() + 2 * pad];
    for (p, v) in padded[pad..].iter_mut().zip(x) {
        *p = *v as f64;
    }
    let n_frames = 1 + x.len() / HOP;
    let window = hann(N_FFT);
    let mut planner = RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(N_FFT);
    let mut frame = vec![0.0; N_FFT];
    (0..n_frames)
        .map(|t| {
            let start = t * HOP;
            for (i, f) in frame.iter_mut().enumerate() {
                *f = padded.get(start + i).copied().unwrap_or(0.0) * window[i];
            }
            let mut spec = fft.make_output_vec();
            fft.process(&mut frame, &mut spec).expect("planner sizes");
            spec
        })
        .collect()
}

/// Inverse of [`stft`] by weighted overlap-add, cut to `length` samples.
fn istft(frames: &[Vec<Complex<f64>>], length: usize) -> Vec<f32> {
    let pad = N_FFT / 2;
    let total = N_FFT + HOP * frames.len().saturating_sub(1);
    let window = hann(N_FFT);
    let mut out = vec![0.0f64; total];
    let mut norm = vec![0.0f64; total];
    let mut planner = RealFftPlanner::<f64>::new();
    let ifft = planner.plan_fft_inverse(N_FFT);
    let mut buf = vec![0.0; N_FFT];
    for (t, spec) in frames.iter().enumerate() {
        let mut s = spec.clone();
        // A real signal's DC and Nyquist bins are real.
        s[0].im = 0.0;
        let last = s.len() - 1;
        s[last].im = 0.0;
        ifft.process(&mut s, &mut buf).expect("planner sizes");
        let start = t * HOP;
        for i in 0..N_FFT {
            out[start + i] += buf[i] / N_FFT as f64 * window[i];
            norm[start + i] += window[i] * window[i];
        }
    }
    (0..length)
        .map(|i| {
            let j = i + pad;
            match (out.get(j), norm.get(j)) {
                (Some(&o), Some(&n)) if n > 1e-8 => (o / n) as f32,
                _ => 0.0,
            }
        })
        .collect()
}

/// Time-stretches by `rate` with the pitch kept: `rate` > 1 is faster, and the
/// output has `round(len / rate)` samples (librosa's convention).
pub fn time_stretch(x: &[f32], rate: f64) -> Result<Vec<f32>, TransformError> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(TransformError::Parameter(format!("stretch rate {rate} must be > 0")));
    }
    let out_len = (x.len() as f64 / rate).round() as usize;
    if x.is_empty() || out_len == 0 {
        return Ok(vec![0.0; out_len]);
    }
    let spec = stft(x);
    let n_bins = N_FFT / 2 + 1;
    let n_frames = spec.len();
    // Expected phase advance per hop of each bin's centre frequency.
    let advance: Vec<f64> = (0..n_bins)
        .map(|k| 2.0 * PI * HOP as f64 * k as f64 / N_FFT as f64)
        .collect();
    let zero = vec![Complex::new(0.0, 0.0); n_bins];
    let frame = |i: usize| if i < n_frames { &spec[i] } else { &zero };
    let mut phase: Vec<f64> = spec[0].iter().map(|c| c.arg()).collect();
    let mut out_frames = Vec::new();
    let mut step = 0.0f64;
    while step < n_frames as f64 {
        let i = step.floor() as usize;
        let alpha = step - i as f64;
        let (c0, c1) = (frame(i), frame(i + 1));
        let mut out = vec![Complex::new(0.0, 0.0); n_bins];
        for k in 0..n_bins {
            let mag = (1.0 - alpha) * c0[k].norm() + alpha * c1[k].norm();
            out[k] = Complex::from_polar(mag, phase[k]);
            let mut d = c1[k].arg() - c0[k].arg() - advance[k];
            d -= 2.0 * PI * (d / (2.0 * PI)).round();
            phase[k] += advance[k] + d;
        }
        out_frames.push(out);
        step += rate;
    }
    Ok(istft(&out_frames, out_len))
}

/// Shifts the pitch by `semitones` with the tempo kept: a phase-vocoder stretch
/// by `2^(-semitones/12)` followed by resampling back to the original length,
/// as librosa's `pitch_shift` does.
pub fn pitch_shift(x: &[f32], semitones: f64) -> Result<Vec<f32>, TransformError> {
    if !semitones.is_finite() || semitones.abs() > 24.0 {
        return Err(TransformError::Parameter(format!(
            "pitch shift {semitones} semitones is outside ±24"
        )));
    }
    if semitones == 0.0 {
        return Ok(x.to_vec());
    }
    let rate = 2f64.powf(-semitones / 12.0);
    let stretched = time_stretch(x, rate)?;
    // Played back `1/rate` times faster: every frequency rises by 2^(semitones/12).
    let mut y = resample_ratio(&stretched, rate)?;
    y.resize(x.len(), 0.0);
    Ok(y)
}
