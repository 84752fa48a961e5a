//! A version-identification benchmark: pieces of music that exist
//! in several renditions, no recording reused. A piece is an mma groove
//! playing a random 16-chord progression twice; its reference rendition is indexed;
//! each other rendition changes the groove (half of the time), moves every
//! instrument to another program of its General MIDI family, changes the
//! tempo (×0.7–1.4) and the key (−5…+6 semitones). Every rendition draws one
//! of two General MIDI SoundFonts (Debian `timgm6mb-soundfont` and
//! `csound-soundfont`; the second is fetched into the corpus's tools). A 20 s excerpt of each
//! other rendition is a query whose answer is the piece's reference.

use std::path::PathBuf;

use rayon::prelude::*;
use sampleid_corpus::grooves::{GrooveSpec, Mma, load_font, render_piece};
use sampleid_transform::Rng;

use crate::make::{write_outputs, write_wav};
use crate::{BenchError, Benchmark, Protocol, Query, Reference, Target};

/// What to build.
#[derive(Debug, Clone)]
pub struct VersionOptions {
    /// Corpus directory: its `tools/root` holds mma and the SoundFont (`sampleid corpus fetch`).
    pub corpus: PathBuf,
    pub out: PathBuf,
    pub pieces: usize,
    /// Renditions per piece besides the reference (one query each).
    pub versions: usize,
    pub excerpt_s: f64,
    pub seed: u64,
}

/// Chords the progressions are drawn from.
const CHORDS: [&str; 16] = [
    "C", "Dm", "Em", "F", "G", "Am", "Bb", "Eb", "Ab", "D7", "E7", "A7", "Cmaj7", "Fmaj7", "G7", "Dm7",
];

const RATE: f64 = sampleid_corpus::grooves::RATE as f64;

