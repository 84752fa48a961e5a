//! Places where a reference plays the same audio twice.
//!
//! Game and tracker music loops: a 10 s excerpt of a reference is often
//! found, sample for sample, at another place of the same reference, and no
//! system can tell from the audio which of the places the clip was cut
//! from. [`RepeatCheck::same_audio`] says whether the reference's own audio
//! at two places is the same (the best normalised cross-correlation of its
//! waveforms, within ±[`REPEAT_LAG_S`] of the second place, at least
//! [`SAME_AUDIO_NCC`]), so that the scorer can count an answer that locates
//! the clip at such a repetition ([`crate::score::Cell::located_repeat`]) beside the
//! strict ±1 s figure.
//!
//! Measured on bench-users50 (the landmark stage's 52 answers that named
//! the right song more than 1 s away from the truth): 27 of the places
//! answered correlate with the truth's at 0.95 or more (21 at 0.99 or
//! more), the others at 0.08–0.94; of 52 places picked at random in the same
//! songs, 3 are exact repeats too (these songs loop) and the others
//! correlate at 0.02–0.93 (`docs/landmarks.md`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use realfft::RealFftPlanner;
use sampleid_audio::AudioConfig;

use crate::spec::Benchmark;

/// Smallest normalised cross-correlation of two places of a reference that
/// counts as the same audio.
pub const SAME_AUDIO_NCC: f64 = 0.95;

/// How far (s) from the second place the best alignment is searched.
pub const REPEAT_LAG_S: f64 = 1.0;

/// Places shorter than this (s) are never compared: too little audio to say.
const MIN_LENGTH_S: f64 = 1.0;

/// Decodes a benchmark's references on demand (each once) and compares
/// places in them.
pub struct RepeatCheck {
    dir: PathBuf,
    paths: HashMap<String, String>,
    audio: AudioConfig,
    decoded: Mutex<HashMap<String, Option<Arc<Vec<f32>>>>>,
}

impl RepeatCheck {
    /// For the references of `bench`, stored under `bench_dir`.
    pub fn new(bench_dir: &Path, bench: &Benchmark) -> Self {
        Self {
            dir: bench_dir.to_path_buf(),
            paths: bench
                .references
                .iter()
                .map(|r| (r.id.clone(), r.path.clone()))
                .collect(),
            audio: AudioConfig {
                sample_rate: bench.sample_rate,
                ..AudioConfig::default()
            },
            decoded: Mutex::new(HashMap::new()),
        }
    }

    fn samples(&self, reference: &str) -> Option<Arc<Vec<f32>>> {
        let mut cache = self.decoded.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(reference.to_string())
            .or_insert_with(|| {
                let path = self.dir.join(self.paths.get(reference)?);
                match sampleid_audio::decode_file(&path, &self.audio) {
                    Ok(d) => Some(Arc::new(d.samples)),
                    Err(e) => {
                        eprintln!("warning: cannot decode {} to compare places: {e}", path.display());
                        None
                    }
                }
            })
            .clone()
    }

    /// Whether reference `reference` plays the same audio for `length_s`
    /// from `a_s` as from about `b_s` (see the module docs). False when the
    /// reference cannot be read or either place falls outside it.
    pub fn same_audio(&self, reference: &str, a_s: f64, b_s: f64, length_s: f64) -> bool {
        let Some(x) = self.samples(reference) else {
            return false;
        };
        let rate = f64::from(self.audio.sample_rate);
        let at = |s: f64| (s.max(0.0) * rate).round() as usize;
        let len = at(length_s);
        let a0 = at(a_s);
        if length_s < MIN_LENGTH_S || a0 + len > x.len() {
            return false;
        }
        let lag = at(REPEAT_LAG_S);
        let b0 = at(b_s).saturating_sub(lag);
        let b1 = (at(b_s) + len + lag).min(x.len());
        if b1 < b0 + len {
            return false;
        }
        max_ncc(&x[a0..a0 + len], &x[b0..b1]) >= SAME_AUDIO_NCC
    }
}

