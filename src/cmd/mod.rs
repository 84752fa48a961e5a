//! One module per command, and the per-input reporting they share.

pub mod bench;
pub mod corpus;
pub mod features;
pub mod fingerprint;
pub mod genre;
pub mod info;
pub mod library;
pub mod load;
pub mod matching;
pub mod query;
pub mod train;

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

/// Reports a query file that failed, for the query-like commands (`query`,
/// `match`): `error: FILE: reason` on stderr and, with `json`, the line
/// `{"query": FILE, "error": REASON}` on stdout, in the file's place.
pub fn query_error(name: &str, e: &anyhow::Error, json: bool) {
    if json {
        println!("{}", serde_json::json!({"query": name, "error": format!("{e:#}")}));
    }
    eprintln!("error: {name}: {e:#}");
}

/// Prints one line per input, in input order: `human(ok)` or, with `json`,
/// the value as a JSON object; failures as `error: …` on stderr (and an
/// `{"input", "error"}` object with `json`). Returns how many failed.
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
                if json {
                    let obj = serde_json::json!({"input": input.display().to_string(), "error": format!("{e:#}")});
                    println!("{obj}");
                }
                eprintln!("error: {e:#}");
            }
        }
    }
    Ok(failed)
}