/// Renders the benchmark into `opts.out` (`refs/`, `queries/`, `benchmark.json`).
pub fn make_versions(opts: &VersionOptions, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<Benchmark, BenchError> {
    let root = opts.corpus.join("tools/root");
    let mma = Mma {
        script: root.join("usr/bin/mma"),
        home: root.join("usr/share/mma"),
    };
    let font_path = root.join("usr/share/sounds/sf2/TimGM6mb.sf2");
    if !mma.script.exists() || !font_path.exists() {
        return Err(BenchError::Corpus(format!(
            "mma and the TimGM6mb SoundFont are missing under {}; run `sampleid corpus fetch --dir {}` first",
            root.display(),
            opts.corpus.display()
        )));
    }
    mma.prepare()?;
    let second = root.join("usr/share/sounds/sf2/sf_GMbank.sf2");
    if !second.exists() {
        let deb = sampleid_corpus::debian::download("csound-soundfont", &opts.corpus.join("debs"))?;
        sampleid_corpus::debian::extract_all(&deb, &root)?;
    }
    let fonts = [load_font(&font_path)?, load_font(&second)?];
    // Grooves that are whole styles (not their -Sus/-Plus/… variations, which
    // would make two renditions nearly the same recording).
    let grooves: Vec<String> = mma
        .grooves()?
        .into_iter()
        .filter(|g| g != "none" && g.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        .collect();
    if grooves.len() < 2 {
        return Err(BenchError::Corpus("mma lists fewer than two grooves".into()));
    }
    for d in ["refs", "queries", "work"] {
        let p = opts.out.join(d);
        std::fs::create_dir_all(&p).map_err(|e| BenchError::io(&p, e))?;
    }
    let mut rng = Rng::new(opts.seed);
    // Every random choice is drawn up front, so the benchmark does not depend on threads.
    struct Plan {
        id: String,
        spec: GrooveSpec,
        offset: u8,
        font: usize,
        excerpt_start: f64,
        /// Index of the piece's reference rendition in `plans`.
        reference: usize,
        is_reference: bool,
    }
    let mut plans: Vec<Plan> = Vec::new();
    for p in 0..opts.pieces {
        let progression: Vec<String> = (0..16).map(|_| CHORDS[rng.below(CHORDS.len())].to_string()).collect();
        let base = GrooveSpec {
            groove: grooves[rng.below(grooves.len())].clone(),
            tempo: 90 + rng.below(40) as u32,
            transpose: rng.below(12) as i32 - 5,
            progression,
            // The 16 chords twice: references of about a minute.
            bars: 32,
        };
        let reference = plans.len();
        plans.push(Plan {
            id: format!("piece{p:03}"),
            spec: base.clone(),
            offset: 0,
            font: rng.below(2),
            excerpt_start: 0.0,
            reference,
            is_reference: true,
        });
        for v in 0..opts.versions {
            let groove = if rng.chance(0.5) {
                grooves[rng.below(grooves.len())].clone()
            } else {
                base.groove.clone()
            };
            let tempo = ((base.tempo as f64) * 2f64.powf(rng.uniform(-0.5, 0.5))).round() as u32;
            plans.push(Plan {
                id: format!("v{p:03}-{v}"),
                spec: GrooveSpec {
                    groove,
                    tempo,
                    transpose: rng.below(12) as i32 - 5,
                    ..base.clone()
                },
                offset: 1 + rng.below(7) as u8,
                font: rng.below(2),
                excerpt_start: rng.uniform(0.0, 1.0),
                reference,
                is_reference: false,
            });
        }
    }
    let done = std::sync::atomic::AtomicUsize::new(0);
    let work = opts.out.join("work");
    let rendered: Vec<Result<Vec<f32>, BenchError>> = plans
        .par_iter()
        .map(|plan| {
            let r = render_piece(&mma, &fonts[plan.font], &plan.spec, plan.offset, &work).map_err(BenchError::from);
            progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, plans.len());
            r
        })
        .collect();
    let _ = std::fs::remove_dir_all(&work);
    // A piece any of whose renditions failed (some grooves do not render
    // every progression) is left out whole.
    let failed: std::collections::HashSet<usize> = plans
        .iter()
        .zip(&rendered)
        .filter(|(_, r)| r.is_err())
        .map(|(p, _)| p.reference)
        .collect();
    if failed.len() * 2 > opts.pieces {
        let why = rendered
            .into_iter()
            .find_map(|r| r.err())
            .map(|e| e.to_string())
            .unwrap_or_default();
        return Err(BenchError::Corpus(format!("most pieces failed to render: {why}")));
    }
    let mut references = Vec::new();
    let mut queries = Vec::new();
    for (plan, audio) in plans.iter().zip(rendered) {
        if failed.contains(&plan.reference) {
            continue;
        }
        let audio = audio?;
        let duration = audio.len() as f64 / RATE;
        if plan.is_reference {
            let path = format!("refs/{}.wav", plan.id);
            write_wav(&opts.out.join(&path), &audio)?;
            references.push(Reference {
                id: plan.id.clone(),
                path,
                source: format!(
                    "mma:{}@{}bpm{:+}",
                    plan.spec.groove, plan.spec.tempo, plan.spec.transpose
                ),
                duration_s: duration,
            });
            continue;
        }
        let base = &plans[plan.reference];
        let len = opts.excerpt_s.min(duration);
        let start = plan.excerpt_start * (duration - len).max(0.0);
        let a = (start * RATE) as usize;
        let excerpt = &audio[a..(a + (len * RATE) as usize).min(audio.len())];
        let path = format!("queries/{}.wav", plan.id);
        write_wav(&opts.out.join(&path), excerpt)?;
        // Query duration / reference duration of the same music.
        let ratio = base.spec.tempo as f64 / plan.spec.tempo as f64;
        let shift = (plan.spec.transpose - base.spec.transpose + 5).rem_euclid(12) - 5;
        let same_groove = plan.spec.groove == base.spec.groove;
        queries.push(Query {
            id: plan.id.clone(),
            path,
            protocol: Protocol::VersionId,
            condition: format!(
                "{}, {} SoundFont",
                if same_groove {
                    "same groove, other instruments"
                } else {
                    "other groove and instruments"
                },
                if plan.font == base.font { "same" } else { "other" }
            ),
            length_s: len,
            negative: false,
            targets: vec![Target {
                reference: base.id.clone(),
                reference_start_s: start / ratio,
                query_start_s: 0.0,
                time_ratio: ratio,
                pitch_shift: shift as f64,
            }],
            source: base.id.clone(),
            source_stems: Vec::new(),
            transforms: Default::default(),
        });
    }
    let bench = Benchmark {
        version: Benchmark::VERSION,
        seed: opts.seed,
        sample_rate: RATE as u32,
        segment_hop_s: 0.512,
        references,
        negatives: Vec::new(),
        queries,
    };
    write_outputs(&opts.out, &bench)?;
    Ok(bench)
}
