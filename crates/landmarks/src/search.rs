//! Matching a query's landmarks against a [`LandmarkIndex`]: hypotheses from
//! pair votes and quad hits, then verification with the stored peaks.
//!
//! 1. **Pairs**: every query pair hash looks up its postings; votes per
//!    (song, reference frame − query frame) are counted in windows of a
//!    few frames. A song's best window is a hypothesis with both scales 1.
//! 2. **Quads**: a 4-D range query per query quad; each hit gives a time
//!    scale s_t (B − A in time, query / reference), a frequency scale s_f
//!    (B − A in bins) and the reference frame at the query's start
//!    τ = A_ref − A_query / s_t (this form keeps τ's error small: it grows
//!    with the query time, not the reference time). Hits outside the scale
//!    tolerances or with an incoherent pitch (|A_query − s_f · A_ref| more
//!    than 1.8 bins) are dropped. Per song, the densest window of τ with
//!    scale-consistent hits (at least `min_quad_matches`) is a hypothesis.
//! 3. **Verification** (what decides): the song's stored peaks over the
//!    query's span are mapped into the query by (s_t, s_f, τ) and counted
//!    where a query peak lies within a small box. The transform is then
//!    refitted by least squares on the matched peak pairs and verified
//!    again, which also makes the reported time ratio and pitch precise.
//!    The score is the matched share of the mapped peaks beyond what chance
//!    gives with the query's peak density in each bin (Cohen's kappa).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use sampleid_peaks::Peak;

use crate::index::{LandmarkIndex, QuadProbe, RefQuad};
use crate::levels::QueryLevels;
use crate::{LandmarkError, PairConfig, PairHash, Quad, QuadConfig, pairs, quads};

/// Settings of the landmark search (`[landmarks.search]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Range-search radius per hash coordinate. The paper's ε_L = 0.01
    /// keeps only 20 % of the quads of a clip through the benchmark's phase
    /// vocoder at a pitch shift of 0.001 st, 37 % at 0.03 (`sampleid bench
    /// peaks --survival pitch:0.001`); on the validation benchmark 0.03 found
    /// 88 of 262 positives against 75 at 0.01, with no false accept at the
    /// default score threshold either way.
    pub radius: f32,
    /// Time scales (query / reference durations) searched: 0.65–1.55
    /// covers tempo 0.7–1.5 with room for the estimate's error (on the
    /// validation benchmark 0.69–1.46 found none of 10 clips at tempo 1.5,
    /// 0.65–1.55 found 3, with no more false accepts).
    pub min_time_scale: f64,
    pub max_time_scale: f64,
    /// Frequency scales (query / reference frequencies) searched: 0.79–1.26
    /// is ±4 semitones.
    pub min_freq_scale: f64,
    pub max_freq_scale: f64,
    /// Fine pitch coherence (bins): |A_query − s_f · A_ref| at most this
    /// (the paper's 1.8; 3 found 3 more validation positives at radius 0.03).
    pub fine_pitch_bins: f64,
    /// Quad hits a song needs for a hypothesis (the paper's t_s = 4). Many
    /// pitch- and tempo-changed clips the landmark stage misses have 1–3 hits
    /// at the true transform. 3 on the four validation runs: the landmark
    /// stage alone 787 positives found against 767, but 12 unknown clips
    /// accepted against 5; fused, 855 against 844 and 15 against 11 even with
    /// the calibrator refitted (`docs/landmarks.md`): not taken.
    pub min_quad_matches: usize,
    /// Pair votes a song needs for a hypothesis.
    pub min_pair_votes: usize,
    /// Targets per anchor of the query's pairs: more than the reference's,
    /// because the query's denser peaks put extra targets in between.
    pub query_fan_out: usize,
    /// Pair lookups also try each hash field ± this (in hash units): 1 makes
    /// 27 lookups per query pair. Measured on both validation benchmarks:
    /// jitter 1 found 191 + 86 positives with no false accept (at kappa
    /// 0.30), jitter 0 found 197 + 94 (at 0.25): the neighbours' chance votes
    /// crowd the true song out of the candidates. At 100 h the pair search
    /// takes 2.4 ms instead of 60 (`sampleid bench landmarks`).
    pub pair_jitter: u32,
    /// Width (frames) of the offset window pair votes are counted in.
    pub pair_window: u32,
    /// Hypotheses verified per method (the songs with most votes).
    pub candidates: usize,
    /// Half-width (frames) and half-height (bins) of the verification box
    /// (the paper's 18 frames × 12 bins box).
    pub verify_frames: u32,
    pub verify_bins: u32,
    /// Share of the stored peaks over the query's span that verification
    /// maps: the strongest (1 = all). Measured on both validation
    /// benchmarks (positives found with no false accept, users' + bench-lm):
    /// all 191 + 86 at kappa 0.30; strongest 70 % 190 + 84 at 0.35;
    /// strongest 50 % 195 + 80 at 0.35: no gain, so all by default.
    pub verify_strongest: f64,
    /// Verification score (kappa) a match needs: the lowest with no false
    /// accept on the validation benchmarks (bench-lm-val, bench-users-val).
    pub min_score: f64,
    /// Matched peaks a match needs (a few peaks prove nothing).
    pub min_matched: usize,
    /// Matches returned at most.
    pub max_matches: usize,
    /// A pair match verified at this kappa or more ends the search before
    /// the quads (whose range search is most of a query's time against a
    /// large library); above 1: quads always run. Measured on both
    /// validation benchmarks (`sampleid bench run`, fused answers): 0.5
    /// gives the same top-1 and false accepts as never stopping (users'
    /// 91.4 % / 95.0 %, paper cells 63.9 % / 34.4 %, 1 and 0 false accepts)
    /// and places more clips within 1 s (80.0 against 79.3 %, 51.9 against
    /// 50.9 %): the pair match's offset is kept.
    pub pairs_decisive: f64,
    /// How much quieter (dB) than a matched song predicts the query must be
    /// around a mapped peak to count it as lacking ([`LandmarkMatch::absent`]).
    /// Measured on both validation benchmarks' candidates (answers of
    /// `docs/recipes/collect-calibrator.toml`; 461 right, 3,694 wrong), the
    /// area under the ROC curve of the share at 6 / 10 / 15 / 20 / 30 dB:
    /// 0.971 / 0.973 / 0.963 / 0.919 / 0.740; 6 dB counts too many peaks of
    /// samples under loud music as lacking (the matched peaks' gain is
    /// biased up by the music), 20 dB and more too few of another piece's.
    pub absent_db: f64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            radius: 0.03,
            min_time_scale: 0.65,
            max_time_scale: 1.55,
            min_freq_scale: 0.79,
            max_freq_scale: 1.26,
            fine_pitch_bins: 3.0,
            min_quad_matches: 4,
            min_pair_votes: 4,
            query_fan_out: 12,
            pair_jitter: 0,
            pair_window: 12,
            candidates: 8,
            verify_frames: 9,
            verify_bins: 6,
            verify_strongest: 1.0,
            min_score: 0.25,
            min_matched: 10,
            max_matches: 10,
            pairs_decisive: PAIRS_DECISIVE,
            absent_db: 10.0,
        }
    }
}

