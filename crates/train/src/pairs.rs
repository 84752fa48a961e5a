//! Contrastive training pairs, built as NeuralSampleID builds them
//! (`neuralsampleid-spec.md` §3.1) and widened for audio identification.
//!
//! From a stem set: the anchor is a subset of the stems (the "sample"); the
//! positive is the anchor with a gain change, plus the other stems, then
//! pitch-shifted (±3 st) or time-stretched (0.7–1.5). Where there are no
//! stems, the anchor is a mix excerpt and the positive is that excerpt (with
//! a gain change) mixed under other music. With some probability the positive
//! also gets noise (0–20 dB SNR), room reverb and band-limiting, so the same
//! model serves noisy audio identification (GraFPrint). Both views are then
//! cut to one 4.08 s segment at independent offsets of up to 0.25 s.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use sampleid_corpus::{Kind, Split, manifest};
use sampleid_features::{FrontendConfig, segments};
use sampleid_transform::{Rng, band_pass, gain, mix_at_ratio, pitch_shift, reverb, synthetic_ir, time_stretch};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::cache::{self, Cached};

/// How pairs are made. Defaults: the published recipe plus the audio-ID extras.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PairConfig {
    /// Samples per view (4.08 s at 16 kHz: one 128-frame segment).
    pub segment_samples: usize,
    /// Views are cut at independent offsets below this (0.25 s).
    pub max_offset_samples: usize,
    /// Gain change of the anchor material in the positive: ±dB, uniform.
    pub gain_db: f64,
    /// Pitch shift: ±semitones, uniform.
    pub pitch_semitones: f64,
    /// Time-stretch rate range.
    pub stretch: (f64, f64),
    /// Probability of pitch shift (otherwise time stretch).
    pub pitch_probability: f64,
    /// Probability of building the pair from a stem set (when there are any).
    pub stem_probability: f64,
    /// Target-to-background ratio range (dB) when a mix goes under other music.
    pub mix_tbr_db: (f64, f64),
    /// Probability of additive noise on the positive, at an SNR in `snr_db`.
    pub noise_probability: f64,
    pub snr_db: (f64, f64),
    /// Probability of room reverb on the positive.
    pub reverb_probability: f64,
    /// Probability of a telephone-like band-pass on the positive.
    pub band_pass_probability: f64,
    /// Views whose peak is below this are silent: the pair is drawn again.
    pub silence: f32,
}

impl Default for PairConfig {
    fn default() -> Self {
        Self {
            segment_samples: 65_280,
            max_offset_samples: 4_000,
            gain_db: 10.0,
            pitch_semitones: 3.0,
            stretch: (0.7, 1.5),
            pitch_probability: 0.5,
            stem_probability: 0.5,
            mix_tbr_db: (-5.0, 10.0),
            noise_probability: 0.5,
            snr_db: (0.0, 20.0),
            reverb_probability: 0.25,
            band_pass_probability: 0.1,
            silence: 1e-5,
        }
    }
}

impl PairConfig {
    /// This configuration at a difficulty in [0, 1] (curriculum): at 0 there is
    /// no pitch shift or time stretch and whole mixes go under other music only
    /// at 20–30 dB below; at 1 it is `self`. Noise, reverb and band-pass stay.
    pub fn at_difficulty(&self, d: f64) -> Self {
        let d = d.clamp(0.0, 1.0);
        let lerp = |easy: f64, hard: f64| easy + d * (hard - easy);
        Self {
            pitch_semitones: lerp(0.0, self.pitch_semitones),
            stretch: (lerp(1.0, self.stretch.0), lerp(1.0, self.stretch.1)),
            mix_tbr_db: (lerp(20.0, self.mix_tbr_db.0), lerp(30.0, self.mix_tbr_db.1)),
            ..self.clone()
        }
    }

    /// Audio-identification pairs (GraFPrint): the same whole mix, with noise,
    /// reverb and band-limiting but no pitch or tempo change and no other music.
    pub fn audio_id(&self) -> Self {
        Self {
            pitch_probability: 1.0,
            pitch_semitones: 0.0,
            stem_probability: 0.0,
            mix_tbr_db: (60.0, 60.0),
            noise_probability: 0.8,
            ..self.clone()
        }
    }
}

/// Aligned stems of one piece.
#[derive(Debug, Clone)]
pub struct StemSet {
    pub id: String,
    pub stems: Vec<Cached>,
}

