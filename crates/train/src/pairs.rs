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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rayon::prelude::*;
use sampleid_corpus::{Kind, Split, manifest};
use sampleid_features::{FrontendConfig, segments};
use sampleid_transform::{Rng, band_pass, gain, mix_at_ratio, pitch_shift, reverb, synthetic_ir, time_stretch};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::cache::{self, Cached};
use crate::warp::{self, Warp};

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
    /// Where pitch shift and time stretch happen (see [`Augment`]).
    pub augment: Augment,
    /// Probability that the positive's pitch or tempo changes at all (the
    /// published recipe: always). Samples are often used at their own pitch
    /// and tempo, under other music.
    pub warp_probability: f64,
    /// Probability that all the pairs of a batch come from one style (the
    /// corpus's weak `style` label): the other pairs' keys are then hard
    /// negatives, music of the same kind.
    pub same_style_probability: f64,
    /// Share of pairs that are audio-identification pairs ([`Self::audio_id`]).
    pub audio_id_probability: f64,
}

/// Where the positive's pitch shift and time stretch are applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Augment {
    /// A phase vocoder on the audio, before reverb, noise and band-pass (the
    /// published recipe).
    Audio,
    /// Resampling of the power spectrogram ([`crate::warp`]) after reverb,
    /// noise and band-pass: pairs 7.6× cheaper, and no worse on validation.
    #[default]
    Spectrogram,
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
            // Measured (docs/training.md): 400 steps of the no-graph network,
            // validation (vocoder pairs) 21.9 % with the spectrogram warp
            // against 17.0 % with the vocoder, at 0.22 s a step against 0.71 s.
            augment: Augment::Spectrogram,
            warp_probability: 1.0,
            same_style_probability: 0.0,
            audio_id_probability: 0.0,
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
            audio_id_probability: 0.0,
            warp_probability: 0.0,
            ..self.clone()
        }
    }

    /// Validation pairs of music mixed under other music at `tbr_db`, with a
    /// pitch or tempo change or without: no stems, noise, reverb or band-pass,
    /// and the vocoder, whatever the recipe says (a fixed yardstick).
    pub fn mixed(&self, tbr_db: f64, warped: bool) -> Self {
        Self {
            stem_probability: 0.0,
            mix_tbr_db: (tbr_db, tbr_db),
            noise_probability: 0.0,
            reverb_probability: 0.0,
            band_pass_probability: 0.0,
            warp_probability: if warped { 1.0 } else { 0.0 },
            augment: Augment::Audio,
            audio_id_probability: 0.0,
            same_style_probability: 0.0,
            segment_samples: self.segment_samples,
            max_offset_samples: self.max_offset_samples,
            ..Self::default()
        }
    }

    /// Checks that the settings describe pairs that can be made.
    pub fn validate(&self) -> Result<(), String> {
        let probabilities = [
            ("pitch_probability", self.pitch_probability),
            ("stem_probability", self.stem_probability),
            ("noise_probability", self.noise_probability),
            ("reverb_probability", self.reverb_probability),
            ("band_pass_probability", self.band_pass_probability),
            ("warp_probability", self.warp_probability),
            ("same_style_probability", self.same_style_probability),
            ("audio_id_probability", self.audio_id_probability),
        ];
        for (name, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("pairs.{name} must be in [0, 1], not {p}"));
            }
        }
        if !(self.stretch.0 > 0.0 && self.stretch.0 <= self.stretch.1) {
            return Err(format!("pairs.stretch {:?} must be 0 < low ≤ high", self.stretch));
        }
        if self.segment_samples == 0 {
            return Err("pairs.segment_samples must be > 0".into());
        }
        Ok(())
    }
}

/// Aligned stems of one piece.
#[derive(Debug, Clone)]
pub struct StemSet {
    pub id: String,
    pub stems: Vec<Cached>,
    /// The corpus's style label of the set.
    pub style: String,
}

