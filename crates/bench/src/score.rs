//! Scoring a results file against a benchmark's ground truth.
//!
//! Results use the query format of `sampleid query --json`: one JSON object per
//! line, `{"query": PATH, "matches": [{"reference": PATH, "score": X,
//! "query_start": S, "reference_start": S, "time_ratio": R|null,
//! "pitch_shift": ST|null}, …]}`. Queries and references are recognised by
//! their file stem, so any system that indexed `refs/` and queried
//! `queries/` can be scored, whatever paths it prints.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::BenchError;
use crate::metrics::{Ranked, ap20_paper, average_precision, hit_at, relevance_by_rank};
use crate::spec::{Benchmark, Protocol, Query};

/// One match in a results line.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Match {
    pub reference: String,
    pub score: f64,
    #[serde(default)]
    pub query_start: f64,
    #[serde(default)]
    pub reference_start: f64,
    #[serde(default)]
    pub time_ratio: Option<f64>,
    #[serde(default)]
    pub pitch_shift: Option<f64>,
}

/// One line of a results file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ResultLine {
    pub query: String,
    pub matches: Vec<Match>,
}

/// Whether `reference` (a path or id as a system names it) is material the
/// query contains (false for every answer to a negative).
pub fn is_right(q: &Query, reference: &str) -> bool {
    let id = stem(reference);
    q.targets.iter().any(|t| t.reference == id)
}

/// The query id a results line names (its file stem).
pub fn query_id(path: &str) -> String {
    stem(path)
}

fn stem(path: &str) -> String {
    Path::new(path)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(path)
        .to_string()
}

/// Reads a JSON-lines results file: query id (file stem) → matches.
pub fn read_results(path: &Path) -> Result<HashMap<String, Vec<Match>>, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: ResultLine = serde_json::from_str(line)
            .map_err(|e| BenchError::Format(format!("{} line {}: {e}", path.display(), i + 1)))?;
        out.insert(stem(&r.query), r.matches);
    }
    Ok(out)
}

/// Metrics of one (protocol, condition, length) cell, as percentages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub protocol: Protocol,
    pub condition: String,
    /// Query length in seconds (0 for rows that pool all lengths).
    pub length_s: f64,
    /// Positive queries.
    pub n: usize,
    /// Negative queries.
    pub n_negative: usize,
    /// Song-level top-1 hit rate.
    pub top1: f64,
    pub top3: f64,
    pub top10: f64,
    /// Mean AP@20 as NeuralSampleID defines it.
    pub map20_paper: f64,
    /// Mean standard average precision.
    pub map: f64,
    /// Top-1 correct and its reference time within half a segment hop.
    pub segment_exact: f64,
    /// Top-1 correct and within one and a half segment hops (±1 segment).
    pub segment_near: f64,
    /// Top-1 correct and located within ±1 s.
    pub located_1s: f64,
    /// Top-1 correct and located within ±1 s, or at another place where the
    /// reference plays the same audio (looped music; [`crate::repeats`]).
    /// Equal to `located_1s` when scored without the references' audio.
    #[serde(default)]
    pub located_repeat: f64,
    /// Top-1 correct with a pitch shift reported.
    #[serde(default)]
    pub pitch_reported: f64,
    /// Top-1 correct with a pitch shift within ±0.5 semitone of the truth.
    #[serde(default)]
    pub pitch_half_st: f64,
    /// Top-1 correct with a time ratio within ±2 % of the truth.
    #[serde(default)]
    pub ratio_ok: f64,
    /// Top-1 correct with a pitch shift within ±0.3 semitone of the truth.
    #[serde(default)]
    pub pitch_fine: f64,
    /// Negative queries that got any match.
    pub false_accept: f64,
}

#[derive(Debug, Default, Clone)]
struct Acc {
    n: usize,
    n_neg: usize,
    top1: f64,
    top3: f64,
    top10: f64,
    ap20: f64,
    ap: f64,
    exact: f64,
    near: f64,
    located: f64,
    located_repeat: f64,
    pitch_reported: f64,
    pitch_ok: f64,
    ratio_ok: f64,
    pitch_fine: f64,
    fa: f64,
}

