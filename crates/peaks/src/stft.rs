//! A streaming magnitude STFT on a linear frequency axis.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use crate::PeakConfig;

/// Magnitude spectrogram, one column (`bins` values, 1.0 for a full-scale
/// sine at a bin centre) per hop. Frames are centred: frame t covers the
/// samples around t × hop, the signal padded with half a window of zeros at
/// both ends (as torch's `center=True`).
pub struct Spectrogram {
    n_fft: usize,
    hop: usize,
    bins: usize,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    input: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    column: Vec<f32>,
    /// Padded samples not yet consumed; `pending[0]` is padded index `start`.
    pending: Vec<f32>,
    start: usize,
    /// Next frame to emit.
    next: usize,
    /// Samples pushed (unpadded).
    pushed: usize,
}

impl Spectrogram {
    /// A spectrogram for `cfg` (assumed valid).
    pub fn new(cfg: &PeakConfig) -> Self {
        let n_fft = cfg.n_fft();
        let window: Vec<f32> = (0..n_fft)
            .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n_fft as f64).cos()) as f32)
            .collect();
        // A sine of amplitude 1 at a bin centre gives |X| = sum(window) / 2.
        let gain = 2.0 / window.iter().sum::<f32>();
        let window = window.into_iter().map(|w| w * gain).collect();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n_fft);
        Self {
            n_fft,
            hop: cfg.hop(),
            bins: cfg.bins(),
            window,
            input: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            column: vec![0.0; cfg.bins()],
            pending: vec![0.0; n_fft / 2],
            start: 0,
            next: 0,
            pushed: 0,
        }
    }

    /// Bins per column.
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// Pushes samples; calls `on` with every column that is complete.
    pub fn push(&mut self, samples: &[f32], on: &mut dyn FnMut(&[f32])) {
        self.pending.extend_from_slice(samples);
        self.pushed += samples.len();
        self.drain(on);
    }

    /// Ends the input: pads half a window of zeros and emits the remaining
    /// columns, up to frame ⌊samples / hop⌋.
    pub fn finish(&mut self, on: &mut dyn FnMut(&[f32])) {
        let last = self.pushed / self.hop;
        self.pending
            .extend(std::iter::repeat_n(0.0, self.n_fft / 2 + self.n_fft));
        while self.next <= last {
            if !self.frame(on) {
                break;
            }
        }
        self.pending.clear();
    }

    fn drain(&mut self, on: &mut dyn FnMut(&[f32])) {
        while self.frame(on) {}
        // Drop what no future frame needs.
        let keep_from = self.next * self.hop;
        if keep_from > self.start + 4 * self.n_fft {
            self.pending.drain(..keep_from - self.start);
            self.start = keep_from;
        }
    }

    /// Emits the next frame if its samples are all there.
    fn frame(&mut self, on: &mut dyn FnMut(&[f32])) -> bool {
        let from = self.next * self.hop - self.start;
        if from + self.n_fft > self.pending.len() {
            return false;
        }
        for ((x, s), w) in self
            .input
            .iter_mut()
            .zip(&self.pending[from..from + self.n_fft])
            .zip(&self.window)
        {
            *x = s * w;
        }
        self.fft
            .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
            .expect("buffers sized by the plan");
        for (c, z) in self.column.iter_mut().zip(&self.spectrum) {
            *c = z.norm();
        }
        on(&self.column);
        self.next += 1;
        true
    }
}
