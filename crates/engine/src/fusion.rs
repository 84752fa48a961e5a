//! Fusion: one calibrated confidence per (query, song) from what every
//! stage saw of it ([`Evidence`]).
//!
//! Three logistic regressions, one per way the engine can answer: the
//! landmark stage alone, the neural stage alone (with the chroma alignment
//! of its best songs), and both together. Each maps the evidence to the
//! probability that the song is right; `sampleid train calibrator` fits them
//! on a validation benchmark and `models/calibrator.json` ships them.
//!
//! Why logistic regression, written here: the features are a dozen numbers
//! per candidate and a few thousand candidates train it; Newton's method on
//! standardised features converges in a few steps and the model is a JSON
//! file a reader can check. A crate (linfa, smartcore) would bring a matrix
//! stack for a 15 × 15 solve.

use serde::{Deserialize, Serialize};

use sampleid_search::Evidence;

use crate::error::{Error, Result};

/// Which model answers: the stages that ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// The landmark stage only (also the early stop of the fused path).
    Landmarks,
    /// The neural stage only (with the chroma alignment of its best songs).
    Neural,
    /// Every stage.
    Fused,
}

/// Names of the features of each model, in order.
pub fn feature_names(model: Model) -> Vec<&'static str> {
    const LM: [&str; 10] = [
        "lm_present",
        "lm_kappa",
        "lm_ln_matched",
        "lm_ln_mapped",
        "lm_ln_votes",
        "lm_quads",
        "lm_guided",
        "lm_verified",
        "lm_absent",
        "lm_absent_known",
    ];
    const NN: [&str; 6] = [
        "nn_present",
        "nn_ln_score",
        "nn_share",
        "nn_accepted_per_segment",
        "nn_top",
        "nn_ln_total",
    ];
    const CH: [&str; 3] = ["chroma_present", "chroma_relative_cost", "chroma_cost"];
    // The neural stage's evidence of a song it looked at only where the
    // landmarks placed it: re-ranked along a line it did not choose, it
    // accepts more of a wrong song than the ANN's candidates do, so it has
    // weights of its own (the `nn_` features are 0 then).
    const NNG: [&str; 4] = ["nng_present", "nng_ln_score", "nng_accepted_per_segment", "nng_share"];
    let mut out = Vec::new();
    if model != Model::Neural {
        out.extend(LM);
    }
    if model != Model::Landmarks {
        out.extend(NN);
        out.extend(CH);
    }
    if model == Model::Fused {
        out.extend(NNG);
        out.extend(["shingle_present", "shingle_distance", "shingle_relative", "shingle_top"]);
        out.push("agree");
    }
    out.push("ln_duration");
    out.push("ln_library_hours");
    out
}

/// What a candidate's confidence depends on beside its evidence: the clip's
/// length and the size of the library it was searched in (the more music,
/// the more chance matches a given evidence has to beat).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Context {
    /// The clip's decoded duration (s).
    pub duration_s: f64,
    /// Hours of audio in the library's live songs.
    pub library_hours: f64,
}

