//! The default models, shipped inside the binary, and how a user picks another.
//!
//! Order: `--model FILE` (a `NAME.safetensors` with its `NAME.json`), then the
//! `SAMPLEID_MODEL` environment variable, then the encoder in `models/` that
//! was embedded at build time. The binary therefore works offline with no flag.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sampleid_encoder::{Encoder, ModelInfo};
use sampleid_rerank::{Reranker, RerankerInfo};

const ENCODER_WEIGHTS: &[u8] = include_bytes!("../models/encoder.safetensors");
const ENCODER_INFO: &str = include_str!("../models/encoder.json");
const RERANKER_WEIGHTS: &[u8] = include_bytes!("../models/reranker.safetensors");
const RERANKER_INFO: &str = include_str!("../models/reranker.json");

/// Where the encoder comes from.
pub fn encoder_source(explicit: Option<&Path>) -> Option<PathBuf> {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("SAMPLEID_MODEL").map(PathBuf::from))
}

/// Loads the encoder: `explicit`, else `$SAMPLEID_MODEL`, else the built-in default.
pub fn encoder(explicit: Option<&Path>) -> Result<Encoder> {
    match encoder_source(explicit) {
        Some(path) => Encoder::load(&path).with_context(|| {
            format!(
                "cannot load the encoder {} (it needs {} beside it)",
                path.display(),
                path.with_extension("json").display()
            )
        }),
        None => {
            let info: ModelInfo = serde_json::from_str(ENCODER_INFO).context("the built-in model card is damaged")?;
            Encoder::from_bytes(ENCODER_WEIGHTS, info).context("the built-in encoder is damaged")
        }
    }
}

/// Loads the re-ranker that belongs to `encoder`: `$SAMPLEID_RERANKER`, else
/// the built-in one when the encoder is the built-in one.
pub fn reranker(encoder: &Encoder) -> Result<Reranker> {
    let r = match std::env::var_os("SAMPLEID_RERANKER") {
        Some(path) => {
            let path = PathBuf::from(path);
            Reranker::load(&path).with_context(|| format!("cannot load the re-ranker {}", path.display()))?
        }
        None => {
            let info: RerankerInfo =
                serde_json::from_str(RERANKER_INFO).context("the built-in re-ranker card is damaged")?;
            Reranker::from_bytes(RERANKER_WEIGHTS, info).context("the built-in re-ranker is damaged")?
        }
    };
    if r.info().encoder != encoder.info().version {
        anyhow::bail!(
            "the re-ranker {} was trained for the encoder {}, but {} is in use; train one with \
             `sampleid train reranker` and point SAMPLEID_RERANKER at it",
            r.info().version,
            r.info().encoder,
            encoder.info().version
        );
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_encoder_loads_and_embeds() {
        let enc = encoder(None).unwrap();
        assert!(enc.info().config.graph, "the default model is the graph encoder");
        let seg = vec![0.5f32; 64 * 128];
        let e = enc.embed(&[&seg]).unwrap();
        let norm: f32 = e[0].fingerprint.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert_eq!(e[0].fingerprint.len(), 128);
        assert!((norm - 1.0).abs() < 1e-3);
    }
}
