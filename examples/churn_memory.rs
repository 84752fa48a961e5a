//! Resident memory of a library under add/delete churn, without HTTP or
//! decoding: each round re-adds one song's stored rows under a new content
//! hash and deletes the song, so the live size stays the same; a compaction
//! runs whenever deleted songs hold `FRACTION` of the bytes (as a writable
//! `sampleid serve` does). Prints the round, RssAnon (MB), live songs and
//! the rows' generation every `EVERY` rounds.
//!
//!   cargo run --release --example churn_memory -- DB ROUNDS [FRACTION 0.25] [EVERY 20]
//!
//! DB is changed: run it on a copy.

use sampleid_engine::{Engine, Library, ModelSource, ReferenceRows, Settings};

fn rss_anon_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let db = std::path::Path::new(args.get(1).ok_or("usage: churn_memory DB ROUNDS [FRACTION] [EVERY]")?);
    let rounds: usize = args.get(2).ok_or("ROUNDS")?.parse()?;
    let fraction: f64 = args.get(3).map_or(Ok(0.25), |a| a.parse())?;
    let every: usize = args.get(4).map_or(Ok(20), |a| a.parse())?;
    let engine = Engine::load(Settings::default(), ModelSource::Default)?;
    let lib = Library::open_writer(db, &engine)?;
    let started = std::time::Instant::now();
    for round in 0..rounds {
        let (song, rows) = {
            let ix = lib.read();
            let s = ix.songs()[round % ix.songs().len()].clone();
            let fingerprints = (s.first_row..s.first_row + s.segments)
                .flat_map(|r| ix.fingerprint(r))
                .collect();
            let nodes = (s.first_row..s.first_row + s.segments)
                .flat_map(|r| ix.nodes(r).to_vec())
                .collect();
            let chroma = ix.chroma(&s).concat();
            let landmarks = ix.song_landmarks(&s)?;
            let rows = ReferenceRows {
                fingerprints,
                nodes,
                chroma,
                landmarks,
                // Copied from the library: its quads are the library's version's.
                sparse_peaks: Vec::new(),
                duration_s: s.duration_s,
                peak: 1.0,
            };
            (s, rows)
        };
        lib.commit(&song.path, &format!("{}-{round}", song.hash), &rows)?;
        lib.delete(song.id)?;
        if lib.dead_fraction()? >= fraction {
            lib.compact()?;
        }
        if round % every == 0 || round + 1 == rounds {
            println!(
                "round {round:5}  {:7.1} s  RssAnon {:7.1} MB  songs {}  generation {}",
                started.elapsed().as_secs_f64(),
                rss_anon_mb(),
                lib.len(),
                lib.read().generation()
            );
        }
    }
    Ok(())
}
