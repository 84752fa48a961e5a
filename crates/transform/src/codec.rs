//! Lossy channels: MP3 encoding and decoding (LAME, then symphonia through
//! sampleid-audio), and a pass through a lower sample rate (telephone lines).

use mp3lame_encoder::{Bitrate, Builder, FlushNoGap, MonoPcm, Quality};
use sampleid_audio::{AudioConfig, decode_bytes};

use crate::TransformError;
use crate::speed::resample_ratio;

/// Samples by which a LAME-encoded, symphonia-decoded stream lags its input
/// (LAME's encoder delay of 576 plus the decoder's 529), at any rate.
pub const MP3_DELAY: usize = 1105;

fn bitrate(kbps: u32) -> Option<Bitrate> {
    Some(match kbps {
        8 => Bitrate::Kbps8,
        16 => Bitrate::Kbps16,
        24 => Bitrate::Kbps24,
        32 => Bitrate::Kbps32,
        40 => Bitrate::Kbps40,
        48 => Bitrate::Kbps48,
        64 => Bitrate::Kbps64,
        80 => Bitrate::Kbps80,
        96 => Bitrate::Kbps96,
        112 => Bitrate::Kbps112,
        128 => Bitrate::Kbps128,
        160 => Bitrate::Kbps160,
        192 => Bitrate::Kbps192,
        224 => Bitrate::Kbps224,
        256 => Bitrate::Kbps256,
        320 => Bitrate::Kbps320,
        _ => return None,
    })
}

/// Encodes `x` (mono, `sample_rate` Hz: 8, 11.025, 12, 16, 22.05, 24, 32,
/// 44.1 or 48 kHz) to a constant-bitrate MP3 of `kbps` kbit/s, as LAME
/// does at its default quality, and decodes it back. The output keeps the
/// input's length and timing (the codec delay is removed).
pub fn mp3(x: &[f32], sample_rate: u32, kbps: u32) -> Result<Vec<f32>, TransformError> {
    let param = |why: String| TransformError::Parameter(why);
    let rate = bitrate(kbps).ok_or_else(|| param(format!("{kbps} kbit/s is not an MP3 bitrate")))?;
    if ![8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000].contains(&sample_rate) {
        return Err(param(format!("{sample_rate} Hz is not an MP3 sample rate")));
    }
    if x.is_empty() {
        return Ok(Vec::new());
    }
    let lame = |e: String| param(format!("LAME: {e}"));
    let mut builder = Builder::new().ok_or_else(|| lame("cannot start the encoder".into()))?;
    builder.set_num_channels(1).map_err(|e| lame(e.to_string()))?;
    builder.set_sample_rate(sample_rate).map_err(|e| lame(e.to_string()))?;
    builder
        .set_output_sample_rate(std::num::NonZeroU32::new(sample_rate))
        .map_err(|e| lame(e.to_string()))?;
    builder
        .set_mode(mp3lame_encoder::Mode::Mono)
        .map_err(|e| lame(e.to_string()))?;
    builder.set_brate(rate).map_err(|e| lame(e.to_string()))?;
    builder.set_quality(Quality::Good).map_err(|e| lame(e.to_string()))?;
    // No Xing/LAME frame: the decoder then sees plain frames and a fixed delay.
    builder.set_to_write_vbr_tag(false).map_err(|e| lame(e.to_string()))?;
    let mut encoder = builder.build().map_err(|e| lame(e.to_string()))?;
    // Silence after the end so the decoder returns every input sample after the delay.
    let mut input = x.to_vec();
    input.extend(std::iter::repeat_n(0.0, MP3_DELAY + 1152));
    let mut bytes = Vec::new();
    for chunk in input.chunks(8192) {
        bytes.reserve(mp3lame_encoder::max_required_buffer_size(chunk.len()));
        encoder
            .encode_to_vec(MonoPcm(chunk), &mut bytes)
            .map_err(|e| lame(e.to_string()))?;
    }
    bytes.reserve(7200);
    encoder
        .flush_to_vec::<FlushNoGap>(&mut bytes)
        .map_err(|e| lame(e.to_string()))?;
    let cfg = AudioConfig {
        sample_rate,
        ..AudioConfig::default()
    };
    let decoded = decode_bytes(bytes, "mp3 round trip", Some("mp3"), &cfg).map_err(|e| TransformError::Resource {
        id: format!("mp3:{kbps}"),
        reason: e.to_string(),
    })?;
    let mut y: Vec<f32> = decoded.samples.into_iter().skip(MP3_DELAY).take(x.len()).collect();
    y.resize(x.len(), 0.0);
    Ok(y)
}