/// The audio of one split, cached.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    /// Full tracks (mixes).
    pub music: Vec<(String, Cached)>,
    /// Stem sets with at least two stems.
    pub stem_sets: Vec<StemSet>,
    pub noise: Vec<Cached>,
    /// Room impulse responses (decoded).
    pub irs: Vec<Vec<f32>>,
}

impl Pool {
    /// Loads (and caches) the audio of `split` from the corpus.
    pub fn load(
        corpus: &Path,
        cache_dir: &Path,
        split: Split,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Self, TrainError> {
        let entries = manifest::read(&corpus.join("manifest.csv"))?;
        let mine: Vec<_> = entries.iter().filter(|e| e.split == split).collect();
        let wanted: Vec<(String, String)> = mine.iter().map(|e| (e.path.clone(), e.sha256.clone())).collect();
        let cached = cache::ensure(corpus, cache_dir, &wanted, progress)?;
        let mut pool = Pool::default();
        let mut sets: BTreeMap<String, Vec<Cached>> = BTreeMap::new();
        for (e, c) in mine.iter().zip(cached) {
            let Some(c) = c else { continue };
            match e.kind {
                Kind::Music => pool.music.push((e.id.clone(), c)),
                Kind::Stem if e.stem != "mix" => sets.entry(e.stem_set.clone()).or_default().push(c),
                Kind::Noise => pool.noise.push(c),
                Kind::Ir => pool.irs.push(c.read_all()?),
                _ => {}
            }
        }
        pool.stem_sets = sets
            .into_iter()
            .filter(|(_, s)| s.len() >= 2)
            .map(|(id, stems)| StemSet { id, stems })
            .collect();
        if pool.music.len() < 2 {
            return Err(TrainError::Data(format!(
                "the {split:?} split has fewer than two music tracks"
            )));
        }
        Ok(pool)
    }
}

/// A training pair before and after the front end.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Normalised log-mel segment of the anchor, `[mel][time]` (64 × 128).
    pub anchor: Vec<f32>,
    pub positive: Vec<f32>,
    /// What was done, for logs and per-transformation validation.
    pub kind: PairKind,
}

/// The main transformation of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PairKind {
    Pitch,
    Stretch,
}

/// A pair's raw views (anchor, positive) and its main transformation.
pub type AudioPair = (Vec<f32>, Vec<f32>, PairKind);

/// Makes pairs from a pool.
pub struct PairMaker<'a> {
    pub pool: &'a Pool,
    pub cfg: PairConfig,
    pub frontend: FrontendConfig,
}

