//! The configuration file: the engine's stage sections (`sampleid_engine::Settings`)
//! and the server's own `[serve]` section. Every field is optional and
//! defaults to the published configuration; `sampleid config` prints the
//! full default file.

use std::path::Path;

use anyhow::{Context, Result};
use sampleid_engine::{Engine, ModelSource, Settings};

use crate::serve::ServeConfig;

/// Everything a configuration file sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// The engine's stages (`[audio]`, `[frontend]`, … `[genre]`).
    pub engine: Settings,
    /// The HTTP service (`[serve]`).
    pub serve: ServeConfig,
}

impl Config {
    /// Reads a TOML file, or the defaults when `path` is `None`; validated.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let Some(p) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(p).with_context(|| format!("cannot read config {}", p.display()))?;
        Self::parse(&text).with_context(|| format!("invalid config {}", p.display()))
    }

    /// Parses TOML text: `[serve]` for the server, the rest for the engine
    /// (unknown sections and keys are errors).
    pub fn parse(text: &str) -> Result<Self> {
        let mut table: toml::Table = toml::from_str(text)?;
        let serve = match table.remove("serve") {
            Some(v) => v.try_into().context("[serve]")?,
            None => ServeConfig::default(),
        };
        serve.validate()?;
        let engine = Settings::from_toml(&toml::to_string(&table)?)?;
        Ok(Self { engine, serve })
    }

    /// The engine with these settings and the chosen encoder (`None`: the
    /// built-in one, or `SAMPLEID_MODEL`).
    pub fn load_engine(&self, model: Option<&Path>) -> Result<Engine> {
        Ok(Engine::load(self.engine.clone(), ModelSource::from_option(model))?)
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> Result<String> {
        #[derive(serde::Serialize)]
        struct ServeSection<'a> {
            serve: &'a ServeConfig,
        }
        let mut text = self.engine.to_toml()?;
        text.push('\n');
        text.push_str(&toml::to_string_pretty(&ServeSection { serve: &self.serve })?);
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_defaults_parse_back() {
        let c = Config::default();
        let text = c.to_toml().unwrap();
        assert!(text.contains("[serve]") && text.contains("[audio]"), "{text}");
        assert_eq!(Config::parse(&text).unwrap(), c);
    }

    #[test]
    fn bad_settings_are_refused_with_their_section() {
        let e = format!("{:#}", Config::parse("[audio]\nblock_samples = 0").unwrap_err());
        assert!(e.contains("[audio]"), "{e}");
        let e = format!("{:#}", Config::parse("[serve]\nmax_body_mb = -1").unwrap_err());
        assert!(e.contains("max_body_mb"), "{e}");
        let e = format!("{:#}", Config::parse("[serve]\nbogus = 1").unwrap_err());
        assert!(e.contains("bogus"), "{e}");
    }
}
