//! A cache of decoded corpus audio: each file once as raw 16 kHz mono 16-bit
//! PCM (`CACHE/SHA256.s16`), so that training can read any window of any
//! file with one positioned read and no decoding.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sampleid_audio::{AudioConfig, AudioStream};

use crate::TrainError;

/// Sample rate of the cache.
pub const RATE: u32 = 16_000;

/// One cached file.
#[derive(Debug, Clone)]
pub struct Cached {
    pub path: PathBuf,
    /// Length in samples.
    pub len: usize,
}

impl Cached {
    /// Reads `len` samples from `start` (zeros past the end).
    pub fn read(&self, start: usize, len: usize) -> Result<Vec<f32>, TrainError> {
        let mut out = vec![0.0f32; len];
        if start >= self.len {
            return Ok(out);
        }
        let n = len.min(self.len - start);
        let mut bytes = vec![0u8; n * 2];
        let f = File::open(&self.path).map_err(|e| TrainError::io(&self.path, e))?;
        f.read_exact_at(&mut bytes, start as u64 * 2)
            .map_err(|e| TrainError::io(&self.path, e))?;
        for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            *o = i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0;
        }
        Ok(out)
    }

    /// The whole file.
    pub fn read_all(&self) -> Result<Vec<f32>, TrainError> {
        self.read(0, self.len)
    }
}

/// Decodes every (corpus path, sha256) not yet cached into `dir`; returns the
/// cached files in the same order. Files that fail to decode are `None`.
pub fn ensure(
    corpus: &Path,
    dir: &Path,
    files: &[(String, String)],
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<Option<Cached>>, TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let out = files
        .par_iter()
        .map(|(path, sha)| {
            let target = dir.join(format!("{sha}.s16"));
            let r = if let Ok(meta) = std::fs::metadata(&target) {
                Some(Cached {
                    len: meta.len() as usize / 2,
                    path: target,
                })
            } else {
                match decode_to(&corpus.join(path), &target) {
                    Ok(len) => Some(Cached { path: target, len }),
                    Err(e) => {
                        tracing::warn!("skipping {path}: {e}");
                        None
                    }
                }
            };
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(n, files.len());
            r
        })
        .collect();
    Ok(out)
}

fn decode_to(source: &Path, target: &Path) -> Result<usize, TrainError> {
    let cfg = AudioConfig {
        sample_rate: RATE,
        ..AudioConfig::default()
    };
    let mut stream = AudioStream::open(source, &cfg)?;
    let mut bytes = Vec::new();
    let mut n = 0;
    while let Some(block) = stream.next_block()? {
        for &s in block {
            bytes.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes());
        }
        n += block.len();
    }
    sampleid_fsio::atomic_write(target, &bytes).map_err(|e| TrainError::io(target, e))?;
    Ok(n)
}
