//! The benchmark definition written by `sampleid bench make` (`benchmark.json`).

use std::path::Path;

use sampleid_transform::Chain;
use serde::{Deserialize, Serialize};

use crate::BenchError;

/// The two evaluation protocols.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// GraFPrint: clean excerpts under noise (and reverb), 1–5 s queries.
    #[default]
    AudioId,
    /// NeuralSampleID: excerpts or stem subsets, pitch/tempo/speed-changed and
    /// mixed under other music, 5–20 s queries.
    SampleId,
    /// Version identification: other renditions of a piece (another groove,
    /// instruments, tempo and key), 20 s queries.
    VersionId,
}

impl Protocol {
    /// Short name used in ids and reports.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::AudioId => "audio-id",
            Protocol::SampleId => "sample-id",
            Protocol::VersionId => "version-id",
        }
    }
}

/// A track of the benchmark library (or a negative, never indexed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Identifier; also the file stem of `path`, which is how answers name it.
    pub id: String,
    /// Path relative to the benchmark directory (`refs/ID.ext` or `negatives/ID.ext`).
    pub path: String,
    /// Path of the source file relative to the corpus directory.
    pub source: String,
    pub duration_s: f64,
}

/// Where one reference's material is in a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Reference id.
    pub reference: String,
    /// Time in the reference where the material starts (s).
    pub reference_start_s: f64,
    /// Time in the query where it starts (s).
    pub query_start_s: f64,
    /// Query duration / reference duration of the same material.
    pub time_ratio: f64,
    /// Pitch change from reference to query, in semitones.
    pub pitch_shift: f64,
}

/// One query clip with its ground truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// Identifier; also the file stem of `path`.
    pub id: String,
    /// Audio file relative to the benchmark directory (`queries/ID.wav`).
    pub path: String,
    pub protocol: Protocol,
    /// Condition name, e.g. "noise 10 dB + reverb" or "pitch, TBR 0 dB".
    pub condition: String,
    /// Query length in seconds.
    pub length_s: f64,
    /// Made from audio that is not in the library: any answer is a false accept.
    pub negative: bool,
    /// The references whose material the query contains (empty for negatives).
    pub targets: Vec<Target>,
    /// What the query was cut from: a reference or negative id.
    pub source: String,
    /// When not empty: the query is built from these stems (corpus paths) of
    /// the source instead of its mix.
    #[serde(default)]
    pub source_stems: Vec<String>,
    /// Every transformation applied after cutting, in order.
    pub transforms: Chain,
}

/// A benchmark: library, negatives and queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Benchmark {
    pub version: u32,
    pub seed: u64,
    /// Sample rate of the query files.
    pub sample_rate: u32,
    /// Segment hop of the segment-level metrics (s).
    pub segment_hop_s: f64,
    /// Indexed tracks.
    pub references: Vec<Reference>,
    /// Tracks never indexed.
    pub negatives: Vec<Reference>,
    pub queries: Vec<Query>,
}

impl Benchmark {
    /// Current format version.
    pub const VERSION: u32 = 1;

    /// Reads `DIR/benchmark.json`.
    pub fn load(dir: &Path) -> Result<Self, BenchError> {
        let p = dir.join("benchmark.json");
        let text = std::fs::read_to_string(&p).map_err(|e| BenchError::io(&p, e))?;
        let b: Benchmark =
            serde_json::from_str(&text).map_err(|e| BenchError::Format(format!("{}: {e}", p.display())))?;
        if b.version != Self::VERSION {
            return Err(BenchError::Format(format!(
                "{}: version {} (this sampleid reads {})",
                p.display(),
                b.version,
                Self::VERSION
            )));
        }
        Ok(b)
    }
}