/// The audio of one split, cached.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    /// Full tracks (mixes).
    pub music: Vec<(String, Cached)>,
    /// The style label of each of `music` (same order; may be empty).
    pub music_styles: Vec<String>,
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
        let mut sets: BTreeMap<String, (String, Vec<Cached>)> = BTreeMap::new();
        for (e, c) in mine.iter().zip(cached) {
            let Some(c) = c else { continue };
            match e.kind {
                Kind::Music => {
                    pool.music.push((e.id.clone(), c));
                    pool.music_styles.push(e.style.clone());
                }
                Kind::Stem if e.stem != "mix" => {
                    let set = sets.entry(e.stem_set.clone()).or_default();
                    set.0 = e.style.clone();
                    set.1.push(c);
                }
                Kind::Noise => pool.noise.push(c),
                Kind::Ir => pool.irs.push(c.read_all()?),
                _ => {}
            }
        }
        pool.stem_sets = sets
            .into_iter()
            .filter(|(_, (_, s))| s.len() >= 2)
            .map(|(id, (style, stems))| StemSet { id, stems, style })
            .collect();
        if pool.music.len() < 2 {
            return Err(TrainError::Data(format!(
                "the {split:?} split has fewer than two music tracks"
            )));
        }
        Ok(pool)
    }

    /// The part of the pool of one style, for batches of hard negatives:
    /// its tracks (when there are at least `min_tracks`, else all tracks) and
    /// its stem sets (when there are any, else all). Noise and rooms stay.
    pub fn of_style(&self, style: &str, min_tracks: usize) -> Pool {
        let music: Vec<(String, Cached)> = self
            .music
            .iter()
            .zip(&self.music_styles)
            .filter(|(_, s)| s.as_str() == style)
            .map(|(m, _)| m.clone())
            .collect();
        let (music, music_styles) = if music.len() >= min_tracks.max(2) {
            let n = music.len();
            (music, vec![style.to_string(); n])
        } else {
            (self.music.clone(), self.music_styles.clone())
        };
        let sets: Vec<StemSet> = self.stem_sets.iter().filter(|s| s.style == style).cloned().collect();
        Pool {
            music,
            music_styles,
            stem_sets: if sets.is_empty() { self.stem_sets.clone() } else { sets },
            noise: self.noise.clone(),
            irs: self.irs.clone(),
        }
    }

    /// Every style with at least `min` tracks or one stem set, sorted.
    pub fn styles(&self, min: usize) -> Vec<String> {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &self.music_styles {
            *count.entry(s).or_default() += 1;
        }
        for s in &self.stem_sets {
            *count.entry(&s.style).or_default() += min;
        }
        count
            .into_iter()
            .filter(|(s, n)| !s.is_empty() && *n >= min)
            .map(|(s, _)| s.to_string())
            .collect()
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
    /// Neither pitch nor tempo changed.
    Plain,
}

/// A pair's raw views (anchor, positive) and its main transformation.
pub type AudioPair = (Vec<f32>, Vec<f32>, PairKind);

/// A pair's views before the front end.
struct Views {
    anchor: Vec<f32>,
    /// Cut to the view, or (with a warp) the source of the view.
    positive: Vec<f32>,
    warp: Option<Warp>,
    kind: PairKind,
}

/// CPU time spent in each part of pair making, summed over threads (for
/// `metrics.jsonl`: where a training step's time goes).
#[derive(Debug, Default)]
pub struct PairTimes {
    nanos: [AtomicU64; PairPhase::ALL.len()],
}

/// The parts of making a pair that [`PairTimes`] tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairPhase {
    /// Reading the cache, choosing stems, gain and mixing under other music.
    Source,
    /// Pitch shift of the positive.
    Pitch,
    /// Time stretch of the positive.
    Stretch,
    /// Reverb, noise and band-pass of the positive.
    Degrade,
    /// The log-mel front end of both views.
    Frontend,
    /// Pitch shift and time stretch on the spectrogram, with the positive's
    /// front end ([`Augment::Spectrogram`]).
    Warp,
}

impl PairPhase {
    /// Every phase, in pipeline order.
    pub const ALL: [PairPhase; 6] = [
        Self::Source,
        Self::Pitch,
        Self::Stretch,
        Self::Degrade,
        Self::Frontend,
        Self::Warp,
    ];

    /// The phase's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Pitch => "pitch",
            Self::Stretch => "stretch",
            Self::Degrade => "degrade",
            Self::Frontend => "frontend",
            Self::Warp => "warp",
        }
    }
}

impl PairTimes {
    fn add(&self, phase: PairPhase, since: Instant) -> Instant {
        let now = Instant::now();
        self.nanos[phase as usize].fetch_add((now - since).as_nanos() as u64, Ordering::Relaxed);
        now
    }

    /// Seconds per phase so far, by name.
    pub fn seconds(&self) -> BTreeMap<String, f64> {
        PairPhase::ALL
            .iter()
            .map(|&p| {
                (
                    p.name().to_string(),
                    self.nanos[p as usize].load(Ordering::Relaxed) as f64 * 1e-9,
                )
            })
            .collect()
    }
}