impl SearchConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), LandmarkError> {
        let bad = |m: &str| Err(LandmarkError::InvalidConfig(m.into()));
        if !(self.radius > 0.0 && self.radius <= 0.05) {
            return bad("radius must be in (0, 0.05]");
        }
        let range = |lo: f64, hi: f64| lo.is_finite() && hi.is_finite() && 0.0 < lo && lo <= 1.0 && 1.0 <= hi;
        if !range(self.min_time_scale, self.max_time_scale) || !range(self.min_freq_scale, self.max_freq_scale) {
            return bad("scale ranges must satisfy 0 < min ≤ 1 ≤ max");
        }
        if !(self.verify_strongest > 0.0 && self.verify_strongest <= 1.0) {
            return bad("verify_strongest must be in (0, 1]");
        }
        if !(self.min_score.is_finite() && (0.0..=1.0).contains(&self.min_score)) {
            return bad("min_score must be in [0, 1]");
        }
        if self.min_quad_matches == 0 || self.min_pair_votes == 0 || self.candidates == 0 || self.max_matches == 0 {
            return bad("min_quad_matches, min_pair_votes, candidates and max_matches must be at least 1");
        }
        if self.pair_jitter > 3 {
            return bad("pair_jitter must be at most 3");
        }
        if self.query_fan_out == 0 || self.verify_frames == 0 || self.verify_bins == 0 {
            return bad("query_fan_out, verify_frames and verify_bins must be at least 1");
        }
        if !(self.pairs_decisive.is_finite() && self.pairs_decisive >= 0.0) {
            return bad("pairs_decisive must be at least 0");
        }
        if !(self.fine_pitch_bins.is_finite() && self.fine_pitch_bins > 0.0) {
            return bad("fine_pitch_bins must be positive");
        }
        if !(self.absent_db.is_finite() && self.absent_db > 0.0) {
            return bad("absent_db must be positive");
        }
        Ok(())
    }
}

/// Default of [`SearchConfig::pairs_decisive`].
pub const PAIRS_DECISIVE: f64 = 0.5;

/// What a query brings to the landmark search.
#[derive(Debug, Clone)]
pub struct QueryLandmarks {
    /// Peaks (query extraction), frame order.
    pub peaks: Vec<Peak>,
    pub pairs: Vec<PairHash>,
    /// Frames of the query.
    pub frames: u32,
    /// Frequency bins of the peak stage.
    pub bins: u32,
    /// Made on first use ([`QueryLandmarks::quads`]): a query that the
    /// pairs settle never needs them, and a query's quads (about 1,500 per
    /// second) take longer to make than its peaks and pairs.
    quads: std::sync::OnceLock<Vec<Quad>>,
    quad_cfg: QuadConfig,
    /// The query's pooled spectrogram, when the caller kept it: verification
    /// then also says how much of the song the query lacks
    /// ([`LandmarkMatch::absent`]).
    pub levels: Option<QueryLevels>,
}

impl QueryLandmarks {
    /// Pairs of a query's peaks now, quads when first asked for.
    pub fn new(
        peaks: Vec<Peak>,
        frames: u32,
        bins: u32,
        pair_cfg: &PairConfig,
        quad_cfg: &QuadConfig,
        fan_out: usize,
    ) -> Self {
        let pair_cfg = PairConfig {
            fan_out,
            ..pair_cfg.clone()
        };
        Self {
            pairs: pairs(&peaks, &pair_cfg),
            peaks,
            frames,
            bins,
            quads: std::sync::OnceLock::new(),
            quad_cfg: quad_cfg.clone(),
            levels: None,
        }
    }

