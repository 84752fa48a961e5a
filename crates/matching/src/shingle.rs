//! Shingle search for audio matching at scale (Müller's tutorial; Casey &
//! Slaney's shingles): overlapping runs of `length` CENS features
//! (20 × 12 = 240 values at 1 per second), optionally reduced by PCA,
//! searched exactly or with an HNSW graph (usearch). A query shingle is
//! tried at several tempo factors and all 12 transpositions; each recording
//! is ranked by its nearest shingle.

use sampleid_features::CensConfig;
use serde::{Deserialize, Serialize};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::pca::Pca;
use crate::{MatchError, cens_of_shares, transpose};

/// Settings of the shingle index.
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
            tempo_factors: vec![0.74, 0.86, 1.0, 1.16, 1.35],
            transpose: true,
            k: 20,
        }
    }
}

/// A recording's best shingle for a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShingleHit {
    pub recording: usize,
    /// Start of the nearest shingle in the recording (s).
    pub start_s: f64,
    /// Squared Euclidean distance (in the reduced space).
    pub distance: f32,
    pub tempo_factor: f64,
    pub pitch_shift: i32,
}

/// Shingles of a library's recordings, ready to search.
pub struct ShingleIndex {
    cfg: ShingleConfig,
    cens: CensConfig,
    pca: Option<Pca>,
    dim: usize,
    vectors: Vec<f32>,
    /// (recording, first CENS feature) of each shingle.
    owners: Vec<(u32, u32)>,
    hnsw: Option<Index>,
}

/// A shingle: `length` consecutive features, flattened and scaled to unit length.
fn shingle(features: &[[f32; 12]]) -> Vec<f32> {
    let mut v: Vec<f32> = features.iter().flatten().copied().collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

impl ShingleIndex {
    /// Builds the index over recordings given as 10 Hz chroma shares.
    pub fn build(recordings: &[Vec<[u8; 12]>], cfg: &ShingleConfig) -> Result<Self, MatchError> {
        let cens = CensConfig::default();
        let mut raw = Vec::new();
        let mut owners = Vec::new();
        for (ri, shares) in recordings.iter().enumerate() {
            let f = cens_of_shares(shares, cens.smoothing_frames, cens.downsample);
            let mut start = 0;
            while start + cfg.length <= f.len() {
                raw.extend(shingle(&f[start..start + cfg.length]));
                owners.push((ri as u32, start as u32));
                start += cfg.hop.max(1);
            }
        }
        if owners.is_empty() {
            return Err(MatchError::TooShort {
                seconds: cfg.length as f64,
            });
        }
        let full = cfg.length * 12;
        let (pca, dim, vectors) = if cfg.dims == 0 || cfg.dims >= full {
            (None, full, raw)
        } else {
            let pca = Pca::fit(&raw, full, cfg.dims);
            let v: Vec<f32> = raw.chunks_exact(full).flat_map(|r| pca.project(r)).collect();
            (Some(pca), cfg.dims, v)
        };
        let hnsw = if cfg.hnsw {
            let ix = Index::new(&IndexOptions {
                dimensions: dim,
                metric: MetricKind::L2sq,
                quantization: ScalarKind::F32,
                connectivity: 16,
                expansion_add: 128,
                expansion_search: 64,
                multi: false,
            })
            .map_err(|e| MatchError::Index(e.to_string()))?;
            ix.reserve(owners.len()).map_err(|e| MatchError::Index(e.to_string()))?;
            for (i, v) in vectors.chunks_exact(dim).enumerate() {
                ix.add(i as u64, v).map_err(|e| MatchError::Index(e.to_string()))?;
            }
            Some(ix)
        } else {
            None
        };
        Ok(Self {
            cfg: cfg.clone(),
            cens,
            pca,
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
            let m = ix.search(q, k).map_err(|e| MatchError::Index(e.to_string()))?;
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
        let mut best: std::collections::HashMap<usize, ShingleHit> = std::collections::HashMap::new();
        let shifts: Vec<i32> = if self.cfg.transpose {
            (-5..=6).collect()
        } else {
            vec![0]
        };
        let per_s = frame_rate / self.cens.downsample as f64;
        let mut tried = 0;
        for &f in &self.cfg.tempo_factors {
            let stretched = crate::version::resample(query, f);
            let q = cens_of_shares(&stretched, self.cens.smoothing_frames, self.cens.downsample);
            if q.len() < self.cfg.length {
                continue;
            }
            for &k in &shifts {
                let t: Vec<[f32; 12]> = q[..self.cfg.length].iter().map(|v| transpose(v, -k)).collect();
                let raw = shingle(&t);
                let v = match &self.pca {
                    Some(p) => p.project(&raw),
                    None => raw,
                };
                tried += 1;
                for (i, d) in self.nearest(&v, self.cfg.k)? {
                    let (r, start) = self.owners[i];
                    let hit = ShingleHit {
                        recording: r as usize,
                        start_s: start as f64 / per_s,
                        distance: d,
                        tempo_factor: f,
                        pitch_shift: k,
                    };
                    let e = best.entry(r as usize).or_insert_with(|| hit.clone());
                    if d < e.distance {
                        *e = hit;
                    }
                }
            }
        }
        if tried == 0 {
            return Err(MatchError::TooShort {
                seconds: query.len() as f64 / frame_rate,
            });
        }
        let mut out: Vec<ShingleHit> = best.into_values().collect();
        out.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.recording.cmp(&b.recording)));
        Ok(out)
    }
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
