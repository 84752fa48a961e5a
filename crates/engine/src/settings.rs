//! The settings of every stage, one typed section each (`[audio]`,
//! `[frontend]`, …). Every field is optional in a file and defaults to the
//! published configuration; [`Settings::validate`] checks each stage and that
//! the stages agree with each other.

use sampleid_audio::AudioConfig;
use sampleid_features::{ChromaConfig, FrontendConfig};
use sampleid_genre::GenreConfig;
use sampleid_index::IndexConfig;
use sampleid_landmarks::{QuadConfig, SearchConfig};
use sampleid_matching::{AlignConfig, MatchConfig, RefineConfig, ShingleSearch};
use sampleid_peaks::PeakConfig;
use sampleid_search::QueryConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// All stage configurations of the engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Decoding and resampling.
    pub audio: AudioConfig,
    /// Log-mel front end and segmentation.
    pub frontend: FrontendConfig,
    /// Chroma and CENS.
    pub chroma: ChromaConfig,
    /// The ANN index of a new library.
    pub index: IndexConfig,
    /// Two-stage search.
    pub query: QueryConfig,
    /// Chroma alignment of the best matches: location, time ratio, pitch shift.
    pub refine: RefineConfig,
    /// Audio matching (`sampleid match`).
    pub matching: MatchConfig,
    /// The query side of the library's chroma shingles: `match`'s candidates.
    pub shingles: ShingleSearch,
    /// Alignment of two recordings (`sampleid align`).
    pub align: AlignConfig,
    /// Genre / style classification (`sampleid genre`).
    pub genre: GenreConfig,
    /// Spectral-peak landmarks: the query side's extraction and the search.
    pub landmarks: LandmarkSettings,
}

/// The landmark stage (`[landmarks]`). The reference side (what a library
/// stores) is fixed by the library's landmark version
/// ([`sampleid_landmarks::STORED_VERSION`]); these are the query side's
/// settings, which can change without re-indexing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LandmarkSettings {
    /// Store landmarks when indexing (off: a library without them, as before).
    pub index: bool,
    /// Peak extraction of a query (denser than the reference's).
    pub query_peaks: PeakConfig,
    /// Quads of a query.
    pub query_quads: QuadConfig,
    /// Lookup, hypotheses and verification.
    pub search: SearchConfig,
}

impl Default for LandmarkSettings {
    fn default() -> Self {
        Self {
            index: true,
            query_peaks: PeakConfig::query(),
            query_quads: QuadConfig::query(),
            search: SearchConfig::default(),
        }
    }
}

impl LandmarkSettings {
    /// Checks each part.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.query_peaks.validate().map_err(|e| e.to_string())?;
        self.query_quads.validate().map_err(|e| e.to_string())?;
        self.search.validate().map_err(|e| e.to_string())?;
        let reference = PeakConfig::reference();
        if self.query_peaks.sample_rate != reference.sample_rate
            || self.query_peaks.n_fft() != reference.n_fft()
            || self.query_peaks.hop() != reference.hop()
        {
            return Err(format!(
                "query_peaks must keep the reference's sample rate, window and hop ({} Hz, {} and {} samples): \
                 peaks are compared frame by frame and bin by bin",
                reference.sample_rate,
                reference.n_fft(),
                reference.hop()
            ));
        }
        Ok(())
    }
}
impl Settings {
    /// Parses TOML text with these sections (unknown keys are errors) and validates it.
    pub fn from_toml(text: &str) -> Result<Self> {
        let s: Settings = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// The settings as TOML, every field written.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::Config(e.to_string()))
    }

    /// Checks each stage and that the stages agree with each other.
    pub fn validate(&self) -> Result<()> {
        let section = |name: &str, r: std::result::Result<(), String>| {
            r.map_err(|e| Error::Config(format!("[{name}] {}", e.trim_start_matches(&format!("[{name}] ")))))
        };
        section("audio", self.audio.validate())?;
        section("frontend", self.frontend.validate().map_err(|e| e.to_string()))?;
        section("chroma", self.chroma.validate().map_err(|e| e.to_string()))?;
        section("index", self.index.validate())?;
        section("query", self.query.validate())?;
        section("refine", self.refine.validate())?;
        section("matching", self.matching.validate())?;
        section("shingles", self.shingles.validate())?;
        section("align", self.align.validate())?;
        section("genre", self.genre.validate().map_err(|e| e.to_string()))?;
        section("landmarks", self.landmarks.validate())?;
        if self.landmarks.query_peaks.sample_rate != self.audio.sample_rate {
            return Err(Error::Config(format!(
                "[landmarks] query_peaks.sample_rate ({}) must equal audio.sample_rate ({})",
                self.landmarks.query_peaks.sample_rate, self.audio.sample_rate
            )));
        }
        if self.frontend.sample_rate != self.audio.sample_rate || self.chroma.sample_rate != self.audio.sample_rate {
            return Err(Error::Config(format!(
                "audio.sample_rate ({}) must equal frontend.sample_rate ({}) and chroma.sample_rate ({})",
                self.audio.sample_rate, self.frontend.sample_rate, self.chroma.sample_rate
            )));
        }
        Ok(())
    }

    /// Seconds between the starts of consecutive segments (fingerprints).
    pub fn hop_s(&self) -> f64 {
        self.frontend.segment_hop as f64 * self.frontend.hop_length as f64 / self.frontend.sample_rate as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip() {
        let s = Settings::default();
        s.validate().unwrap();
        assert_eq!(Settings::from_toml(&s.to_toml().unwrap()).unwrap(), s);
        assert!((s.hop_s() - 0.512).abs() < 1e-9);
    }

    #[test]
    fn every_stage_is_checked() {
        for (text, section) in [
            ("[audio]\nblock_samples = 0", "[audio]"),
            ("[index]\nconnectivity = 0", "[index]"),
            ("[query]\ntop_k = 0", "[query]"),
            ("[refine]\ndownsample = 0", "[refine]"),
            ("[matching]\ntempo_factors = []", "[matching]"),
            ("[align]\nmax_cells = 0", "[align]"),
            ("[genre]\nk = 0", "[genre]"),
        ] {
            let e = Settings::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(section), "{text}: {e}");
        }
        let e = Settings::from_toml("[audio]\nsample_rate = 22050")
            .unwrap_err()
            .to_string();
        assert!(e.contains("must equal"), "{e}");
        let e = Settings::from_toml("[qeury]\ntop_k = 3").unwrap_err().to_string();
        assert!(e.contains("unknown field"), "{e}");
    }
}