/// The features of a candidate for `model` (in [`feature_names`] order).
pub fn features(model: Model, ev: &Evidence, ctx: Context) -> Vec<f64> {
    let mut x = Vec::with_capacity(20);
    if model != Model::Neural {
        match &ev.landmarks {
            Some(l) => x.extend([
                1.0,
                // Shrunk towards 0 when few peaks were mapped: a kappa from a
                // dozen peaks is mostly chance (one guided match had kappa 1
                // from one peak).
                l.kappa.clamp(-1.0, 1.0) * l.mapped as f64 / (l.mapped as f64 + KAPPA_PRIOR_PEAKS),
                (l.matched as f64).ln_1p(),
                (l.mapped as f64).ln_1p(),
                (l.votes as f64).ln_1p(),
                f64::from(l.method == "quads"),
                f64::from(l.method == "guided"),
                f64::from(l.verified),
                // Unknown when too few peaks matched to estimate the clip's
                // gain: 0 and an indicator of its own (the missing-value
                // indicator method), so that the fit weighs "unknown" apart.
                l.absent.unwrap_or(0.0).clamp(0.0, 1.0),
                f64::from(l.absent.is_some()),
            ]),
            None => x.extend([0.0; 10]),
        }
    }
    let guided = (model == Model::Fused)
        .then_some(ev.neural.as_ref())
        .flatten()
        .filter(|n| n.guided);
    if model != Model::Landmarks {
        match ev.neural.as_ref().filter(|_| guided.is_none()) {
            Some(n) => x.extend([
                1.0,
                n.score.max(0.0).ln_1p(),
                n.share.clamp(0.0, 1.0),
                n.accepted as f64 / n.query_segments.max(1) as f64,
                f64::from(n.rank == 0),
                n.total.max(0.0).ln_1p(),
            ]),
            None => x.extend([0.0; 6]),
        }
        match &ev.chroma {
            Some(c) => x.extend([1.0, c.relative_cost.clamp(0.0, 2.0), c.cost.clamp(0.0, 2.0)]),
            None => x.extend([0.0; 3]),
        }
    }
    if model == Model::Fused {
        match guided {
            Some(n) => x.extend([
                1.0,
                n.score.max(0.0).ln_1p(),
                n.accepted as f64 / n.query_segments.max(1) as f64,
                n.share.clamp(0.0, 1.0),
            ]),
            None => x.extend([0.0; 4]),
        }
        match &ev.shingles {
            Some(s) => x.extend([
                1.0,
                s.distance.clamp(0.0, 4.0),
                s.relative.clamp(0.0, 2.0),
                f64::from(s.rank == 0),
            ]),
            None => x.extend([0.0; 4]),
        }
        x.push(f64::from(agree(ev)));
    }
    x.push(ctx.duration_s.max(0.5).ln());
    x.push(ctx.library_hours.max(MIN_LIBRARY_HOURS).ln());
    x
}

/// The smallest library size the feature tells apart (h): a few songs.
const MIN_LIBRARY_HOURS: f64 = 0.1;

/// Pseudo-count of the landmark kappa feature's shrinkage (peaks).
const KAPPA_PRIOR_PEAKS: f64 = 20.0;

/// Whether the landmark and neural stages put the song at the same place
/// (reference times within 1.5 s at the landmark's query start); never when
/// the neural stage only looked where the landmarks placed the song.
pub fn agree(ev: &Evidence) -> bool {
    let (Some(l), Some(n)) = (&ev.landmarks, ev.neural.as_ref().filter(|n| !n.guided)) else {
        return false;
    };
    let ratio = n.time_ratio.unwrap_or(1.0).max(0.1);
    let nn_ref = n.reference_start + (l.query_start - n.query_start) / ratio;
    (nn_ref - l.reference_start).abs() <= 1.5
}

/// A logistic regression over standardised features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    /// Feature names (see [`feature_names`]).
    pub features: Vec<String>,
    /// Mean and standard deviation of each feature in the training data.
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    /// Weights of the standardised features, and the intercept.
    pub weights: Vec<f64>,
    pub bias: f64,
}

impl Logistic {
    /// The probability for one feature vector.
    pub fn predict(&self, x: &[f64]) -> f64 {
        let z: f64 = self.bias
            + x.iter()
                .zip(&self.mean)
                .zip(&self.scale)
                .zip(&self.weights)
                .map(|(((v, m), s), w)| w * (v - m) / s)
                .sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }

    /// Fits labels `y` (true = right) on rows `x`, each weighted by
    /// `weight`, by Newton's method with an L2 penalty `l2` on the weights
    /// (not the intercept).
    pub fn fit(names: &[&str], x: &[Vec<f64>], y: &[bool], weight: &[f64], l2: f64) -> Result<Self> {
        let d = names.len();
        if x.is_empty()
            || x.len() != y.len()
            || x.len() != weight.len()
            || x.iter().any(|r| r.len() != d)
            || weight.iter().any(|w| !(w.is_finite() && *w > 0.0))
        {
            return Err(Error::Config(format!(
                "a calibrator needs rows of {d} features with a label and a positive weight each \
                 (got {} rows, {} labels, {} weights)",
                x.len(),
                y.len(),
                weight.len()
            )));
        }
        if !y.iter().any(|v| *v) || y.iter().all(|v| *v) {
            return Err(Error::Config(
                "a calibrator needs both right and wrong candidates to learn from".into(),
            ));
        }
        let n = x.len() as f64;
        let mean: Vec<f64> = (0..d).map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n).collect();
        let scale: Vec<f64> = (0..d)
            .map(|j| {
                let v = x.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n;
                if v > 1e-12 { v.sqrt() } else { 1.0 }
            })
            .collect();
        let z: Vec<Vec<f64>> = x
            .iter()
            .map(|r| {
                let mut v: Vec<f64> = (0..d).map(|j| (r[j] - mean[j]) / scale[j]).collect();
                v.push(1.0);
                v
            })
            .collect();
        let p = d + 1;
        let mut w = vec![0.0; p];
        for _ in 0..50 {
            let mut grad = vec![0.0; p];
            let mut hess = vec![vec![0.0; p]; p];
            for ((row, &label), &wt) in z.iter().zip(y).zip(weight) {
                let s: f64 = row.iter().zip(&w).map(|(a, b)| a * b).sum();
                let prob = 1.0 / (1.0 + (-s).exp());
                let g = wt * (prob - f64::from(label));
                let h = wt * (prob * (1.0 - prob)).max(1e-9);
                for i in 0..p {
                    grad[i] += g * row[i];
                    for k in 0..p {
                        hess[i][k] += h * row[i] * row[k];
                    }
                }
            }
            for i in 0..d {
                grad[i] += l2 * w[i];
                hess[i][i] += l2;
            }
            let step = solve(hess, grad).ok_or_else(|| Error::Config("the calibrator's fit is singular".into()))?;
            let change = step.iter().map(|v| v.abs()).fold(0.0, f64::max);
            for (wi, si) in w.iter_mut().zip(&step) {
                *wi -= si;
            }
            if change < 1e-8 {
                break;
            }
        }
        Ok(Self {
            features: names.iter().map(|s| s.to_string()).collect(),
            mean,
            scale,
            weights: w[..d].to_vec(),
            bias: w[d],
        })
    }
}

