//! IVF-PQ: an inverted file over a k-means coarse quantiser, with the residual
//! of every vector to its list's centroid compressed by a product quantiser
//! (`m` sub-vectors, 256 centroids each: `m` bytes per vector). Queries
//! visit the `nprobe` nearest lists and rank their codes with asymmetric
//! distances (a table of query-to-codeword distances per sub-vector), then
//! the best `refine × k` are re-scored exactly from the fingerprint file.
//!
//! For libraries too large for HNSW in memory: 16 bytes per vector plus an
//! 8-byte id, against ~400 for f16 HNSW.

use std::io::Read;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::IndexError;

/// IVF-PQ settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IvfPqConfig {
    /// Inverted lists (coarse centroids). NeuralSampleID: 64 for hit rates.
    pub lists: usize,
    /// Bytes per vector (sub-quantisers; must divide the dimension).
    pub bytes: usize,
    /// Lists visited per query (NeuralSampleID: 20).
    pub nprobe: usize,
    /// Candidates re-scored exactly, as a multiple of k.
    pub refine: usize,
    /// The quantisers are trained once the library holds this many rows;
    /// until then, search is exact.
    pub train_rows: usize,
    /// k-means iterations.
    pub iterations: usize,
}

impl Default for IvfPqConfig {
    fn default() -> Self {
        Self {
            lists: 256,
            bytes: 16,
            nprobe: 20,
            refine: 8,
            train_rows: 20_000,
            iterations: 15,
        }
    }
}

impl IvfPqConfig {
    /// Checks the settings (every count at least 1; `bytes` divides the
    /// dimension is checked when the index is built).
    pub fn validate(&self) -> Result<(), String> {
        if self.lists == 0 || self.bytes == 0 || self.nprobe == 0 || self.refine == 0 || self.iterations == 0 {
            return Err("ivfpq lists, bytes, nprobe, refine and iterations must be at least 1".into());
        }
        if self.nprobe > self.lists {
            return Err(format!("ivfpq nprobe ({}) exceeds lists ({})", self.nprobe, self.lists));
        }
        Ok(())
    }
}

/// The trained quantisers and the lists.
#[derive(Debug, Clone, Default)]
pub(crate) struct IvfPq {
    dim: usize,
    m: usize,
    /// `lists × dim`.
    centroids: Vec<f32>,
    /// `m × 256 × (dim / m)`.
    codebooks: Vec<f32>,
    /// Per list: row ids and their codes (`m` bytes each).
    ids: Vec<Vec<u64>>,
    codes: Vec<Vec<u8>>,
}

fn dist2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Index of the nearest of `k` centroids (`k × d`, row-major).
fn nearest(x: &[f32], centroids: &[f32], d: usize) -> usize {
    let mut best = (0, f32::INFINITY);
    for (j, c) in centroids.chunks_exact(d).enumerate() {
        let e = dist2(x, c);
        if e < best.1 {
            best = (j, e);
        }
    }
    best.0
}

/// Lloyd's k-means on `n × d` points; deterministic (evenly spaced initial
/// points). Empty clusters take the point farthest from its centroid.
pub(crate) fn kmeans(points: &[f32], d: usize, k: usize, iterations: usize) -> Vec<f32> {
    let n = points.len() / d;
    let k = k.min(n).max(1);
    let mut c: Vec<f32> = (0..k)
        .flat_map(|j| points[(j * n / k) * d..(j * n / k + 1) * d].iter().copied())
        .collect();
    for _ in 0..iterations {
        let assign: Vec<usize> = points.par_chunks_exact(d).map(|p| nearest(p, &c, d)).collect();
        let mut sums = vec![0f64; k * d];
        let mut counts = vec![0usize; k];
        for (p, &a) in points.chunks_exact(d).zip(&assign) {
            counts[a] += 1;
            for (s, v) in sums[a * d..(a + 1) * d].iter_mut().zip(p) {
                *s += *v as f64;
            }
        }
        for j in 0..k {
            if counts[j] > 0 {
                for t in 0..d {
                    c[j * d + t] = (sums[j * d + t] / counts[j] as f64) as f32;
                }
            } else {
                let far = (0..n)
                    .max_by(|&a, &b| {
                        let da = dist2(&points[a * d..(a + 1) * d], &c[assign[a] * d..(assign[a] + 1) * d]);
                        let db = dist2(&points[b * d..(b + 1) * d], &c[assign[b] * d..(assign[b] + 1) * d]);
                        da.total_cmp(&db)
                    })
                    .unwrap_or(0);
                let p = points[far * d..(far + 1) * d].to_vec();
                c[j * d..(j + 1) * d].copy_from_slice(&p);
            }
        }
    }
    c
}

