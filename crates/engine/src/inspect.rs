//! The front end's outputs as a product: features streamed row by row
//! (`sampleid features`) and a complete decode that describes an input
//! (`sampleid info`). Neither needs models, only [`Settings`].

use sampleid_audio::SourceInfo;
use sampleid_features::chroma::{cens_from_energy, normalise_chroma};
use sampleid_features::{ChromaStream, LogMelStream, SegmentStream};
use serde::Serialize;

use crate::error::Result;
use crate::pipeline::{Progress, Source};
use crate::settings::Settings;

/// Which features to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    /// Log-mel spectrogram (frames × mels, dB).
    Mel,
    /// Normalised encoder inputs (n × mels × frames).
    Segments,
    /// ℓ2-normalised chroma (frames × 12, 10 frames/s).
    Chroma,
    /// CENS (frames × 12, 1 frame/s).
    Cens,
    /// One whole-track descriptor (1 × 113).
    Track,
}

impl FeatureKind {
    /// The shape of one row (everything after the first axis).
    pub fn row_shape(self, settings: &Settings) -> Vec<usize> {
        let fe = &settings.frontend;
        match self {
            FeatureKind::Mel => vec![fe.n_mels],
            FeatureKind::Segments => vec![fe.n_mels, fe.segment_frames],
            FeatureKind::Chroma | FeatureKind::Cens => vec![12],
            FeatureKind::Track => vec![sampleid_features::track_feature_names().len()],
        }
    }
}

/// Streams an input through the front end, calling `row` with each row of
/// `kind` in order; returns the seconds decoded. Memory stays bounded except
/// for `Track` (the decoded track, 3.8 MB per minute) and `Cens` (12 floats
/// per 0.1 s).
pub fn features(
    settings: &Settings,
    source: &Source,
    kind: FeatureKind,
    progress: Option<Progress>,
    row: &mut dyn FnMut(&[f32]),
) -> Result<f64> {
    let mut stream = source.open(&settings.audio)?;
    let declared = stream.info().duration_s;
    let name = source.name();
    let fe = &settings.frontend;
    let show = |pos: f64| {
        if let Some(p) = progress {
            p(name, pos, declared);
        }
    };
    match kind {
        FeatureKind::Mel => {
            let mut mel = LogMelStream::new(fe, 0)?;
            while let Some(block) = stream.next_block()? {
                mel.push(block, &mut |f| row(f));
                show(stream.position_s());
            }
            mel.finish(&mut |f| row(f));
        }
        FeatureKind::Segments => {
            let mut seg = SegmentStream::new(fe)?;
            while let Some(block) = stream.next_block()? {
                seg.push(block, &mut |s| row(&s.data));
                show(stream.position_s());
            }
            seg.finish(&mut |s| row(&s.data));
        }
        FeatureKind::Chroma => {
            let mut ch = ChromaStream::new(&settings.chroma)?;
            let silence = ch.silence_energy();
            let mut on = |e: &[f32; 12]| row(&normalise_chroma(std::slice::from_ref(e), silence)[0]);
            while let Some(block) = stream.next_block()? {
                ch.push(block, &mut on);
                show(stream.position_s());
            }
            ch.finish(&mut on);
        }
        FeatureKind::Track => {
            let mut samples = Vec::new();
            while let Some(block) = stream.next_block()? {
                samples.extend_from_slice(block);
                show(stream.position_s());
            }
            row(&sampleid_features::track_features(&samples, fe)?);
        }
        FeatureKind::Cens => {
            let mut ch = ChromaStream::new(&settings.chroma)?;
            let mut energy = Vec::new();
            while let Some(block) = stream.next_block()? {
                ch.push(block, &mut |e| energy.push(*e));
                show(stream.position_s());
            }
            ch.finish(&mut |e| energy.push(*e));
            for r in cens_from_energy(&energy, ch.silence_energy(), &settings.chroma.cens) {
                row(&r);
            }
        }
    }
    Ok(stream.position_s())
}

/// What a complete decode found out about an input (`sampleid info`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioReport {
    /// The input, as named by the caller.
    pub input: String,
    /// What the container declares.
    #[serde(flatten)]
    pub source: SourceInfo,
    /// Seconds decoded (at the analysis rate).
    pub decoded_s: f64,
    /// Peak absolute sample value after downmixing (1.0 = full scale).
    pub peak: f32,
    /// No sound at all (digital silence or DC).
    pub silent: bool,
    /// Undecodable packets that were skipped.
    pub skipped_packets: u64,
}

/// Decodes an input completely and describes it.
pub fn audio_report(settings: &Settings, source: &Source, progress: Option<Progress>) -> Result<AudioReport> {
    let mut stream = source.open(&settings.audio)?;
    let declared = stream.info().duration_s;
    let (mut peak, mut lo, mut hi) = (0.0f32, f32::INFINITY, f32::NEG_INFINITY);
    while let Some(block) = stream.next_block()? {
        for &s in block {
            peak = peak.max(s.abs());
            lo = lo.min(s);
            hi = hi.max(s);
        }
        if let Some(p) = progress {
            p(source.name(), stream.position_s(), declared);
        }
    }
    Ok(AudioReport {
        input: source.name().to_string(),
        source: stream.info().clone(),
        decoded_s: stream.position_s(),
        peak,
        silent: hi - lo <= 1e-6,
        skipped_packets: stream.skipped_packets(),
    })
}
