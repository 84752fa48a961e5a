//! Category identification on the engine: a track's whole-track features
//! (optionally with the mean of its fingerprints) and the style that a
//! trained GraphSAGE classifier gives it.

use std::path::Path;

use sampleid_genre::Classifier;

use crate::error::{Error, Result};
use crate::library::Library;
use crate::pipeline::{Engine, Source, silent_unless};
use crate::results::GenrePrediction;

/// File name of a library's classifier (with `.json` beside it).
pub const GENRE_MODEL_FILE: &str = "genre.safetensors";

impl Engine {
    /// What a classifier's feature vectors are: the track descriptor and,
    /// with `fingerprints`, this encoder's mean fingerprint.
    pub fn genre_feature_kind(&self, fingerprints: bool) -> String {
        let track = format!("track-{}", sampleid_features::track_feature_names().len());
        if fingerprints {
            format!("{track}+fingerprint-mean:{}", self.encoder().info().version)
        } else {
            track
        }
    }

    /// Whole-track features of an input: the track descriptor and, with
    /// `fingerprints`, the normalised mean of its fingerprints. A silent
    /// input is [`Error::Silent`].
    pub fn track_features(&self, source: &Source, fingerprints: bool) -> Result<Vec<f32>> {
        let settings = self.settings();
        let mut stream = source.open(&settings.audio)?;
        let mut samples = Vec::new();
        while let Some(block) = stream.next_block()? {
            samples.extend_from_slice(block);
        }
        let peak = samples.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        silent_unless(peak, source.name(), "classify")?;
        let mut v = sampleid_features::track_features(&samples, &settings.frontend)?;
        if fingerprints {
            let dim = self.encoder().config().out_dim;
            let mut sum = vec![0.0f32; dim];
            self.embed_stream(source.open(&settings.audio)?, source.name(), None, None, &mut |batch| {
                for e in batch {
                    for (s, x) in sum.iter_mut().zip(&e.fingerprint) {
                        *s += x;
                    }
                }
                Ok(())
            })?;
            let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.extend(sum.iter().map(|x| x / norm));
        }
        Ok(v)
    }

    /// Loads a classifier and checks that this engine gives its features.
    pub fn load_classifier(&self, path: &Path) -> Result<Classifier> {
        let c = Classifier::load(path).map_err(|e| {
            Error::NotFound(format!(
                "no genre classifier at {} ({e}); train one with `sampleid genre train --labels LABELS.csv`",
                path.display()
            ))
        })?;
        let fingerprints = uses_fingerprints(&c);
        if fingerprints && self.genre_feature_kind(true) != c.info.features {
            return Err(Error::Model(format!(
                "the genre classifier {} was trained on {} but the encoder in use gives {}; retrain it",
                path.display(),
                c.info.features,
                self.genre_feature_kind(true)
            )));
        }
        Ok(c)
    }

    /// The style of a track by `classifier`.
    pub fn classify(&self, classifier: &Classifier, source: &Source) -> Result<GenrePrediction> {
        let v = self.track_features(source, uses_fingerprints(classifier))?;
        let p = classifier.predict(&[v])?.remove(0);
        Ok(GenrePrediction {
            input: source.name().to_string(),
            label: p.label,
            probability: p.probability,
            classes: p.classes,
            neighbours: p.neighbours,
        })
    }
}

/// True when the classifier's features include the mean fingerprint.
pub fn uses_fingerprints(c: &Classifier) -> bool {
    c.info.features.contains("+fingerprint")
}

impl Library {
    /// The classifier saved next to the library (`sampleid genre train --db`), if any.
    pub fn genre_classifier(&self) -> Result<Option<Classifier>> {
        let path = self.dir().join(GENRE_MODEL_FILE);
        if !path.exists() {
            return Ok(None);
        }
        self.engine()?.load_classifier(&path).map(Some)
    }
}