/// The largest normalised cross-correlation of `a` with any window of `b`
/// of `a`'s length (`b` at least as long), computed with one real FFT
/// product. A silent `a` or window scores 0.
pub fn max_ncc(a: &[f32], b: &[f32]) -> f64 {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m < n {
        return 0.0;
    }
    let size = (n + m).next_power_of_two();
    let mut planner = RealFftPlanner::<f64>::new();
    let (fwd, inv) = (planner.plan_fft_forward(size), planner.plan_fft_inverse(size));
    let spectrum = |v: &mut Vec<f64>| {
        let mut out = fwd.make_output_vec();
        fwd.process(v, &mut out).expect("sizes from the plan");
        out
    };
    // Correlation as a convolution with `a` reversed: c[n - 1 + k] = Σ a[i] b[i + k].
    let mut ra: Vec<f64> = a.iter().rev().map(|&v| f64::from(v)).collect();
    ra.resize(size, 0.0);
    let mut rb: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
    rb.resize(size, 0.0);
    let (fa, fb) = (spectrum(&mut ra), spectrum(&mut rb));
    let mut prod: Vec<_> = fa.iter().zip(&fb).map(|(x, y)| x * y).collect();
    let mut c = inv.make_output_vec();
    inv.process(&mut prod, &mut c).expect("sizes from the plan");
    let ea: f64 = a.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    // Silence (about −80 dBFS or less) says nothing about the music.
    let floor = 1e-8 * n as f64;
    if ea <= floor {
        return 0.0;
    }
    let mut prefix = vec![0.0f64; m + 1];
    for (i, &v) in b.iter().enumerate() {
        prefix[i + 1] = prefix[i] + f64::from(v) * f64::from(v);
    }
    (0..=m - n)
        .filter_map(|k| {
            let eb = prefix[k + n] - prefix[k];
            (eb > floor).then(|| c[n - 1 + k] / size as f64 / (ea * eb).sqrt())
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn a_repeated_excerpt_correlates_fully_and_other_audio_does_not() {
        let a = noise(4000, 1);
        // `a` placed 1234 samples into other noise, at half the level.
        let mut b = noise(9000, 2);
        for (i, v) in a.iter().enumerate() {
            b[1234 + i] = 0.5 * v;
        }
        assert!((max_ncc(&a, &b) - 1.0).abs() < 1e-6, "{}", max_ncc(&a, &b));
        let other = noise(9000, 3);
        assert!(max_ncc(&a, &other) < 0.2, "{}", max_ncc(&a, &other));
        assert_eq!(max_ncc(&vec![0.0; 4000], &b), 0.0, "silence");
        assert_eq!(max_ncc(&a, &a[..100]), 0.0, "a window shorter than the excerpt");
    }

    #[test]
    fn a_reference_that_loops_is_the_same_audio_at_its_repetition_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("refs")).unwrap();
        // 3 s of a loop, 3 s of other audio, the loop again: 9 s at 16 kHz.
        let (rate, loop_) = (16_000u32, noise(48_000, 7));
        let mut x = loop_.clone();
        x.extend(noise(48_000, 8));
        x.extend(&loop_);
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(dir.path().join("refs/r.wav"), spec).unwrap();
        for v in &x {
            w.write_sample((v * 16_000.0) as i16).unwrap();
        }
        w.finalize().unwrap();
        let bench = Benchmark {
            version: 1,
            seed: 0,
            sample_rate: rate,
            segment_hop_s: 0.512,
            references: vec![crate::spec::Reference {
                id: "r".into(),
                path: "refs/r.wav".into(),
                source: String::new(),
                duration_s: 9.0,
            }],
            negatives: vec![],
            queries: vec![],
        };
        let check = RepeatCheck::new(dir.path(), &bench);
        // 2 s from 0.5 s recur from 6.5 s; an answer 0.3 s off is aligned.
        assert!(check.same_audio("r", 0.5, 6.5, 2.0));
        assert!(check.same_audio("r", 0.5, 6.8, 2.0));
        assert!(!check.same_audio("r", 0.5, 3.5, 2.0), "other audio");
        assert!(!check.same_audio("r", 0.5, 6.5, 0.5), "too short to say");
        assert!(!check.same_audio("r", 8.0, 6.5, 2.0), "past the end");
        assert!(!check.same_audio("unknown", 0.5, 6.5, 2.0));
    }
}