impl Acc {
    fn add(&mut self, o: &Acc) {
        self.n += o.n;
        self.n_neg += o.n_neg;
        self.top1 += o.top1;
        self.top3 += o.top3;
        self.top10 += o.top10;
        self.ap20 += o.ap20;
        self.ap += o.ap;
        self.exact += o.exact;
        self.near += o.near;
        self.located += o.located;
        self.located_repeat += o.located_repeat;
        self.pitch_reported += o.pitch_reported;
        self.pitch_ok += o.pitch_ok;
        self.ratio_ok += o.ratio_ok;
        self.pitch_fine += o.pitch_fine;
        self.fa += o.fa;
    }

    fn cell(&self, protocol: Protocol, condition: &str, length_s: f64) -> Cell {
        let pct = |v: f64, n: usize| if n == 0 { 0.0 } else { 100.0 * v / n as f64 };
        Cell {
            protocol,
            condition: condition.to_string(),
            length_s,
            n: self.n,
            n_negative: self.n_neg,
            top1: pct(self.top1, self.n),
            top3: pct(self.top3, self.n),
            top10: pct(self.top10, self.n),
            map20_paper: pct(self.ap20, self.n),
            map: pct(self.ap, self.n),
            segment_exact: pct(self.exact, self.n),
            segment_near: pct(self.near, self.n),
            located_1s: pct(self.located, self.n),
            located_repeat: pct(self.located_repeat, self.n),
            pitch_reported: pct(self.pitch_reported, self.n),
            pitch_half_st: pct(self.pitch_ok, self.n),
            ratio_ok: pct(self.ratio_ok, self.n),
            pitch_fine: pct(self.pitch_fine, self.n),
            false_accept: pct(self.fa, self.n_neg),
        }
    }
}

/// A whole scoring run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Per (protocol, condition, length).
    pub cells: Vec<Cell>,
    /// Per protocol, all conditions and lengths pooled.
    pub overall: Vec<Cell>,
    /// Queries of the benchmark with no line in the results (scored as empty answers).
    pub missing: usize,
}

/// Largest relative error of a reported time ratio that counts as right.
pub const RATIO_TOLERANCE: f64 = 0.02;
/// Largest error of a reported pitch shift (semitones) that counts as right
/// for [`Cell::pitch_fine`].
pub const PITCH_FINE_ST: f64 = 0.3;

/// Where the top match puts the query's target moment in the reference.
fn reference_time_error(m: &Match, target_query_s: f64, target_ref_s: f64) -> f64 {
    let ratio = m.time_ratio.filter(|r| r.is_finite() && *r > 0.0).unwrap_or(1.0);
    let predicted = m.reference_start + (target_query_s - m.query_start) / ratio;
    (predicted - target_ref_s).abs()
}

/// Whether a reference (id) plays the same audio for a length (s) from one
/// place (s) as from another (see [`crate::repeats::RepeatCheck`]).
pub type SameAudio<'a> = &'a (dyn Fn(&str, f64, f64, f64) -> bool + Sync);

