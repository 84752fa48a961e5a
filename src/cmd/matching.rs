//! `sampleid match` (audio matching against a library's stored chroma) and
//! `sampleid align` (the warping path between two recordings).

use std::path::Path;

use anyhow::{Context, Result};
use sampleid_audio::AudioStream;
use sampleid_features::{ChromaStream, quantise_shares};
use sampleid_index::Library;
use serde::Serialize;

use crate::cli::{AlignArgs, MatchArgs};
use crate::config::Config;

/// A file's chroma shares (10 Hz, as a library stores them) and its duration.
pub fn chroma_of_file(path: &Path, cfg: &Config) -> Result<(Vec<[u8; 12]>, f64)> {
    let mut stream = AudioStream::open(path, &cfg.audio)?;
    let mut chroma = ChromaStream::new(&cfg.chroma)?;
    let silence = chroma.silence_energy();
    let mut out = Vec::new();
    while let Some(block) = stream.next_block()? {
        chroma.push(block, &mut |e| out.push(quantise_shares(e, silence)));
    }
    chroma.finish(&mut |e| out.push(quantise_shares(e, silence)));
    if out.iter().all(|f| f.iter().all(|&v| v == 0)) {
        anyhow::bail!("{} is silent: there is no music to match", path.display());
    }
    Ok((out, stream.position_s()))
}

/// One passage in `sampleid match --json`.
#[derive(Debug, Serialize)]
struct Passage {
    reference: String,
    start: f64,
    end: f64,
    cost: f64,
    tempo_factor: f64,
    pitch_shift: i32,
}

/// `sampleid match`; returns the number of files that failed.
pub fn run_match(args: &MatchArgs, cfg: &Config) -> Result<usize> {
    let lib = Library::open(&args.db).with_context(|| format!("cannot open the library {}", args.db.display()))?;
    let songs: Vec<_> = lib.songs().iter().filter(|s| s.chroma_frames > 0).collect();
    let missing = lib.songs().len() - songs.len();
    if missing > 0 {
        tracing::warn!(
            "{missing} songs were indexed before chroma was stored and cannot be matched; \
             delete and index them again to include them"
        );
    }
    let recordings: Vec<Vec<[u8; 12]>> = songs.iter().map(|s| lib.chroma(s)).collect();
    let rate = cfg.chroma.frame_rate();
    let mut failed = 0;
    for file in &args.files {
        let name = file.display().to_string();
        let result = chroma_of_file(file, cfg).and_then(|(q, _)| {
            sampleid_matching::match_query(&q, &recordings, rate, &cfg.matching).map_err(anyhow::Error::from)
        });
        match result {
            Ok(found) => {
                let passages: Vec<Passage> = found
                    .iter()
                    .map(|m| Passage {
                        reference: songs[m.recording].path.clone(),
                        start: m.start_s,
                        end: m.end_s,
                        cost: m.cost,
                        tempo_factor: m.tempo_factor,
                        pitch_shift: m.pitch_shift,
                    })
                    .collect();
                if args.json {
                    println!("{}", serde_json::json!({"query": name, "matches": passages}));
                } else {
                    println!("{name}");
                    if passages.is_empty() {
                        println!("  no passage matches");
                    }
                    for (i, p) in passages.iter().enumerate() {
                        println!(
                            "  {}. {}  {:.1}–{:.1} s  cost {:.3}  tempo ×{:.2}  key {:+} st",
                            i + 1,
                            p.reference,
                            p.start,
                            p.end,
                            p.cost,
                            p.tempo_factor,
                            p.pitch_shift
                        );
                    }
                }
            }
            Err(e) => {
                failed += 1;
                if args.json {
                    println!("{}", serde_json::json!({"query": name, "error": format!("{e:#}")}));
                }
                eprintln!("error: {name}: {e:#}");
            }
        }
    }
    Ok(failed)
}

/// `sampleid align`.
pub fn run_align(args: &AlignArgs, cfg: &Config) -> Result<()> {
    let (a, _) = chroma_of_file(&args.a, cfg).with_context(|| format!("cannot read {}", args.a.display()))?;
    let (b, _) = chroma_of_file(&args.b, cfg).with_context(|| format!("cannot read {}", args.b.display()))?;
    let al = sampleid_matching::align(&a, &b, cfg.chroma.frame_rate(), &cfg.align)?;
    let path_s = al.path_s();
    if let Some(out) = &args.plot {
        let m = &al.matrix;
        sampleid_report::cost_matrix(
            out,
            &format!(
                "{} vs {}",
                args.a.file_name().unwrap_or_default().to_string_lossy(),
                args.b.file_name().unwrap_or_default().to_string_lossy()
            ),
            m.rows(),
            m.cols(),
            m.values(),
            al.rate,
            &al.path,
            "A",
            "B",
        )
        .with_context(|| format!("cannot draw {}", out.display()))?;
    }
    if args.json {
        let path: Vec<[f64; 2]> = path_s.iter().map(|&(x, y)| [x, y]).collect();
        println!(
            "{}",
            serde_json::json!({
                "a": args.a.display().to_string(), "b": args.b.display().to_string(),
                "rate": al.rate, "cost": al.cost, "mean_cost": al.mean_cost(), "path": path,
            })
        );
    } else {
        println!(
            "{} ↔ {}: {} path steps at {} features/s, mean cost {:.3}",
            args.a.display(),
            args.b.display(),
            al.path.len(),
            al.rate,
            al.mean_cost()
        );
        // About ten evenly spaced correspondences.
        let every = (path_s.len() / 10).max(1);
        for (x, y) in path_s.iter().step_by(every).chain(path_s.last()) {
            println!("  A {x:7.1} s  ↔  B {y:7.1} s");
        }
        if let Some(out) = &args.plot {
            println!("plot: {}", out.display());
        }
    }
    Ok(())
}