impl IvfPq {
    /// Trains the quantisers on `sample` (`n × dim`).
    pub(crate) fn train(sample: &[f32], dim: usize, cfg: &IvfPqConfig) -> Result<Self, IndexError> {
        if cfg.bytes == 0 || !dim.is_multiple_of(cfg.bytes) {
            return Err(IndexError::Input(format!(
                "IVF-PQ bytes ({}) must divide the dimension ({dim})",
                cfg.bytes
            )));
        }
        let centroids = kmeans(sample, dim, cfg.lists, cfg.iterations);
        let lists = centroids.len() / dim;
        let residuals: Vec<f32> = sample
            .par_chunks_exact(dim)
            .flat_map_iter(|x| {
                let c = &centroids[nearest(x, &centroids, dim) * dim..][..dim];
                x.iter().zip(c).map(|(a, b)| a - b).collect::<Vec<_>>()
            })
            .collect();
        let (m, ds) = (cfg.bytes, dim / cfg.bytes);
        let n = sample.len() / dim;
        let codebooks: Vec<f32> = (0..m)
            .into_par_iter()
            .flat_map_iter(|s| {
                let sub: Vec<f32> = (0..n)
                    .flat_map(|i| residuals[i * dim + s * ds..i * dim + (s + 1) * ds].iter().copied())
                    .collect();
                let mut cb = kmeans(&sub, ds, 256, cfg.iterations);
                cb.resize(256 * ds, 0.0); // fewer points than codewords: pad
                cb
            })
            .collect();
        Ok(Self {
            dim,
            m,
            centroids,
            codebooks,
            ids: vec![Vec::new(); lists],
            codes: vec![Vec::new(); lists],
        })
    }

    fn lists(&self) -> usize {
        self.centroids.len() / self.dim
    }

    /// Adds a vector under `id`.
    pub(crate) fn add(&mut self, id: u64, x: &[f32]) {
        let (d, ds) = (self.dim, self.dim / self.m);
        let l = nearest(x, &self.centroids, d);
        let c = &self.centroids[l * d..(l + 1) * d];
        let code: Vec<u8> = (0..self.m)
            .map(|s| {
                let r: Vec<f32> = (0..ds).map(|t| x[s * ds + t] - c[s * ds + t]).collect();
                nearest(&r, &self.codebooks[s * 256 * ds..(s + 1) * 256 * ds], ds) as u8
            })
            .collect();
        self.ids[l].push(id);
        self.codes[l].extend(code);
    }

    /// The same index with every id passed through `map`; ids it maps to
    /// `None` (deleted rows) are dropped. The quantisers and the codes stay.
    pub(crate) fn renumbered(&self, map: &dyn Fn(u64) -> Option<u64>) -> Self {
        let mut out = Self {
            dim: self.dim,
            m: self.m,
            centroids: self.centroids.clone(),
            codebooks: self.codebooks.clone(),
            ids: vec![Vec::new(); self.ids.len()],
            codes: vec![Vec::new(); self.codes.len()],
        };
        for (l, ids) in self.ids.iter().enumerate() {
            for (j, &id) in ids.iter().enumerate() {
                if let Some(new) = map(id) {
                    out.ids[l].push(new);
                    out.codes[l].extend_from_slice(&self.codes[l][j * self.m..(j + 1) * self.m]);
                }
            }
        }
        out
    }

