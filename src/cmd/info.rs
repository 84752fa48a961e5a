//! `sampleid info`: decode each file completely and describe it.

use anyhow::Result;
use rayon::prelude::*;
use sampleid_audio::{AudioStream, SourceInfo};
use serde::Serialize;

use crate::cli::InfoArgs;
use crate::config::Config;
use crate::progress;

#[derive(Debug, Serialize)]
struct Report {
    input: String,
    #[serde(flatten)]
    source: SourceInfo,
    /// Seconds decoded (at the analysis rate).
    decoded_s: f64,
    /// Peak absolute sample value after downmixing (1.0 = full scale).
    peak: f32,
    /// No sound at all (digital silence or DC).
    silent: bool,
    /// Undecodable packets that were skipped.
    skipped_packets: u64,
}

/// Runs the command; returns the number of inputs that failed.
pub fn run(args: &InfoArgs, cfg: &Config, quiet: bool) -> Result<usize> {
    let bar = progress::files_bar(args.files.len() as u64, quiet);
    let results: Vec<Result<Report>> = args
        .files
        .par_iter()
        .map(|path| {
            let r = (|| -> Result<Report> {
                let mut stream = AudioStream::open(path, &cfg.engine.audio)?;
                let name = path.display().to_string();
                let declared = stream.info().duration_s;
                let (mut peak, mut lo, mut hi) = (0.0f32, f32::INFINITY, f32::NEG_INFINITY);
                while let Some(block) = stream.next_block()? {
                    for &s in block {
                        peak = peak.max(s.abs());
                        lo = lo.min(s);
                        hi = hi.max(s);
                    }
                    progress::show_position(&bar, &name, stream.position_s(), declared);
                }
                Ok(Report {
                    input: name,
                    source: stream.info().clone(),
                    decoded_s: stream.position_s(),
                    peak,
                    silent: hi - lo <= 1e-6,
                    skipped_packets: stream.skipped_packets(),
                })
            })();
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
