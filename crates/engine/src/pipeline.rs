//! The pipeline on one input, Olaf-style: one stream processor that every
//! entry point calls. Audio is decoded in blocks and pushed through the front
//! end (log-mel segments, and chroma when wanted) and the encoder, so memory
//! does not grow with the length of a file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sampleid_audio::AudioStream;
use sampleid_encoder::{Embedding, Encoder};
use sampleid_features::{ChromaStream, SegmentStream, quantise_shares};
use sampleid_index::{Layout, SongLandmarks};
use sampleid_landmarks::{LevelsBuilder, PairConfig, QuadConfig, QueryLandmarks, QueryLevels};
use sampleid_peaks::{Peak, PeakConfig, PeakPicker, Spectrogram};
use sampleid_rerank::Reranker;

use crate::error::{Error, Result};
use crate::models::{ModelSource, load_encoder, load_reranker};
use crate::settings::Settings;

pub use sampleid_audio::SILENCE_PEAK;

/// Segments encoded per forward pass.
const BATCH: usize = 64;

/// Reports how far into an input the decoder is: (input name, position in
/// seconds, declared duration when the container says).
pub type Progress<'a> = &'a (dyn Fn(&str, f64, Option<f64>) + Sync);

/// An audio input: a file, or encoded bytes in memory (an upload).
#[derive(Debug, Clone)]
pub struct Source {
    kind: SourceKind,
    name: String,
    max_duration_s: Option<f64>,
}

#[derive(Debug, Clone)]
enum SourceKind {
    File(PathBuf),
    Bytes {
        bytes: Arc<Vec<u8>>,
        format_hint: Option<String>,
    },
}

impl Source {
    /// A file; its name in results and errors is the path as given.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        Self {
            name: path.display().to_string(),
            kind: SourceKind::File(path),
            max_duration_s: None,
        }
    }

    /// Encoded audio in memory; `name` labels it (it never reaches the file
    /// system), `format_hint` is an extension such as "mp3" when known.
    pub fn bytes(bytes: Vec<u8>, name: impl Into<String>, format_hint: Option<&str>) -> Self {
        Self {
            name: name.into(),
            kind: SourceKind::Bytes {
                bytes: Arc::new(bytes),
                format_hint: format_hint.map(str::to_string),
            },
            max_duration_s: None,
        }
    }

    /// Refuses audio longer than `seconds` (on top of `[audio] max_duration_s`):
    /// bounds what an upload can cost.
    pub fn with_max_duration(mut self, seconds: f64) -> Self {
        self.max_duration_s = Some(seconds);
        self
    }

    /// The input's name in results and errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file, when the input is one.
    pub fn path(&self) -> Option<&Path> {
        match &self.kind {
            SourceKind::File(p) => Some(p),
            SourceKind::Bytes { .. } => None,
        }
    }

    /// SHA-256 of the input's bytes: what a library recognises content by.
    pub fn content_hash(&self) -> Result<String> {
        match &self.kind {
            SourceKind::File(p) => sampleid_index::hash::sha256_file(p).map_err(|err| Error::Io {
                name: self.name.clone(),
                err,
            }),
            SourceKind::Bytes { bytes, .. } => Ok(sampleid_index::hash::sha256_bytes(bytes)),
        }
    }

    /// Opens the input for decoding with `cfg` (and this source's limit).
    pub fn open(&self, cfg: &sampleid_audio::AudioConfig) -> Result<AudioStream> {
        let limited;
        let cfg = match self.max_duration_s {
            Some(max) => {
                let mut c = cfg.clone();
                c.max_duration_s = Some(c.max_duration_s.map_or(max, |m| m.min(max)));
                limited = c;
                &limited
            }
            None => cfg,
        };
        Ok(match &self.kind {
            SourceKind::File(p) => AudioStream::open(p, cfg)?,
            SourceKind::Bytes { bytes, format_hint } => {
                AudioStream::from_bytes(bytes.as_ref().clone(), &self.name, format_hint.as_deref(), cfg)?
            }
        })
    }
}