    /// Vectors held.
    pub(crate) fn size(&self) -> usize {
        self.ids.iter().map(Vec::len).sum()
    }

    /// The `k` ids nearest to `q` by asymmetric distance (approximate squared
    /// L2, smallest first), among those that pass `keep`.
    pub(crate) fn search(&self, q: &[f32], k: usize, nprobe: usize, keep: &dyn Fn(u64) -> bool) -> Vec<(u64, f32)> {
        let (d, m, ds) = (self.dim, self.m, self.dim / self.m);
        let mut order: Vec<(usize, f32)> = self
            .centroids
            .chunks_exact(d)
            .enumerate()
            .map(|(l, c)| (l, dist2(q, c)))
            .collect();
        order.sort_by(|a, b| a.1.total_cmp(&b.1));
        let mut best: Vec<(u64, f32)> = Vec::new();
        let mut table = vec![0f32; m * 256];
        for &(l, _) in order.iter().take(nprobe.max(1)) {
            let c = &self.centroids[l * d..(l + 1) * d];
            for s in 0..m {
                let r: Vec<f32> = (0..ds).map(|t| q[s * ds + t] - c[s * ds + t]).collect();
                let cb = &self.codebooks[s * 256 * ds..(s + 1) * 256 * ds];
                for (j, w) in cb.chunks_exact(ds).enumerate() {
                    table[s * 256 + j] = dist2(&r, w);
                }
            }
            for (i, &id) in self.ids[l].iter().enumerate() {
                if !keep(id) {
                    continue;
                }
                let code = &self.codes[l][i * m..(i + 1) * m];
                let e: f32 = code.iter().enumerate().map(|(s, &b)| table[s * 256 + b as usize]).sum();
                if best.len() < k || e < best[best.len() - 1].1 {
                    let at = best.partition_point(|x| x.1 <= e);
                    best.insert(at, (id, e));
                    best.truncate(k);
                }
            }
        }
        best
    }

