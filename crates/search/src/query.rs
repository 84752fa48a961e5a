//! Two-stage search of a library on disk (NeuralSampleID §4–5, with the
//! published evaluation bugs fixed):
//!
//! 1. every query segment (hop 0.512 s) asks the ANN index for its `top_k`
//!    nearest reference segments;
//! 2. the cross-attention classifier scores every distinct candidate against
//!    every query segment's node matrix and keeps the maximum; candidates
//!    below `accept` (0.5) are rejected; accepted scores are summed per song.
//!
//! Each query segment uses its own node matrix (the published hit-rate code
//! used the last annotation's for all). Then the accepted (query segment,
//! reference segment) pairs of a song are fitted with a line
//! `ref = a · query + b` over a grid of tempo ratios; the best-supported line
//! gives where the match starts in both and, when at least three distinct
//! query segments agree, the time ratio. By default a song's score then sums
//! only the accepted candidates on that line (`consistent`; the published
//! code sums them all).

use std::collections::{BTreeMap, HashMap, HashSet};

use rayon::prelude::*;
use sampleid_index::{IndexError, Library};
use sampleid_rerank::{RerankError, Reranker};

use crate::evidence::{Evidence, NeuralEvidence};
use serde::{Deserialize, Serialize};

/// Errors of the search stage.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Rerank(#[from] RerankError),
}

/// Query settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// ANN candidates per query segment (published: 5 for hit rates, 3 for mAP).
    pub top_k: usize,
    /// Classifier scores below this reject a candidate (published 0.5).
    pub accept: f32,
    /// Without a classifier, candidates below this cosine similarity are rejected.
    pub min_similarity: f32,
    /// At most this many songs per query.
    pub max_matches: usize,
    /// Score a song only by its candidates on the located line (offset and
    /// tempo consistent), instead of all its accepted candidates (published).
    /// Measured on `bench-data/default` (GNN, HNSW): sample-ID top-1 13.5 %
    /// vs 11.2 %, mAP (AP@20) 21.0 % vs 19.9 %, top-10 38.1 % vs 40.4 %;
    /// audio-ID unchanged (4.4 %).
    pub consistent: bool,
    /// Songs whose score is below this are not reported. 0: with the shipped
    /// models no threshold trades well (consistent scores: at 1, sample-ID
    /// top-1 11.5 % with 72 % false accepts; at 2, 7.3 % with 45 %).
    pub min_song_score: f64,
    /// Tempo ratios (reference segments per query segment) tried when
    /// locating a match: from 1/`max_ratio` to `max_ratio`.
    pub max_ratio: f64,
    /// The engine reports a song only when its calibrated confidence (the
    /// probability that it is right) is at least this.
    pub min_confidence: f64,
    /// When the landmark stage alone gives a song at least this confidence,
    /// the engine answers without running the neural stage (above 1: never).
    pub early_stop: f64,
    /// The neural stage's best songs (this many) that the landmarks verify
    /// at the place and time ratio the neural stage located them, when the
    /// landmark search did not verify them itself. With distractors in the
    /// library the right song falls down the neural stage's list, so more
    /// were tried on the validation benchmarks at 6× their references (83
    /// train-split distractors): 6 found one clip more than 3 (bench-lm-val
    /// sample-ID 40.9 → 41.6 %; none at 1×), 10 none more than 6, with the
    /// same false accepts, but bench-lm-val's queries took 7–8 % longer on
    /// average (10 s clips 11–14 %): 3 stays (`docs/identification.md`).
    /// The song nearest by chroma shingle is verified as well when the
    /// neural stage ranks it below these (the engine's fused answer).
    pub guided: usize,
    /// The landmark stage's best songs (this many, best verification score
    /// first) that the neural stage also looks at where the landmarks placed
    /// them, when none of its ANN's accepted candidates came from them: the
    /// song's segments along that line are re-ranked like the ANN's. In a
    /// larger library the right song's segments are pushed out of the ANN's
    /// `top_k` by other songs' while the landmarks still hold it. 0: only the
    /// ANN's candidates (before). 3, with the calibrator refitted on its
    /// answers (the guided evidence weighed apart): 844 known clips of the
    /// four validation runs found against 843 at 0, 11 unknown ones accepted
    /// against 11; 10 s clips at a 4× library 1.07× slower (median 85.4 →
    /// 91.7 ms; docs/identification.md, which also has the test split).
    pub neural_guided: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            top_k: 5,
            accept: 0.5,
            min_similarity: 0.0,
            max_matches: 10,
            consistent: true,
            min_song_score: 0.0,
            max_ratio: 1.6,
            min_confidence: 0.5,
            early_stop: EARLY_STOP,
            guided: GUIDED,
            neural_guided: NEURAL_GUIDED,
        }
    }
}