fn score_query(q: &Query, matches: &[Match], hop_s: f64, same_audio: Option<SameAudio>) -> Acc {
    if q.negative {
        return Acc {
            n_neg: 1,
            fa: if matches.is_empty() { 0.0 } else { 1.0 },
            ..Default::default()
        };
    }
    let relevant: HashSet<String> = q.targets.iter().map(|t| t.reference.clone()).collect();
    let answers: Vec<Ranked> = matches
        .iter()
        .map(|m| Ranked {
            reference: stem(&m.reference),
            score: m.score,
        })
        .collect();
    let ranks = relevance_by_rank(&answers, &relevant);
    let mut acc = Acc {
        n: 1,
        top1: hit_at(&ranks, 1),
        top3: hit_at(&ranks, 3),
        top10: hit_at(&ranks, 10),
        ap20: ap20_paper(&ranks),
        ap: average_precision(&ranks, relevant.len()),
        ..Default::default()
    };
    if acc.top1 > 0.0 {
        // The best-scoring match of a relevant reference.
        let top = matches
            .iter()
            .filter(|m| relevant.contains(&stem(&m.reference)))
            .max_by(|a, b| a.score.total_cmp(&b.score));
        if let Some(m) = top
            && let Some(t) = q.targets.iter().find(|t| t.reference == stem(&m.reference))
        {
            let err = reference_time_error(m, t.query_start_s, t.reference_start_s);
            acc.exact = if err <= hop_s / 2.0 { 1.0 } else { 0.0 };
            acc.near = if err <= 1.5 * hop_s { 1.0 } else { 0.0 };
            acc.located = if err <= 1.0 { 1.0 } else { 0.0 };
            acc.located_repeat = acc.located;
            if acc.located == 0.0
                && let Some(same) = same_audio
            {
                // Where the answer puts the target's start, compared with the
                // truth over the target's length in the reference.
                let ratio = m.time_ratio.filter(|r| r.is_finite() && *r > 0.0).unwrap_or(1.0);
                let answered = m.reference_start + (t.query_start_s - m.query_start) / ratio;
                let length = (q.length_s - t.query_start_s).max(0.0) / t.time_ratio.max(1e-6);
                if same(&t.reference, t.reference_start_s, answered, length) {
                    acc.located_repeat = 1.0;
                }
            }
            if let Some(p) = m.pitch_shift {
                acc.pitch_reported = 1.0;
                acc.pitch_ok = if (p - t.pitch_shift).abs() <= 0.5 { 1.0 } else { 0.0 };
                // A small slack so that 0.3 st reported as 0.30000000001 still counts.
                acc.pitch_fine = if (p - t.pitch_shift).abs() <= PITCH_FINE_ST + 1e-9 {
                    1.0
                } else {
                    0.0
                };
            }
            if let Some(r) = m.time_ratio.filter(|r| r.is_finite() && *r > 0.0) {
                acc.ratio_ok = if (r / t.time_ratio - 1.0).abs() <= RATIO_TOLERANCE + 1e-9 {
                    1.0
                } else {
                    0.0
                };
            }
        }
    }
    acc
}

/// Scores `results` (query id → matches) against `bench`, without the
/// references' audio (`located_repeat` is then `located_1s`).
pub fn score(bench: &Benchmark, results: &HashMap<String, Vec<Match>>) -> Scores {
    score_with(bench, results, None)
}