    /// Writes the structure (little-endian; a header with the sizes).
    pub(crate) fn save(&self, path: &Path) -> Result<(), IndexError> {
        let mut b: Vec<u8> = Vec::new();
        let lists = self.lists();
        for v in [self.dim as u64, self.m as u64, lists as u64] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in self.centroids.iter().chain(&self.codebooks) {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for l in 0..lists {
            b.extend_from_slice(&(self.ids[l].len() as u64).to_le_bytes());
            for id in &self.ids[l] {
                b.extend_from_slice(&id.to_le_bytes());
            }
            b.extend_from_slice(&self.codes[l]);
        }
        sampleid_fsio::atomic_write(path, &b).map_err(crate::io(path))
    }

    /// Reads what [`IvfPq::save`] wrote for vectors of `dim` dimensions;
    /// `None` if it is damaged or of another dimension (the caller then
    /// trains again). Every size in the file is checked against the bytes
    /// that are there before anything is allocated or indexed by it: a
    /// damaged size (fuzzing, `fuzz/regressions/library-ivfpq-lists-huge`)
    /// made the sizes wrap and a query panic.
    pub(crate) fn load(path: &Path, dim: usize) -> Option<Self> {
        let mut b = Vec::new();
        std::fs::File::open(path).ok()?.read_to_end(&mut b).ok()?;
        let mut r = Reader { b: &b, at: 0 };
        let (file_dim, m, lists) = (r.size()?, r.size()?, r.size()?);
        if file_dim != dim || m == 0 || !dim.is_multiple_of(m) || lists == 0 {
            return None;
        }
        let centroids = r.floats(lists.checked_mul(dim)?)?;
        let codebooks = r.floats(m.checked_mul(256)?.checked_mul(dim / m)?)?;
        // Every list takes 8 bytes at least: no more lists than that allows.
        if lists > r.left() / 8 {
            return None;
        }
        let mut s = Self {
            dim,
            m,
            centroids,
            codebooks,
            ids: Vec::with_capacity(lists),
            codes: Vec::with_capacity(lists),
        };
        for _ in 0..lists {
            let n = r.size()?;
            let ids: Vec<u64> = r
                .bytes(n.checked_mul(8)?)?
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            s.codes.push(r.bytes(n.checked_mul(m)?)?.to_vec());
            s.ids.push(ids);
        }
        (r.left() == 0).then_some(s)
    }
}

/// Reads [`IvfPq::save`]'s little-endian fields, each checked against the
/// bytes left.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.b.len() - self.at
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }

    /// A u64 size that fits in memory's address space.
    fn size(&mut self) -> Option<usize> {
        usize::try_from(u64::from_le_bytes(self.bytes(8)?.try_into().ok()?)).ok()
    }

    fn floats(&mut self, n: usize) -> Option<Vec<f32>> {
        Some(
            self.bytes(n.checked_mul(4)?)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n * d)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn kmeans_finds_separated_clusters() {
        // Three tight clusters around far-apart centres.
        let centres = [[5.0f32, 5.0], [-5.0, 5.0], [0.0, -6.0]];
        let noise = points(300, 2, 3);
        let pts: Vec<f32> = (0..300)
            .flat_map(|i| {
                let c = centres[i % 3];
                [c[0] + 0.1 * noise[2 * i], c[1] + 0.1 * noise[2 * i + 1]]
            })
            .collect();
        let c = kmeans(&pts, 2, 3, 10);
        for want in centres {
            assert!(c.chunks(2).any(|g| dist2(g, &want) < 0.05), "{want:?} not in {c:?}");
        }
    }

    #[test]
    fn search_recalls_the_true_neighbours_and_survives_saving() {
        let (n, d) = (3000, 16);
        let data = points(n, d, 11);
        let cfg = IvfPqConfig {
            lists: 16,
            bytes: 8,
            nprobe: 16,
            ..IvfPqConfig::default()
        };
        let mut ix = IvfPq::train(&data, d, &cfg).unwrap();
        for (i, x) in data.chunks(d).enumerate() {
            ix.add(i as u64, x);
        }
        assert_eq!(ix.size(), n);
        // With every list probed, the query's own vector is among its top 10.
        let mut found = 0;
        for i in (0..n).step_by(100) {
            let got = ix.search(&data[i * d..(i + 1) * d], 10, 16, &|_| true);
            found += got.iter().any(|&(id, _)| id == i as u64) as usize;
        }
        assert!(found >= 27, "recall {found}/30");
        // Filtered ids never come back.
        let got = ix.search(&data[..d], 10, 16, &|id| id % 2 == 1);
        assert!(got.iter().all(|&(id, _)| id % 2 == 1));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ivf.bin");
        ix.save(&p).unwrap();
        let back = IvfPq::load(&p, d).unwrap();
        assert_eq!(
            back.search(&data[..d], 5, 4, &|_| true),
            ix.search(&data[..d], 5, 4, &|_| true)
        );
        assert!(IvfPq::load(&p, 2 * d).is_none(), "another dimension");
        // Damaged sizes are refused, never trusted (fuzzing found the first).
        let good = std::fs::read(&p).unwrap();
        for (at, v) in [(16, u64::MAX / 8), (16, 1 << 40), (0, 0), (8, 0), (8, 3), (16, 0)] {
            let mut bad = good.clone();
            bad[at..at + 8].copy_from_slice(&v.to_le_bytes());
            std::fs::write(&p, &bad).unwrap();
            assert!(IvfPq::load(&p, d).is_none(), "size {v} at {at}");
        }
        let first_list = 24 + 4 * (16 * d + 8 * 256 * (d / 8));
        for v in [u64::MAX, u64::MAX / 8 + 1, 1 << 40, 0] {
            let mut bad = good.clone();
            bad[first_list..first_list + 8].copy_from_slice(&v.to_le_bytes());
            std::fs::write(&p, &bad).unwrap();
            assert!(IvfPq::load(&p, d).is_none(), "list size {v}");
        }
        for cut in [0, 7, 100, good.len() - 1] {
            std::fs::write(&p, &good[..cut]).unwrap();
            assert!(IvfPq::load(&p, d).is_none(), "cut at {cut}");
        }
    }
}