impl QueryConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.top_k == 0 || self.max_matches == 0 {
            return Err("top_k and max_matches must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.accept) {
            return Err(format!("accept must lie in [0, 1] (got {})", self.accept));
        }
        if !(-1.0..=1.0).contains(&self.min_similarity) {
            return Err(format!(
                "min_similarity must lie in [-1, 1] (got {})",
                self.min_similarity
            ));
        }
        if !(self.max_ratio.is_finite() && self.max_ratio >= 1.0) {
            return Err(format!("max_ratio must be at least 1 (got {})", self.max_ratio));
        }
        if !(self.min_song_score.is_finite() && self.min_song_score >= 0.0) {
            return Err(format!(
                "min_song_score must be at least 0 (got {})",
                self.min_song_score
            ));
        }
        if !(0.0..=1.0).contains(&self.min_confidence) {
            return Err(format!(
                "min_confidence must lie in [0, 1] (got {})",
                self.min_confidence
            ));
        }
        if !(self.early_stop.is_finite() && self.early_stop >= 0.0) {
            return Err(format!("early_stop must be at least 0 (got {})", self.early_stop));
        }
        Ok(())
    }
}

/// Default of [`QueryConfig::early_stop`].
pub const EARLY_STOP: f64 = 0.95;

/// Default of [`QueryConfig::guided`].
pub const GUIDED: usize = 3;

/// Default of [`QueryConfig::neural_guided`].
pub const NEURAL_GUIDED: usize = 3;

/// A song that the neural stage looks at along the line another stage
/// placed it on (a landmark hypothesis), beside what its ANN search retrieves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guide {
    /// The song's id in the library.
    pub song_id: i64,
    /// Where the match starts in the query (s).
    pub query_start: f64,
    /// Where it starts in the song (s).
    pub reference_start: f64,
    /// Query duration / reference duration.
    pub time_ratio: f64,
}

/// One segment of a query: its fingerprint and its node matrix (as the encoder gives them).
#[derive(Debug, Clone)]
pub struct QuerySegment {
    /// Unit vector of the library's `dim`, for stage 1.
    pub fingerprint: Vec<f32>,
    /// Channel-major node matrix, for the re-ranker (unused without one).
    pub nodes: Vec<f32>,
}

/// A song found in a query (the fields of `sampleid query --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    /// The reference's path, as indexed.
    pub reference: String,
    /// The calibrated confidence when the engine's fusion answered (the
    /// probability that the song is right); otherwise the stage's own score
    /// (the neural stage: the sum of the accepted candidates' scores).
    pub score: f64,
    /// The calibrated probability that the song is right (equal to `score`
    /// when the engine answered; `null` straight from this crate's search).
    pub confidence: Option<f64>,
    /// Where the matched material starts in the query (s).
    pub query_start: f64,
    /// Where it starts in the reference (s).
    pub reference_start: f64,
    /// Query duration / reference duration of the matched material.
    pub time_ratio: Option<f64>,
    /// Pitch change from reference to query (semitones), when the chroma
    /// alignment (`sampleid-matching`) is clear; set by the caller.
    pub pitch_shift: Option<f64>,
    /// The song's id in the library (`sampleid list`, `DELETE /v1/songs/{id}`).
    pub song_id: i64,
    /// The song's duration (s).
    pub reference_duration: f64,
    /// Which stage found it: "neural", or the landmarks that proposed it
    /// ("pairs", "quads"), whose score is the verification score.
    pub stage: &'static str,
    /// Every stage that found the song (a verified landmark hypothesis,
    /// accepted neural candidates), for display.
    pub stages: Vec<&'static str>,
    /// What each stage saw of the song.
    pub evidence: Evidence,
    /// Accepted candidate segments.
    #[serde(skip)]
    pub segments: usize,
}

/// Searches `lib` for a query; `reranker: None` skips the second stage.
/// Songs come best first (ties by song id), at most `cfg.max_matches`.
pub fn query(
    lib: &Library,
    reranker: Option<&Reranker>,
    segments: &[QuerySegment],
    cfg: &QueryConfig,
) -> Result<Vec<Match>, SearchError> {
    query_guided(lib, reranker, segments, cfg, &[])
}

