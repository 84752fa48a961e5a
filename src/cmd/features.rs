//! `sampleid features`: adapts [`sampleid_engine::inspect::features`],
//! writing each input's rows into a `.npy` file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use rayon::prelude::*;
use sampleid_engine::{Source, inspect};
use sampleid_features::FeatureError;
use sampleid_features::npy::NpyWriter;
use serde::Serialize;

use crate::cli::{FeatureKind, FeaturesArgs};
use crate::config::Config;
use crate::progress;

/// What one input produced.
#[derive(Debug, Serialize)]
struct Written {
    input: String,
    output: String,
    kind: &'static str,
    shape: Vec<usize>,
    /// Seconds of audio decoded.
    duration_s: f64,
}

/// Runs the command; returns the number of inputs that failed.
pub fn run(args: &FeaturesArgs, cfg: &Config, quiet: bool) -> Result<usize> {
    if args.out.is_some() && args.files.len() > 1 {
        bail!("--out names one file; use --out-dir for {} inputs", args.files.len());
    }
    let out_dir = args.out_dir.clone().unwrap_or_else(|| PathBuf::from("."));
    if args.out.is_none() {
        std::fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    }
    // Decide every output path first so that two inputs never write the same file.
    let mut taken = HashSet::new();
    let jobs: Vec<(PathBuf, Result<PathBuf>)> = args
        .files
        .iter()
        .map(|input| {
            let out = match &args.out {
                Some(o) => Ok(o.clone()),
                None => {
                    let stem = input
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    Ok(out_dir.join(format!("{stem}.{}.npy", args.kind.name())))
                }
            }
            .and_then(|o| {
                if taken.insert(o.clone()) {
                    Ok(o)
                } else {
                    bail!(
                        "{}: output {} is already written by another input",
                        input.display(),
                        o.display()
                    )
                }
            });
            (input.clone(), out)
        })
        .collect();

    let bar = progress::files_bar(jobs.len() as u64, quiet);
    let results: Vec<Result<Written>> = jobs
        .par_iter()
        .map(|(input, out)| {
            let out = out.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
            let r = extract(input, out, args.kind, cfg, &bar);
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();

    let inputs: Vec<PathBuf> = jobs.iter().map(|(input, _)| input.clone()).collect();
    super::report(&inputs, &results, args.json, |w| {
        format!(
            "{} → {} {:?} ({:.1} s of audio)",
            w.input, w.output, w.shape, w.duration_s
        )
    })
}

/// Streams one input into one `.npy` file ([`sampleid_engine::inspect::features`]).
fn extract(input: &Path, out: &Path, kind: FeatureKind, cfg: &Config, bar: &ProgressBar) -> Result<Written> {
    let engine_kind = match kind {
        FeatureKind::Mel => inspect::FeatureKind::Mel,
        FeatureKind::Segments => inspect::FeatureKind::Segments,
        FeatureKind::Chroma => inspect::FeatureKind::Chroma,
        FeatureKind::Cens => inspect::FeatureKind::Cens,
        FeatureKind::Track => inspect::FeatureKind::Track,
    };
    let mut writer = NpyWriter::create(out, &engine_kind.row_shape(&cfg.engine))?;
    let mut write_err: Option<FeatureError> = None;
    let show = |name: &str, pos: f64, declared: Option<f64>| progress::show_position(bar, name, pos, declared);
    let source = Source::file(input);
    let result = inspect::features(&cfg.engine, &source, engine_kind, Some(&show), &mut |row| {
        if write_err.is_none()
            && let Err(e) = writer.write_row(row)
        {
            write_err = Some(e);
        }
    });
    match (result, write_err) {
        (Ok(duration_s), None) => {
            let shape = writer.finish()?;
            Ok(Written {
                input: input.display().to_string(),
                output: out.display().to_string(),
                kind: kind.name(),
                shape,
                duration_s,
            })
        }
        (Err(e), _) => {
            writer.discard();
            Err(e.into())
        }
        (Ok(_), Some(e)) => {
            writer.discard();
            Err(e.into())
        }
    }
}
