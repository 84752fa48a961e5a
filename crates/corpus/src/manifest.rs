//! `corpus/manifest.csv`: one row per usable file, with its split.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::CorpusError;

/// What a manifest file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A real music track (including rendered tracker modules).
    Music,
    /// A stem of an aligned stem set (or the set's synthetic mix, stem "mix").
    Stem,
    Noise,
    Speech,
    /// A room impulse response.
    Ir,
}

/// Which part of the corpus a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Validation,
    Test,
}

/// One row of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Stable identifier (from package and path).
    pub id: String,
    pub kind: Kind,
    /// Debian package the audio comes from.
    pub package: String,
    /// Path relative to the corpus directory.
    pub path: String,
    /// Decoded duration in seconds.
    pub duration_s: f64,
    pub licence: String,
    pub split: Split,
    /// The unit that is never divided between splits: a track, or a stem set
    /// together with its mix.
    pub group: String,
    /// Stem set identifier ("" for files outside a set).
    pub stem_set: String,
    /// Stem name within its set ("mix" for a set's mix).
    pub stem: String,
    /// Indicative style (weak label).
    pub style: String,
    /// "file" (as shipped), "module-render" (xmp) or "groove-render" (mma + rustysynth).
    pub origin: String,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
}

/// Share of groups in the training and validation splits (the rest is test).
pub const TRAIN_PERCENT: u64 = 70;
pub const VALIDATION_PERCENT: u64 = 10;

/// The split of a group: a fixed function of its name (70 / 10 / 20 %), so a
/// group keeps its split whatever else is added to the corpus.
pub fn split_of(group: &str) -> Split {
    let h = Sha256::digest(group.as_bytes());
    let v = u64::from_le_bytes(h[..8].try_into().expect("8 bytes")) % 100;
    if v < TRAIN_PERCENT {
        Split::Train
    } else if v < TRAIN_PERCENT + VALIDATION_PERCENT {
        Split::Validation
    } else {
        Split::Test
    }
}

/// A short stable identifier for `text`.
pub fn short_id(prefix: &str, text: &str) -> String {
    let h = Sha256::digest(text.as_bytes());
    let hex: String = h[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{hex}")
}

/// Writes the manifest atomically.
pub fn write(path: &Path, entries: &[Entry]) -> Result<(), CorpusError> {
    let mut file = sampleid_fsio::AtomicFile::create(path).map_err(|e| CorpusError::io(path, e))?;
    let mut w = csv::Writer::from_writer(&mut file);
    for e in entries {
        w.serialize(e).map_err(|e| CorpusError::Manifest(e.to_string()))?;
    }
    w.flush().map_err(|e| CorpusError::io(path, e))?;
    drop(w);
    file.commit().map_err(|e| CorpusError::io(path, e))
}

/// Reads a manifest.
pub fn read(path: &Path) -> Result<Vec<Entry>, CorpusError> {
    let mut r = csv::Reader::from_path(path).map_err(|e| CorpusError::Manifest(format!("{}: {e}", path.display())))?;
    r.deserialize()
        .map(|row| row.map_err(|e| CorpusError::Manifest(format!("{}: {e}", path.display()))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_stable_and_roughly_70_10_20() {
        assert_eq!(split_of("track:a/b.ogg"), split_of("track:a/b.ogg"));
        let mut counts = [0usize; 3];
        for i in 0..10_000 {
            counts[split_of(&format!("group {i}")) as usize] += 1;
        }
        assert!((6_700..7_300).contains(&counts[0]), "{counts:?}");
        assert!((800..1_200).contains(&counts[1]), "{counts:?}");
        assert!((1_800..2_200).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn manifest_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let e = Entry {
            id: short_id("m", "x"),
            kind: Kind::Music,
            package: "p".into(),
            path: "files/p/a, b.ogg".into(),
            duration_s: 31.5,
            licence: "CC-BY-SA-3.0".into(),
            split: Split::Test,
            group: "track:p/a".into(),
            stem_set: String::new(),
            stem: String::new(),
            style: "rock, pop".into(),
            origin: "file".into(),
            sha256: "00".into(),
        };
        let p = dir.path().join("manifest.csv");
        write(&p, std::slice::from_ref(&e)).unwrap();
        assert_eq!(read(&p).unwrap(), vec![e]);
        let header = std::fs::read_to_string(&p).unwrap();
        assert!(
            header.starts_with("id,kind,package,path,duration_s,licence,split"),
            "{header}"
        );
    }
}