/// [`query`], where the songs of `guides` (at most `cfg.neural_guided`,
/// in order) that none of the ANN's accepted candidates came from are
/// looked at along their guide's line: the reference segments within one
/// hop of where the line puts each query segment are scored like the ANN's
/// candidates. The ANN's songs keep the ranks and shares they have without
/// guides; a guided song comes after them (at most one per guide, beyond
/// `max_matches`), its share being its score over theirs plus its own.
pub fn query_guided(
    lib: &Library,
    reranker: Option<&Reranker>,
    segments: &[QuerySegment],
    cfg: &QueryConfig,
    guides: &[Guide],
) -> Result<Vec<Match>, SearchError> {
    if segments.is_empty() || lib.songs().is_empty() {
        return Ok(Vec::new());
    }
    let candidates = retrieve(lib, segments, cfg.top_k)?;
    let songs = score_and_gather(lib, reranker, segments, &candidates, cfg)?;
    let guides: Vec<&Guide> = guides
        .iter()
        .take(cfg.neural_guided)
        .filter(|g| !songs.contains_key(&g.song_id))
        .collect();
    let mut out: Vec<Match> = songs
        .into_iter()
        .filter_map(|(id, evidence)| to_match(lib, id, &evidence, cfg, segments.len()))
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.song_id.cmp(&b.song_id)));
    // Shares over every song with accepted candidates (before the cut, so
    // that they do not depend on `max_matches`).
    let total: f64 = out.iter().map(|m| m.score).sum();
    out.truncate(cfg.max_matches);
    for (rank, m) in out.iter_mut().enumerate() {
        if let Some(n) = m.evidence.neural.as_mut() {
            n.rank = rank;
            n.share = if total > 0.0 { m.score / total } else { 0.0 };
        }
    }
    let guided = guided_candidates(lib, segments, &guides);
    if !guided.is_empty() {
        let songs = score_and_gather(lib, reranker, segments, &guided, cfg)?;
        let mut extra: Vec<Match> = songs
            .into_iter()
            .filter_map(|(id, evidence)| to_match(lib, id, &evidence, cfg, segments.len()))
            .collect();
        extra.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.song_id.cmp(&b.song_id)));
        let first = out.len();
        for (i, m) in extra.iter_mut().enumerate() {
            let own = m.score;
            if let Some(n) = m.evidence.neural.as_mut() {
                n.rank = first + i;
                n.share = own / (total + own);
                n.guided = true;
            }
        }
        out.extend(extra);
    }
    Ok(out)
}

/// Stage 2 (or the similarity without a re-ranker) of `candidates`, and the
/// accepted ones gathered per song.
fn score_and_gather(
    lib: &Library,
    reranker: Option<&Reranker>,
    segments: &[QuerySegment],
    candidates: &[Candidate],
    cfg: &QueryConfig,
) -> Result<HashMap<i64, SongEvidence>, SearchError> {
    let (scored, threshold) = match reranker {
        Some(rr) => (rerank(lib, rr, segments, candidates)?, cfg.accept),
        None => (by_similarity(candidates), cfg.min_similarity),
    };
    Ok(gather(lib, candidates, &scored, threshold))
}

/// A reference row that stage 1 retrieved, with every query segment that retrieved it.
struct Candidate {
    row: u64,
    /// In query segment order.
    retrieved_by: Vec<Hit>,
}

/// One query segment's retrieval of a candidate.
#[derive(Debug, Clone, Copy)]
struct Hit {
    segment: usize,
    /// Cosine similarity of the two fingerprints.
    similarity: f32,
}

/// A candidate's stage 2 score and the query segment that gave it.
struct Scored {
    row: u64,
    score: f32,
    best_segment: usize,
}

/// A candidate that passed the threshold, as evidence for its song.
struct Accepted {
    /// Its segment index in the song.
    ref_seg: f64,
    /// Its score.
    weight: f64,
    /// The query segments it is paired with: the best-scoring one first, then
    /// the others that retrieved it.
    query_segments: Vec<usize>,
}

/// Everything the accepted candidates of one song say.
#[derive(Default)]
struct SongEvidence {
    /// Sum of the accepted candidates' scores.
    score: f64,
    /// Accepted candidates.
    segments: usize,
    /// (query segment, reference segment) pairs for [`locate`].
    pairs: Vec<Pair>,
    accepted: Vec<Accepted>,
}

impl SongEvidence {
    /// Adds an accepted candidate: segment `ref_seg` of the song, found by `retrieved_by`.
    fn add(&mut self, scored: &Scored, ref_seg: u64, retrieved_by: &[Hit]) {
        let weight = scored.score as f64;
        let ref_seg = ref_seg as f64;
        self.score += weight;
        self.segments += 1;
        self.pairs.push(Pair {
            query_seg: scored.best_segment as f64,
            ref_seg,
            weight,
        });
        let mut query_segments = vec![scored.best_segment];
        for hit in retrieved_by {
            if hit.segment != scored.best_segment {
                self.pairs.push(Pair {
                    query_seg: hit.segment as f64,
                    ref_seg,
                    weight,
                });
                query_segments.push(hit.segment);
            }
        }
        self.accepted.push(Accepted {
            ref_seg,
            weight,
            query_segments,
        });
    }