/// Solves `a · x = b` by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for c in 0..n {
        let piv = (c..n).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[piv][c].abs() < 1e-12 {
            return None;
        }
        a.swap(c, piv);
        b.swap(c, piv);
        let (top, rest) = a.split_at_mut(c + 1);
        let pivot = &top[c];
        for (i, row) in rest.iter_mut().enumerate() {
            let f = row[c] / pivot[c];
            for (x, p) in row[c..].iter_mut().zip(&pivot[c..]) {
                *x -= f * p;
            }
            b[c + 1 + i] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r][k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    Some(x)
}

fn one() -> f64 {
    1.0
}

fn any_library() -> [f64; 2] {
    [0.0, f64::MAX]
}

/// The three models and what they were trained on (`models/calibrator.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibrator {
    /// Name of this calibrator.
    pub version: String,
    /// The encoder whose re-ranker scores the neural features come from.
    pub encoder: String,
    /// The benchmarks it was fitted on (validation split).
    pub trained_on: Vec<String>,
    /// Weight of the candidates of unknown clips (negatives) in the fit: the
    /// confidences are calibrated for a stream with this many times as many
    /// unknown clips as the training benchmarks had.
    #[serde(default = "one")]
    pub unknown_weight: f64,
    /// The smallest and largest library the fit saw (h). A library outside
    /// them is taken as the nearest: the library-size weight is not
    /// extrapolated beyond what it was measured on.
    #[serde(default = "any_library")]
    pub library_hours: [f64; 2],
    pub landmarks: Logistic,
    pub neural: Logistic,
    pub fused: Logistic,
}

impl Calibrator {
    /// The model of `model`.
    pub fn model(&self, model: Model) -> &Logistic {
        match model {
            Model::Landmarks => &self.landmarks,
            Model::Neural => &self.neural,
            Model::Fused => &self.fused,
        }
    }

    /// The probability that the candidate is right, by `model`.
    pub fn confidence(&self, model: Model, ev: &Evidence, ctx: Context) -> f64 {
        let [lo, hi] = self.library_hours;
        let ctx = Context {
            library_hours: ctx.library_hours.clamp(lo, hi.max(lo)),
            ..ctx
        };
        self.model(model).predict(&features(model, ev, ctx))
    }

    /// Checks that every model has the features this engine computes.
    pub fn validate(&self) -> Result<()> {
        for m in [Model::Landmarks, Model::Neural, Model::Fused] {
            let l = self.model(m);
            let names = feature_names(m);
            let d = names.len();
            if l.features != names || l.mean.len() != d || l.scale.len() != d || l.weights.len() != d {
                return Err(Error::Model(format!(
                    "the calibrator {} does not fit this engine's features for {m:?} (expected {names:?}); \
                     train one with `sampleid train calibrator`",
                    self.version
                )));
            }
            if l.scale.iter().any(|s| !(s.is_finite() && *s > 0.0))
                || l.weights.iter().chain(&l.mean).chain([&l.bias]).any(|v| !v.is_finite())
            {
                return Err(Error::Model(format!(
                    "the calibrator {} has non-finite or zero-scale parameters",
                    self.version
                )));
            }
        }
        Ok(())
    }
}

