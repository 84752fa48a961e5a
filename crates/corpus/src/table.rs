//! The package table: which Debian packages make the corpus and which files
//! each contributes (`packages.toml`, from `shared/docs/corpus.md`).

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::CorpusError;

/// What a rule's files are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// Full music tracks (kept when at least 30 s long).
    Music,
    /// Tracker modules: rendered to a mix and one stem per channel.
    Module,
    /// Files of aligned stem sets, one folder per set.
    Stem,
    /// Environmental noise.
    Noise,
    /// Speech.
    Speech,
    /// Room impulse responses.
    Ir,
}

/// One selection rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub kind: RuleKind,
    /// Regex on the installed path (or on the archive member path with `archive`).
    pub path: String,
    /// Regex on the installed path of the .zip/.pk3 archives to look into.
    #[serde(default)]
    pub archive: Option<String>,
}

/// One package of the corpus.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub name: String,
    /// Licence per corpus.md (the package's copyright file can refine it per file).
    pub licence: String,
    /// Indicative style (weak label).
    #[serde(default)]
    pub style: Option<String>,
    /// Large download per hour of music: fetched last.
    #[serde(default)]
    pub heavy: bool,
    pub rules: Vec<Rule>,
}

/// The whole table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub package: Vec<Package>,
}

/// The table shipped with sampleid.
pub const DEFAULT_TABLE: &str = include_str!("../packages.toml");

impl Table {
    /// Parses a table and checks its regexes.
    pub fn parse(text: &str) -> Result<Self, CorpusError> {
        let t: Table = toml::from_str(text).map_err(|e| CorpusError::Table(e.to_string()))?;
        for p in &t.package {
            for r in &p.rules {
                for re in std::iter::once(&r.path).chain(r.archive.iter()) {
                    Regex::new(re).map_err(|e| CorpusError::Table(format!("{}: {e}", p.name)))?;
                }
            }
        }
        Ok(t)
    }

    /// The shipped table.
    pub fn default_table() -> Self {
        Self::parse(DEFAULT_TABLE).expect("the shipped table is valid")
    }

    /// Packages in download order: light ones first, heavy ones last.
    pub fn ordered(&self) -> Vec<&Package> {
        let mut v: Vec<&Package> = self.package.iter().collect();
        v.sort_by_key(|p| p.heavy);
        v
    }
}

impl Rule {
    /// File extensions this rule accepts.
    pub fn accepts_extension(&self, path: &str) -> bool {
        let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
        match self.kind {
            RuleKind::Module => matches!(ext.as_str(), "mod" | "xm" | "it" | "s3m"),
            _ => matches!(ext.as_str(), "ogg" | "opus" | "mp3" | "flac" | "wav"),
        }
    }
}
