//! Shingle search for audio matching at scale (Müller's tutorial; Casey &
//! Slaney's shingles): overlapping runs of `length` CENS features (10 × 12 =
//! 120 values at 1 per second), reduced by PCA, searched exactly or with an
//! HNSW graph (usearch). A query shingle is tried at several tempo factors
//! and all 12 transpositions; each recording is ranked by its nearest shingle.
//!
//! [`ShingleModel`] is the representation a library stores (the shingle
//! length and a PCA fitted once, on the corpus's training split, so that a
//! growing library never has to re-project what it holds); [`ShingleSearch`]
//! is the query side. [`ShingleIndex`] is the in-memory index of the lab
//! (`sampleid bench matching`), fitted on the recordings it holds.

use sampleid_features::CensConfig;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::pca::Pca;
use crate::{MatchError, cens_of_shares, transpose};

/// The CENS that shingles are made of: smoothing 41 frames, 1 feature per
/// second (Müller's published setting; what `sampleid match` aligns).
fn shingle_cens() -> CensConfig {
    CensConfig::default()
}

/// A shingle: `length` consecutive features, flattened and scaled to unit length.
fn shingle(features: &[[f32; 12]]) -> Vec<f32> {
    let mut v: Vec<f32> = features.iter().flatten().copied().collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// The shingle representation of a library: how many CENS features make a
/// shingle and the projection that reduces it. Stored shingles are only
/// comparable with queries made by the same model ([`ShingleModel::id`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShingleModel {
    /// Format of this file.
    pub version: u32,
    /// CENS features (seconds) per shingle.
    pub length: usize,
    /// What the PCA was fitted on, in words.
    pub trained_on: String,
    /// Shingles the PCA was fitted on.
    pub shingles: usize,
    /// The reduction (`None`: keep all `length × 12` values).
    pub pca: Option<Pca>,
}

/// Version of [`ShingleModel`]'s format.
pub const SHINGLE_MODEL_VERSION: u32 = 1;

impl ShingleModel {
    /// Fits the PCA (`dims` components; 0 keeps all values) to every shingle
    /// of `recordings` (10 Hz chroma shares), at most `max_shingles` of them
    /// evenly spread.
    pub fn fit(
        recordings: &[Vec<[u8; 12]>],
        length: usize,
        dims: usize,
        max_shingles: usize,
        trained_on: &str,
    ) -> Result<Self, MatchError> {
        let mut model = Self {
            version: SHINGLE_MODEL_VERSION,
            length: length.max(1),
            trained_on: trained_on.to_string(),
            shingles: 0,
            pca: None,
        };
        let raw: Vec<Vec<f32>> = recordings
            .iter()
            .flat_map(|r| model.raw_shingles(r))
            .map(|(_, v)| v)
            .collect();
        if raw.is_empty() {
            return Err(MatchError::TooShort {
                seconds: model.length as f64,
            });
        }
        let step = raw.len().div_ceil(max_shingles.max(1));
        let sample: Vec<f32> = raw.iter().step_by(step).flatten().copied().collect();
        let full = model.length * 12;
        model.shingles = sample.len() / full;
        if dims > 0 && dims < full {
            model.pca = Some(Pca::fit(&sample, full, dims));
        }
        Ok(model)
    }

