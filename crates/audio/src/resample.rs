//! Streaming mono resampling with an exact output length.
//!
//! Wraps rubato's synchronous FFT resampler so that samples can be pushed in
//! blocks of any size while memory stays bounded. The startup delay of the
//! filter is trimmed and the output of a whole stream has exactly
//! `ceil(n_in * to / from)` samples, the length torchaudio's `Resample` gives,
//! so that frame counts downstream match the published front end.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

/// Errors from the resampler (construction with unusable rates, or an internal
/// size mismatch, which would be a bug).
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    /// Rates rubato cannot build a resampler for.
    #[error("cannot resample {from} Hz to {to} Hz: {reason}")]
    Construction { from: u32, to: u32, reason: String },
    /// rubato rejected a processing call.
    #[error("resampling failed: {0}")]
    Process(String),
}

/// A mono resampler that accepts arbitrary block sizes.
pub struct StreamResampler {
    inner: Fft<f32>,
    from: u32,
    to: u32,
    /// Input received but not yet consumed by a full chunk.
    pending: Vec<f32>,
    /// Scratch output for one call.
    scratch: Vec<f32>,
    /// Startup-delay samples still to drop from the output.
    to_trim: usize,
    /// Total input samples pushed.
    total_in: u64,
    /// Total output samples emitted (after trimming).
    total_out: u64,
}

impl StreamResampler {
    /// Builds a resampler from `from` Hz to `to` Hz that consumes input in
    /// chunks of about `chunk` samples.
    pub fn new(from: u32, to: u32, chunk: usize) -> Result<Self, ResampleError> {
        let inner = Fft::<f32>::new(from as usize, to as usize, chunk.max(64), 1, FixedSync::Input).map_err(|e| {
            ResampleError::Construction {
                from,
                to,
                reason: e.to_string(),
            }
        })?;
        let to_trim = inner.output_delay();
        let scratch = vec![0.0; inner.output_frames_max()];
        Ok(Self {
            inner,
            from,
            to,
            pending: Vec::new(),
            scratch,
            to_trim,
            total_in: 0,
            total_out: 0,
        })
    }

    /// Input rate in Hz.
    pub fn from_rate(&self) -> u32 {
        self.from
    }

    /// Resamples `input`, appending every finished output sample to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), ResampleError> {
        self.total_in += input.len() as u64;
        self.pending.extend_from_slice(input);
        let need = self.inner.input_frames_next();
        let mut start = 0;
        while self.pending.len() - start >= need {
            self.run(start, None, out)?;
            start += need;
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// Flushes the filter at the end of the stream: after this, exactly
    /// `ceil(n_in * to / from)` samples have been emitted in total.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), ResampleError> {
        let expected = (self.total_in as u128 * self.to as u128).div_ceil(self.from as u128) as u64;
        if !self.pending.is_empty() {
            let n = self.pending.len();
            self.run(0, Some(n), out)?;
            self.pending.clear();
        }
        // Pump silence until the filter has released the whole tail.
        let mut guard = 0;
        while self.total_out < expected {
            self.run(0, Some(0), out)?;
            guard += 1;
            if guard > 10_000 {
                return Err(ResampleError::Process("flush did not converge".into()));
            }
        }
        let excess = (self.total_out - expected) as usize;
        out.truncate(out.len() - excess);
        self.total_out = expected;
        Ok(())
    }

    /// One rubato call on `pending[start..]`, with `partial` input samples when
    /// fewer than a full chunk are left.
    fn run(&mut self, start: usize, partial: Option<usize>, out: &mut Vec<f32>) -> Result<(), ResampleError> {
        let need = self.inner.input_frames_next();
        let zeros;
        let input: &[f32] = match partial {
            Some(n) if n < need => {
                // rubato reads only `n` samples but wants a buffer of the full chunk size.
                let mut z = vec![0.0; need];
                z[..n].copy_from_slice(&self.pending[start..start + n]);
                zeros = z;
                &zeros
            }
            _ => &self.pending[start..start + need],
        };
        let adapter_in =
            InterleavedSlice::new(input, 1, input.len()).map_err(|e| ResampleError::Process(e.to_string()))?;
        let frames_out = self.scratch.len();
        let mut adapter_out = InterleavedSlice::new_mut(&mut self.scratch, 1, frames_out)
            .map_err(|e| ResampleError::Process(e.to_string()))?;
        let indexing = Indexing {
            input_offset: 0,
            output_offset: 0,
            partial_len: partial,
            active_channels_mask: None,
        };
        let (_, produced) = self
            .inner
            .process_into_buffer(&adapter_in, &mut adapter_out, Some(&indexing))
            .map_err(|e| ResampleError::Process(e.to_string()))?;
        let trim = self.to_trim.min(produced);
        self.to_trim -= trim;
        out.extend_from_slice(&self.scratch[trim..produced]);
        self.total_out += (produced - trim) as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    fn resample_in_blocks(x: &[f32], from: u32, to: u32, block: usize) -> Vec<f32> {
        let mut r = StreamResampler::new(from, to, 1024).unwrap();
        let mut out = Vec::new();
        for b in x.chunks(block) {
            r.push(b, &mut out).unwrap();
        }
        r.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn output_length_is_exact_for_common_rates() {
        for &(from, n) in &[(44_100u32, 44_100usize), (48_000, 12_345), (22_050, 7), (8_000, 1000)] {
            let x = sine(440.0, from, n);
            let y = resample_in_blocks(&x, from, 16_000, 997);
            let expected = (n as u64 * 16_000).div_ceil(from as u64) as usize;
            assert_eq!(y.len(), expected, "from {from} Hz, {n} samples");
        }
    }

    #[test]
    fn block_size_does_not_change_the_result() {
        let x = sine(1000.0, 44_100, 30_000);
        let a = resample_in_blocks(&x, 44_100, 16_000, 64);
        let b = resample_in_blocks(&x, 44_100, 16_000, 30_000);
        assert_eq!(a.len(), b.len());
        let max_diff = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(max_diff < 1e-5, "max diff {max_diff}");
    }

    #[test]
    fn tone_keeps_its_phase_and_amplitude() {
        // A 1 kHz tone resampled 48 kHz -> 16 kHz must equal the same tone sampled
        // at 16 kHz: this catches an untrimmed delay (a time shift) or a gain error.
        let x = sine(1000.0, 48_000, 48_000);
        let y = resample_in_blocks(&x, 48_000, 16_000, 4096);
        let reference = sine(1000.0, 16_000, 16_000);
        // Skip the edges, where the filter sees the implicit zeros outside the signal.
        let err = y[400..15_600]
            .iter()
            .zip(&reference[400..15_600])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 2e-3, "max error {err}");
    }

    #[test]
    fn content_above_the_new_nyquist_is_removed() {
        // 10 kHz cannot exist at 16 kHz: it must be filtered, not aliased to 6 kHz.
        let x = sine(10_000.0, 48_000, 48_000);
        let y = resample_in_blocks(&x, 48_000, 16_000, 4096);
        let rms = (y[1000..15_000].iter().map(|v| v * v).sum::<f32>() / 14_000.0).sqrt();
        assert!(rms < 1e-3, "aliased rms {rms}");
    }
}
