//! Room reverberation (FFT convolution with an impulse response) and filters
//! (band-pass, telephone).

use std::f64::consts::PI;

use realfft::RealFftPlanner;

use crate::TransformError;
use crate::rng::Rng;

/// Convolves `x` with the impulse response `ir` by FFT. The IR is normalised
/// to unit energy and shifted so that its strongest tap (the direct sound)
/// lands at time 0: the music keeps its timing and roughly its level. The
/// output keeps the input's length (the reverb tail past the end is cut).
pub fn reverb(x: &[f32], ir: &[f32]) -> Result<Vec<f32>, TransformError> {
    if ir.is_empty() {
        return Err(TransformError::Parameter("empty impulse response".into()));
    }
    let energy: f64 = ir.iter().map(|&v| (v as f64) * (v as f64)).sum();
    if energy <= 0.0 {
        return Err(TransformError::Silent("impulse response"));
    }
    let direct = ir
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let ir: Vec<f64> = ir[direct..].iter().map(|&v| v as f64 / energy.sqrt()).collect();
    if x.is_empty() {
        return Ok(Vec::new());
    }
    let n = (x.len() + ir.len() - 1).next_power_of_two();
    let mut planner = RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(n);
    let ifft = planner.plan_fft_inverse(n);
    let mut a = vec![0.0; n];
    let mut b = vec![0.0; n];
    for (d, s) in a.iter_mut().zip(x) {
        *d = *s as f64;
    }
    b[..ir.len()].copy_from_slice(&ir);
    let mut fa = fft.make_output_vec();
    let mut fb = fft.make_output_vec();
    fft.process(&mut a, &mut fa).expect("planner sizes");
    fft.process(&mut b, &mut fb).expect("planner sizes");
    for (p, q) in fa.iter_mut().zip(&fb) {
        *p *= q;
    }
    ifft.process(&mut fa, &mut a).expect("planner sizes");
    Ok(a[..x.len()].iter().map(|v| (v / n as f64) as f32).collect())
}

/// A synthetic room impulse response: a direct impulse, then exponentially
/// decaying noise reaching −60 dB after `rt60_s` seconds. For tests and to
/// widen the few real IRs of the corpus.
pub fn synthetic_ir(sample_rate: u32, rt60_s: f64, rng: &mut Rng) -> Vec<f32> {
    let n = ((rt60_s * sample_rate as f64) as usize).max(1);
    let decay = (1e-3f64).ln() / (rt60_s * sample_rate as f64); // amplitude −60 dB at rt60
    let mut ir: Vec<f32> = (0..n)
        .map(|i| (0.3 * rng.normal() * (decay * i as f64).exp()) as f32)
        .collect();
    ir[0] = 1.0;
    ir
}

/// One second-order section (RBJ audio-EQ cookbook), direct form II transposed.
#[derive(Debug, Clone, Copy)]
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
}

impl Biquad {
    fn new(kind: Pass, f0: f64, q: f64, sr: f64) -> Self {
        let w0 = 2.0 * PI * f0 / sr;
        let (cos, alpha) = (w0.cos(), w0.sin() / (2.0 * q));
        let a0 = 1.0 + alpha;
        let (b0, b1, b2) = match kind {
            Pass::Low => ((1.0 - cos) / 2.0, 1.0 - cos, (1.0 - cos) / 2.0),
            Pass::High => ((1.0 + cos) / 2.0, -(1.0 + cos), (1.0 + cos) / 2.0),
        };
        Self {
            b: [b0 / a0, b1 / a0, b2 / a0],
            a: [-2.0 * cos / a0, (1.0 - alpha) / a0],
        }
    }

    fn run(&self, x: &mut [f64]) {
        let (mut z1, mut z2) = (0.0, 0.0);
        for v in x.iter_mut() {
            let y = self.b[0] * *v + z1;
            z1 = self.b[1] * *v - self.a[0] * y + z2;
            z2 = self.b[2] * *v - self.a[1] * y;
            *v = y;
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Pass {
    Low,
    High,
}

/// Band-pass between `low_hz` and `high_hz`: 4th-order Butterworth high-pass
/// and low-pass (two sections each, Q 0.541 and 1.307), so the response is
/// −3 dB at the edges and falls 24 dB per octave outside.
pub fn band_pass(x: &[f32], sample_rate: u32, low_hz: f64, high_hz: f64) -> Result<Vec<f32>, TransformError> {
    let sr = sample_rate as f64;
    if !(low_hz >= 0.0 && low_hz < high_hz && high_hz <= sr / 2.0) {
        return Err(TransformError::Parameter(format!(
            "band {low_hz}–{high_hz} Hz must satisfy 0 ≤ low < high ≤ {}",
            sr / 2.0
        )));
    }
    const BUTTERWORTH4_Q: [f64; 2] = [0.541_196_100_146_197, 1.306_562_964_876_376_7];
    let mut y: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for q in BUTTERWORTH4_Q {
        if low_hz > 0.0 {
            Biquad::new(Pass::High, low_hz, q, sr).run(&mut y);
        }
        if high_hz < sr / 2.0 {
            Biquad::new(Pass::Low, high_hz, q, sr).run(&mut y);
        }
    }
    Ok(y.into_iter().map(|v| v as f32).collect())
}

/// Telephone band: 300–3400 Hz.
pub fn telephone(x: &[f32], sample_rate: u32) -> Result<Vec<f32>, TransformError> {
    band_pass(x, sample_rate, 300.0, 3400.0)
}
