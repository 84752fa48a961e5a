//! The models: the default ones compiled into the engine, and how a user
//! picks others.
//!
//! Order: an explicit encoder file (`NAME.safetensors` with its `NAME.json`),
//! then the `SAMPLEID_MODEL` environment variable, then the encoder in
//! `models/` embedded at build time; the re-ranker comes from
//! `SAMPLEID_RERANKER` or is the built-in one. The engine therefore works
//! offline with no setting at all.

use std::path::{Path, PathBuf};

use sampleid_encoder::{Encoder, ModelInfo};
use sampleid_rerank::{Reranker, RerankerInfo};

use crate::error::{Error, Result};
use crate::fusion::Calibrator;
use sampleid_matching::ShingleModel;

const ENCODER_WEIGHTS: &[u8] = include_bytes!("../../../models/encoder.safetensors");
const ENCODER_INFO: &str = include_str!("../../../models/encoder.json");
const RERANKER_WEIGHTS: &[u8] = include_bytes!("../../../models/reranker.safetensors");
const RERANKER_INFO: &str = include_str!("../../../models/reranker.json");
const CALIBRATOR: &str = include_str!("../../../models/calibrator.json");
const SHINGLES: &str = include_str!("../../../models/shingles.json");

/// Where the encoder comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ModelSource {
    /// `SAMPLEID_MODEL` when set, else the built-in encoder.
    #[default]
    Default,
    /// This file (`NAME.safetensors`, with `NAME.json` beside it).
    File(PathBuf),
}

impl ModelSource {
    /// `Some(path)` → that file, `None` → [`ModelSource::Default`].
    pub fn from_option(path: Option<&Path>) -> Self {
        path.map_or(Self::Default, |p| Self::File(p.to_path_buf()))
    }

    /// The encoder file this source resolves to (`None`: the built-in one).
    pub fn resolve(&self) -> Option<PathBuf> {
        match self {
            Self::File(p) => Some(p.clone()),
            Self::Default => env_path("SAMPLEID_MODEL"),
        }
    }

    /// Where the encoder comes from, in words ("built-in" or the path).
    pub fn describe(&self) -> String {
        self.resolve()
            .map_or_else(|| "built-in".into(), |p| p.display().to_string())
    }
}

/// Loads the encoder of `source`.
pub fn load_encoder(source: &ModelSource) -> Result<Encoder> {
    match source.resolve() {
        Some(path) => Encoder::load(&path).map_err(|e| {
            Error::Model(format!(
                "cannot load the encoder {} (it needs {} beside it): {e}",
                path.display(),
                path.with_extension("json").display()
            ))
        }),
        None => {
            let info: ModelInfo = serde_json::from_str(ENCODER_INFO)
                .map_err(|e| Error::Model(format!("the built-in model card is damaged: {e}")))?;
            Encoder::from_bytes(ENCODER_WEIGHTS, info)
                .map_err(|e| Error::Model(format!("the built-in encoder is damaged: {e}")))
        }
    }
}

/// Loads the re-ranker that belongs to `encoder`: `$SAMPLEID_RERANKER`, else
/// the built-in one; refuses one trained for another encoder.
pub fn load_reranker(encoder: &Encoder) -> Result<Reranker> {
    let r = match env_path("SAMPLEID_RERANKER") {
        Some(path) => Reranker::load(&path)
            .map_err(|e| Error::Model(format!("cannot load the re-ranker {}: {e}", path.display())))?,
        None => {
            let info: RerankerInfo = serde_json::from_str(RERANKER_INFO)
                .map_err(|e| Error::Model(format!("the built-in re-ranker card is damaged: {e}")))?;
            Reranker::from_bytes(RERANKER_WEIGHTS, info)
                .map_err(|e| Error::Model(format!("the built-in re-ranker is damaged: {e}")))?
        }
    };
    if r.info().encoder != encoder.info().version {
        return Err(Error::Model(format!(
            "the re-ranker {} was trained for the encoder {}, but {} is in use; train one with \
             `sampleid train reranker` and point SAMPLEID_RERANKER at it",
            r.info().version,
            r.info().encoder,
            encoder.info().version
        )));
    }
    Ok(r)
}

/// The file a model variable names; an empty variable (`SAMPLEID_CALIBRATOR=
/// sampleid …`, as a script that fills it conditionally writes) counts as unset.
pub fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// A JSON model: the file `$var` names, else the built-in text; `what` names
/// it in errors.
fn json_model<T: serde::de::DeserializeOwned>(var: &str, builtin: &str, what: &str) -> Result<T> {
    match env_path(var) {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::Model(format!("cannot read the {what} {}: {e}", path.display())))?;
            serde_json::from_str(&text)
                .map_err(|e| Error::Model(format!("the {what} {} is not valid: {e}", path.display())))
        }
        None => serde_json::from_str(builtin).map_err(|e| Error::Model(format!("the built-in {what} is damaged: {e}"))),
    }
}

/// Loads the calibrator of the fused confidence: `$SAMPLEID_CALIBRATOR`
/// (a `sampleid train calibrator` output), else the built-in one.
pub fn load_calibrator() -> Result<Calibrator> {
    let c: Calibrator = json_model("SAMPLEID_CALIBRATOR", CALIBRATOR, "calibrator")?;
    c.validate()?;
    Ok(c)
}

/// Loads the chroma shingle model libraries store: `$SAMPLEID_SHINGLES` (a
/// `sampleid train shingles` output), else the built-in one.
pub fn load_shingle_model() -> Result<ShingleModel> {
    let m: ShingleModel = json_model("SAMPLEID_SHINGLES", SHINGLES, "shingle model")?;
    m.validate()
        .map_err(|e| Error::Model(format!("the shingle model is not valid: {e}")))?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_models_load_and_embed() {
        if env_path("SAMPLEID_MODEL").is_some() || env_path("SAMPLEID_RERANKER").is_some() {
            return; // the environment picks other models
        }
        let enc = load_encoder(&ModelSource::Default).unwrap();
        assert!(
            !enc.info().config.graph,
            "the default model is the no-graph encoder (issue 17)"
        );
        let seg = vec![0.5f32; 64 * 128];
        let e = enc.embed(&[&seg]).unwrap();
        let norm: f32 = e[0].fingerprint.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert_eq!(e[0].fingerprint.len(), 128);
        assert!((norm - 1.0).abs() < 1e-3);
        load_reranker(&enc).unwrap();
    }

    #[test]
    fn a_missing_model_file_is_named() {
        let e = load_encoder(&ModelSource::File("/nonexistent/m.safetensors".into())).unwrap_err();
        assert!(matches!(e, Error::Model(_)));
        assert!(e.to_string().contains("/nonexistent/m.json"), "{e}");
    }
}
