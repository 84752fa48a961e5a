//! `sampleid query`: adapts [`sampleid_engine::Library::identify`].

use std::path::Path;

use anyhow::Result;
use sampleid_engine::{Identification, IdentifyOptions, Source};

use crate::cli::QueryArgs;
use crate::config::Config;

/// The human-readable answer for one clip.
pub fn human(id: &Identification) -> String {
    let mut out = id.query.clone();
    if id.matches.is_empty() {
        out.push_str("\n  no match");
    }
    for (i, m) in id.matches.iter().enumerate() {
        let ratio = m.time_ratio.map(|r| format!(", time ratio {r:.2}")).unwrap_or_default();
        let pitch = m.pitch_shift.map(|p| format!(", pitch {p:+.1} st")).unwrap_or_default();
        let (how, stages) = match m.confidence {
            Some(c) => (format!("confidence {:.1} %", 100.0 * c), m.stages.join(" + ")),
            None => (format!("score {:.2}", m.score), m.stage.to_string()),
        };
        out.push_str(&format!(
            "\n  {}. {}  {how} ({stages})  query {:.1} s ↔ reference {:.1} s{ratio}{pitch}",
            i + 1,
            m.reference,
            m.query_start,
            m.reference_start
        ));
    }
    out
}

/// `sampleid query`; returns the number of files that failed.
pub fn run(args: &QueryArgs, cfg: &Config, model: Option<&Path>) -> Result<usize> {
    let lib = super::open_library(&args.db, cfg, model)?;
    let opts = IdentifyOptions {
        rerank: !args.no_rerank,
        top_k: args.top_k,
        stage: args.stage.into(),
        min_confidence: args.min_confidence,
    };
    let mut failed = 0;
    for file in &args.files {
        match lib.identify(&Source::file(file), &opts) {
            Ok(answer) if args.json => println!("{}", serde_json::to_string(&answer)?),
            Ok(answer) => println!("{}", human(&answer)),
            Err(e) => {
                failed += 1;
                super::input_error("query", &file.display().to_string(), &e.into(), args.json);
            }
        }
    }
    Ok(failed)
}
