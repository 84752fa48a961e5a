//! One module per command: each turns its arguments into engine calls and
//! prints the answers. The per-input error line they share is here.
//!
//! Error lines: `error: INPUT: REASON` on stderr and, with `--json`, an
//! object in the input's place whose key names the input as the command's
//! answers do (`query` for `query` and `match`, `path` with `"status":
//! "failed"` for `index`, `input` for the others) and whose `error` is the
//! reason without the input's name.

#[cfg(feature = "lab")]
pub mod bench;
#[cfg(feature = "lab")]
pub mod corpus;
pub mod features;
pub mod fingerprint;
pub mod genre;
pub mod info;
pub mod library;
pub mod load;
pub mod matching;
pub mod query;
pub mod speed;
#[cfg(feature = "lab")]
pub mod train;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sampleid_engine::{Engine, Library};
use serde::Serialize;

use crate::config::Config;

/// An error's message without `name: ` in front (the engine's and the
/// decoder's errors start with the input's name).
pub fn reason(name: &str, e: &anyhow::Error) -> String {
    let msg = format!("{e:#}");
    msg.strip_prefix(&format!("{name}: "))
        .map(str::to_string)
        .unwrap_or(msg)
}

/// Reports an input that failed: `error: NAME: REASON` on stderr and, with
/// `json`, the line `{KEY: NAME, "error": REASON}` on stdout in its place.
pub fn input_error(key: &str, name: &str, e: &anyhow::Error, json: bool) {
    let why = reason(name, e);
    if json {
        let mut obj = serde_json::Map::new();
        obj.insert(key.into(), name.into());
        obj.insert("error".into(), why.clone().into());
        println!("{}", serde_json::Value::Object(obj));
    }
    eprintln!("error: {name}: {why}");
}

/// Prints one line per input, in input order: `human(ok)` or, with `json`,
/// the value as a JSON object; failures as [`input_error`] with the key
/// `input`. Returns how many failed.
pub fn report<T: Serialize>(
    inputs: &[PathBuf],
    results: &[Result<T>],
    json: bool,
    human: impl Fn(&T) -> String,
) -> Result<usize> {
    let mut failed = 0;
    for (input, r) in inputs.iter().zip(results) {
        match r {
            Ok(v) if json => println!("{}", serde_json::to_string(v)?),
            Ok(v) => println!("{}", human(v)),
            Err(e) => {
                failed += 1;
                input_error("input", &input.display().to_string(), e, json);
            }
        }
    }
    Ok(failed)
}

/// The engine with the configured settings and the chosen models.
pub fn engine(cfg: &Config, model: Option<&Path>) -> Result<Engine> {
    cfg.load_engine(model)
}

/// Opens a library for queries with models that match it.
pub fn open_library(db: &Path, cfg: &Config, model: Option<&Path>) -> Result<Library> {
    let engine = engine(cfg, model)?;
    Library::open(db, &engine).with_context(|| format!("cannot open the library {}", db.display()))
}
