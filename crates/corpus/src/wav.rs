//! 16 kHz mono WAV files written and measured by the corpus builder.

use std::path::Path;

use crate::CorpusError;

/// Writes 16-bit PCM mono (samples clamped to [-1, 1]) atomically.
pub fn write_mono16(path: &Path, samples: &[f32], sample_rate: u32) -> Result<(), CorpusError> {
    let tmp = path.with_extension("wav.part");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let err = |e: hound::Error| CorpusError::io(path, std::io::Error::other(e.to_string()));
    let mut w = hound::WavWriter::create(&tmp, spec).map_err(err)?;
    for &s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)
            .map_err(err)?;
    }
    w.finalize().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| CorpusError::io(path, e))
}

/// Mean square of a 16-bit WAV (full scale = 1).
pub fn mean_square(path: &Path) -> Result<f64, CorpusError> {
    let err = |e: hound::Error| CorpusError::io(path, std::io::Error::other(e.to_string()));
    let mut r = hound::WavReader::open(path).map_err(err)?;
    let (mut sum, mut n) = (0.0f64, 0u64);
    for s in r.samples::<i16>() {
        let v = s.map_err(err)? as f64 / 32768.0;
        sum += v * v;
        n += 1;
    }
    Ok(if n == 0 { 0.0 } else { sum / n as f64 })
}