    /// Sum of the scores of the accepted candidates within one segment of
    /// the located line (for at least one of their query segments).
    fn consistent_score(&self, fit: &Located) -> f64 {
        let a = fit.ratio.unwrap_or(1.0);
        self.accepted
            .iter()
            .filter(|c| {
                c.query_segments
                    .iter()
                    .any(|&q| (c.ref_seg - (fit.ref_seg + a * (q as f64 - fit.query_seg))).abs() <= 1.0)
            })
            .map(|c| c.weight)
            .sum()
    }
}

/// Stage 1: the `top_k` nearest rows of every query segment, merged per row
/// (in row order).
fn retrieve(lib: &Library, segments: &[QuerySegment], top_k: usize) -> Result<Vec<Candidate>, IndexError> {
    let hits: Vec<Vec<(u64, f32)>> = segments
        .par_iter()
        .map(|s| lib.nearest(&s.fingerprint, top_k))
        .collect::<Result<_, _>>()?;
    let mut by_row: BTreeMap<u64, Vec<Hit>> = BTreeMap::new();
    for (segment, nearest) in hits.iter().enumerate() {
        for &(row, similarity) in nearest {
            by_row.entry(row).or_default().push(Hit { segment, similarity });
        }
    }
    Ok(by_row
        .into_iter()
        .map(|(row, retrieved_by)| Candidate { row, retrieved_by })
        .collect())
}

/// The rows of each guide's song along its line: for every query segment,
/// the song's segments within one hop of where the line puts it (in row order).
fn guided_candidates(lib: &Library, segments: &[QuerySegment], guides: &[&Guide]) -> Vec<Candidate> {
    let hop = lib.layout().hop_s;
    let mut by_row: BTreeMap<u64, Vec<Hit>> = BTreeMap::new();
    for g in guides {
        if !(g.time_ratio.is_finite() && g.time_ratio > 0.0) {
            continue;
        }
        let Some(song) = lib.songs().iter().find(|s| s.id == g.song_id) else {
            continue;
        };
        for (segment, q) in segments.iter().enumerate() {
            let at = (g.reference_start + (segment as f64 * hop - g.query_start) / g.time_ratio) / hop;
            let centre = at.round();
            for off in [centre - 1.0, centre, centre + 1.0] {
                if off < 0.0 || off >= song.segments as f64 {
                    continue;
                }
                let row = song.first_row + off as u64;
                let similarity = lib.similarity(row, &q.fingerprint);
                by_row.entry(row).or_default().push(Hit { segment, similarity });
            }
        }
    }
    by_row
        .into_iter()
        .map(|(row, retrieved_by)| Candidate { row, retrieved_by })
        .collect()
}

/// Stage 2: every candidate's best classifier score over all query segments
/// (one per candidate, in the same order).
fn rerank(
    lib: &Library,
    rr: &Reranker,
    segments: &[QuerySegment],
    candidates: &[Candidate],
) -> Result<Vec<Scored>, RerankError> {
    let prepared: Vec<_> = segments
        .par_iter()
        .map(|s| rr.prepare_query(&s.nodes))
        .collect::<Result<_, _>>()?;
    candidates
        .par_iter()
        .map(|c| {
            let reference = rr.prepare_reference(lib.nodes(c.row))?;
            let (best_segment, score) =
                first_max(prepared.iter().enumerate().map(|(s, q)| (s, rr.score(q, &reference))));
            Ok(Scored {
                row: c.row,
                score,
                best_segment,
            })
        })
        .collect()
}

/// Without a classifier: every candidate's best stage 1 similarity (one per
/// candidate, in the same order).
fn by_similarity(candidates: &[Candidate]) -> Vec<Scored> {
    candidates
        .iter()
        .map(|c| {
            let (best_segment, score) = first_max(c.retrieved_by.iter().map(|h| (h.segment, h.similarity)));
            Scored {
                row: c.row,
                score,
                best_segment,
            }
        })
        .collect()
}

/// The first (query segment, score) with the highest score; (0, −∞) when there is none.
fn first_max(scores: impl Iterator<Item = (usize, f32)>) -> (usize, f32) {
    scores.fold((0, f32::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a })
}

