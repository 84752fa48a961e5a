//! Audio transformations for training pairs and benchmark queries: gain, pitch
//! shift, time stretch, speed change, offset, cropping, additive noise at an
//! exact SNR, room reverb, band-pass/telephone, a pass through a lower sample
//! rate, MP3 encoding, and mixing under other music at an exact
//! target-to-background ratio. Deterministic for a given seed.
//!
//! Every transformation is a [`Transform`] value (serialisable, so a benchmark
//! records exactly what was done to each query) that also maps times: a
//! moment `t` of the input is at [`Transform::map_time`]`(t)` in the output.
//! All functions work on mono `f32` signals.

pub mod codec;
pub mod level;
pub mod rng;
pub mod room;
pub mod speed;
pub mod vocoder;

use serde::{Deserialize, Serialize};

pub use codec::{downsample, mp3};
pub use level::{gain, mix_at_ratio, power, ratio_db};
pub use rng::Rng;
pub use room::{band_pass, reverb, synthetic_ir, telephone};
pub use speed::{resample_ratio, speed};
pub use vocoder::{pitch_shift, time_stretch};

/// Why a transformation could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// A parameter outside its valid range.
    #[error("invalid transformation parameter: {0}")]
    Parameter(String),
    /// A signal that must carry energy is silent.
    #[error("the {0} is silent")]
    Silent(&'static str),
    /// An external signal (noise, music, impulse response) could not be loaded.
    #[error("cannot load {id}: {reason}")]
    Resource { id: String, reason: String },
}

/// One transformation with all its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Transform {
    /// Gain in dB.
    Gain { db: f64 },
    /// Pitch shift in semitones, tempo kept.
    PitchShift { semitones: f64 },
    /// Tempo change with the pitch kept; `rate` > 1 is faster (shorter).
    TimeStretch { rate: f64 },
    /// Tempo and pitch together (turntable, sampler); `factor` > 1 is faster and higher.
    Speed { factor: f64 },
    /// Shift in time: `seconds` > 0 prepends silence, < 0 drops the start.
    Offset { seconds: f64 },
    /// Keeps `duration_s` seconds from `start_s` (padding with silence past the end).
    Crop { start_s: f64, duration_s: f64 },
    /// Adds the noise `source` (looped, from `source_start_s`) at `snr_db`.
    Noise {
        snr_db: f64,
        source: String,
        source_start_s: f64,
    },
    /// Convolves with the room impulse response `ir`.
    Reverb { ir: String },
    /// Band-pass filter (4th-order Butterworth edges).
    BandPass { low_hz: f64, high_hz: f64 },
    /// Through a channel sampled at `rate_hz` and back (8000: a telephone line).
    Downsample { rate_hz: u32 },
    /// Encoded to a constant-bitrate MP3 of `kbps` kbit/s and decoded back.
    Mp3 { kbps: u32 },
    /// Mixes the music `source` (looped, from `source_start_s`) under the
    /// signal at a target-to-background ratio of `tbr_db`.
    Mix {
        tbr_db: f64,
        source: String,
        source_start_s: f64,
    },
}

/// Provides the external signals that [`Transform::Noise`], [`Transform::Mix`]
/// and [`Transform::Reverb`] name, as mono samples at the working rate.
pub trait Resources {
    /// Loads the signal called `id`.
    fn load(&mut self, id: &str) -> Result<Vec<f32>, TransformError>;
}

/// Resources made on the fly: `white:SEED`, `pink:SEED` (60 s of noise) and
/// `room:RT60:SEED` (a synthetic impulse response). Anything else is refused.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// Sample rate of the generated signals.
    pub sample_rate: u32,
}

impl Resources for Synthetic {
    fn load(&mut self, id: &str) -> Result<Vec<f32>, TransformError> {
        synthetic(id, self.sample_rate).unwrap_or_else(|| {
            Err(TransformError::Resource {
                id: id.to_string(),
                reason: "not a synthetic signal (white:SEED, pink:SEED, room:RT60:SEED)".into(),
            })
        })
    }
}

/// Generates a synthetic signal named by `id`, or `None` if `id` names none.
pub fn synthetic(id: &str, sample_rate: u32) -> Option<Result<Vec<f32>, TransformError>> {
    let parts: Vec<&str> = id.split(':').collect();
    let bad = |why: &str| {
        Some(Err(TransformError::Resource {
            id: id.to_string(),
            reason: why.to_string(),
        }))
    };
    let n = 60 * sample_rate as usize;
    match parts.as_slice() {
        ["white", seed] => match seed.parse() {
            Ok(s) => Some(Ok(white_noise(n, &mut Rng::new(s)))),
            Err(_) => bad("seed must be an integer"),
        },
        ["pink", seed] => match seed.parse() {
            Ok(s) => Some(Ok(pink_noise(n, &mut Rng::new(s)))),
            Err(_) => bad("seed must be an integer"),
        },
        ["room", rt60, seed] => match (rt60.parse::<f64>(), seed.parse()) {
            (Ok(t), Ok(s)) if t > 0.0 && t < 10.0 => Some(Ok(synthetic_ir(sample_rate, t, &mut Rng::new(s)))),
            _ => bad("expected room:RT60_SECONDS:SEED"),
        },
        _ => None,
    }
}