    /// The same with the query's pooled spectrogram.
    pub fn with_levels(mut self, levels: QueryLevels) -> Self {
        self.levels = Some(levels);
        self
    }

    /// The query's quads (made on the first call).
    pub fn quads(&self) -> &[Quad] {
        self.quads.get_or_init(|| quads(&self.peaks, &self.quad_cfg))
    }
}

/// Which landmarks proposed a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Pairs,
    Quads,
    /// A hypothesis from another stage (offset and time ratio), verified
    /// here with the frequency scale searched ([`verify_at`]).
    Guided,
}

/// A verified match of a query with a song.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LandmarkMatch {
    pub song: u32,
    /// Matched share of the mapped reference peaks beyond chance (kappa).
    pub score: f64,
    pub matched: usize,
    pub mapped: usize,
    /// Votes of the hypothesis (pair votes or quad hits).
    pub votes: usize,
    pub method: Method,
    /// Query duration / reference duration.
    pub time_scale: f64,
    /// Query frequency / reference frequency.
    pub freq_scale: f64,
    /// Reference frame at query frame 0.
    pub tau: f64,
    /// First and last query frames with a matched peak.
    pub query_first: f64,
    pub query_last: f64,
    /// Share of the mapped peaks whose energy the query lacks: quieter
    /// there by more than `[landmarks.search] absent_db` than the matched
    /// peaks' gain predicts, in a band where the query is loud enough
    /// elsewhere. `None` without the query's levels or with too few
    /// matched peaks to estimate the gain.
    pub absent: Option<f64>,
}

impl LandmarkMatch {
    /// Whether the landmark stage accepts it on its own (kappa and matched
    /// peaks at least the configured minimums).
    pub fn verified(&self, cfg: &SearchConfig) -> bool {
        self.score >= cfg.min_score && self.matched >= cfg.min_matched
    }

    /// Reference frame of a query frame.
    pub fn reference_frame(&self, query_frame: f64) -> f64 {
        self.tau + query_frame / self.time_scale
    }
}

#[derive(Debug, Clone, Copy)]
struct Hypothesis {
    song: u32,
    time_scale: f64,
    freq_scale: f64,
    tau: f64,
    votes: usize,
    method: Method,
}

/// Searches `index` for the query; verified matches, best score first.
pub fn search(index: &LandmarkIndex, q: &QueryLandmarks, cfg: &SearchConfig) -> Vec<LandmarkMatch> {
    run(index, q, cfg, true).0
}

/// Every song with a hypothesis, verified but not thresholded: the best
/// verification per song, best score first (at most `cfg.max_matches`). The
/// engine's fusion weighs these with the other stages' evidence;
/// [`LandmarkMatch::verified`] says whether one passes on its own.
pub fn candidates(index: &LandmarkIndex, q: &QueryLandmarks, cfg: &SearchConfig) -> Vec<LandmarkMatch> {
    run(index, q, cfg, false).0
}

/// Pairs first; quads unless a pair match is decisive
/// ([`SearchConfig::pairs_decisive`]); the best verification per song.
fn run(
    index: &LandmarkIndex,
    q: &QueryLandmarks,
    cfg: &SearchConfig,
    threshold: bool,
) -> (Vec<LandmarkMatch>, SearchTimes) {
    let t = std::time::Instant::now();
    let mut times = SearchTimes::default();
    let hyps = pair_hypotheses(index, q, cfg);
    times.pairs = t.elapsed().as_secs_f64();
    let query = QueryPeaks::new(q, cfg);
    let mut found: Vec<LandmarkMatch> = hyps
        .iter()
        .filter_map(|h| verify_and_refine(index.peaks(h.song)?, &query, h, cfg))
        .collect();
    times.verify = t.elapsed().as_secs_f64() - times.pairs;
    let decisive = found.iter().any(|m| m.verified(cfg) && m.score >= cfg.pairs_decisive);
    if !decisive {
        let t1 = std::time::Instant::now();
        let (hyps, hits) = quad_hypotheses_counted(index, q, cfg);
        times.quads = t1.elapsed().as_secs_f64();
        times.quad_hits = hits;
        let t2 = std::time::Instant::now();
        found.extend(
            hyps.iter()
                .filter_map(|h| verify_and_refine(index.peaks(h.song)?, &query, h, cfg)),
        );
        times.verify += t2.elapsed().as_secs_f64();
    }
    let mut out: Vec<LandmarkMatch> = Vec::new();
    for m in found {
        if threshold && !m.verified(cfg) {
            continue;
        }
        match out.iter_mut().find(|o| o.song == m.song) {
            Some(o) if o.score >= m.score => {}
            Some(o) => *o = m,
            None => out.push(m),
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.song.cmp(&b.song)));
    out.truncate(cfg.max_matches);
    (out, times)
}

/// Verification of songs at hypotheses from another stage, with the query's
/// occupancy map built once ([`Guide::verify_at`]).
pub struct Guide<'a> {
    query: QueryPeaks<'a>,
    cfg: &'a SearchConfig,
}