/// Passes `x` through a channel sampled at `rate_hz` (below `sample_rate`):
/// resampled down (band-limited to `rate_hz / 2`) and back up. Length is
/// kept, timing within a few samples (the sinc resampler's rounding).
pub fn downsample(x: &[f32], sample_rate: u32, rate_hz: u32) -> Result<Vec<f32>, TransformError> {
    if rate_hz == 0 || rate_hz > sample_rate {
        return Err(TransformError::Parameter(format!(
            "a channel rate of {rate_hz} Hz must be in 1..={sample_rate} Hz"
        )));
    }
    if rate_hz == sample_rate || x.is_empty() {
        return Ok(x.to_vec());
    }
    let ratio = rate_hz as f64 / sample_rate as f64;
    let low = resample_ratio(x, ratio)?;
    let mut y = resample_ratio(&low, 1.0 / ratio)?;
    y.resize(x.len(), 0.0);
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test signal: a few tones plus a click train, so that lags are unambiguous.
    fn music(n: usize, sr: f64) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f64 / sr;
                let tones = 0.2 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                    + 0.15 * (2.0 * std::f64::consts::PI * 1234.0 * t).sin()
                    + 0.1 * (2.0 * std::f64::consts::PI * 2900.0 * t).sin();
                let env = if (i / 1600) % 3 == 0 { 1.0 } else { 0.3 };
                (tones * env) as f32
            })
            .collect()
    }

    /// The lag (−max..=max) at which `y` best matches `x`, by correlation
    /// (`max` below 2000).
    fn lag(x: &[f32], y: &[f32], max: i64) -> i64 {
        let corr = |l: i64| -> f64 {
            let inner = &x[2000..x.len() - 2000];
            let shifted = &y[(2000 + l) as usize..];
            inner.iter().zip(shifted).map(|(a, b)| *a as f64 * *b as f64).sum()
        };
        (-max..=max).max_by(|&a, &b| corr(a).total_cmp(&corr(b))).unwrap()
    }

    fn snr_db(x: &[f32], y: &[f32]) -> f64 {
        let (mut s, mut e) = (0.0, 0.0);
        for (a, b) in x.iter().zip(y).skip(2000).take(x.len() - 4000) {
            s += (*a as f64).powi(2);
            e += (*a as f64 - *b as f64).powi(2);
        }
        10.0 * (s / e).log10()
    }

    #[test]
    fn mp3_round_trip_keeps_length_and_timing() {
        let x = music(16_000 * 3, 16_000.0);
        let y = mp3(&x, 16_000, 32).unwrap();
        assert_eq!(y.len(), x.len());
        assert_eq!(lag(&x, &y, 1500), 0);
        let snr = snr_db(&x, &y);
        assert!(snr > 5.0, "SNR {snr:.1} dB");
        assert!(mp3(&x, 16_000, 33).is_err());
        assert!(mp3(&x, 15_000, 32).is_err());
        assert!(mp3(&[], 16_000, 32).unwrap().is_empty());
    }

    #[test]
    fn downsampling_band_limits_and_keeps_timing() {
        let sr = 16_000.0;
        let x = music(16_000 * 2, sr);
        let y = downsample(&x, 16_000, 8_000).unwrap();
        assert_eq!(y.len(), x.len());
        let noise = crate::white_noise(16_000, &mut crate::Rng::new(3));
        // rubato's sinc resampler leaves a lead of about 3 samples (0.2 ms) over the two passes.
        let l = lag(&noise, &downsample(&noise, 16_000, 8_000).unwrap(), 200);
        assert!(l.abs() <= 4, "lag {l}");
        // Everything in the signal is below 4 kHz: it passes almost unchanged (once realigned).
        let shifted: Vec<f32> = (0..x.len())
            .map(|i| y.get((i as i64 + l).max(0) as usize).copied().unwrap_or(0.0))
            .collect();
        let snr = snr_db(&x, &shifted);
        assert!(snr > 10.0, "SNR {snr:.1} dB");
        // A 6 kHz tone is removed.
        let hi: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f64::consts::PI * 6000.0 * i as f64 / sr).sin() as f32)
            .collect();
        let z = downsample(&hi, 16_000, 8_000).unwrap();
        let p = |v: &[f32]| v[2000..14_000].iter().map(|s| (*s as f64).powi(2)).sum::<f64>();
        assert!(p(&z) < 1e-3 * p(&hi), "{} vs {}", p(&z), p(&hi));
        assert!(downsample(&x, 16_000, 20_000).is_err());
    }
}