/// Fewest tracks (or one stem set) for a style to make a batch of its own.
const MIN_STYLE_TRACKS: usize = 8;

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
    /// Pitch and tempo are always changed on the audio here (whatever
    /// `cfg.augment` says), so that both views can be listened to.
    pub fn audio_pair(&self, rng: &mut Rng) -> Result<Option<AudioPair>, TrainError> {
        let maker = PairMaker {
            pool: self.pool,
            cfg: PairConfig {
                augment: Augment::Audio,
                ..self.cfg.clone()
            },
            frontend: self.frontend.clone(),
        };
        Ok(maker
            .views(&maker.cfg, rng, &PairTimes::default())?
            .map(|v| (v.anchor, v.positive, v.kind)))
    }

    /// The two views of a pair: audio, with the positive's warp still to
    /// apply when `cfg.augment` is [`Augment::Spectrogram`].
    fn views(&self, cfg: &PairConfig, rng: &mut Rng, times: &PairTimes) -> Result<Option<Views>, TrainError> {
        let mut t = Instant::now();
        let c = cfg;
        let warped = c.warp_probability >= 1.0 || rng.chance(c.warp_probability);
        let pitch = rng.chance(c.pitch_probability);
        let rate = if pitch || !warped {
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
        t = times.add(PairPhase::Source, t);
        let warp = Warp {
            rate,
            semitones: if pitch && warped {
                rng.uniform(-c.pitch_semitones, c.pitch_semitones)
            } else {
                0.0
            },
        };
        if c.augment == Augment::Audio && warped {
            positive = if pitch {
                let y = pitch_shift(&positive, warp.semitones)?;
                t = times.add(PairPhase::Pitch, t);
                y
            } else {
                let y = time_stretch(&positive, rate)?;
                t = times.add(PairPhase::Stretch, t);
                y
            };
        }
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
        let (p, warp) = match c.augment {
            Augment::Audio => (crop(&positive, rng), None),
            Augment::Spectrogram => {
                // The view starts `o` samples into the stretched positive,
                // which is `o · rate` samples into the source.
                let room = ((positive.len() as f64 / rate) as usize).saturating_sub(c.segment_samples);
                let o = rng.below(c.max_offset_samples.min(room) + 1);
                let start = ((o as f64 * rate).round() as usize).min(positive.len());
                let len = warp::source_samples(warp, c.segment_samples, &self.frontend);
                let mut v: Vec<f32> = positive[start..].iter().take(len).copied().collect();
                v.resize(len, 0.0);
                (v, warped.then_some(warp))
            }
        };
        times.add(PairPhase::Degrade, t);
        if peak(&a) < c.silence || peak(&p) < c.silence {
            return Ok(None);
        }
        // An unwarped spectrogram-mode view is still longer than a segment.
        let p = if warp.is_none() && p.len() > c.segment_samples {
            p[..c.segment_samples].to_vec()
        } else {
            p
        };
        Ok(Some(Views {
            anchor: a,
            positive: p,
            warp,
            kind: if !warped {
                PairKind::Plain
            } else if pitch {
                PairKind::Pitch
            } else {
                PairKind::Stretch
            },
        }))
    }

    /// One pair as encoder inputs; draws again (up to 20 times) after silence.
    pub fn pair(&self, rng: &mut Rng) -> Result<Pair, TrainError> {
        self.pair_timed(rng, &PairTimes::default())
    }

    fn pair_timed(&self, rng: &mut Rng, times: &PairTimes) -> Result<Pair, TrainError> {
        let audio_id;
        let cfg = if self.cfg.audio_id_probability > 0.0 && rng.chance(self.cfg.audio_id_probability) {
            audio_id = self.cfg.audio_id();
            &audio_id
        } else {
            &self.cfg
        };
        for _ in 0..20 {
            if let Some(views) = self.views(cfg, rng, times)? {
                let t = Instant::now();
                let seg = |x: &[f32]| -> Result<Vec<f32>, TrainError> {
                    let s = segments(x, &self.frontend)?;
                    Ok(s.into_iter().next().map(|s| s.data).unwrap_or_default())
                };
                let anchor = seg(&views.anchor)?;
                let t = times.add(PairPhase::Frontend, t);
                let positive = match views.warp {
                    Some(w) => {
                        let p = warp::warped_segment(&views.positive, w, &self.frontend)?;
                        times.add(PairPhase::Warp, t);
                        p
                    }
                    None => {
                        let p = seg(&views.positive)?;
                        times.add(PairPhase::Frontend, t);
                        p
                    }
                };
                let pair = Pair {
                    anchor,
                    positive,
                    kind: views.kind,
                };
                return Ok(pair);
            }
        }
        Err(TrainError::Data("20 draws in a row were silent".into()))
    }

    /// `n` pairs, made in parallel; pair `i` depends only on (`seed`, `i`).
    pub fn batch(&self, seed: u64, n: usize) -> Result<Vec<Pair>, TrainError> {
        self.batch_timed(seed, n, &PairTimes::default())
    }

    /// [`batch`](Self::batch), adding the CPU time of each part to `times`.
    /// With `same_style_probability`, the whole batch may come from one style.
    pub fn batch_timed(&self, seed: u64, n: usize, times: &PairTimes) -> Result<Vec<Pair>, TrainError> {
        let base = Rng::new(seed);
        let mut draw = base.fork(u64::MAX);
        let (narrowed_pool, narrowed);
        let maker = if self.cfg.same_style_probability > 0.0 && draw.chance(self.cfg.same_style_probability) {
            let styles = self.pool.styles(MIN_STYLE_TRACKS);
            if styles.is_empty() {
                self
            } else {
                let style: &String = draw.choose(&styles);
                narrowed_pool = self.pool.of_style(style, MIN_STYLE_TRACKS);
                narrowed = PairMaker {
                    pool: &narrowed_pool,
                    cfg: self.cfg.clone(),
                    frontend: self.frontend.clone(),
                };
                &narrowed
            }
        } else {
            self
        };
        (0..n)
            .into_par_iter()
            .map(|i| maker.pair_timed(&mut base.fork(i as u64), times))
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