fn peak(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

fn rms(x: &[f32]) -> f64 {
    sampleid_transform::power(x).sqrt()
}

fn add(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

impl PairMaker<'_> {
    /// The raw audio of one pair (anchor, positive), each `segment_samples`
    /// long; `None` when the draw hit silence (draw again).
    pub fn audio_pair(&self, rng: &mut Rng) -> Result<Option<AudioPair>, TrainError> {
        let c = &self.cfg;
        let pitch = rng.chance(c.pitch_probability);
        let rate = if pitch {
            1.0
        } else {
            rng.uniform(c.stretch.0, c.stretch.1)
        };
        // Enough source that a faster stretch still fills a whole view.
        let window = ((c.segment_samples as f64) * rate.max(1.0)).ceil() as usize + c.max_offset_samples;
        let use_stems = !self.pool.stem_sets.is_empty() && rng.chance(c.stem_probability);
        let (anchor_src, mut positive) = if use_stems {
            let set = rng.choose(&self.pool.stem_sets);
            let len = set.stems.iter().map(|s| s.len).min().unwrap_or(0);
            if len < window {
                return Ok(None);
            }
            let start = rng.below(len - window + 1);
            let stems: Vec<Vec<f32>> = set
                .stems
                .iter()
                .map(|s| s.read(start, window))
                .collect::<Result<_, _>>()?;
            // Stems that carry the music here (within 30 dB of the loudest).
            let loudest = stems.iter().map(|s| rms(s)).fold(0.0, f64::max);
            let mut live: Vec<&Vec<f32>> = stems.iter().filter(|s| rms(s) > loudest * 0.03).collect();
            if live.len() < 2 {
                return Ok(None);
            }
            rng.shuffle(&mut live);
            let extra = 1 + rng.below(live.len() - 1);
            let mut anchor = vec![0.0f32; window];
            for s in &live[extra..] {
                add(&mut anchor, s);
            }
            let mut positive = gain(&anchor, rng.uniform(-c.gain_db, c.gain_db) as f32);
            for s in &live[..extra] {
                add(&mut positive, s);
            }
            (anchor, positive)
        } else {
            let (_, track) = rng.choose(&self.pool.music);
            if track.len < window {
                return Ok(None);
            }
            let anchor = track.read(rng.below(track.len - window + 1), window)?;
            let (_, other) = rng.choose(&self.pool.music);
            let bg = other.read(rng.below(other.len.saturating_sub(window) + 1), window)?;
            let g = gain(&anchor, rng.uniform(-c.gain_db, c.gain_db) as f32);
            let positive = match mix_at_ratio(&g, &bg, 0, rng.uniform(c.mix_tbr_db.0, c.mix_tbr_db.1)) {
                Ok((y, _)) => y,
                Err(_) => return Ok(None),
            };
            (anchor, positive)
        };
        positive = if pitch {
            pitch_shift(&positive, rng.uniform(-c.pitch_semitones, c.pitch_semitones))?
        } else {
            time_stretch(&positive, rate)?
        };
        if rng.chance(c.reverb_probability) {
            let ir = if !self.pool.irs.is_empty() && rng.chance(0.5) {
                rng.choose(&self.pool.irs).clone()
            } else {
                synthetic_ir(cache::RATE, rng.uniform(0.2, 1.2), rng)
            };
            positive = reverb(&positive, &ir)?;
        }
        if rng.chance(c.noise_probability) && !self.pool.noise.is_empty() {
            let n = rng.choose(&self.pool.noise);
            let noise = n.read(rng.below(n.len.max(1)), positive.len())?;
            if let Ok((y, _)) = mix_at_ratio(&positive, &noise, 0, rng.uniform(c.snr_db.0, c.snr_db.1)) {
                positive = y;
            }
        }
        if rng.chance(c.band_pass_probability) {
            let low = rng.uniform(150.0, 500.0);
            positive = band_pass(&positive, cache::RATE, low, rng.uniform(2800.0, 4500.0))?;
        }
        let crop = |x: &[f32], rng: &mut Rng| {
            let o = rng.below(c.max_offset_samples.min(x.len().saturating_sub(c.segment_samples)) + 1);
            let mut v: Vec<f32> = x.iter().skip(o).take(c.segment_samples).copied().collect();
            v.resize(c.segment_samples, 0.0);
            v
        };
        let a = crop(&anchor_src, rng);
        let p = crop(&positive, rng);
        if peak(&a) < c.silence || peak(&p) < c.silence {
            return Ok(None);
        }
        Ok(Some((a, p, if pitch { PairKind::Pitch } else { PairKind::Stretch })))
    }

    /// One pair as encoder inputs; draws again (up to 20 times) after silence.
    pub fn pair(&self, rng: &mut Rng) -> Result<Pair, TrainError> {
        for _ in 0..20 {
            if let Some((a, p, kind)) = self.audio_pair(rng)? {
                let seg = |x: &[f32]| -> Result<Vec<f32>, TrainError> {
                    let s = segments(x, &self.frontend)?;
                    Ok(s.into_iter().next().map(|s| s.data).unwrap_or_default())
                };
                return Ok(Pair {
                    anchor: seg(&a)?,
                    positive: seg(&p)?,
                    kind,
                });
            }
        }
        Err(TrainError::Data("20 draws in a row were silent".into()))
    }

    /// `n` pairs, made in parallel; pair `i` depends only on (`seed`, `i`).
    pub fn batch(&self, seed: u64, n: usize) -> Result<Vec<Pair>, TrainError> {
        let base = Rng::new(seed);
        (0..n)
            .into_par_iter()
            .map(|i| self.pair(&mut base.fork(i as u64)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curriculum_ramps_from_easy_to_the_full_task() {
        let full = PairConfig::default();
        let easy = full.at_difficulty(0.0);
        assert_eq!(easy.pitch_semitones, 0.0);
        assert_eq!(easy.stretch, (1.0, 1.0));
        assert_eq!(easy.mix_tbr_db, (20.0, 30.0));
        assert_eq!(easy.snr_db, full.snr_db, "noise stays");
        assert_eq!(full.at_difficulty(1.0), full);
        assert_eq!(full.at_difficulty(7.0), full, "clamped");
        let half = full.at_difficulty(0.5);
        assert!((half.pitch_semitones - 1.5).abs() < 1e-12);
        assert!((half.stretch.0 - 0.85).abs() < 1e-12 && (half.stretch.1 - 1.25).abs() < 1e-12);
        let id = full.audio_id();
        assert_eq!(
            (id.pitch_probability, id.pitch_semitones, id.stem_probability),
            (1.0, 0.0, 0.0)
        );
    }
}