/// Reliability of confidences: `bins` equal-width bins of predicted
/// probability, each with (mean predicted, observed share right, count),
/// and the expected calibration error (count-weighted |observed − predicted|).
pub fn reliability(predicted: &[(f64, bool)], bins: usize) -> (Vec<(f64, f64, usize)>, f64) {
    let bins = bins.max(1);
    let mut acc = vec![(0.0, 0.0, 0usize); bins];
    for &(p, right) in predicted {
        let b = ((p.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        acc[b].0 += p;
        acc[b].1 += f64::from(right);
        acc[b].2 += 1;
    }
    let n = predicted.len().max(1) as f64;
    let mut ece = 0.0;
    let out = acc
        .into_iter()
        .map(|(sp, sr, c)| {
            if c == 0 {
                return (0.0, 0.0, 0);
            }
            let (mp, mr) = (sp / c as f64, sr / c as f64);
            ece += c as f64 / n * (mr - mp).abs();
            (mp, mr, c)
        })
        .collect();
    (out, ece)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_regression_recovers_a_logistic_rule_and_is_calibrated() {
        // Labels drawn from p = σ(6 (v − 0.5)) with a fixed pseudo-random
        // sequence, and a second feature that is pure noise: the fit must
        // find the slope (6 per unit of v, i.e. 6 · sd(v) per standard
        // deviation), ignore the noise, and be calibrated.
        let mut state = 12345u64;
        let mut uniform = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..4000 {
            let v = uniform();
            let noise = uniform();
            let p = 1.0 / (1.0 + (-6.0 * (v - 0.5)).exp());
            x.push(vec![v, noise]);
            y.push(uniform() < p);
        }
        let m = Logistic::fit(&["v", "noise"], &x, &y, &vec![1.0; x.len()], 1e-3).unwrap();
        let slope = m.weights[0] / m.scale[0];
        assert!((slope - 6.0).abs() < 1.0, "slope {slope}");
        assert!((m.weights[1] / m.scale[1]).abs() < 1.0, "noise weight {:?}", m.weights);
        assert!((m.predict(&[0.5, 0.5]) - 0.5).abs() < 0.05);
        let (bins, ece) = reliability(
            &x.iter().zip(&y).map(|(r, l)| (m.predict(r), *l)).collect::<Vec<_>>(),
            10,
        );
        assert_eq!(bins.iter().map(|b| b.2).sum::<usize>(), 4000);
        assert!(ece < 0.03, "{ece}");
        // Weighting the negatives down moves every probability up.
        let w: Vec<f64> = y.iter().map(|l| if *l { 1.0 } else { 0.5 }).collect();
        let up = Logistic::fit(&["v", "noise"], &x, &y, &w, 1e-3).unwrap();
        assert!(up.predict(&[0.5, 0.5]) > m.predict(&[0.5, 0.5]) + 0.1);
    }

    #[test]
    fn a_fit_needs_both_labels() {
        assert!(Logistic::fit(&["a"], &[vec![1.0], vec![2.0]], &[true, true], &[1.0; 2], 1.0).is_err());
        assert!(Logistic::fit(&["a"], &[vec![1.0]], &[true, false], &[1.0], 1.0).is_err());
        assert!(Logistic::fit(&["a"], &[vec![1.0], vec![2.0]], &[true, false], &[1.0, 0.0], 1.0).is_err());
    }

    #[test]
    fn the_shipped_calibrator_fits_the_features() {
        crate::models::load_calibrator().unwrap();
    }

    /// A calibrator whose only weight is on the library's size (−1 per
    /// unit of ln hours), fitted on libraries of 1 to 8 h.
    fn size_only() -> Calibrator {
        let model = |m: Model| {
            let names = feature_names(m);
            let d = names.len();
            let mut weights = vec![0.0; d];
            weights[d - 1] = -1.0;
            Logistic {
                features: names.iter().map(|s| s.to_string()).collect(),
                mean: vec![0.0; d],
                scale: vec![1.0; d],
                weights,
                bias: 2.0,
            }
        };
        Calibrator {
            version: "test".into(),
            encoder: "test".into(),
            trained_on: Vec::new(),
            unknown_weight: 1.0,
            library_hours: [1.0, 8.0],
            landmarks: model(Model::Landmarks),
            neural: model(Model::Neural),
            fused: model(Model::Fused),
        }
    }

    #[test]
    fn the_library_size_counts_only_within_the_sizes_the_fit_saw() {
        let cal = size_only();
        cal.validate().unwrap();
        let at = |h: f64| {
            let ctx = Context {
                duration_s: 10.0,
                library_hours: h,
            };
            cal.confidence(Model::Fused, &Evidence::default(), ctx)
        };
        // Within the range: e^(2 − ln h) / (1 + …), less trust in a larger library.
        assert!((at(2.0) - 1.0 / (1.0 + 2.0 / 2f64.exp())).abs() < 1e-12, "{}", at(2.0));
        assert!(at(1.0) > at(4.0) && at(4.0) > at(8.0));
        // Outside it: the nearest size the fit saw, not an extrapolation.
        assert_eq!(at(100.0), at(8.0));
        assert_eq!(at(0.01), at(1.0));
    }

    /// A 10 s clip against a 2 h library.
    const CTX: Context = Context {
        duration_s: 10.0,
        library_hours: 2.0,
    };

    /// A pair match like the planetblupi false accepts (kappa 0.4, 30 of
    /// 80 peaks): the shipped models trust it less when the clip lacks much
    /// of the song than when it lacks nothing.
    #[test]
    fn the_shipped_calibrator_distrusts_a_match_whose_clip_lacks_the_song() {
        if crate::models::env_path("SAMPLEID_CALIBRATOR").is_some() {
            return; // the environment picks another calibrator
        }
        let cal = crate::models::load_calibrator().unwrap();
        let ev = |absent: Option<f64>| Evidence {
            landmarks: Some(sampleid_search::LandmarkEvidence {
                method: "pairs".into(),
                kappa: 0.4,
                matched: 30,
                mapped: 80,
                votes: 20,
                verified: true,
                query_start: 0.5,
                reference_start: 60.0,
                time_ratio: 1.0,
                pitch_shift: 0.0,
                absent,
            }),
            neural: None,
            chroma: None,
            shingles: None,
        };
        for model in [Model::Landmarks, Model::Fused] {
            let (none, half, unknown) = (
                cal.confidence(model, &ev(Some(0.0)), CTX),
                cal.confidence(model, &ev(Some(0.5)), CTX),
                cal.confidence(model, &ev(None), CTX),
            );
            // At least 2 in log-odds (odds 7 times smaller).
            let logit = |p: f64| (p / (1.0 - p)).ln();
            assert!(logit(none) > logit(half) + 2.0, "{model:?}: {none} {half}");
            assert!(unknown.is_finite(), "{model:?}: {unknown}");
        }
    }

    /// Neural evidence of a song the stage only looked at where the
    /// landmarks placed it goes to features of its own.
    #[test]
    fn guided_neural_evidence_is_weighed_apart() {
        let neural = |guided: bool| sampleid_search::NeuralEvidence {
            score: 3.0,
            total: 3.0,
            accepted: 4,
            query_segments: 8,
            rank: 2,
            share: 0.25,
            query_start: 0.0,
            reference_start: 60.0,
            time_ratio: Some(1.0),
            guided,
        };
        let landmarks = sampleid_search::LandmarkEvidence {
            method: "pairs".into(),
            kappa: 0.2,
            matched: 20,
            mapped: 90,
            votes: 10,
            verified: false,
            query_start: 0.0,
            reference_start: 60.0,
            time_ratio: 1.0,
            pitch_shift: 0.0,
            absent: None,
        };
        let names = feature_names(Model::Fused);
        let at = |x: &[f64], name: &str| x[names.iter().position(|n| *n == name).unwrap()];
        for guided in [false, true] {
            let ev = Evidence {
                landmarks: Some(landmarks.clone()),
                neural: Some(neural(guided)),
                ..Evidence::default()
            };
            let x = features(Model::Fused, &ev, CTX);
            assert_eq!(x.len(), names.len());
            let (own, apart) = if guided { (0.0, 1.0) } else { (1.0, 0.0) };
            assert_eq!(at(&x, "nn_present"), own);
            assert_eq!(at(&x, "nng_present"), apart);
            assert_eq!(at(&x, "nng_accepted_per_segment"), apart * 0.5);
            assert_eq!(at(&x, "nng_share"), apart * 0.25);
            assert_eq!(at(&x, "agree"), own, "a guided line agrees by construction");
            // The neural model alone never sees guided evidence apart.
            assert_eq!(features(Model::Neural, &ev, CTX)[0], 1.0);
        }
    }
}
