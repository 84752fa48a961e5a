//! `sampleid info`: adapts [`sampleid_engine::inspect::audio_report`]
//! (decode each file completely and describe it).

use anyhow::Result;
use rayon::prelude::*;
use sampleid_engine::Source;
use sampleid_engine::inspect::{self, AudioReport};

use crate::cli::InfoArgs;
use crate::config::Config;
use crate::progress;

/// Runs the command; returns the number of inputs that failed.
pub fn run(args: &InfoArgs, cfg: &Config, quiet: bool) -> Result<usize> {
    let bar = progress::files_bar(args.files.len() as u64, quiet);
    let results: Vec<Result<AudioReport>> = args
        .files
        .par_iter()
        .map(|path| {
            let show = |name: &str, pos: f64, declared: Option<f64>| progress::show_position(&bar, name, pos, declared);
            let r = inspect::audio_report(&cfg.engine, &Source::file(path), Some(&show)).map_err(anyhow::Error::from);
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();

    super::report(&args.files, &results, args.json, |rep| {
        let s = &rep.source;
        let opt = |v: Option<String>| v.unwrap_or_else(|| "?".into());
        format!(
            "{}: {}/{}, {} Hz, {} ch, {:.2} s decoded (declared {}), peak {:.3}{}{}",
            rep.input,
            s.container,
            s.codec,
            opt(s.sample_rate.map(|r| r.to_string())),
            opt(s.channels.map(|c| c.to_string())),
            rep.decoded_s,
            opt(s.duration_s.map(|d| format!("{d:.2} s"))),
            rep.peak,
            if rep.silent { ", SILENT" } else { "" },
            if rep.skipped_packets > 0 {
                format!(", {} bad packets skipped", rep.skipped_packets)
            } else {
                String::new()
            }
        )
    })
}