    /// Checks a model read from a file.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != SHINGLE_MODEL_VERSION {
            return Err(format!(
                "shingle model version {} (this sampleid reads {SHINGLE_MODEL_VERSION})",
                self.version
            ));
        }
        if self.length == 0 {
            return Err("length must be at least 1".into());
        }
        if let Some(p) = &self.pca {
            let full = self.length * 12;
            if p.mean.len() != full || p.components.is_empty() || p.components.iter().any(|c| c.len() != full) {
                return Err(format!("the PCA does not fit shingles of {full} values"));
            }
        }
        Ok(())
    }

    /// Dimension of a stored shingle.
    pub fn dim(&self) -> usize {
        self.pca.as_ref().map_or(self.length * 12, |p| p.components.len())
    }

    /// A short fingerprint of the model (first 16 hex digits of SHA-256 of
    /// its JSON): a library records it beside its stored shingles.
    pub fn id(&self) -> String {
        let json = serde_json::to_vec(self).expect("serialisable");
        let d = Sha256::digest(&json);
        d.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// Seconds between shingle starts (one CENS feature) for chroma at `frame_rate`.
    pub fn seconds_per_feature(frame_rate: f64) -> f64 {
        shingle_cens().downsample as f64 / frame_rate
    }

    fn reduce(&self, raw: Vec<f32>) -> Vec<f32> {
        match &self.pca {
            Some(p) => p.project(&raw),
            None => raw,
        }
    }

    /// Unreduced shingles of 10 Hz chroma shares, one per CENS feature (hop 1 s):
    /// (first feature, vector).
    fn raw_shingles(&self, shares: &[[u8; 12]]) -> Vec<(u32, Vec<f32>)> {
        let c = shingle_cens();
        let f = cens_of_shares(shares, c.smoothing_frames, c.downsample);
        (0..(f.len() + 1).saturating_sub(self.length))
            .map(|s| (s as u32, shingle(&f[s..s + self.length])))
            .collect()
    }

    /// Shingles of a recording of `frames` chroma frames (hop 1 s).
    pub fn count(&self, frames: usize) -> usize {
        (frames.div_ceil(shingle_cens().downsample) + 1).saturating_sub(self.length)
    }

    /// A recording's shingles as a library stores them: (first CENS feature, i.e.
    /// second, vector), one per second.
    pub fn reference(&self, shares: &[[u8; 12]]) -> Vec<(u32, Vec<f32>)> {
        self.raw_shingles(shares)
            .into_iter()
            .map(|(s, v)| (s, self.reduce(v)))
            .collect()
    }

    /// The versions of a query to look up: per tempo factor and key shift,
    /// the shingles at every `query_hop` features (at most `max_per_version`).
    /// Empty when the query is too short for one shingle at any tempo.
    pub fn query(&self, shares: &[[u8; 12]], frame_rate: f64, search: &ShingleSearch) -> Vec<QueryShingle> {
        let c = shingle_cens();
        let per_s = 1.0 / Self::seconds_per_feature(frame_rate);
        let shifts: Vec<i32> = if search.transpose { (-5..=6).collect() } else { vec![0] };
        let mut out = Vec::new();
        for &f in &search.tempo_factors {
            let stretched = crate::version::resample(shares, f);
            let q = cens_of_shares(&stretched, c.smoothing_frames, c.downsample);
            let starts: Vec<usize> = (0..(q.len() + 1).saturating_sub(self.length))
                .step_by(search.query_hop.max(1))
                .take(search.max_per_version.max(1))
                .collect();
            for &s in &starts {
                for &k in &shifts {
                    let t: Vec<[f32; 12]> = q[s..s + self.length].iter().map(|v| transpose(v, -k)).collect();
                    out.push(QueryShingle {
                        tempo_factor: f,
                        pitch_shift: k,
                        // The shingle's start in the query's own time.
                        query_s: s as f64 / per_s / f,
                        vector: self.reduce(shingle(&t)),
                    });
                }
            }
        }
        out
    }
}

/// The query side of shingle search (`[shingles]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShingleSearch {
    /// Tempo factors tried for the query (query tempo / reference tempo).
    pub tempo_factors: Vec<f64>,
    /// Try all 12 transpositions of the query.
    pub transpose: bool,
    /// CENS features (seconds) between the query shingles looked up.
    pub query_hop: usize,
    /// Query shingles looked up per tempo factor and key.
    pub max_per_version: usize,
    /// Nearest stored shingles fetched per query shingle.
    pub k: usize,
    /// Songs `sampleid match` aligns by subsequence DTW: the nearest by
    /// shingle (0: every song, as before the library stored shingles).
    pub candidates: usize,
    /// Songs `sampleid query` takes from the shingles as candidates of its
    /// own (aligned by chroma, verified by landmarks at that place) when
    /// neither the landmark nor the neural stage proposed them; the shingle
    /// evidence of the other stages' songs is kept either way. 1 by default:
    /// with the calibrator refitted on its answers it found 843 known clips
    /// of the four validation runs against 841 at 0, and accepted 11 unknown
    /// ones against 13; on the test benchmark at a 4× library it keeps
    /// pitch ±3 st within 2 points of the 1× library (0 lost 8), and the
    /// 10 s median did not grow (72.9 → 72.4 ms; docs/identification.md).
    pub identify: usize,
}