impl From<&Path> for Source {
    fn from(p: &Path) -> Self {
        Source::file(p)
    }
}

impl From<PathBuf> for Source {
    fn from(p: PathBuf) -> Self {
        Source::file(p)
    }
}

/// What the index stores for one reference.
#[derive(Debug, Clone)]
pub struct ReferenceRows {
    /// `n × dim` unit fingerprints.
    pub fingerprints: Vec<f32>,
    /// `n` stored node matrices.
    pub nodes: Vec<u8>,
    /// Chroma shares, 12 bytes per 10 Hz frame (see `sampleid_index::CHROMA_BYTES`).
    pub chroma: Vec<u8>,
    /// Peaks and quads (empty when `[landmarks] index` is off), the quads
    /// of the current landmark version
    /// ([`sampleid_landmarks::STORED_VERSION`]).
    pub landmarks: SongLandmarks,
    /// The sparse peaks the quads come from, so that a library of an older
    /// landmark version is given that version's quads
    /// ([`ReferenceRows::landmarks_for`]). Empty for rows copied out of a
    /// library, whose quads are already that library's.
    pub sparse_peaks: Vec<sampleid_peaks::Peak>,
    /// Decoded duration (s).
    pub duration_s: f64,
    /// Largest |sample| (0 for digital silence).
    pub peak: f32,
}

impl ReferenceRows {
    /// The landmarks to store in a library whose landmark rows are of
    /// `version` (`None`: not recorded, or the current one): the same peaks,
    /// and that version's quads (the rows' own without sparse peaks). Errors
    /// for a version this build does not know.
    pub fn landmarks_for(&self, version: Option<&str>) -> Result<std::borrow::Cow<'_, SongLandmarks>> {
        match version {
            _ if self.sparse_peaks.is_empty() => Ok(std::borrow::Cow::Borrowed(&self.landmarks)),
            None | Some(sampleid_landmarks::STORED_VERSION) => Ok(std::borrow::Cow::Borrowed(&self.landmarks)),
            Some(v) => {
                let cfg = sampleid_landmarks::reference_quads(v)
                    .ok_or_else(|| Error::Config(format!("unknown landmark version {v}")))?;
                Ok(std::borrow::Cow::Owned(SongLandmarks {
                    peaks: self.landmarks.peaks.clone(),
                    quads: sampleid_landmarks::quads(&self.sparse_peaks, &cfg),
                }))
            }
        }
    }
}

/// What a query needs from its clip.
#[derive(Debug, Clone)]
pub struct QueryInput {
    /// The clip's name in results.
    pub name: String,
    /// Fingerprint and node matrix per segment.
    pub segments: Vec<sampleid_search::QuerySegment>,
    /// Chroma shares per 10 Hz frame, as the index stores them (empty when
    /// the refinement that uses them is off).
    pub chroma: Vec<[u8; 12]>,
    /// Peaks, pairs and quads (query side), when the landmark stage runs.
    pub landmarks: Option<QueryLandmarks>,
    /// Decoded duration (s).
    pub duration_s: f64,
    /// Largest |sample| (0 for digital silence).
    pub peak: f32,
}

/// Which stages a query runs (`sampleid query --stage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Spectral-peak landmarks with verification only: fast, and "no match"
    /// for music that is not in the library.
    Landmarks,
    /// The neural path only (two-stage search and chroma refinement).
    Neural,
    /// Every stage, fused into one calibrated confidence (the landmarks
    /// first; the network only when they are not decisive).
    #[default]
    All,
}

impl Stage {
    /// Whether the landmark stage runs.
    pub fn landmarks(self) -> bool {
        matches!(self, Stage::Landmarks | Stage::All)
    }

    /// Whether the neural stage runs.
    pub fn neural(self) -> bool {
        matches!(self, Stage::Neural | Stage::All)
    }
}