impl<'a> Guide<'a> {
    /// Prepares the query's peaks for verification.
    pub fn new(q: &'a QueryLandmarks, cfg: &'a SearchConfig) -> Self {
        Self {
            query: QueryPeaks::new(q, cfg),
            cfg,
        }
    }

    /// Verifies `song` at `time_scale` (query / reference durations) and
    /// `tau` (the reference frame at query frame 0), as another stage
    /// located it, coarsely (the neural stage's half-second segments). The
    /// frequency scale is searched over the configured range in quarter
    /// semitones, τ over ±`tau_slack` frames in steps of the verification
    /// box and the time scale over ±2 %; the best is refined as a quad
    /// hypothesis would be. `None` when the song has no stored peaks under
    /// the query.
    pub fn verify_at(
        &self,
        index: &LandmarkIndex,
        song: u32,
        time_scale: f64,
        tau: f64,
        tau_slack: f64,
    ) -> Option<LandmarkMatch> {
        let cfg = self.cfg;
        let ref_peaks = index.peaks(song)?;
        // τ in steps of the verification box's full width: the true offset
        // is then within the box of one step, and the refit finds it exactly.
        let step_t = 2.0 * cfg.verify_frames.max(1) as f64;
        let quarter = 2f64.powf(1.0 / 48.0);
        let mut best: Option<(f64, Hypothesis)> = None;
        for s_t in [time_scale, time_scale * 0.98, time_scale * 1.02] {
            if !(cfg.min_time_scale..=cfg.max_time_scale).contains(&s_t) {
                continue;
            }
            let mut s_f = cfg.min_freq_scale;
            while s_f <= cfg.max_freq_scale {
                let mut d = -tau_slack;
                while d <= tau_slack {
                    let h = Hypothesis {
                        song,
                        time_scale: s_t,
                        freq_scale: s_f,
                        tau: tau + d,
                        votes: 0,
                        method: Method::Guided,
                    };
                    let v = verify(ref_peaks, &self.query, &h, GUIDE_STRIDE);
                    let k = kappa(&v);
                    if v.mapped > 0 && best.as_ref().is_none_or(|(b, _)| k > *b) {
                        best = Some((k, h));
                    }
                    d += step_t;
                }
                s_f *= quarter;
            }
        }
        let (_, h) = best?;
        // A handful of mapped peaks proves nothing either way (a kappa of 1
        // from one peak): under the match's minimum, no verification.
        verify_and_refine(ref_peaks, &self.query, &h, cfg).filter(|m| m.mapped >= cfg.min_matched)
    }
}

/// Time spent in each part of [`search`], for benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SearchTimes {
    /// Pair lookups and voting (s).
    pub pairs: f64,
    /// Quad range search, filters and sequence estimation (s; 0 when the
    /// pairs were decisive).
    pub quads: f64,
    /// Verification and refits (s).
    pub verify: f64,
    /// Quad hits that passed the scale and pitch filters.
    pub quad_hits: usize,
}

/// [`search`], timing its parts.
pub fn search_timed(
    index: &LandmarkIndex,
    q: &QueryLandmarks,
    cfg: &SearchConfig,
) -> (Vec<LandmarkMatch>, SearchTimes) {
    run(index, q, cfg, true)
}

/// Every hypothesis before verification (for diagnostics and tuning).
pub fn verify_all(index: &LandmarkIndex, q: &QueryLandmarks, cfg: &SearchConfig) -> Vec<LandmarkMatch> {
    let mut hyps = pair_hypotheses(index, q, cfg);
    hyps.extend(quad_hypotheses(index, q, cfg));
    let query = QueryPeaks::new(q, cfg);
    hyps.iter()
        .filter_map(|h| verify_and_refine(index.peaks(h.song)?, &query, h, cfg))
        .collect()
}