impl Default for ShingleSearch {
    fn default() -> Self {
        Self {
            tempo_factors: vec![0.74, 0.86, 1.0, 1.16, 1.35],
            transpose: true,
            query_hop: 5,
            max_per_version: 3,
            k: 20,
            candidates: 20,
            identify: 1,
        }
    }
}

impl ShingleSearch {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.tempo_factors.is_empty() || self.tempo_factors.iter().any(|f| !(f.is_finite() && *f > 0.0)) {
            return Err("tempo_factors must be a non-empty list of positive numbers".into());
        }
        if self.query_hop == 0 || self.max_per_version == 0 || self.k == 0 {
            return Err("query_hop, max_per_version and k must be at least 1".into());
        }
        Ok(())
    }
}

/// One looked-up version of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryShingle {
    pub tempo_factor: f64,
    pub pitch_shift: i32,
    /// Where the shingle starts in the query (s).
    pub query_s: f64,
    /// The reduced vector.
    pub vector: Vec<f32>,
}

/// A recording's best shingle for a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShingleHit {
    /// The recording: an index for [`ShingleIndex`], a song id for a library.
    pub recording: usize,
    /// Start of the nearest shingle in the recording (s).
    pub start_s: f64,
    /// Where the matching query shingle starts in the query (s).
    pub query_s: f64,
    /// Squared Euclidean distance (in the reduced space).
    pub distance: f32,
    pub tempo_factor: f64,
    pub pitch_shift: i32,
}

/// Each recording's nearest hit, nearest first (ties by recording).
pub fn best_per_recording(hits: impl IntoIterator<Item = ShingleHit>) -> Vec<ShingleHit> {
    let mut best: std::collections::HashMap<usize, ShingleHit> = std::collections::HashMap::new();
    for h in hits {
        match best.get(&h.recording) {
            Some(b) if b.distance <= h.distance => {}
            _ => {
                best.insert(h.recording, h);
            }
        }
    }
    let mut out: Vec<ShingleHit> = best.into_values().collect();
    out.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.recording.cmp(&b.recording)));
    out
}

/// Settings of the lab's in-memory shingle index (`sampleid bench matching`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShingleConfig {
    /// CENS features per shingle (20 at 1 Hz: 20 s of music).
    pub length: usize,
    /// Features between shingle starts in the library.
    pub hop: usize,
    /// PCA dimensions (0: keep all `length × 12`). 60 measured as good as
    /// the full 120 of 10-feature shingles (`sampleid bench matching` on
    /// bench-data/default: P@1 23.1 vs 23.7 %, MAP 27.6 vs 28.2 %); 30 lost
    /// 7 points of P@1.
    pub dims: usize,
    /// Search the HNSW graph (else compare with every shingle).
    pub hnsw: bool,
    /// Tempo factors tried for the query (query tempo / reference tempo).
    pub tempo_factors: Vec<f64>,
    /// Try all 12 transpositions of the query.
    pub transpose: bool,
    /// Nearest shingles fetched per query version.
    pub k: usize,
}

impl Default for ShingleConfig {
    fn default() -> Self {
        Self {
            length: 20,
            hop: 1,
            dims: 60,
            hnsw: true,
            tempo_factors: ShingleSearch::default().tempo_factors,
            transpose: true,
            k: 20,
        }
    }
}

/// Shingles of a set of recordings, in memory, with a PCA fitted on them.
pub struct ShingleIndex {
    cfg: ShingleConfig,
    model: ShingleModel,
    dim: usize,
    vectors: Vec<f32>,
    /// (recording, first CENS feature) of each shingle.
    owners: Vec<(u32, u32)>,
    hnsw: Option<Index>,
}

impl ShingleIndex {
    /// Builds the index over recordings given as 10 Hz chroma shares.
    pub fn build(recordings: &[Vec<[u8; 12]>], cfg: &ShingleConfig) -> Result<Self, MatchError> {
        let model = ShingleModel::fit(recordings, cfg.length, cfg.dims, usize::MAX, "the indexed recordings")?;
        let dim = model.dim();
        let mut vectors = Vec::new();
        let mut owners = Vec::new();
        for (ri, shares) in recordings.iter().enumerate() {
            for (start, v) in model.reference(shares).into_iter().step_by(cfg.hop.max(1)) {
                vectors.extend(v);
                owners.push((ri as u32, start));
            }
        }
        let hnsw = if cfg.hnsw {
            let ix = new_hnsw(dim, ScalarKind::F32)?;
            ix.reserve(owners.len()).map_err(index_err)?;
            for (i, v) in vectors.chunks_exact(dim).enumerate() {
                ix.add(i as u64, v).map_err(index_err)?;
            }
            Some(ix)
        } else {
            None
        };
        Ok(Self {
            cfg: cfg.clone(),
            model,
            dim,
            vectors,
            owners,
            hnsw,
        })
    }

