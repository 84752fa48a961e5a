//! Streaming short-time Fourier transform: samples go in in blocks of any size,
//! magnitude spectra come out frame by frame, identical to a whole-signal
//! `torch.stft(center=True, pad_mode="reflect")`. Memory is O(n_fft).

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use crate::config::{PadMode, WindowKind};

/// STFT settings (a subset of the front-end config, shared with chroma).
#[derive(Debug, Clone, PartialEq)]
pub struct StftParams {
    pub n_fft: usize,
    pub win_length: usize,
    pub hop_length: usize,
    pub window: WindowKind,
    pub center: bool,
    pub pad_mode: PadMode,
    /// Exponent applied to |X| (2 = power spectrum).
    pub power: f32,
}

/// Builds the analysis window, `win_length` long, centred in an `n_fft` frame.
pub fn window(kind: WindowKind, win_length: usize, n_fft: usize) -> Vec<f32> {
    let denom = match kind {
        WindowKind::HannPeriodic => win_length as f64,
        WindowKind::HannSymmetric => (win_length.max(2) - 1) as f64,
    };
    let mut w = vec![0.0f32; n_fft];
    let offset = (n_fft - win_length) / 2;
    for n in 0..win_length {
        let v = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / denom).cos();
        w[offset + n] = v as f32;
    }
    w
}

/// A streaming STFT producing one `n_fft / 2 + 1` magnitude^power spectrum per frame.
pub struct StreamingStft {
    p: StftParams,
    pad: usize,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    /// Signal (already padded on the left once started) from the current frame start on.
    buf: Vec<f32>,
    /// Whether the left padding has been put in front of `buf`.
    started: bool,
    /// The last `pad + 1` input samples, for the reflection at the end.
    tail: Vec<f32>,
    total: u64,
    frames: u64,
    frame: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    out: Vec<f32>,
}

impl StreamingStft {
    /// A new transform. `p` must have been validated (n_fft ≥ 2, 0 < hop ≤ n_fft).
    pub fn new(p: StftParams) -> Self {
        let mut planner = RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(p.n_fft);
        let window = window(p.window, p.win_length, p.n_fft);
        let spectrum = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        let pad = if p.center { p.n_fft / 2 } else { 0 };
        Self {
            pad,
            fft,
            window,
            buf: Vec::with_capacity(4 * p.n_fft),
            started: !p.center,
            tail: Vec::with_capacity(pad + 1),
            total: 0,
            frames: 0,
            frame: vec![0.0; p.n_fft],
            out: vec![0.0; p.n_fft / 2 + 1],
            spectrum,
            scratch,
            p,
        }
    }

    /// Number of frequency bins per frame.
    pub fn n_bins(&self) -> usize {
        self.p.n_fft / 2 + 1
    }

    /// Frames emitted so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Input samples received so far.
    pub fn samples(&self) -> u64 {
        self.total
    }

    /// Number of frames a whole signal of `n` samples gives.
    pub fn frame_count(p: &StftParams, n: u64) -> u64 {
        if p.center {
            let n = if n == 0 { 0 } else { n.max(p.n_fft as u64 / 2 + 1) };
            if n == 0 { 0 } else { 1 + n / p.hop_length as u64 }
        } else if n < p.n_fft as u64 {
            0
        } else {
            1 + (n - p.n_fft as u64) / p.hop_length as u64
        }
    }

    /// Feeds samples; calls `on_frame` with each finished spectrum.
    pub fn push(&mut self, samples: &[f32], on_frame: &mut dyn FnMut(&[f32])) {
        if samples.is_empty() {
            return;
        }
        self.total += samples.len() as u64;
        // Keep the last pad+1 samples for the right-hand reflection.
        if self.pad > 0 {
            let keep = self.pad + 1;
            if samples.len() >= keep {
                self.tail.clear();
                self.tail.extend_from_slice(&samples[samples.len() - keep..]);
            } else {
                self.tail.extend_from_slice(samples);
                let excess = self.tail.len().saturating_sub(keep);
                self.tail.drain(..excess);
            }
        }
        self.buf.extend_from_slice(samples);
        if !self.started {
            // The reflection needs x[1..=pad]: wait for pad + 1 samples.
            if self.buf.len() <= self.pad {
                return;
            }
            self.start();
        }
        self.drain_frames(on_frame);
    }

    /// Ends the signal: pads the right-hand side and emits the last frames.
    pub fn finish(&mut self, on_frame: &mut dyn FnMut(&[f32])) {
        if self.total == 0 {
            return;
        }
        if !self.started {
            // Shorter than pad + 1 samples: a reflection is undefined (torch
            // refuses such inputs), so the signal is zero-padded to pad + 1 first.
            let missing = self.pad + 1 - self.buf.len();
            self.buf.extend(std::iter::repeat_n(0.0, missing));
            self.tail.extend(std::iter::repeat_n(0.0, missing));
            let excess = self.tail.len().saturating_sub(self.pad + 1);
            self.tail.drain(..excess);
            self.total += missing as u64;
            self.start();
        }
        if self.pad > 0 {
            match self.p.pad_mode {
                PadMode::Reflect => {
                    // x[n-2], x[n-3], …, x[n-1-pad]
                    let t = &self.tail;
                    let last = t.len() - 1;
                    let right: Vec<f32> = (1..=self.pad).map(|j| t[last - j]).collect();
                    self.buf.extend_from_slice(&right);
                }
                PadMode::Zero => self.buf.extend(std::iter::repeat_n(0.0, self.pad)),
            }
        }
        self.drain_frames(on_frame);
        self.buf.clear();
    }

    fn start(&mut self) {
        self.started = true;
        if self.pad == 0 {
            return;
        }
        let left: Vec<f32> = match self.p.pad_mode {
            // x[pad], x[pad-1], …, x[1]
            PadMode::Reflect => (1..=self.pad).rev().map(|i| self.buf[i]).collect(),
            PadMode::Zero => vec![0.0; self.pad],
        };
        self.buf.splice(0..0, left);
    }

    fn drain_frames(&mut self, on_frame: &mut dyn FnMut(&[f32])) {
        let n_fft = self.p.n_fft;
        let hop = self.p.hop_length;
        let mut start = 0;
        while self.buf.len() - start >= n_fft {
            for ((f, x), w) in self
                .frame
                .iter_mut()
                .zip(&self.buf[start..start + n_fft])
                .zip(&self.window)
            {
                *f = x * w;
            }
            self.fft
                .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
                .expect("buffer sizes come from the planner");
            let power = self.p.power;
            for (o, c) in self.out.iter_mut().zip(&self.spectrum) {
                let p2 = c.re * c.re + c.im * c.im;
                *o = if power == 2.0 { p2 } else { p2.sqrt().powf(power) };
            }
            on_frame(&self.out);
            self.frames += 1;
            start += hop;
        }
        // Keep what the next frame needs (hop ≤ n_fft, so `start` ≤ len).
        self.buf.drain(..start);
    }
}