fn pair_hypotheses(index: &LandmarkIndex, q: &QueryLandmarks, cfg: &SearchConfig) -> Vec<Hypothesis> {
    // Peaks move by a bin or a frame under noise, reverb or a codec, and the
    // hashes are exact: each query pair also looks up its neighbours (anchor
    // bin, bin difference and frame difference ± `pair_jitter`).
    let j = cfg.pair_jitter as i32;
    let mut votes: Vec<(u32, i64)> = Vec::new();
    for h in &q.pairs {
        let (bin, df, dt) = PairHash::unpack(h.hash);
        for db in -j..=j {
            let Some(bin) = bin.checked_add_signed(db).filter(|b| *b < 1024) else {
                continue;
            };
            for ddf in -j..=j {
                let df = df + ddf;
                if df.abs() > 127 {
                    continue;
                }
                for ddt in -j..=j {
                    let Some(dt) = dt.checked_add_signed(ddt).filter(|t| *t < 1 << 14) else {
                        continue;
                    };
                    for p in index.pair_postings(PairHash::pack(bin, df, dt)) {
                        votes.push((p.song, p.frame as i64 - h.frame as i64));
                    }
                }
            }
        }
    }
    votes.sort_unstable();
    // Per song, the window of offsets (`pair_window` frames) with the most votes.
    let mut best: Vec<(usize, u32, f64)> = Vec::new();
    let mut start = 0;
    while start < votes.len() {
        let song = votes[start].0;
        let end = start + votes[start..].iter().take_while(|v| v.0 == song).count();
        if index.contains(song) {
            let offs: Vec<i64> = votes[start..end].iter().map(|v| v.1).collect();
            let (mut lo, mut top) = (0, (0usize, 0usize));
            for hi in 0..offs.len() {
                while offs[hi] - offs[lo] > cfg.pair_window as i64 {
                    lo += 1;
                }
                if hi + 1 - lo > top.0 {
                    top = (hi + 1 - lo, lo);
                }
            }
            let window = &offs[top.1..top.1 + top.0];
            best.push((top.0, song, window[window.len() / 2] as f64));
        }
        start = end;
    }
    best.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    best.into_iter()
        .filter(|b| b.0 >= cfg.min_pair_votes)
        .take(cfg.candidates)
        .map(|(n, song, tau)| Hypothesis {
            song,
            time_scale: 1.0,
            freq_scale: 1.0,
            tau,
            votes: n,
            method: Method::Pairs,
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct QuadHit {
    song: u32,
    s_t: f64,
    s_f: f64,
    tau: f64,
    /// Query A (frame, bin) and reference A (frame, bin).
    qa: (f64, f64),
    ra: (f64, f64),
}

fn quad_hypotheses(index: &LandmarkIndex, q: &QueryLandmarks, cfg: &SearchConfig) -> Vec<Hypothesis> {
    quad_hypotheses_counted(index, q, cfg).0
}

fn quad_hypotheses_counted(index: &LandmarkIndex, q: &QueryLandmarks, cfg: &SearchConfig) -> (Vec<Hypothesis>, usize) {
    // Probes in grid order: neighbouring query quads read neighbouring
    // memory. The fine pitch coherence below (|A_q − s_f · A_r| ≤
    // fine_pitch_bins with s_f = qdf / rdf) becomes a range of the
    // reference's ρ = A_r / rdf, which the index probes directly; a hair
    // wider, so that rounding at its edges leaves the decision to the test.
    let quads = q.quads();
    let mut order: Vec<(u32, usize)> = quads
        .iter()
        .enumerate()
        .map(|(i, qq)| (crate::index::probe_order(qq.hash, cfg.radius), i))
        .collect();
    order.sort_unstable();
    let probes: Vec<QuadProbe> = order
        .iter()
        .map(|&(_, i)| {
            let qq = &quads[i];
            let qdf = qq.b.1 as f64 - qq.a.1 as f64;
            QuadProbe {
                hash: qq.hash,
                radius: cfg.radius,
                rho: (
                    (qq.a.1 as f64 - cfg.fine_pitch_bins) / qdf * (1.0 - 1e-9),
                    (qq.a.1 as f64 + cfg.fine_pitch_bins) / qdf * (1.0 + 1e-9),
                ),
            }
        })
        .collect();
    // The probes in contiguous runs of the grid's order, shared by the
    // worker threads: a probe's scan is bounded by memory latency, which a
    // second core overlaps. A few runs per thread, so that a dense part of
    // the grid does not leave the other thread idle (at 100 h no faster
    // than one run per thread, within the machine's noise). The hits are
    // put in a total order below, so the split cannot change an answer.
    let threads = rayon::current_num_threads().max(1);
    let chunk = match threads {
        1 => probes.len().max(1),
        _ => probes.len().div_ceil(threads * RUNS_PER_THREAD).max(MIN_PROBES_PER_RUN),
    };
    let mut hits: Vec<QuadHit> = probes
        .par_chunks(chunk)
        .enumerate()
        .map(|(c, part)| {
            let mut hits = Vec::new();
            index.quads_near_each(part, &mut |k, r| {
                if let Some(h) = quad_hit(&quads[order[c * chunk + k].1], r, cfg) {
                    hits.push(h);
                }
            });
            hits
        })
        .flatten()
        .collect();
    // A total order, so that the grid's order of entries (which depends on
    // when songs were merged into it) cannot change an answer (over every
    // field, so an unstable sort gives the same order).
    hits.sort_unstable_by(|a, b| {
        (a.song.cmp(&b.song))
            .then(a.tau.total_cmp(&b.tau))
            .then(a.qa.0.total_cmp(&b.qa.0))
            .then(a.qa.1.total_cmp(&b.qa.1))
            .then(a.ra.0.total_cmp(&b.ra.0))
            .then(a.ra.1.total_cmp(&b.ra.1))
            .then(a.s_t.total_cmp(&b.s_t))
            .then(a.s_f.total_cmp(&b.s_f))
    });
    let mut out = Vec::new();
    let mut start = 0;
    while start < hits.len() {
        let song = hits[start].song;
        let end = start + hits[start..].iter().take_while(|h| h.song == song).count();
        if let Some(h) = sequence(&hits[start..end], cfg) {
            out.push(h);
        }
        start = end;
    }
    out.sort_by(|a, b| b.votes.cmp(&a.votes).then(a.song.cmp(&b.song)));
    out.truncate(cfg.candidates);
    (out, hits.len())
}

/// The quad search splits a query's probes into about this many runs per
/// worker thread, …
const RUNS_PER_THREAD: usize = 4;
/// … of at least this many probes (splitting a short query costs more than
/// it saves).
const MIN_PROBES_PER_RUN: usize = 1024;

/// The hit a stored quad makes for a query quad, if its time and frequency
/// scales are in range and its root moved coherently with them.
fn quad_hit(qq: &Quad, r: &RefQuad, cfg: &SearchConfig) -> Option<QuadHit> {
    let (qdt, qdf) = ((qq.b.0 - qq.a.0) as f64, qq.b.1 as f64 - qq.a.1 as f64);
    let rq = &r.quad;
    let (rdt, rdf) = ((rq.b.0 - rq.a.0) as f64, rq.b.1 as f64 - rq.a.1 as f64);
    if rdt <= 0.0 || rdf <= 0.0 {
        return None;
    }
    let (s_t, s_f) = (qdt / rdt, qdf / rdf);
    if !(cfg.min_time_scale..=cfg.max_time_scale).contains(&s_t)
        || !(cfg.min_freq_scale..=cfg.max_freq_scale).contains(&s_f)
    {
        return None;
    }
    let (qa_bin, ra_bin) = (qq.a.1 as f64, rq.a.1 as f64);
    // Coarse pitch coherence: A itself moved by a factor in range (a root
    // at 0 Hz, which no scaling moves, is left to the fine test below: a
    // query root within `fine_pitch_bins` of 0 Hz) …
    if ra_bin > 0.0 && !(cfg.min_freq_scale * 0.97..=cfg.max_freq_scale * 1.03).contains(&(qa_bin / ra_bin)) {
        return None;
    }
    // … and by the factor its quad's B − A spacing says.
    if (qa_bin - ra_bin * s_f).abs() > cfg.fine_pitch_bins {
        return None;
    }
    Some(QuadHit {
        song: r.song,
        s_t,
        s_f,
        tau: rq.a.0 as f64 - qq.a.0 as f64 / s_t,
        qa: (qq.a.0 as f64, qa_bin),
        ra: (rq.a.0 as f64, ra_bin),
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Sequence estimation for one song's hits (sorted by τ): the densest
/// window of τ, its scale-consistent hits, and the transform they fit.
fn sequence(hits: &[QuadHit], cfg: &SearchConfig) -> Option<Hypothesis> {
    const TAU_WINDOW: f64 = 40.0; // frames (0.16 s)
    const SCALE_SPREAD: f64 = 0.04;
    if hits.len() < cfg.min_quad_matches {
        return None;
    }
    let (mut lo, mut top) = (0, (0usize, 0usize));
    for hi in 0..hits.len() {
        while hits[hi].tau - hits[lo].tau > TAU_WINDOW {
            lo += 1;
        }
        if hi + 1 - lo > top.0 {
            top = (hi + 1 - lo, lo);
        }
    }
    let window = &hits[top.1..top.1 + top.0];
    if window.len() < cfg.min_quad_matches {
        return None;
    }
    let s_t = median(&mut window.iter().map(|h| h.s_t).collect::<Vec<_>>());
    let s_f = median(&mut window.iter().map(|h| h.s_f).collect::<Vec<_>>());
    let kept: Vec<&QuadHit> = window
        .iter()
        .filter(|h| (h.s_t / s_t - 1.0).abs() <= SCALE_SPREAD && (h.s_f / s_f - 1.0).abs() <= SCALE_SPREAD)
        .collect();
    if kept.len() < cfg.min_quad_matches {
        return None;
    }
    let s_t = median(&mut kept.iter().map(|h| h.s_t).collect::<Vec<_>>());
    let tau = median(&mut kept.iter().map(|h| h.tau).collect::<Vec<_>>());
    // The frequency scale from the A bins themselves (through the origin:
    // a pitch shift multiplies every frequency), steadier than B − A spacings.
    let (sxy, sxx) = kept
        .iter()
        .fold((0.0, 0.0), |(xy, xx), h| (xy + h.ra.1 * h.qa.1, xx + h.ra.1 * h.ra.1));
    let s_f = if sxx > 0.0 { sxy / sxx } else { s_f };
    Some(Hypothesis {
        song: hits[0].song,
        time_scale: s_t,
        freq_scale: s_f,
        tau,
        votes: kept.len(),
        method: Method::Quads,
    })
}

/// The query's peaks for verification: a dilated occupancy map (is there a
/// query peak within the box?) and the peaks by frame (which one?).
struct QueryPeaks<'a> {
    peaks: &'a [Peak],
    frames: u32,
    bins: u32,
    /// frames × bins bits.
    near: Vec<u64>,
    /// Per bin, the share of frames with a query peak within the box: the
    /// chance that a peak mapped to that bin at a random time matches.
    chance: Vec<f64>,
    box_frames: u32,
    box_bins: u32,
    verify_strongest: f64,
    levels: Option<&'a QueryLevels>,
    absent_ln: f64,
}

impl<'a> QueryPeaks<'a> {
    fn new(q: &'a QueryLandmarks, cfg: &SearchConfig) -> Self {
        let (frames, bins) = (q.frames.max(1), q.bins.max(1));
        let mut near = vec![0u64; (frames as usize * bins as usize).div_ceil(64)];
        for p in &q.peaks {
            let f0 = p.frame.saturating_sub(cfg.verify_frames);
            let f1 = (p.frame + cfg.verify_frames).min(frames - 1);
            let b0 = p.bin.saturating_sub(cfg.verify_bins);
            let b1 = (p.bin + cfg.verify_bins).min(bins - 1);
            for f in f0..=f1 {
                for b in b0..=b1 {
                    let i = f as usize * bins as usize + b as usize;
                    near[i / 64] |= 1 << (i % 64);
                }
            }
        }
        let mut chance = vec![0.0; bins as usize];
        for f in 0..frames as usize {
            for (b, c) in chance.iter_mut().enumerate() {
                let i = f * bins as usize + b;
                if near[i / 64] & (1 << (i % 64)) != 0 {
                    *c += 1.0;
                }
            }
        }
        chance.iter_mut().for_each(|c| *c /= frames as f64);
        Self {
            peaks: &q.peaks,
            frames,
            bins,
            near,
            chance,
            box_frames: cfg.verify_frames,
            box_bins: cfg.verify_bins,
            verify_strongest: cfg.verify_strongest,
            levels: q.levels.as_ref(),
            absent_ln: cfg.absent_db * std::f64::consts::LN_10 / 20.0,
        }
    }

    fn is_near(&self, t: f64, f: f64) -> bool {
        let (t, f) = (t.round(), f.round());
        if t < 0.0 || f < 0.0 || t >= self.frames as f64 || f >= self.bins as f64 {
            return false;
        }
        let i = t as usize * self.bins as usize + f as usize;
        self.near[i / 64] & (1 << (i % 64)) != 0
    }

    /// The query peak nearest to (t, f) inside the box.
    fn nearest(&self, t: f64, f: f64) -> Option<&Peak> {
        let lo = self
            .peaks
            .partition_point(|p| (p.frame as f64) < t - self.box_frames as f64);
        self.peaks[lo..]
            .iter()
            .take_while(|p| p.frame as f64 <= t + self.box_frames as f64)
            .filter(|p| (p.bin as f64 - f).abs() <= self.box_bins as f64)
            .min_by(|a, b| {
                let d = |p: &Peak| {
                    ((p.frame as f64 - t) / self.box_frames as f64).powi(2)
                        + ((p.bin as f64 - f) / self.box_bins as f64).powi(2)
                };
                d(a).total_cmp(&d(b))
            })
    }
}

struct Verified {
    matched: usize,
    mapped: usize,
    /// Matches expected by chance (sum of the mapped peaks' bin chances).
    expected: f64,
    first: f64,
    last: f64,
    /// (reference frame, reference bin, query frame, query bin) of matched peaks.
    pairs: Vec<(f64, f64, f64, f64)>,
    /// Per mapped peak (full verifications with levels only): the query's
    /// level around it minus the peak's (ln), the query's loudest level in
    /// its band minus the peak's, and whether it matched.
    levels: Vec<(f32, f32, bool)>,
}

/// The guided grid scan verifies every this-many-th stored peak (kappa on a
/// subsample estimates the whole's); the best hypothesis is then verified
/// on all of them. 4 keeps the scan of three songs near 10 ms.
const GUIDE_STRIDE: usize = 4;

/// Maps the stored peaks over the query's span by `h` and counts those with
/// a query peak in the box. `stride` 1: every peak, and the matched pairs
/// for a refit; more: every `stride`-th peak and no pairs (a scan).
fn verify(ref_peaks: &[Peak], query: &QueryPeaks, h: &Hypothesis, stride: usize) -> Verified {
    let with_pairs = stride <= 1;
    let span = query.frames as f64 / h.time_scale;
    let lo = ref_peaks.partition_point(|p| (p.frame as f64) < h.tau);
    let inside = ref_peaks[lo..].iter().take_while(|p| (p.frame as f64) < h.tau + span);
    // Only the strongest share of the stored peaks over the span: noise
    // and music mixed over a sample hide the weak ones first.
    let floor = if query.verify_strongest < 1.0 {
        let mut mags: Vec<f32> = inside.clone().map(|p| p.magnitude).collect();
        mags.sort_by(|a, b| b.total_cmp(a));
        let keep = ((mags.len() as f64 * query.verify_strongest).ceil() as usize).clamp(1, mags.len().max(1));
        mags.get(keep - 1).copied().unwrap_or(0.0)
    } else {
        0.0
    };
    let mut v = Verified {
        matched: 0,
        mapped: 0,
        expected: 0.0,
        first: f64::INFINITY,
        last: f64::NEG_INFINITY,
        pairs: Vec::new(),
        levels: Vec::new(),
    };
    let levels = query.levels.filter(|_| with_pairs);
    for p in inside.filter(|p| p.magnitude >= floor).step_by(stride.max(1)) {
        let t = (p.frame as f64 - h.tau) * h.time_scale;
        let f = p.bin as f64 * h.freq_scale;
        if f >= query.bins as f64 || t < 0.0 || t >= query.frames as f64 {
            continue;
        }
        v.mapped += 1;
        v.expected += query.chance[(f.round() as usize).min(query.bins as usize - 1)];
        let near = query.is_near(t, f);
        if let Some(l) = levels {
            let (bt, bf) = (query.box_frames as f64, query.box_bins as f64);
            if let (Some(q), Some(c)) = (l.box_max(t, f, bt, bf), l.ceiling(f, bf)) {
                let p_ln = p.magnitude.max(1e-9).ln();
                v.levels.push((q - p_ln, c - p_ln, near));
            }
        }
        if near {
            v.matched += 1;
            v.first = v.first.min(t);
            v.last = v.last.max(t);
            if with_pairs && let Some(qp) = query.nearest(t, f) {
                v.pairs
                    .push((p.frame as f64, p.bin as f64, qp.frame as f64, qp.bin as f64));
            }
        }
    }
    v
}

/// Least-squares refit of the transform on matched peak pairs: query frame
/// = s_t · (reference frame − τ), query bin = s_f · reference bin.
fn refit(h: &Hypothesis, pairs: &[(f64, f64, f64, f64)], cfg: &SearchConfig) -> Option<Hypothesis> {
    if pairs.len() < 4 {
        return None;
    }
    let n = pairs.len() as f64;
    let (mx, my) = pairs.iter().fold((0.0, 0.0), |(a, b), p| (a + p.0 / n, b + p.2 / n));
    let (sxy, sxx) = pairs.iter().fold((0.0, 0.0), |(a, b), p| {
        (a + (p.0 - mx) * (p.2 - my), b + (p.0 - mx).powi(2))
    });
    let (fxy, fxx) = pairs
        .iter()
        .fold((0.0, 0.0), |(a, b), p| (a + p.1 * p.3, b + p.1 * p.1));
    if sxx <= 0.0 || fxx <= 0.0 {
        return None;
    }
    let (s_t, s_f) = match h.method {
        // Pairs hash absolute frequencies and time differences: they only
        // find unscaled audio, so only the offset is refitted (fitting
        // scales to a handful of chance matches would overfit them).
        Method::Pairs => (1.0, 1.0),
        Method::Quads | Method::Guided => (sxy / sxx, fxy / fxx),
    };
    let in_range = (cfg.min_time_scale..=cfg.max_time_scale).contains(&s_t)
        && (cfg.min_freq_scale..=cfg.max_freq_scale).contains(&s_f)
        // A refit may not wander far from what the landmarks said.
        && (s_t / h.time_scale - 1.0).abs() <= 0.05
        && (s_f / h.freq_scale - 1.0).abs() <= 0.05;
    if !in_range {
        return None;
    }
    // my = s_t · (mx − τ)
    let tau = mx - my / s_t;
    Some(Hypothesis {
        time_scale: s_t,
        freq_scale: s_f,
        tau,
        ..*h
    })
}

/// The verification score: the matched share of the mapped peaks beyond
/// chance, (matched − expected) / (mapped − expected), Cohen's kappa. Raw
/// shares mislead: a dense query (music mixed over the sample, loud noise)
/// puts a query peak near most places, and bass bins are crowded.
fn kappa(v: &Verified) -> f64 {
    let room = v.mapped as f64 - v.expected;
    if room <= 0.0 {
        return 0.0;
    }
    ((v.matched as f64 - v.expected) / room).max(0.0)
}

/// Matched peaks needed to estimate the clip's gain for [`absence`].
const ABSENCE_MIN_MATCHED: usize = 8;

/// Share of the mapped peaks the query lacks: the clip's gain is the median
/// of (query level − peak level) over matched peaks; a peak is lacking when
/// the query around it is more than `absent_ln` below its level times the
/// gain, and counted only where the query's loudest level in its band would
/// have been loud enough (a band-pass or codec removes whole bands; another
/// recording is quiet at a place, not in a band).
fn absence(levels: &[(f32, f32, bool)], absent_ln: f64) -> Option<f64> {
    let mut matched: Vec<f32> = levels.iter().filter(|l| l.2).map(|l| l.0).collect();
    if matched.len() < ABSENCE_MIN_MATCHED {
        return None;
    }
    matched.sort_by(f32::total_cmp);
    let gain = matched[matched.len() / 2] as f64;
    let floor = gain - absent_ln;
    let (mut lacking, mut counted) = (0usize, 0usize);
    for &(q, c, _) in levels {
        if (c as f64) < floor {
            continue;
        }
        counted += 1;
        if (q as f64) < floor {
            lacking += 1;
        }
    }
    (counted > 0).then(|| lacking as f64 / counted as f64)
}

fn verify_and_refine(
    ref_peaks: &[Peak],
    query: &QueryPeaks,
    h: &Hypothesis,
    cfg: &SearchConfig,
) -> Option<LandmarkMatch> {
    let mut best_h = *h;
    let mut best = verify(ref_peaks, query, h, 1);
    if best.mapped == 0 {
        return None;
    }
    for _ in 0..2 {
        let Some(next) = refit(&best_h, &best.pairs, cfg) else {
            break;
        };
        let v = verify(ref_peaks, query, &next, 1);
        if v.mapped == 0 || kappa(&v) < kappa(&best) {
            break;
        }
        best_h = next;
        best = v;
    }
    Some(LandmarkMatch {
        song: best_h.song,
        score: kappa(&best),
        matched: best.matched,
        mapped: best.mapped,
        votes: best_h.votes,
        method: best_h.method,
        time_scale: best_h.time_scale,
        freq_scale: best_h.freq_scale,
        tau: best_h.tau,
        query_first: if best.matched > 0 { best.first } else { 0.0 },
        query_last: if best.matched > 0 { best.last } else { 0.0 },
        absent: absence(&best.levels, query.absent_ln),
    })
}