/// The candidates scoring at least `threshold`, gathered per live song (by id).
fn gather(lib: &Library, candidates: &[Candidate], scored: &[Scored], threshold: f32) -> HashMap<i64, SongEvidence> {
    let mut songs: HashMap<i64, SongEvidence> = HashMap::new();
    for (candidate, s) in candidates.iter().zip(scored) {
        debug_assert_eq!(candidate.row, s.row);
        if s.score < threshold {
            continue;
        }
        let Some((song, ref_seg)) = lib.song_of(s.row) else {
            continue;
        };
        songs
            .entry(song.id)
            .or_default()
            .add(s, ref_seg, &candidate.retrieved_by);
    }
    songs
}

/// A song's match: located from its evidence, scored, and kept if its score
/// is positive and at least `cfg.min_song_score`.
fn to_match(
    lib: &Library,
    id: i64,
    evidence: &SongEvidence,
    cfg: &QueryConfig,
    query_segments: usize,
) -> Option<Match> {
    let song = lib.songs().iter().find(|s| s.id == id)?;
    let fit = locate(&evidence.pairs, cfg.max_ratio);
    let score = if cfg.consistent {
        evidence.consistent_score(&fit)
    } else {
        evidence.score
    };
    (score > 0.0 && score >= cfg.min_song_score).then_some(())?;
    let hop = lib.layout().hop_s;
    let (query_start, reference_start, time_ratio) = (
        fit.query_seg * hop,
        (fit.ref_seg * hop).max(0.0),
        fit.ratio.map(|a| 1.0 / a),
    );
    Some(Match {
        reference: song.path.clone(),
        score,
        confidence: None,
        query_start,
        reference_start,
        time_ratio,
        pitch_shift: None,
        song_id: id,
        reference_duration: song.duration_s,
        stage: "neural",
        stages: vec!["neural"],
        evidence: Evidence {
            neural: Some(NeuralEvidence {
                score,
                total: evidence.score,
                accepted: evidence.segments,
                query_segments,
                rank: 0,
                share: 0.0,
                query_start,
                reference_start,
                time_ratio,
                guided: false,
            }),
            ..Evidence::default()
        },
        segments: evidence.segments,
    })
}

/// A query segment paired with a reference segment of the same song, weighted
/// by the candidate's score: the evidence that [`locate`] fits a line to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    pub query_seg: f64,
    pub ref_seg: f64,
    pub weight: f64,
}

/// Where a match is, from its [`Pair`]s.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub query_seg: f64,
    pub ref_seg: f64,
    /// Reference segments per query segment, when the evidence allows.
    pub ratio: Option<f64>,
}

/// A candidate line of slope `slope`: its support and the pairs on it.
struct Line {
    support: f64,
    slope: f64,
    /// Indices into the pairs.
    inliers: Vec<usize>,
}

/// Fits `ref = a · query + b` over a grid of `a` in [1/max_ratio, max_ratio]:
/// for each `a`, the offsets `b` are rounded to candidate lines, pairs within
/// ±0.6 segment of a line are its inliers, and the line with the most weight
/// from distinct query segments wins; ratio 1 is kept unless another ratio
/// has 25 % more support.
pub fn locate(pairs: &[Pair], max_ratio: f64) -> Located {
    if pairs.is_empty() {
        return Located {
            query_seg: 0.0,
            ref_seg: 0.0,
            ratio: None,
        };
    }
    let steps = 60;
    let (lo, hi) = ((1.0 / max_ratio).ln(), max_ratio.ln());
    let mut best: Option<Line> = None;
    let mut at_unity: Option<Line> = None;
    for i in 0..=steps + 1 {
        // The last pass is ratio 1 exactly (the grid need not contain it).
        let a = if i > steps {
            1.0
        } else {
            (lo + (hi - lo) * i as f64 / steps as f64).exp()
        };
        let line = best_line(pairs, a);
        if i > steps {
            at_unity = Some(line);
        } else if best.as_ref().is_none_or(|b| line.support > b.support + 1e-9) {
            best = Some(line);
        }
    }
    // A tempo ratio other than 1 must be clearly better supported than 1
    // (a guard against weak evidence: with few hits, many slopes fit a few points).
    let best_support = best.as_ref().expect("pairs exist").support;
    let unity = at_unity.expect("ratio 1 is tried");
    if unity.support * 1.25 >= best_support {
        best = Some(unity);
    }
    let Line { slope: a, inliers, .. } = best.expect("pairs exist");
    // Refine b on the inliers; the match starts at the earliest inlier.
    let b = inliers
        .iter()
        .map(|&k| pairs[k].ref_seg - a * pairs[k].query_seg)
        .sum::<f64>()
        / inliers.len() as f64;
    let q0 = inliers
        .iter()
        .map(|&k| pairs[k].query_seg)
        .fold(f64::INFINITY, f64::min);
    let distinct: HashSet<i64> = inliers.iter().map(|&k| pairs[k].query_seg as i64).collect();
    let span = distinct.iter().max().unwrap_or(&0) - distinct.iter().min().unwrap_or(&0);
    let ratio_known = distinct.len() >= 3 && span >= 3;
    let a_used = if ratio_known { a } else { 1.0 };
    let b_used = if ratio_known {
        b
    } else {
        // Without a ratio, the offset from the inliers at ratio 1.
        inliers
            .iter()
            .map(|&k| pairs[k].ref_seg - pairs[k].query_seg)
            .sum::<f64>()
            / inliers.len() as f64
    };
    Located {
        query_seg: q0,
        ref_seg: a_used * q0 + b_used,
        ratio: ratio_known.then_some(a),
    }
}

