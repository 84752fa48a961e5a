//! Model cards: the JSON file `NAME.json` stored next to a model's weights
//! `NAME.safetensors`, saying what the weights are (version, configuration,
//! training facts). The encoder, the re-ranker and the genre classifier all
//! keep one; this module is the one place that reads and writes them.
//!
//! A card is written atomically (see [`crate::atomic_write`]) so that a
//! crash never leaves weights beside a truncated card.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a model card could not be loaded. Both variants name the card's file.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// The card could not be read (missing, unreadable).
    #[error("{}: {source}", path.display())]
    Io {
        /// The card's file.
        path: PathBuf,
        /// The error reading it.
        source: std::io::Error,
    },
    /// The card was read but is not valid JSON of the expected shape.
    #[error("{}: {source}", path.display())]
    Malformed {
        /// The card's file.
        path: PathBuf,
        /// What is wrong with its contents.
        source: serde_json::Error,
    },
}

impl CardError {
    /// The card's path.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. } | Self::Malformed { path, .. } => path,
        }
    }
}

/// The card's path for the weights at `weights`: the same name with the
/// extension `.json` (`m/encoder.safetensors` → `m/encoder.json`).
pub fn path_of(weights: &Path) -> PathBuf {
    weights.with_extension("json")
}

/// Writes `info` as pretty-printed JSON to the card of `weights`, atomically.
/// A value that cannot be serialised is reported as an I/O error of kind
/// `InvalidData`.
pub fn save<T: Serialize>(weights: &Path, info: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(info).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    crate::atomic_write(&path_of(weights), &bytes)
}

/// As [`save`], but compact JSON: for cards that carry bulk data (the genre
/// classifier's card holds its whole training graph), where pretty-printing
/// would multiply the file's size.
pub fn save_compact<T: Serialize>(weights: &Path, info: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(info).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    crate::atomic_write(&path_of(weights), &bytes)
}

/// Reads the card of `weights` (either layout that [`save`] or
/// [`save_compact`] wrote).
pub fn load<T: DeserializeOwned>(weights: &Path) -> Result<T, CardError> {
    let path = path_of(weights);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(source) => return Err(CardError::Io { path, source }),
    };
    serde_json::from_slice(&bytes).map_err(|source| CardError::Malformed { path, source })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Info {
        version: String,
        rows: Vec<Vec<f32>>,
    }

    fn info() -> Info {
        Info {
            version: "v1".into(),
            rows: vec![vec![1.0, 2.5], vec![-3.0, 0.0]],
        }
    }

    #[test]
    fn a_card_round_trips_next_to_its_weights() {
        let dir = tempfile::tempdir().unwrap();
        let weights = dir.path().join("model.safetensors");
        save(&weights, &info()).unwrap();
        let text = std::fs::read_to_string(dir.path().join("model.json")).unwrap();
        assert!(text.contains("\n  \"version\": \"v1\""), "pretty: {text}");
        assert_eq!(load::<Info>(&weights).unwrap(), info());

        save_compact(&weights, &info()).unwrap();
        let text = std::fs::read_to_string(dir.path().join("model.json")).unwrap();
        assert!(!text.contains('\n'), "compact: {text}");
        assert_eq!(load::<Info>(&weights).unwrap(), info());
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["model.json"]);
    }

    #[test]
    fn a_malformed_card_is_told_from_a_missing_one_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let weights = dir.path().join("model.safetensors");
        let card = dir.path().join("model.json");

        let missing = load::<Info>(&weights).unwrap_err();
        assert!(matches!(missing, CardError::Io { .. }), "{missing:?}");
        assert_eq!(missing.path(), card);
        assert!(missing.to_string().contains("model.json"), "{missing}");

        std::fs::write(&card, "{\"version\": 3").unwrap();
        let bad = load::<Info>(&weights).unwrap_err();
        assert!(matches!(bad, CardError::Malformed { .. }), "{bad:?}");
        assert_eq!(bad.path(), card);
        assert!(bad.to_string().contains(&card.display().to_string()), "{bad}");
    }
}