/// Gaussian white noise of unit variance.
pub fn white_noise(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32).collect()
}

/// Pink (1/f) noise by Paul Kellet's filter of white noise.
pub fn pink_noise(n: usize, rng: &mut Rng) -> Vec<f32> {
    let mut b = [0.0f64; 7];
    (0..n)
        .map(|_| {
            let w = rng.normal();
            b[0] = 0.99886 * b[0] + w * 0.055_517_9;
            b[1] = 0.99332 * b[1] + w * 0.075_075_9;
            b[2] = 0.96900 * b[2] + w * 0.153_852;
            b[3] = 0.86650 * b[3] + w * 0.310_485_6;
            b[4] = 0.55000 * b[4] + w * 0.532_952_2;
            b[5] = -0.7616 * b[5] - w * 0.016_898;
            let out = b.iter().sum::<f64>() + w * 0.5362;
            b[6] = w * 0.115_926;
            (out * 0.11) as f32
        })
        .collect()
}

impl Transform {
    /// Applies the transformation to `x` (mono, `sample_rate` Hz).
    pub fn apply(&self, x: &[f32], sample_rate: u32, res: &mut dyn Resources) -> Result<Vec<f32>, TransformError> {
        let sr = sample_rate as f64;
        match self {
            Transform::Gain { db } => Ok(gain(x, *db as f32)),
            Transform::PitchShift { semitones } => pitch_shift(x, *semitones),
            Transform::TimeStretch { rate } => time_stretch(x, *rate),
            Transform::Speed { factor } => speed(x, *factor),
            Transform::Offset { seconds } => {
                let n = (seconds.abs() * sr).round() as usize;
                Ok(if *seconds >= 0.0 {
                    let mut y = vec![0.0; n];
                    y.extend_from_slice(x);
                    y
                } else {
                    x[n.min(x.len())..].to_vec()
                })
            }
            Transform::Crop { start_s, duration_s } => {
                if *start_s < 0.0 || *duration_s < 0.0 {
                    return Err(TransformError::Parameter("crop times must be ≥ 0".into()));
                }
                let start = (start_s * sr).round() as usize;
                let len = (duration_s * sr).round() as usize;
                let mut y: Vec<f32> = x.iter().skip(start).take(len).copied().collect();
                y.resize(len, 0.0);
                Ok(y)
            }
            Transform::Noise {
                snr_db,
                source,
                source_start_s,
            } => {
                let noise = res.load(source)?;
                let start = (source_start_s * sr).round() as usize;
                mix_at_ratio(x, &noise, start, *snr_db).map(|(y, _)| y)
            }
            Transform::Reverb { ir } => reverb(x, &res.load(ir)?),
            Transform::BandPass { low_hz, high_hz } => band_pass(x, sample_rate, *low_hz, *high_hz),
            Transform::Downsample { rate_hz } => downsample(x, sample_rate, *rate_hz),
            Transform::Mp3 { kbps } => mp3(x, sample_rate, *kbps),
            Transform::Mix {
                tbr_db,
                source,
                source_start_s,
            } => {
                let music = res.load(source)?;
                let start = (source_start_s * sr).round() as usize;
                mix_at_ratio(x, &music, start, *tbr_db).map(|(y, _)| y)
            }
        }
    }

    /// Where a moment `t` (seconds) of the input is in the output.
    pub fn map_time(&self, t: f64) -> f64 {
        match self {
            Transform::TimeStretch { rate } => t / rate,
            Transform::Speed { factor } => t / factor,
            Transform::Offset { seconds } => t + seconds,
            Transform::Crop { start_s, .. } => t - start_s,
            _ => t,
        }
    }

    /// Factor by which durations change (output / input).
    pub fn time_scale(&self) -> f64 {
        match self {
            Transform::TimeStretch { rate } => 1.0 / rate,
            Transform::Speed { factor } => 1.0 / factor,
            _ => 1.0,
        }
    }

    /// Pitch change in semitones.
    pub fn semitones(&self) -> f64 {
        match self {
            Transform::PitchShift { semitones } => *semitones,
            Transform::Speed { factor } => 12.0 * factor.log2(),
            _ => 0.0,
        }
    }
}

/// Transformations applied in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Chain(pub Vec<Transform>);

impl Chain {
    /// Applies every transformation in turn.
    pub fn apply(&self, x: &[f32], sample_rate: u32, res: &mut dyn Resources) -> Result<Vec<f32>, TransformError> {
        let mut y = x.to_vec();
        for t in &self.0 {
            y = t.apply(&y, sample_rate, res)?;
        }
        Ok(y)
    }

    /// Where a moment `t` of the input is in the output.
    pub fn map_time(&self, t: f64) -> f64 {
        self.0.iter().fold(t, |t, tr| tr.map_time(t))
    }

    /// Output duration / input duration of the timeline (1 without tempo changes).
    pub fn time_scale(&self) -> f64 {
        self.0.iter().map(Transform::time_scale).product()
    }

    /// Total pitch change in semitones.
    pub fn semitones(&self) -> f64 {
        self.0.iter().map(Transform::semitones).sum()
    }
}