/// The best line of slope `a`: its support (weight of distinct query
/// segments within ±0.6 segment) and its inliers.
fn best_line(pairs: &[Pair], a: f64) -> Line {
    let mut offsets: Vec<i64> = pairs
        .iter()
        .map(|p| (p.ref_seg - a * p.query_seg).round() as i64)
        .collect();
    offsets.sort_unstable();
    offsets.dedup();
    let mut best = Line {
        support: f64::NEG_INFINITY,
        slope: a,
        inliers: Vec::new(),
    };
    for b0 in offsets {
        let inliers: Vec<usize> = pairs
            .iter()
            .enumerate()
            .filter(|(_, p)| ((p.ref_seg - a * p.query_seg) - b0 as f64).abs() <= 0.6)
            .map(|(k, _)| k)
            .collect();
        // Support counts each query segment once (its best pair).
        let mut per_q: HashMap<i64, f64> = HashMap::new();
        for &k in &inliers {
            let e = per_q.entry(pairs[k].query_seg as i64).or_default();
            *e = e.max(pairs[k].weight);
        }
        let support: f64 = per_q.values().sum();
        if support > best.support + 1e-9 {
            best = Line {
                support,
                slope: a,
                inliers,
            };
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use sampleid_index::{AnnKind, IndexConfig, Layout};

    const DIM: usize = 16;
    const NODE_BYTES: usize = 4;
    const HOP: f64 = 0.512;

    /// A deterministic pseudo-random unit vector.
    fn unit(seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let v: Vec<f32> = (0..DIM)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    /// Segment `j` of song `seed`.
    fn segment(seed: u64, j: usize) -> Vec<f32> {
        unit(seed * 1000 + j as u64)
    }

    /// `v` moved a little (0.3 × a random unit vector) and normalised again.
    fn perturbed(v: &[f32], seed: u64) -> Vec<f32> {
        let w: Vec<f32> = v.iter().zip(unit(seed)).map(|(a, b)| a + 0.3 * b).collect();
        let n = w.iter().map(|x| x * x).sum::<f32>().sqrt();
        w.into_iter().map(|x| x / n).collect()
    }

    fn segments(fingerprints: impl IntoIterator<Item = Vec<f32>>) -> Vec<QuerySegment> {
        fingerprints
            .into_iter()
            .map(|fingerprint| QuerySegment {
                fingerprint,
                nodes: Vec::new(),
            })
            .collect()
    }

    /// A library (exact search) of songs `(seed, segments)`, each lasting
    /// `segments × hop + 1` seconds; returns it and the songs' ids.
    fn library(songs: &[(u64, usize)]) -> (tempfile::TempDir, Library, Vec<i64>) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout {
            encoder: "enc".into(),
            reranker: "rr".into(),
            dim: DIM,
            node_bytes: NODE_BYTES,
            hop_s: HOP,
        };
        let index = IndexConfig {
            ann: AnnKind::Exact,
            ..IndexConfig::default()
        };
        let mut lib = Library::open_writer(dir.path(), &layout, &index).unwrap();
        let ids = songs
            .iter()
            .map(|&(seed, n)| {
                let fps: Vec<f32> = (0..n).flat_map(|j| segment(seed, j)).collect();
                let duration = n as f64 * HOP + 1.0;
                let path = format!("song{seed}.wav");
                let song = lib
                    .add(
                        &path,
                        &format!("h{seed}"),
                        duration,
                        &fps,
                        &vec![0; n * NODE_BYTES],
                        &[],
                    )
                    .unwrap();
                song.id
            })
            .collect();
        (dir, lib, ids)
    }

    fn first_stage(min_similarity: f32) -> QueryConfig {
        QueryConfig {
            min_similarity,
            ..QueryConfig::default()
        }
    }

    #[test]
    fn an_excerpt_is_found_first_at_its_offset() {
        let (_dir, lib, ids) = library(&[(1, 40), (2, 40), (3, 40)]);
        // Segments 5..15 of song 2, slightly perturbed.
        let q = segments((5..15).map(|j| perturbed(&segment(2, j), 500 + j as u64)));
        let m = query(&lib, None, &q, &first_stage(0.0)).unwrap();
        assert_eq!(m[0].song_id, ids[1], "{m:?}");
        assert_eq!(m[0].reference, "song2.wav");
        assert_eq!(m[0].reference_duration, 40.0 * HOP + 1.0);
        assert_eq!(m[0].query_start, 0.0);
        assert!((m[0].reference_start - 5.0 * HOP).abs() < 1e-9, "{m:?}");
        assert!((m[0].time_ratio.unwrap() - 1.0).abs() < 1e-9, "{m:?}");
        assert!(m[0].score > 9.0, "ten similar segments: {m:?}");
        assert_eq!(m[0].pitch_shift, None);
        // With a similarity threshold, only song 2 is left.
        let m = query(&lib, None, &q, &first_stage(0.9)).unwrap();
        assert_eq!(m.iter().map(|m| m.song_id).collect::<Vec<_>>(), [ids[1]]);
        assert_eq!(m[0].segments, 10);
    }

    #[test]
    fn a_guide_brings_back_a_song_whose_segments_the_ann_left_out() {
        // Song 9 holds the query's own segments, so with top_k 1 the ANN
        // gives every query segment to song 9 and song 2 gets no candidate.
        let q: Vec<Vec<f32>> = (5..15).map(|j| perturbed(&segment(2, j), 500 + j as u64)).collect();
        let (_dir, mut lib, ids) = library(&[(1, 40), (2, 40), (3, 40)]);
        let copy = lib
            .add(
                "song9.wav",
                "h9",
                11.0 * HOP,
                &q.concat(),
                &vec![0; q.len() * NODE_BYTES],
                &[],
            )
            .unwrap();
        let q = segments(q);
        let cfg = QueryConfig {
            top_k: 1,
            neural_guided: 2,
            ..first_stage(0.9)
        };
        let songs = |m: &[Match]| m.iter().map(|m| m.song_id).collect::<Vec<_>>();
        assert_eq!(songs(&query(&lib, None, &q, &cfg).unwrap()), [copy.id]);
        let guide = Guide {
            song_id: ids[1],
            query_start: 0.0,
            reference_start: 5.0 * HOP,
            time_ratio: 1.0,
        };
        let m = query_guided(&lib, None, &q, &cfg, &[guide]).unwrap();
        assert_eq!(songs(&m), [copy.id, ids[1]], "{m:?}");
        assert!((m[1].reference_start - 5.0 * HOP).abs() < 1e-9, "{m:?}");
        assert_eq!(m[1].segments, 10, "one accepted segment per query segment: {m:?}");
        // A guide to the wrong place finds nothing above the threshold, and
        // guides beyond `neural_guided` are not looked at.
        let elsewhere = Guide {
            reference_start: 25.0 * HOP,
            ..guide
        };
        assert_eq!(
            songs(&query_guided(&lib, None, &q, &cfg, &[elsewhere]).unwrap()),
            [copy.id]
        );
        let off = QueryConfig {
            neural_guided: 0,
            ..cfg.clone()
        };
        assert_eq!(songs(&query_guided(&lib, None, &q, &off, &[guide]).unwrap()), [copy.id]);
        let third = QueryConfig {
            neural_guided: 1,
            ..cfg.clone()
        };
        assert_eq!(
            songs(&query_guided(&lib, None, &q, &third, &[elsewhere, guide]).unwrap()),
            [copy.id]
        );
        // The ANN's songs keep their evidence; a guide to one of them changes nothing.
        let plain = query(&lib, None, &q, &cfg).unwrap();
        let to_copy = Guide {
            song_id: copy.id,
            reference_start: 3.0 * HOP,
            ..guide
        };
        assert_eq!(query_guided(&lib, None, &q, &cfg, &[to_copy]).unwrap(), plain);
        assert_eq!(m[0], plain[0]);
        let n = m[1].evidence.neural.as_ref().unwrap();
        assert_eq!(n.rank, 1);
        assert!(n.guided && !m[0].evidence.neural.as_ref().unwrap().guided);
        assert!(
            (n.share - m[1].score / (plain[0].score + m[1].score)).abs() < 1e-9,
            "{n:?}"
        );
    }

    #[test]
    fn unrelated_audio_gives_no_match_above_the_threshold() {
        let (_dir, lib, _) = library(&[(1, 40), (2, 40), (3, 40)]);
        let q = segments((0..10).map(|j| segment(99, j)));
        assert!(!query(&lib, None, &q, &first_stage(0.0)).unwrap().is_empty());
        let m = query(&lib, None, &q, &first_stage(0.9)).unwrap();
        assert!(m.is_empty(), "{m:?}");
    }

    #[test]
    fn a_stretched_excerpt_is_located_with_its_time_ratio() {
        let (_dir, lib, ids) = library(&[(1, 40), (2, 40), (3, 40)]);
        // Query segment i holds reference segment round(10 + 0.8 i) of song 3:
        // the query plays 1/0.8 times as long as the reference material.
        let q = segments((0..20).map(|i| {
            let j = (10.0 + 0.8 * i as f64).round() as usize;
            perturbed(&segment(3, j), 700 + i as u64)
        }));
        let m = query(&lib, None, &q, &first_stage(0.9)).unwrap();
        assert_eq!(m[0].song_id, ids[2], "{m:?}");
        let ratio = m[0].time_ratio.unwrap();
        assert!((ratio - 1.0 / 0.8).abs() < 0.05, "{m:?}");
        assert_eq!(m[0].query_start, 0.0);
        assert!((m[0].reference_start - 10.0 * HOP).abs() <= 0.6 * HOP, "{m:?}");
    }

    #[test]
    fn matches_are_sorted_best_first_and_truncated() {
        let (_dir, lib, ids) = library(&[(1, 30), (2, 30), (3, 30), (4, 30)]);
        // 8 segments of song 3, 5 of song 1, 3 of song 4.
        let q = segments(
            (0..8)
                .map(|j| segment(3, 10 + j))
                .chain((0..5).map(|j| segment(1, 2 + j)))
                .chain((0..3).map(|j| segment(4, 20 + j))),
        );
        let m = query(&lib, None, &q, &first_stage(0.9)).unwrap();
        assert_eq!(
            m.iter().map(|m| m.song_id).collect::<Vec<_>>(),
            [ids[2], ids[0], ids[3]],
            "{m:?}"
        );
        assert!(m.windows(2).all(|w| w[0].score > w[1].score), "{m:?}");
        assert_eq!(m[1].query_start, 8.0 * HOP);
        assert!((m[1].reference_start - 2.0 * HOP).abs() < 1e-9, "{m:?}");
        let cfg = QueryConfig {
            max_matches: 2,
            ..first_stage(0.9)
        };
        let top: Vec<Match> = query(&lib, None, &q, &cfg).unwrap();
        assert_eq!(top, m[..2]);
    }

    #[test]
    fn an_empty_query_or_library_gives_no_matches() {
        let (_dir, lib, _) = library(&[(1, 20)]);
        assert!(query(&lib, None, &[], &first_stage(0.0)).unwrap().is_empty());
        let (_dir, empty, _) = library(&[]);
        let q = segments((0..5).map(|j| segment(1, j)));
        assert!(query(&empty, None, &q, &first_stage(0.0)).unwrap().is_empty());
        // The same query does match the song when it is there.
        assert!(!query(&lib, None, &q, &first_stage(0.0)).unwrap().is_empty());
    }

    fn pair(query_seg: f64, ref_seg: f64, weight: f64) -> Pair {
        Pair {
            query_seg,
            ref_seg,
            weight,
        }
    }

    #[test]
    fn a_stretched_match_is_located_with_its_ratio() {
        // Reference advances 0.8 segments per query segment, starting at 10.
        let mut pairs: Vec<Pair> = (0..12)
            .map(|q| pair(q as f64, (10.0 + 0.8 * q as f64).round(), 0.9))
            .collect();
        pairs.push(pair(3.0, 40.0, 0.6)); // an outlier
        let l = locate(&pairs, 1.6);
        let a = l.ratio.unwrap();
        assert!((a - 0.8).abs() < 0.05, "{l:?}");
        assert_eq!(l.query_seg, 0.0);
        assert!((l.ref_seg - 10.0).abs() <= 0.6, "{l:?}");
    }

    #[test]
    fn sparse_evidence_gives_an_offset_but_no_ratio() {
        let l = locate(&[pair(2.0, 7.0, 0.9), pair(3.0, 8.0, 0.8)], 1.6);
        assert_eq!(l.ratio, None);
        assert_eq!((l.query_seg, l.ref_seg), (2.0, 7.0));
    }
}