/// Scores `results` against `bench`; `same_audio` (when given) says where a
/// reference repeats itself, for [`Cell::located_repeat`].
pub fn score_with(bench: &Benchmark, results: &HashMap<String, Vec<Match>>, same_audio: Option<SameAudio>) -> Scores {
    // Cells keep the benchmark's order of conditions (not alphabetical: 5 dB before 10 dB).
    let mut order: HashMap<&str, usize> = HashMap::new();
    for q in &bench.queries {
        let n = order.len();
        order.entry(q.condition.as_str()).or_insert(n);
    }
    let mut cells: BTreeMap<(Protocol, usize, String, i64), Acc> = BTreeMap::new();
    let mut overall: BTreeMap<Protocol, Acc> = BTreeMap::new();
    let mut missing = 0;
    for q in &bench.queries {
        let matches = match results.get(&q.id) {
            Some(m) => m.as_slice(),
            None => {
                missing += 1;
                &[]
            }
        };
        let a = score_query(q, matches, bench.segment_hop_s, same_audio);
        let key = (
            q.protocol,
            order[q.condition.as_str()],
            q.condition.clone(),
            (q.length_s * 1000.0).round() as i64,
        );
        cells.entry(key).or_default().add(&a);
        overall.entry(q.protocol).or_default().add(&a);
    }
    Scores {
        cells: cells
            .iter()
            .map(|((p, _, c, l), a)| a.cell(*p, c, *l as f64 / 1000.0))
            .collect(),
        overall: overall.iter().map(|(p, a)| a.cell(*p, "all", 0.0)).collect(),
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Target;
    use sampleid_transform::Chain;

    fn query(id: &str, negative: bool, refs: &[(&str, f64)]) -> Query {
        Query {
            id: id.into(),
            path: format!("queries/{id}.wav"),
            protocol: Protocol::SampleId,
            condition: "c".into(),
            length_s: 5.0,
            negative,
            targets: refs
                .iter()
                .map(|(r, start)| Target {
                    reference: r.to_string(),
                    reference_start_s: *start,
                    query_start_s: 0.0,
                    time_ratio: 1.0,
                    pitch_shift: 0.0,
                })
                .collect(),
            source: String::new(),
            source_stems: vec![],
            transforms: Chain::default(),
        }
    }

    fn m(reference: &str, score: f64, reference_start: f64) -> Match {
        Match {
            reference: format!("/lib/refs/{reference}.ogg"),
            score,
            query_start: 0.0,
            reference_start,
            time_ratio: None,
            pitch_shift: None,
        }
    }

    fn bench(queries: Vec<Query>) -> Benchmark {
        Benchmark {
            version: 1,
            seed: 0,
            sample_rate: 16_000,
            segment_hop_s: 0.512,
            references: vec![],
            negatives: vec![],
            queries,
        }
    }

    #[test]
    fn scores_hits_locations_and_false_accepts() {
        let b = bench(vec![
            query("q1", false, &[("r1", 30.0)]),
            query("q2", false, &[("r2", 10.0)]),
            query("q3", true, &[]),
            query("q4", true, &[]),
            query("q5", false, &[("r5", 0.0)]),
        ]);
        let mut results = HashMap::new();
        // q1: right song, 0.2 s off: exact and near.
        results.insert("q1".to_string(), vec![m("r1", 0.9, 30.2), m("x", 0.5, 0.0)]);
        // q2: right song second, wrong first.
        results.insert("q2".to_string(), vec![m("x", 0.9, 0.0), m("r2", 0.8, 10.0)]);
        // q3: a false accept; q4: correctly empty; q5: missing from the file.
        results.insert("q3".to_string(), vec![m("x", 0.6, 0.0)]);
        results.insert("q4".to_string(), vec![]);
        let s = score(&b, &results);
        assert_eq!(s.missing, 1);
        let all = &s.overall[0];
        assert_eq!((all.n, all.n_negative), (3, 2));
        assert!((all.top1 - 100.0 / 3.0).abs() < 1e-9);
        assert!((all.top3 - 200.0 / 3.0).abs() < 1e-9);
        assert!((all.map20_paper - 100.0 * (1.0 + 0.5) / 3.0).abs() < 1e-9);
        assert!((all.segment_exact - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(all.false_accept, 50.0);
    }

    #[test]
    fn an_answer_at_a_repetition_of_the_same_audio_counts_apart() {
        let b = bench(vec![
            query("q1", false, &[("r", 30.0)]),
            query("q2", false, &[("r", 30.0)]),
            query("q3", false, &[("r", 30.0)]),
        ]);
        // q1 at the truth, q2 at 90 s (where "r" repeats 30–35 s), q3 at 60 s (no repeat).
        let results = HashMap::from([
            ("q1".to_string(), vec![m("r", 1.0, 30.4)]),
            ("q2".to_string(), vec![m("r", 1.0, 90.0)]),
            ("q3".to_string(), vec![m("r", 1.0, 60.0)]),
        ]);
        let asked = std::sync::Mutex::new(Vec::new());
        let same = |r: &str, a: f64, b: f64, len: f64| {
            asked.lock().unwrap().push((r.to_string(), a, b, len));
            r == "r" && a == 30.0 && (b - 90.0).abs() < 1e-9
        };
        let s = score_with(&b, &results, Some(&same));
        let all = &s.overall[0];
        assert!((all.located_1s - 100.0 / 3.0).abs() < 1e-9, "{all:?}");
        assert!((all.located_repeat - 200.0 / 3.0).abs() < 1e-9, "{all:?}");
        // Only the answers away from the truth are compared, over the clip's length.
        assert_eq!(
            *asked.lock().unwrap(),
            [("r".to_string(), 30.0, 90.0, 5.0), ("r".to_string(), 30.0, 60.0, 5.0)]
        );
        // Without the audio, a repetition is not located.
        let plain = &score(&b, &results).overall[0];
        assert_eq!(plain.located_repeat, plain.located_1s);
    }

    #[test]
    fn location_uses_the_reported_time_ratio() {
        let b = bench(vec![query("q", false, &[("r", 20.0)])]);
        // The match says query 2 s ↔ reference 22.5 s at ratio 0.8: query 0 s is at 20 s.
        let mut r = m("r", 1.0, 22.5);
        r.query_start = 2.0;
        r.time_ratio = Some(0.8);
        let s = score(&b, &HashMap::from([("q".to_string(), vec![r])]));
        assert_eq!(s.overall[0].segment_exact, 100.0);
    }

    #[test]
    fn ratio_and_fine_pitch_count_correct_top1_answers_within_tolerance() {
        let target = |id: &str, ratio: f64, pitch: f64| {
            let mut q = query(id, false, &[("r", 10.0)]);
            q.targets[0].time_ratio = ratio;
            q.targets[0].pitch_shift = pitch;
            q
        };
        let b = bench(vec![
            target("q1", 1.0 / 1.15, 0.0),
            target("q2", 1.0 / 1.04, 12.0 * 1.04f64.log2()),
            target("q3", 1.0, 3.0),
            target("q4", 1.0, -1.0),
        ]);
        let answer = |reference: &str, ratio: Option<f64>, pitch: Option<f64>| {
            let mut a = m(reference, 1.0, 10.0);
            a.time_ratio = ratio;
            a.pitch_shift = pitch;
            vec![a]
        };
        let results = HashMap::from([
            // Ratio 1.5 % off, pitch exact: both right.
            ("q1".to_string(), answer("r", Some(1.015 / 1.15), Some(0.0))),
            // Ratio 3 % off, pitch 0.4 st off: both wrong (pitch still within ±0.5).
            (
                "q2".to_string(),
                answer("r", Some(1.03 / 1.04), Some(12.0 * 1.04f64.log2() + 0.4)),
            ),
            // Nothing reported: neither counts.
            ("q3".to_string(), answer("r", None, None)),
            // Wrong reference: neither counts, however good the numbers.
            ("q4".to_string(), answer("x", Some(1.0), Some(-1.0))),
        ]);
        let s = score(&b, &results);
        let all = &s.overall[0];
        assert_eq!(all.n, 4);
        assert_eq!(all.top1, 75.0);
        assert_eq!(all.ratio_ok, 25.0);
        assert_eq!(all.pitch_fine, 25.0);
        assert_eq!(all.pitch_half_st, 50.0);
        assert_eq!(all.pitch_reported, 50.0);
    }

    #[test]
    fn reads_json_lines_and_reports_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.jsonl");
        std::fs::write(
            &p,
            "{\"query\": \"bench/queries/s00001.wav\", \"matches\": [{\"reference\": \"refs/m-1.ogg\", \"score\": 2.5, \"query_start\": 0.5, \"reference_start\": 61.0, \"time_ratio\": null, \"pitch_shift\": 2.0}]}\n\n",
        )
        .unwrap();
        let r = read_results(&p).unwrap();
        assert_eq!(r["s00001"][0].reference, "refs/m-1.ogg");
        assert_eq!(r["s00001"][0].pitch_shift, Some(2.0));
        std::fs::write(&p, "{\"query\": 1}\n").unwrap();
        let e = read_results(&p).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