/// Peak extraction riding along a decode: one spectrogram, one or more
/// peak pickers on it (a reference keeps dense peaks for pairs and
/// verification and sparse ones for its quads; a query needs one set).
struct PeakTap {
    spec: Spectrogram,
    pickers: Vec<(PeakPicker, Vec<Peak>)>,
    /// The pooled spectrogram, kept for queries ([`sampleid_landmarks::QueryLevels`]).
    levels: Option<LevelsBuilder>,
}

impl PeakTap {
    /// Pickers with each configuration; they must share the STFT settings.
    fn new(cfgs: &[PeakConfig]) -> Result<Self> {
        let err = |e: sampleid_peaks::PeakError| Error::Config(format!("[landmarks] {e}"));
        let first = &cfgs[0];
        first.validate().map_err(err)?;
        let mut pickers = Vec::new();
        for c in cfgs {
            c.validate().map_err(err)?;
            if c.n_fft() != first.n_fft() || c.hop() != first.hop() || c.bins() != first.bins() {
                return Err(Error::Config(
                    "[landmarks] peak pickers must share window, hop and range".into(),
                ));
            }
            pickers.push((PeakPicker::new(c).map_err(err)?, Vec::new()));
        }
        Ok(Self {
            spec: Spectrogram::new(first),
            pickers,
            levels: None,
        })
    }

    /// Also keeps the pooled spectrogram (a query's: 4 bytes per 6 cells).
    fn with_levels(mut self) -> Self {
        self.levels = Some(LevelsBuilder::new(self.spec.bins()));
        self
    }

    fn push(&mut self, block: &[f32]) {
        let (pickers, levels) = (&mut self.pickers, &mut self.levels);
        self.spec.push(block, &mut |col| Self::column(pickers, levels, col));
    }

    /// One spectrogram column to every picker and to the pooled levels.
    fn column(pickers: &mut [(PeakPicker, Vec<Peak>)], levels: &mut Option<LevelsBuilder>, col: &[f32]) {
        for (p, out) in pickers.iter_mut() {
            p.push(col, &mut |k| out.push(k));
        }
        if let Some(l) = levels.as_mut() {
            l.push(col);
        }
    }

    /// Each picker's peaks, in frame order (bins ascending within a frame).
    fn finish(self) -> Vec<Vec<Peak>> {
        self.finish_with_levels().0
    }

    /// Each picker's peaks and the pooled spectrogram, if kept.
    fn finish_with_levels(mut self) -> (Vec<Vec<Peak>>, Option<QueryLevels>) {
        let (pickers, levels) = (&mut self.pickers, &mut self.levels);
        self.spec.finish(&mut |col| Self::column(pickers, levels, col));
        let peaks = self
            .pickers
            .into_iter()
            .map(|(mut p, mut out)| {
                p.finish(&mut |k| out.push(k));
                out.sort_by_key(|k| (k.frame, k.bin));
                out
            })
            .collect();
        (peaks, self.levels.map(LevelsBuilder::finish))
    }
}

/// A clip's chroma, for audio matching and alignment.
#[derive(Debug, Clone)]
pub struct ChromaInput {
    /// The input's name in results.
    pub name: String,
    /// Chroma shares per 10 Hz frame, as the index stores them.
    pub chroma: Vec<[u8; 12]>,
    /// Decoded duration (s).
    pub duration_s: f64,
}

struct Models {
    encoder: Encoder,
    /// The re-ranker, or why none fits the encoder (an encoder of one's own
    /// without its re-ranker still fingerprints; libraries need both).
    reranker: std::result::Result<Reranker, String>,
    /// The fused confidence's calibrator.
    calibrator: crate::fusion::Calibrator,
    /// The chroma shingles libraries store.
    shingles: sampleid_matching::ShingleModel,
}

