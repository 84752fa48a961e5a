//! 16 kHz mono WAV files written and measured by the corpus builder.

use std::path::Path;

use sampleid_fsio::AtomicFile;

use crate::CorpusError;

/// Writes 16-bit PCM mono (samples clamped to [-1, 1]) atomically.
pub fn write_mono16(path: &Path, samples: &[f32], sample_rate: u32) -> Result<(), CorpusError> {
    let mut file = AtomicFile::create(path).map_err(|e| CorpusError::io(path, e))?;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let err = |e: hound::Error| CorpusError::io(path, std::io::Error::other(e.to_string()));
    let mut w = hound::WavWriter::new(&mut file, spec).map_err(err)?;
    for &s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)
            .map_err(err)?;
    }
    w.finalize().map_err(err)?;
    file.commit().map_err(|e| CorpusError::io(path, e))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_clamped_mono_wav_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mix.wav");
        write_mono16(&p, &[0.5, -0.5, 2.0, -2.0], 16_000).unwrap();
        let r = hound::WavReader::open(&p).unwrap();
        assert_eq!((r.spec().channels, r.spec().sample_rate, r.len()), (1, 16_000, 4));
        let ms = mean_square(&p).unwrap();
        assert!((ms - (0.25 + 0.25 + 1.0 + 1.0) / 4.0).abs() < 1e-3, "{ms}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary left");
    }
}
