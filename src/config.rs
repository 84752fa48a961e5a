//! The user-facing configuration file: one section per pipeline stage, each
//! the stage's own typed config. Every field is optional and defaults to the
//! published configuration; `sampleid config` prints the full default file.

use std::path::Path;

use anyhow::{Context, Result, bail};
use sampleid_audio::AudioConfig;
use sampleid_features::{ChromaConfig, FrontendConfig};
use sampleid_index::IndexConfig;
use sampleid_matching::{AlignConfig, MatchConfig, RefineConfig};
use sampleid_search::QueryConfig;
use serde::{Deserialize, Serialize};

/// All stage configurations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
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
    /// Alignment of two recordings (`sampleid align`).
    pub align: AlignConfig,
    /// Genre / style classification (`sampleid genre`).
    pub genre: sampleid_genre::GenreConfig,
    /// The HTTP service (`sampleid serve`).
    pub serve: crate::serve::ServeConfig,
}

impl Config {
    /// Reads a TOML file, or the defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let cfg = match path {
            None => Self::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("cannot read config {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("invalid config {}", p.display()))?
            }
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks each stage and that the stages agree with each other.
    pub fn validate(&self) -> Result<()> {
        self.frontend.validate()?;
        self.chroma.validate()?;
        self.genre.validate()?;
        if self.frontend.sample_rate != self.audio.sample_rate || self.chroma.sample_rate != self.audio.sample_rate {
            bail!(
                "config: audio.sample_rate ({}) must equal frontend.sample_rate ({}) and chroma.sample_rate ({})",
                self.audio.sample_rate,
                self.frontend.sample_rate,
                self.chroma.sample_rate
            );
        }
        Ok(())
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }
}