/// The models and settings that turn audio into rows and answers. Cheap to
/// clone: the models are loaded once and shared by every worker and request.
#[derive(Clone)]
pub struct Engine {
    models: Arc<Models>,
    settings: Arc<Settings>,
    source: ModelSource,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("encoder", &self.models.encoder.info().version)
            .field(
                "reranker",
                &self.models.reranker.as_ref().map(|r| r.info().version.clone()),
            )
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Validates `settings` and loads the models of `source` (the built-in
    /// ones by default). A re-ranker that does not fit the encoder is an
    /// error only when something needs it (a library, a query).
    pub fn load(settings: Settings, source: ModelSource) -> Result<Self> {
        settings.validate()?;
        let encoder = load_encoder(&source)?;
        let reranker = load_reranker(&encoder).map_err(|e| e.to_string());
        let calibrator = crate::models::load_calibrator()?;
        Ok(Self {
            models: Arc::new(Models {
                encoder,
                reranker,
                calibrator,
                shingles: crate::models::load_shingle_model()?,
            }),
            settings: Arc::new(settings),
            source,
        })
    }

    /// An engine over models already in memory (a freshly trained encoder, a test).
    pub fn with_models(settings: Settings, encoder: Encoder, reranker: Reranker, source: ModelSource) -> Result<Self> {
        settings.validate()?;
        Ok(Self {
            models: Arc::new(Models {
                encoder,
                reranker: Ok(reranker),
                calibrator: crate::models::load_calibrator()?,
                shingles: crate::models::load_shingle_model()?,
            }),
            settings: Arc::new(settings),
            source,
        })
    }

    /// The same models with other settings (validated): a settings change
    /// without loading the models again.
    pub fn with_settings(&self, settings: Settings) -> Result<Self> {
        settings.validate()?;
        Ok(Self {
            models: Arc::clone(&self.models),
            settings: Arc::new(settings),
            source: self.source.clone(),
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The encoder.
    pub fn encoder(&self) -> &Encoder {
        &self.models.encoder
    }

    /// The re-ranker (an error when none fits the encoder).
    pub fn reranker(&self) -> Result<&Reranker> {
        self.models.reranker.as_ref().map_err(|e| Error::Model(e.clone()))
    }

    /// The calibrator of the fused confidence.
    pub fn calibrator(&self) -> &crate::fusion::Calibrator {
        &self.models.calibrator
    }

    /// The chroma shingle model of the libraries this engine writes.
    pub fn shingle_model(&self) -> &sampleid_matching::ShingleModel {
        &self.models.shingles
    }

    /// Where the encoder came from.
    pub fn model_source(&self) -> &ModelSource {
        &self.source
    }

    /// What produces this engine's rows; a library must have been built with the same.
    pub fn layout(&self) -> Result<Layout> {
        let reranker = self.reranker()?;
        Ok(Layout {
            encoder: self.encoder().info().version.clone(),
            reranker: reranker.storage_id(),
            dim: self.encoder().config().out_dim,
            node_bytes: reranker.config().stored_bytes(),
            hop_s: self.settings.hop_s(),
        })
    }

    /// Decodes and encodes a whole stream, calling `each` with every batch of
    /// embeddings in order and, when `chroma` is given, appending its chroma
    /// shares (one per 10 Hz frame); returns the decoded duration (s) and the
    /// peak |sample|.
    pub fn embed_stream(
        &self,
        stream: AudioStream,
        name: &str,
        progress: Option<Progress>,
        chroma: Option<&mut Vec<[u8; 12]>>,
        each: &mut dyn FnMut(Vec<Embedding>) -> Result<()>,
    ) -> Result<(f64, f32)> {
        self.embed_stream_with(stream, name, progress, chroma, None, each)
    }

    fn embed_stream_with(
        &self,
        mut stream: AudioStream,
        name: &str,
        progress: Option<Progress>,
        mut chroma: Option<&mut Vec<[u8; 12]>>,
        mut peaks: Option<&mut PeakTap>,
        each: &mut dyn FnMut(Vec<Embedding>) -> Result<()>,
    ) -> Result<(f64, f32)> {
        let mut peak = 0.0f32;
        let declared = stream.info().duration_s;
        let mut seg = SegmentStream::new(&self.settings.frontend)?;
        let mut pitch = match chroma {
            Some(_) => Some(ChromaStream::new(&self.settings.chroma)?),
            None => None,
        };
        let silence = pitch.as_ref().map_or(0.0, |p| p.silence_energy());
        let mut pending: Vec<Vec<f32>> = Vec::new();
        let encoder = self.encoder();
        let mut flush = |pending: &mut Vec<Vec<f32>>| -> Result<()> {
            if pending.is_empty() {
                return Ok(());
            }
            let refs: Vec<&[f32]> = pending.iter().map(|s| s.as_slice()).collect();
            each(encoder.embed(&refs)?)?;
            pending.clear();
            Ok(())
        };
        while let Some(block) = stream.next_block()? {
            peak = block.iter().fold(peak, |m, x| m.max(x.abs()));
            if let (Some(p), Some(c)) = (pitch.as_mut(), chroma.as_deref_mut()) {
                p.push(block, &mut |e| c.push(quantise_shares(e, silence)));
            }
            if let Some(t) = peaks.as_deref_mut() {
                t.push(block);
            }
            seg.push(block, &mut |s| pending.push(s.data));
            if pending.len() >= BATCH {
                flush(&mut pending)?;
            }
            if let Some(report) = progress {
                report(name, stream.position_s(), declared);
            }
        }
        seg.finish(&mut |s| pending.push(s.data));
        if let (Some(p), Some(c)) = (pitch.as_mut(), chroma) {
            p.finish(&mut |e| c.push(quantise_shares(e, silence)));
        }
        flush(&mut pending)?;
        Ok((stream.position_s(), peak))
    }

    /// The rows of a reference: fingerprints, stored nodes and chroma. A
    /// silent input, or one too short for a segment, is [`Error::Silent`].
    pub fn reference_rows(&self, source: &Source, progress: Option<Progress>) -> Result<ReferenceRows> {
        let stream = source.open(&self.settings.audio)?;
        let (mut fps, mut nodes, mut chroma) = (Vec::new(), Vec::new(), Vec::new());
        let reranker = self.reranker()?;
        let mut tap = match self.settings.landmarks.index {
            true => Some(PeakTap::new(&[
                sampleid_landmarks::stored_peak_config(),
                PeakConfig::reference(),
            ])?),
            false => None,
        };
        let (d, peak) = self.embed_stream_with(
            stream,
            source.name(),
            progress,
            Some(&mut chroma),
            tap.as_mut(),
            &mut |batch| {
                for e in batch {
                    fps.extend_from_slice(&e.fingerprint);
                    nodes.extend(reranker.store(&e.nodes)?);
                }
                Ok(())
            },
        )?;
        let (landmarks, sparse_peaks) = match tap {
            Some(t) => {
                let mut sets = t.finish();
                let sparse = sets.pop().unwrap_or_default();
                let peaks = sets.pop().unwrap_or_default();
                let quads = sampleid_landmarks::quads(&sparse, &QuadConfig::reference());
                (SongLandmarks { peaks, quads }, sparse)
            }
            None => (SongLandmarks::default(), Vec::new()),
        };
        silent_unless(peak, source.name(), "index")?;
        if fps.is_empty() {
            return Err(Error::Silent {
                name: source.name().to_string(),
                what: "index",
            });
        }
        Ok(ReferenceRows {
            fingerprints: fps,
            nodes,
            chroma: chroma.concat(),
            landmarks,
            sparse_peaks,
            duration_s: d,
            peak,
        })
    }

    /// The segments of a query, and its chroma when the refinement that uses
    /// it is on. A silent clip is [`Error::Silent`].
    pub fn query_input(&self, source: &Source) -> Result<QueryInput> {
        self.query_input_for(source, Stage::All)
    }

    /// What `stage` needs of a query: landmarks, segments and chroma, or
    /// only some (a landmark-only query is never encoded by the network).
    pub fn query_input_for(&self, source: &Source, stage: Stage) -> Result<QueryInput> {
        let lm = &self.settings.landmarks;
        let mut tap = match stage.landmarks() {
            true => Some(PeakTap::new(std::slice::from_ref(&lm.query_peaks))?.with_levels()),
            false => None,
        };
        let (mut out, mut chroma) = (Vec::new(), Vec::new());
        let (d, peak) = if stage.neural() {
            let stream = source.open(&self.settings.audio)?;
            let want_chroma = self.settings.refine.enabled;
            self.embed_stream_with(
                stream,
                source.name(),
                None,
                want_chroma.then_some(&mut chroma),
                tap.as_mut(),
                &mut |batch| {
                    out.extend(batch.into_iter().map(|e| sampleid_search::QuerySegment {
                        fingerprint: e.fingerprint,
                        nodes: e.nodes,
                    }));
                    Ok(())
                },
            )?
        } else {
            let mut stream = source.open(&self.settings.audio)?;
            let mut peak = 0.0f32;
            while let Some(block) = stream.next_block()? {
                peak = block.iter().fold(peak, |m, x| m.max(x.abs()));
                if let Some(t) = tap.as_mut() {
                    t.push(block);
                }
            }
            (stream.position_s(), peak)
        };
        silent_unless(peak, source.name(), "identify")?;
        let landmarks = tap.map(|t| {
            let frames = (d * lm.query_peaks.frame_rate()).ceil() as u32 + 1;
            let (mut peaks, levels) = t.finish_with_levels();
            let q = QueryLandmarks::new(
                peaks.pop().unwrap_or_default(),
                frames,
                lm.query_peaks.bins() as u32,
                &PairConfig::default(),
                &lm.query_quads,
                lm.search.query_fan_out,
            );
            match levels {
                Some(l) => q.with_levels(l),
                None => q,
            }
        });
        Ok(QueryInput {
            name: source.name().to_string(),
            segments: out,
            chroma,
            landmarks,
            duration_s: d,
            peak,
        })
    }

    /// The fingerprints of a whole input (`n × dim`, row-major) and its
    /// decoded duration (s).
    pub fn fingerprints(&self, source: &Source, progress: Option<Progress>) -> Result<(Vec<f32>, f64)> {
        let stream = source.open(&self.settings.audio)?;
        let mut out = Vec::new();
        let (d, _) = self.embed_stream(stream, source.name(), progress, None, &mut |batch| {
            for e in batch {
                out.extend_from_slice(&e.fingerprint);
            }
            Ok(())
        })?;
        Ok((out, d))
    }

    /// The chroma of an input (10 Hz shares, as a library stores them). A
    /// silent input is [`Error::Silent`] for `what` ("match", "align").
    pub fn chroma(&self, source: &Source, what: &'static str) -> Result<ChromaInput> {
        let mut stream = source.open(&self.settings.audio)?;
        let mut pitch = ChromaStream::new(&self.settings.chroma)?;
        let silence = pitch.silence_energy();
        let (mut out, mut peak) = (Vec::new(), 0.0f32);
        while let Some(block) = stream.next_block()? {
            peak = block.iter().fold(peak, |m, x| m.max(x.abs()));
            pitch.push(block, &mut |e| out.push(quantise_shares(e, silence)));
        }
        pitch.finish(&mut |e| out.push(quantise_shares(e, silence)));
        silent_unless(peak, source.name(), what)?;
        Ok(ChromaInput {
            name: source.name().to_string(),
            chroma: out,
            duration_s: stream.position_s(),
        })
    }

    /// The DTW warping path between two recordings of the same music, on chroma.
    pub fn align(&self, a: &Source, b: &Source) -> Result<sampleid_matching::Alignment> {
        let a = self.chroma(a, "align")?;
        let b = self.chroma(b, "align")?;
        Ok(sampleid_matching::align(
            &a.chroma,
            &b.chroma,
            self.settings.chroma.frame_rate(),
            &self.settings.align,
        )?)
    }
}

/// [`Error::Silent`] when `peak` is below [`SILENCE_PEAK`].
pub(crate) fn silent_unless(peak: f32, name: &str, what: &'static str) -> Result<()> {
    if peak < SILENCE_PEAK {
        return Err(Error::Silent {
            name: name.to_string(),
            what,
        });
    }
    Ok(())
}
