//! `sampleid features`: stream audio through the front end into `.npy` files.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use rayon::prelude::*;
use sampleid_audio::AudioStream;
use sampleid_features::chroma::{cens_from_energy, normalise_chroma};
use sampleid_features::npy::NpyWriter;
use sampleid_features::{ChromaStream, FeatureError, LogMelStream, SegmentStream};
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

/// Streams one input into one `.npy` file.
fn extract(input: &Path, out: &Path, kind: FeatureKind, cfg: &Config, bar: &ProgressBar) -> Result<Written> {
    let mut stream = AudioStream::open(input, &cfg.engine.audio)?;
    let declared = stream.info().duration_s;
    let name = input.display().to_string();
    let fe = &cfg.engine.frontend;
    let row_shape: Vec<usize> = match kind {
        FeatureKind::Mel => vec![fe.n_mels],
        FeatureKind::Segments => vec![fe.n_mels, fe.segment_frames],
        FeatureKind::Chroma | FeatureKind::Cens => vec![12],
        FeatureKind::Track => vec![sampleid_features::track_feature_names().len()],
    };
    let mut writer = NpyWriter::create(out, &row_shape)?;
    let result = (|| -> Result<()> {
        let mut write_err: Option<FeatureError> = None;
        let mut emit = |row: &[f32]| {
            if write_err.is_none()
                && let Err(e) = writer.write_row(row)
            {
                write_err = Some(e);
            }
        };
        match kind {
            FeatureKind::Mel => {
                let mut mel = LogMelStream::new(fe, 0)?;
                while let Some(block) = stream.next_block()? {
                    mel.push(block, &mut |f| emit(f));
                    progress::show_position(bar, &name, stream.position_s(), declared);
                }
                mel.finish(&mut |f| emit(f));
            }
            FeatureKind::Segments => {
                let mut seg = SegmentStream::new(fe)?;
                while let Some(block) = stream.next_block()? {
                    seg.push(block, &mut |s| emit(&s.data));
                    progress::show_position(bar, &name, stream.position_s(), declared);
                }
                seg.finish(&mut |s| emit(&s.data));
            }
            FeatureKind::Chroma => {
                let mut ch = ChromaStream::new(&cfg.engine.chroma)?;
                let silence = ch.silence_energy();
                let mut on = |e: &[f32; 12]| emit(&normalise_chroma(std::slice::from_ref(e), silence)[0]);
                while let Some(block) = stream.next_block()? {
                    ch.push(block, &mut on);
                    progress::show_position(bar, &name, stream.position_s(), declared);
                }
                ch.finish(&mut on);
            }
            FeatureKind::Track => {
                // A whole-track summary: the decoded track is held (16 kHz mono, 3.8 MB per minute).
                let mut samples = Vec::new();
                while let Some(block) = stream.next_block()? {
                    samples.extend_from_slice(block);
                    progress::show_position(bar, &name, stream.position_s(), declared);
                }
                emit(&sampleid_features::track_features(&samples, fe)?);
            }
            FeatureKind::Cens => {
                // Chroma energies are small (12 floats per 0.1 s); CENS needs a window over them.
                let mut ch = ChromaStream::new(&cfg.engine.chroma)?;
                let mut energy = Vec::new();
                while let Some(block) = stream.next_block()? {
                    ch.push(block, &mut |e| energy.push(*e));
                    progress::show_position(bar, &name, stream.position_s(), declared);
                }
                ch.finish(&mut |e| energy.push(*e));
                for row in cens_from_energy(&energy, ch.silence_energy(), &cfg.engine.chroma.cens) {
                    emit(&row);
                }
            }
        }
        match write_err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    })();
    match result {
        Ok(()) => {
            let shape = writer.finish()?;
            Ok(Written {
                input: name,
                output: out.display().to_string(),
                kind: kind.name(),
                shape,
                duration_s: stream.position_s(),
            })
        }
        Err(e) => {
            writer.discard();
            Err(e)
        }
    }
}
