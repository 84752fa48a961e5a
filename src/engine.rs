//! The pipeline on one file: audio → features → encoder, giving what the
//! index stores (fingerprints and compact node matrices) or what a query
//! needs (fingerprints and full node matrices).

use std::path::Path;

use anyhow::Result;
use indicatif::ProgressBar;
use sampleid_audio::AudioStream;
use sampleid_encoder::{Embedding, Encoder};
use sampleid_features::{ChromaStream, SegmentStream, quantise_shares};
use sampleid_index::Layout;
use sampleid_rerank::Reranker;

use crate::config::Config;
use crate::progress;

/// Segments encoded per forward pass.
const BATCH: usize = 64;

/// What the index stores for one reference file.
pub struct ReferenceRows {
    /// `n × dim` unit fingerprints.
    pub fingerprints: Vec<f32>,
    /// `n` stored node matrices.
    pub nodes: Vec<u8>,
    /// Chroma shares, 12 bytes per 10 Hz frame (see `sampleid_index::CHROMA_BYTES`).
    pub chroma: Vec<u8>,
    pub duration_s: f64,
    /// Largest |sample| (0 for digital silence).
    pub peak: f32,
}

/// What a query needs from its file.
pub struct QueryInput {
    pub segments: Vec<sampleid_search::QuerySegment>,
    /// Chroma shares per 10 Hz frame, as the index stores them.
    pub chroma: Vec<[u8; 12]>,
    pub duration_s: f64,
    /// Largest |sample| (0 for digital silence).
    pub peak: f32,
}

/// Peaks below this (−80 dBFS) are silence: nothing to identify.
pub const SILENCE_PEAK: f32 = 1e-4;

/// A clip or song that is silent (or too short to hold one segment): there is
/// nothing to identify, match or index.
#[derive(Debug, thiserror::Error)]
#[error("{name} is silent: there is no music to {what}")]
pub struct Silent {
    pub name: String,
    /// What could not be done: "identify", "match", "index".
    pub what: &'static str,
}

/// The models and settings that turn audio into rows.
pub struct Engine {
    pub encoder: Encoder,
    pub reranker: Reranker,
    pub cfg: Config,
}

impl Engine {
    /// The built-in (or `--model` / environment) models.
    pub fn load(cfg: &Config, model: Option<&Path>) -> Result<Self> {
        let encoder = crate::model::encoder(model)?;
        let reranker = crate::model::reranker(&encoder)?;
        Ok(Self {
            encoder,
            reranker,
            cfg: cfg.clone(),
        })
    }

    /// What produces this engine's rows.
    pub fn layout(&self) -> Layout {
        Layout {
            encoder: self.encoder.info().version.clone(),
            reranker: self.reranker.storage_id(),
            dim: self.encoder.config().out_dim,
            node_bytes: self.reranker.config().stored_bytes(),
            hop_s: crate::cmd::fingerprint::hop_s(&self.cfg),
        }
    }

    /// Decodes and encodes a whole stream, calling `each` with every batch
    /// of embeddings in order and, when `chroma` is given, appending its
    /// chroma shares (one per 10 Hz frame) to it; returns the decoded
    /// duration (s) and peak |sample|. (The stream's `max_duration_s` bounds
    /// what an upload costs.)
    pub fn embed_stream(
        &self,
        mut stream: AudioStream,
        name: &str,
        bar: Option<&ProgressBar>,
        mut chroma: Option<&mut Vec<[u8; 12]>>,
        each: &mut dyn FnMut(Vec<Embedding>) -> Result<()>,
    ) -> Result<(f64, f32)> {
        let mut peak = 0.0f32;
        let declared = stream.info().duration_s;
        let mut seg = SegmentStream::new(&self.cfg.frontend)?;
        let mut pitch = match chroma {
            Some(_) => Some(ChromaStream::new(&self.cfg.chroma)?),
            None => None,
        };
        let silence = pitch.as_ref().map_or(0.0, |p| p.silence_energy());
        let mut pending: Vec<Vec<f32>> = Vec::new();
        let mut flush = |pending: &mut Vec<Vec<f32>>| -> Result<()> {
            if pending.is_empty() {
                return Ok(());
            }
            let refs: Vec<&[f32]> = pending.iter().map(|s| s.as_slice()).collect();
            each(self.encoder.embed(&refs)?)?;
            pending.clear();
            Ok(())
        };
        while let Some(block) = stream.next_block()? {
            peak = block.iter().fold(peak, |m, x| m.max(x.abs()));
            if let (Some(p), Some(c)) = (pitch.as_mut(), chroma.as_deref_mut()) {
                p.push(block, &mut |e| c.push(quantise_shares(e, silence)));
            }
            seg.push(block, &mut |s| pending.push(s.data));
            if pending.len() >= BATCH {
                flush(&mut pending)?;
            }
            if let Some(bar) = bar {
                progress::show_position(bar, name, stream.position_s(), declared);
            }
        }
        seg.finish(&mut |s| pending.push(s.data));
        if let (Some(p), Some(c)) = (pitch.as_mut(), chroma) {
            p.finish(&mut |e| c.push(quantise_shares(e, silence)));
        }
        flush(&mut pending)?;
        Ok((stream.position_s(), peak))
    }

    /// The rows of a reference: fingerprints, stored nodes and chroma.
    pub fn reference_rows(&self, input: &Path, bar: Option<&ProgressBar>) -> Result<ReferenceRows> {
        let stream = AudioStream::open(input, &self.cfg.audio)?;
        self.reference_rows_of(stream, &input.display().to_string(), bar)
    }

    /// [`Engine::reference_rows`] of an open stream (an upload, say).
    pub fn reference_rows_of(
        &self,
        stream: AudioStream,
        name: &str,
        bar: Option<&ProgressBar>,
    ) -> Result<ReferenceRows> {
        let (mut fps, mut nodes, mut chroma) = (Vec::new(), Vec::new(), Vec::new());
        let (d, peak) = self.embed_stream(stream, name, bar, Some(&mut chroma), &mut |batch| {
            for e in batch {
                fps.extend_from_slice(&e.fingerprint);
                nodes.extend(self.reranker.store(&e.nodes)?);
            }
            Ok(())
        })?;
        Ok(ReferenceRows {
            fingerprints: fps,
            nodes,
            chroma: chroma.concat(),
            duration_s: d,
            peak,
        })
    }

    /// The segments of a query, and its chroma when the alignment that uses it is on.
    pub fn query_input(&self, input: &Path) -> Result<QueryInput> {
        let stream = AudioStream::open(input, &self.cfg.audio)?;
        self.query_input_of(stream, &input.display().to_string())
    }

    /// [`Engine::query_input`] of an open stream (an upload, say).
    pub fn query_input_of(&self, stream: AudioStream, name: &str) -> Result<QueryInput> {
        let (mut out, mut chroma) = (Vec::new(), Vec::new());
        let want_chroma = self.cfg.refine.enabled;
        let (d, peak) = self.embed_stream(stream, name, None, want_chroma.then_some(&mut chroma), &mut |batch| {
            out.extend(batch.into_iter().map(|e| sampleid_search::QuerySegment {
                fingerprint: e.fingerprint,
                nodes: e.nodes,
            }));
            Ok(())
        })?;
        Ok(QueryInput {
            segments: out,
            chroma,
            duration_s: d,
            peak,
        })
    }
}