    /// Shingles in the index.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// Whether the index is empty (never: building refuses that).
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Bytes of the stored vectors.
    pub fn vector_bytes(&self) -> usize {
        self.vectors.len() * 4
    }

    fn nearest(&self, q: &[f32], k: usize) -> Result<Vec<(usize, f32)>, MatchError> {
        if let Some(ix) = &self.hnsw {
            let m = ix.search(q, k).map_err(index_err)?;
            return Ok(m.keys.into_iter().map(|x| x as usize).zip(m.distances).collect());
        }
        let mut all: Vec<(usize, f32)> = self
            .vectors
            .chunks_exact(self.dim)
            .enumerate()
            .map(|(i, v)| (i, v.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum()))
            .collect();
        let k = k.min(all.len());
        all.select_nth_unstable_by(k - 1, |a, b| a.1.total_cmp(&b.1));
        all.truncate(k);
        Ok(all)
    }

    /// Recordings ranked by their nearest shingle to the query's first
    /// shingle (over tempo factors and transpositions), nearest first.
    pub fn search(&self, query: &[[u8; 12]], frame_rate: f64) -> Result<Vec<ShingleHit>, MatchError> {
        let search = ShingleSearch {
            tempo_factors: self.cfg.tempo_factors.clone(),
            transpose: self.cfg.transpose,
            max_per_version: 1,
            k: self.cfg.k,
            ..ShingleSearch::default()
        };
        let versions = self.model.query(query, frame_rate, &search);
        if versions.is_empty() {
            return Err(MatchError::TooShort {
                seconds: query.len() as f64 / frame_rate,
            });
        }
        let mut hits = Vec::new();
        for q in &versions {
            for (i, d) in self.nearest(&q.vector, self.cfg.k)? {
                let (r, start) = self.owners[i];
                hits.push(ShingleHit {
                    recording: r as usize,
                    start_s: start as f64 * ShingleModel::seconds_per_feature(frame_rate),
                    query_s: q.query_s,
                    distance: d,
                    tempo_factor: q.tempo_factor,
                    pitch_shift: q.pitch_shift,
                });
            }
        }
        Ok(best_per_recording(hits))
    }
}

fn index_err(e: impl std::fmt::Display) -> MatchError {
    MatchError::Index(e.to_string())
}

/// An empty HNSW graph (usearch: M 16, ef 128 / 64, squared Euclidean).
pub fn new_hnsw(dim: usize, scalar: ScalarKind) -> Result<Index, MatchError> {
    Index::new(&IndexOptions {
        dimensions: dim,
        metric: MetricKind::L2sq,
        quantization: scalar,
        connectivity: 16,
        expansion_add: 128,
        expansion_search: 64,
        multi: false,
    })
    .map_err(index_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{melody, tune};

    #[test]
    fn exact_and_hnsw_shingles_find_a_transposed_faster_excerpt() {
        let recordings: Vec<Vec<[u8; 12]>> = (0..6).map(|s| melody(&tune(120, 40 + s), 1.0)).collect();
        let song = tune(120, 43);
        let excerpt: Vec<i32> = song[30..60].iter().map(|n| n - 2).collect();
        let query = melody(&excerpt, 1.0 / 1.16);
        for (hnsw, dims) in [(false, 0), (false, 30), (true, 30)] {
            let cfg = ShingleConfig {
                hnsw,
                dims,
                ..ShingleConfig::default()
            };
            let ix = ShingleIndex::build(&recordings, &cfg).unwrap();
            assert!(ix.len() > 500);
            let got = ix.search(&query, 10.0).unwrap();
            let top = &got[0];
            assert_eq!(top.recording, 3, "hnsw {hnsw} dims {dims}: {got:?}");
            assert_eq!(top.pitch_shift, -2);
            assert!((top.start_s - 30.0).abs() <= 2.0, "{top:?}");
        }
    }
}
